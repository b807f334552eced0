"""Export and import procedure libraries: a versioned JSON Lines format with provenance.

Format (version 1), one JSON object per line:
- line 1, the header: {"format": "memp-mcp-library", "version": 1, "namespace": ..., "exported_at": ...,
  "embedding_model": ...};
- then one line per procedure: {"type": "procedure", "id", "candidate_of", "title", "when_to_use", "steps", "pitfalls",
  "status", "source", "author", "keys", "stats": {...}, "trajectories": [{"task", "outcome", "agent",
  "steps": [{action, observation?, thought?}]}]}.

Import validates every line against the format before writing anything, then hands the procedures
to the engine's import (memp_mcp.engine.imports), which checks them as records and edits are checked
and writes them in one transaction: a procedure merges into an existing one only for the same task,
whose steps are kept; importing the same file again changes nothing; a new procedure keeps the
exported statistics.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ValidationError

from memp_mcp.engine.imports import ImportedProcedure
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.results import ImportReport
from memp_mcp.engine.scan import refuse_secrets
from memp_mcp.errors import InvalidInputError

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


class LibraryProcedure(ImportedProcedure):
    """A procedure line: what the engine imports, marked as a procedure."""

    type: Literal["procedure"]


def export_library(memory: Memory, namespace: str) -> Iterator[str]:
    """The namespace's procedures (active and deprecated) as JSON lines, header first.

    InvalidInputError, before the first line, when a procedure holds a secret (scan.refuse_secrets).
    """
    store = memory.store
    offset = 0
    while batch := store.list_procedures(namespace, None, None, 200, offset):
        offset += len(batch)
        for procedure in batch:
            trajectories = [store.get_trajectory(tid) for tid in procedure.source_trajectory_ids]
            refuse_secrets(procedure, store.keys(procedure.id), trajectories)
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
                    "id": procedure.id,
                    "candidate_of": procedure.candidate_of,
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
                    **({"skill": skill.model_dump()} if (skill := store.skill_of(procedure.id)) else {}),
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
        except RecursionError:
            raise InvalidInputError(f"line {number} nests deeper than a library line can") from None
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
    """Validate every line, then import every procedure through the engine, in one transaction."""
    header, procedures = parse_library(lines)
    return memory.import_procedures(procedures, namespace or header.namespace)
