"""Export and import procedure libraries: a versioned JSON Lines format with provenance.

Format (version 1), one JSON object per line:
- line 1, the header: {"format": "memp-mcp-library", "version": 1, "namespace": ..., "exported_at": ...,
  "embedding_model": ...};
- then one line per procedure: {"type": "procedure", "title", "when_to_use", "steps", "pitfalls",
  "status", "source", "author", "keys", "stats": {...}, "trajectories": [{"task", "outcome", "agent",
  "steps": [{action, observation?, thought?}]}]}.

Import validates every line before writing anything, then writes in one transaction. A procedure
merges into an existing one only for the same task (a trajectory task they share, or the same title
and when-to-use when there are no trajectories), never on a family key every procedure of a kind
shares; the existing steps are kept. Importing the same file again changes nothing: trajectories the
procedure already holds are not added twice. A new procedure keeps the exported statistics.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from memp_mcp.engine.memory import MAX_KEYS_PER_PROCEDURE, Memory, _merge_lists
from memp_mcp.engine.retrieve import key_text
from memp_mcp.errors import InvalidInputError
from memp_mcp.models import (
    MAX_PITFALLS,
    MAX_PROCEDURE_STEPS,
    MAX_TASK_CHARS,
    MAX_TEXT_CHARS,
    Outcome,
    Procedure,
    ProcedureStatus,
    Step,
    Trajectory,
)

FORMAT_NAME = "memp-mcp-library"
FORMAT_VERSION = 1
MAX_IMPORT_LINE_CHARS = 5_000_000


class LibraryHeader(BaseModel):
    model_config = {"extra": "ignore"}

    format: Literal["memp-mcp-library"]
    version: int
    namespace: str | None = None
    exported_at: str | None = None
    embedding_model: str | None = None


class LibraryTrajectory(BaseModel):
    task: str = Field(min_length=1, max_length=MAX_TASK_CHARS)
    outcome: Outcome
    agent: str | None = None
    steps: list[Step] = Field(max_length=500)


class LibraryStats(BaseModel):
    model_config = {"extra": "ignore"}

    retrieved: int = Field(default=0, ge=0)
    succeeded: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)


class LibraryProcedure(BaseModel):
    model_config = {"extra": "ignore"}

    type: Literal["procedure"]
    title: str = Field(min_length=1, max_length=200)
    when_to_use: str = Field(max_length=MAX_TEXT_CHARS)
    steps: list[str] = Field(min_length=1, max_length=MAX_PROCEDURE_STEPS)
    pitfalls: list[str] = Field(default_factory=list, max_length=MAX_PITFALLS)
    status: ProcedureStatus = ProcedureStatus.ACTIVE
    source: str = "agent"
    author: str | None = None
    keys: list[str] = Field(default_factory=list, max_length=MAX_KEYS_PER_PROCEDURE * 4)
    trajectories: list[LibraryTrajectory] = Field(default_factory=list)
    stats: LibraryStats = Field(default_factory=LibraryStats)


class ImportReport(BaseModel):
    created: int
    merged: int
    trajectories: int
    conflicts: list[str]


def export_library(memory: Memory, namespace: str) -> Iterator[str]:
    """The namespace's procedures (active and deprecated) as JSON lines, header first."""
    store = memory.store
    bound = store.embedding_model()
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "namespace": namespace,
        "exported_at": datetime.now(UTC).isoformat(),
        "embedding_model": bound[0] if bound else None,
    }
    yield json.dumps(header)
    offset = 0
    while batch := store.list_procedures(namespace, None, None, 200, offset):
        offset += len(batch)
        for procedure in batch:
            trajectories = [store.get_trajectory(tid) for tid in procedure.source_trajectory_ids]
            yield json.dumps(
                {
                    "type": "procedure",
                    "title": procedure.title,
                    "when_to_use": procedure.when_to_use,
                    "steps": procedure.steps,
                    "pitfalls": procedure.pitfalls,
                    "status": procedure.status.value,
                    "source": procedure.source,
                    "author": procedure.author,
                    "keys": store.keys(procedure.id),
                    "stats": {
                        "retrieved": procedure.retrieved_count,
                        "succeeded": procedure.success_count,
                        "failed": procedure.failure_count,
                        "support": procedure.support_count,
                        "version": procedure.version,
                    },
                    "trajectories": [
                        {
                            "task": t.task,
                            "outcome": t.outcome.value,
                            "agent": t.agent,
                            "steps": [s.model_dump(exclude_none=True) for s in t.steps],
                        }
                        for t in trajectories
                    ],
                },
                ensure_ascii=False,
            )


def parse_library(lines: Iterable[str]) -> tuple[LibraryHeader, list[LibraryProcedure]]:
    """Validate a whole library; InvalidInputError names the first bad line and what is wrong."""
    header: LibraryHeader | None = None
    procedures: list[LibraryProcedure] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(line) > MAX_IMPORT_LINE_CHARS:
            raise InvalidInputError(f"line {number} is longer than {MAX_IMPORT_LINE_CHARS} characters")
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"line {number} is not JSON: {exc.msg}") from None
        try:
            if header is None:
                header = LibraryHeader.model_validate(data)
                if header.version > FORMAT_VERSION:
                    raise InvalidInputError(
                        f"this library is format version {header.version}; this memp-mcp reads up to "
                        f"{FORMAT_VERSION} - upgrade memp-mcp to import it"
                    )
                continue
            procedures.append(LibraryProcedure.model_validate(data))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "line"
            kind = "header" if header is None else "procedure"
            raise InvalidInputError(f"line {number} ({kind}): {where}: {error['msg']}") from None
    if header is None:
        raise InvalidInputError(f"empty file: expected a {FORMAT_NAME} header line")
    return header, procedures


def import_library(memory: Memory, lines: Iterable[str], namespace: str | None = None) -> ImportReport:
    """Validate everything, then write everything in one transaction."""
    header, procedures = parse_library(lines)
    target = memory.writable_namespace(namespace or header.namespace)
    store = memory.store
    model = memory.embedder(wait=30.0)
    key_lists = [
        list(dict.fromkeys([*p.keys, p.when_to_use, *(key_text(t.task) for t in p.trajectories)]))[
            :MAX_KEYS_PER_PROCEDURE
        ]
        for p in procedures
    ]
    flat = [k for keys in key_lists for k in keys if k]
    vectors = dict(zip(flat, model.embed(flat), strict=True)) if model is not None and flat else {}
    created = merged = trajectory_count = 0
    conflicts: list[str] = []
    with store.transaction():
        if vectors and not memory.fits_database(model):
            vectors = {}  # the database was re-embedded with another model meanwhile: backfilled later
        for procedure, keys in zip(procedures, key_lists, strict=True):
            key_pairs = [(k, vectors.get(k)) for k in keys if k]
            twin = _same_task(memory, target, procedure)
            if twin is None:
                trajectory_ids = [
                    store.add_trajectory(target, t.task, t.steps, t.outcome, t.agent) for t in procedure.trajectories
                ]
                trajectory_count += len(trajectory_ids)
                new_id = store.add_procedure(
                    target,
                    procedure.title,
                    procedure.when_to_use,
                    procedure.steps,
                    procedure.pitfalls,
                    procedure.source,
                    procedure.author,
                    trajectory_ids,
                    trajectory_ids[0] if trajectory_ids else None,
                    key_pairs,
                )
                stats = procedure.stats
                store.bump_stats(new_id, retrieved=stats.retrieved, succeeded=stats.succeeded, failed=stats.failed)
                if procedure.status == ProcedureStatus.DEPRECATED:
                    store.set_status(new_id, ProcedureStatus.DEPRECATED)
                created += 1
                continue
            held = {_fingerprint(t) for t in (store.get_trajectory(i) for i in twin.source_trajectory_ids)}
            trajectory_ids = []
            for t in procedure.trajectories:
                if _fingerprint(t) not in held:
                    held.add(_fingerprint(t))
                    trajectory_ids.append(store.add_trajectory(target, t.task, t.steps, t.outcome, t.agent))
            trajectory_count += len(trajectory_ids)
            store.add_sources(twin.id, trajectory_ids)
            store.add_keys(twin.id, key_pairs[: max(0, MAX_KEYS_PER_PROCEDURE - len(store.keys(twin.id)))])
            pitfalls = _merge_lists(twin.pitfalls, procedure.pitfalls, MAX_PITFALLS)
            if twin.steps != procedure.steps:
                conflicts.append(
                    f"'{procedure.title}' is for the same task as existing procedure {twin.id} ('{twin.title}'); "
                    "kept the existing steps and added the imported pitfalls and sources"
                )
            if pitfalls != twin.pitfalls:
                store.revise_procedure(
                    twin.id, reason="import: merged pitfalls", changed_by=procedure.author, pitfalls=pitfalls
                )
            merged += 1
    return ImportReport(created=created, merged=merged, trajectories=trajectory_count, conflicts=conflicts)


def _same_task(memory: Memory, namespace: str, procedure: LibraryProcedure) -> Procedure | None:
    """The existing procedure (active or deprecated) for the same task as an imported one, if any.

    The same task: a trajectory task they share (as recording merges), or, for a procedure exported
    without trajectories, the same title and when-to-use. Never a family key ("clean a {object}"),
    which procedures for different tasks share.
    """
    store = memory.store
    for task in dict.fromkeys(key_text(t.task) for t in procedure.trajectories):
        for found in store.get_procedures(store.procedures_with_key(namespace, task, include_deprecated=True)):
            if task in {key_text(store.get_trajectory(i).task) for i in found.source_trajectory_ids}:
                return found
    if procedure.trajectories:
        return None
    titled = store.procedures_with_key(namespace, procedure.when_to_use, include_deprecated=True)
    for found in store.get_procedures(titled):
        if (found.title, found.when_to_use) == (procedure.title, procedure.when_to_use):
            return found
    return None


def _fingerprint(trajectory: Trajectory | LibraryTrajectory) -> str:
    """What makes two trajectories the same record (ids and times differ between databases)."""
    steps = [s.model_dump(exclude_none=True) for s in trajectory.steps]
    return json.dumps([trajectory.task, trajectory.outcome.value, trajectory.agent, steps], sort_keys=True)
