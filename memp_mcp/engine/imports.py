"""Import: procedures written elsewhere (a library file, skills) added to memory through the engine's checks.

Every imported procedure and trajectory is held to the limits a record or an edit is held to
(inputs.py), all of them before anything is written, then everything is written in one transaction.
A procedure merges into an existing one only for the same task (a trajectory task they share, or the
same title and when-to-use when there are no trajectories), never on a family key every procedure of a
kind shares; the existing steps are kept (trust.import_conflict). Importing the same procedures again
changes nothing: trajectories a procedure already holds are not added twice. A candidate stays a candidate
of what it would replace when that comes in the same file (ImportedProcedure.candidate_of). A new procedure keeps the
given statistics as its totals, but starts provisional: what a file declares is not evidence.

A procedure's own export imported back into its namespace (ImportedProcedure.exported_as, from a skill's
memp- metadata) is recognised as that procedure (_exported_origin): unchanged, it is already present; edited,
it revises the procedure in place where trust.may_update_from_export allows, else it becomes a candidate of
it. Either way the counts it declares are the procedure's own, already held, and are not added again.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from memp_mcp.engine.inputs import check_agent, check_draft, check_steps, check_task
from memp_mcp.engine.lessons import merged_pitfalls
from memp_mcp.engine.model import ModelBinding
from memp_mcp.engine.record import MAX_KEYS_PER_PROCEDURE
from memp_mcp.engine.results import ImportReport
from memp_mcp.engine.retrieve import key_text
from memp_mcp.engine.scrub import Scrubber
from memp_mcp.engine.trust import import_conflict, may_update_from_export, room_for_candidate
from memp_mcp.errors import InvalidInputError, NotFoundError
from memp_mcp.models import (
    MAX_PITFALLS,
    MAX_PROCEDURE_STEPS,
    MAX_STEPS,
    MAX_TASK_CHARS,
    MAX_TEXT_CHARS,
    Outcome,
    Procedure,
    ProcedureDraft,
    ProcedureStatus,
    SkillDocument,
    Step,
    Trajectory,
)
from memp_mcp.store import Store

# Larger counts are no one's record (and would overflow the columns' 64-bit integers once added to).
MAX_DECLARED_COUNT = 1_000_000_000


class ImportedTrajectory(BaseModel):
    task: str = Field(min_length=1, max_length=MAX_TASK_CHARS)
    outcome: Outcome
    agent: str | None = None
    steps: list[Step] = Field(max_length=MAX_STEPS)


class ImportedStats(BaseModel):
    model_config = {"extra": "ignore"}

    retrieved: int = Field(default=0, ge=0, le=MAX_DECLARED_COUNT)
    succeeded: int = Field(default=0, ge=0, le=MAX_DECLARED_COUNT)
    failed: int = Field(default=0, ge=0, le=MAX_DECLARED_COUNT)


class ExportedAs(BaseModel):
    """The procedure an export was written from, as the export names it: its id, namespace and version then."""

    id: int = Field(ge=1)
    namespace: str
    version: int = Field(ge=1)


class ImportedProcedure(BaseModel):
    """One procedure to import, with the trajectories it was built from and its statistics."""

    model_config = {"extra": "ignore"}

    title: str = Field(min_length=1, max_length=200)
    when_to_use: str = Field(max_length=MAX_TEXT_CHARS)
    steps: list[str] = Field(min_length=1, max_length=MAX_PROCEDURE_STEPS)
    pitfalls: list[str] = Field(default_factory=list, max_length=MAX_PITFALLS)
    status: ProcedureStatus = ProcedureStatus.ACTIVE
    source: str = "agent"
    author: str | None = None
    keys: list[str] = Field(default_factory=list, max_length=MAX_KEYS_PER_PROCEDURE * 4)
    trajectories: list[ImportedTrajectory] = Field(default_factory=list)
    stats: ImportedStats = Field(default_factory=ImportedStats)
    # The id the procedure had where it was exported, and on a candidate the id of the procedure it
    # proposes to replace there: links between procedures of one file.
    id: int | None = None
    candidate_of: int | None = None
    # The Agent Skill it was derived from, kept whole (see skills.py); None for recorded work.
    skill: SkillDocument | None = None
    # Set when memp-mcp's export wrote it: the procedure it came from (see _exported_origin).
    exported_as: ExportedAs | None = None


def import_procedures(
    store: Store, model: ModelBinding, namespace: str, procedures: Sequence[ImportedProcedure], principal: str
) -> ImportReport:
    """Check every procedure, then write them all in one transaction into `namespace` (already writable),
    as `principal`'s: a file is trusted as its importer is."""
    scrub = Scrubber()
    checked = [_scrubbed(number, _checked(number, p), scrub) for number, p in enumerate(procedures, 1)]
    embedder = model.get(wait=30.0)
    key_lists = [
        list(dict.fromkeys([*p.keys, p.when_to_use, *(key_text(t.task) for t in p.trajectories)]))[
            :MAX_KEYS_PER_PROCEDURE
        ]
        for p in checked
    ]
    flat = [k for keys in key_lists for k in keys if k]
    vectors = dict(zip(flat, embedder.embed(flat), strict=True)) if embedder is not None and flat else {}
    created = merged = unchanged = updated = trajectory_count = 0
    conflicts: list[str] = []
    changes: list[str] = []
    # Where each of the file's ids landed here, so that candidates keep pointing at what they would replace.
    landed: dict[int, int] = {}
    # Candidates last: what they point at is imported first.
    order = sorted(range(len(checked)), key=lambda i: checked[i].candidate_of is not None)
    with store.transaction():
        if vectors and not model.fits_database(embedder):
            vectors = {}  # the database was re-embedded with another model meanwhile: backfilled later
        for procedure, keys in ((checked[i], key_lists[i]) for i in order):
            key_pairs = [(k, vectors.get(k)) for k in keys if k]
            candidate_of = landed.get(procedure.candidate_of) if procedure.candidate_of is not None else None
            # What its export declares of a procedure already here is that procedure's own record.
            declares_stats = True
            if (origin := _exported_origin(store, namespace, procedure)) is not None:
                assert procedure.exported_as is not None and procedure.skill is not None
                if procedure.id is not None:
                    landed[procedure.id] = origin.id
                if _holds(store, origin, procedure) or store.procedures_with_skill(
                    namespace, procedure.skill.name, procedure.skill.digest()
                ):
                    unchanged += 1  # as exported, or this same edited copy imported before
                    continue
                what = f"procedure {origin.id} ('{origin.title}'): its skill '{procedure.skill.name}' was edited"
                if may_update_from_export(origin, principal, procedure.exported_as.version):
                    version = _update_from_export(store, origin, procedure, key_pairs, principal)
                    changes.append(f"{what} since the export; updated in place to version {version}")
                    updated += 1
                    continue
                if not room_for_candidate(store.candidates_of(origin.id)):
                    conflicts.append(f"{what}, but it already has candidates waiting; the edited copy was not imported")
                    continue
                candidate_of, declares_stats, twin = origin.id, False, None
            elif procedure.skill is not None:
                # A skill is its own procedure: it merges with nothing but itself imported again,
                # so two skills of one title (or one name, from two authors) stay two, and so do two
                # copies of one skill in two places (one author's skill filed under two task families).
                if found := _same_skill(store, namespace, procedure.skill):
                    if procedure.id is not None:
                        landed[procedure.id] = found[0]
                    unchanged += 1
                    continue
                twin = None
            elif candidate_of is not None:
                twin = next((c for c in store.candidates_of(candidate_of) if c.steps == procedure.steps), None)
            else:
                twin = _same_task(store, namespace, procedure)
            if twin is None:
                trajectory_ids = [
                    store.add_trajectory(namespace, t.task, t.steps, t.outcome, t.agent) for t in procedure.trajectories
                ]
                trajectory_count += len(trajectory_ids)
                new_id = store.add_procedure(
                    namespace,
                    procedure.title,
                    procedure.when_to_use,
                    procedure.steps,
                    procedure.pitfalls,
                    procedure.source,
                    procedure.author,
                    trajectory_ids,
                    trajectory_ids[0] if trajectory_ids else None,
                    key_pairs,
                    candidate_of=candidate_of,
                    principal=principal,
                )
                if procedure.id is not None and origin is None:
                    landed[procedure.id] = new_id
                # What a file declares is shown in the totals, but is no evidence here: the steps start
                # provisional and earn trust from outcomes reported on this memory.
                stats = procedure.stats
                if declares_stats:
                    store.bump_stats(
                        new_id,
                        retrieved=stats.retrieved,
                        succeeded=stats.succeeded,
                        failed=stats.failed,
                        this_version=False,
                    )
                if origin is not None:
                    changes.append(
                        f"{what}, and it is proven or changed since the export; the edited copy is candidate "
                        f"{new_id}, which recall serves once it has a reported success"
                    )
                if procedure.status == ProcedureStatus.DEPRECATED:
                    store.set_status(new_id, ProcedureStatus.DEPRECATED)
                if procedure.skill is not None:
                    store.save_skill(new_id, procedure.skill)
                created += 1
                continue
            if procedure.id is not None:
                landed[procedure.id] = twin.id
            held = {_fingerprint(t) for t in (store.get_trajectory(i) for i in twin.source_trajectory_ids)}
            trajectory_ids = []
            for t in procedure.trajectories:
                if _fingerprint(t) not in held:
                    held.add(_fingerprint(t))
                    trajectory_ids.append(store.add_trajectory(namespace, t.task, t.steps, t.outcome, t.agent))
            trajectory_count += len(trajectory_ids)
            store.add_sources(twin.id, trajectory_ids)
            # Its own when-to-use coming back (a round trip) is no new way to find it; another's wording is.
            new_keys = [pair for pair in key_pairs if pair[0] != twin.when_to_use]
            keys_added = store.add_keys(twin.id, new_keys[: max(0, MAX_KEYS_PER_PROCEDURE - len(store.keys(twin.id)))])
            pitfalls = merged_pitfalls(twin.pitfalls, procedure.pitfalls)
            if conflict := import_conflict(twin, procedure.title, procedure.steps):
                conflicts.append(conflict)
            if pitfalls != twin.pitfalls:
                store.revise_procedure(
                    twin.id, reason="import: merged pitfalls", changed_by=procedure.author, pitfalls=pitfalls
                )
            # A file imported again, or into the memory it came from, brings nothing the procedure lacks.
            if trajectory_ids or keys_added or conflict or pitfalls != twin.pitfalls:
                merged += 1
            else:
                unchanged += 1
    return ImportReport(
        namespace=namespace,
        created=created,
        merged=merged,
        unchanged=unchanged,
        updated=updated,
        trajectories=trajectory_count,
        conflicts=conflicts,
        changes=changes,
        redacted=scrub.found,
    )


def check_imported(procedure: ImportedProcedure) -> ImportedProcedure:
    """One procedure held to the limits `import_procedures` holds every one to; InvalidInputError says
    what is wrong. For a caller that refuses what fails one by one rather than the whole import."""
    return _checked(1, procedure)


def _checked(number: int, procedure: ImportedProcedure) -> ImportedProcedure:
    """`procedure` held to the limits of a record and an edit; InvalidInputError names it and what is wrong."""
    try:
        draft = check_draft(
            ProcedureDraft.model_construct(
                title=procedure.title,
                steps=procedure.steps,
                when_to_use=procedure.when_to_use,
                pitfalls=procedure.pitfalls,
            )
        )
        trajectories = [
            t.model_copy(
                update={"task": check_task(t.task), "steps": check_steps(t.steps), "agent": check_agent(t.agent)}
            )
            for t in procedure.trajectories
        ]
        author = check_agent(procedure.author)
    except InvalidInputError as exc:
        raise InvalidInputError(f"procedure {number} ('{procedure.title[:80]}'): {exc}") from None
    return procedure.model_copy(
        update={"steps": draft.steps, "pitfalls": draft.pitfalls, "author": author, "trajectories": trajectories}
    )


def _scrubbed(number: int, procedure: ImportedProcedure, scrub: Scrubber) -> ImportedProcedure:
    """`procedure` without secrets or private spans, nor personal data in its title and when-to-use."""
    where = f"procedures[{number - 1}]"
    return procedure.model_copy(
        update={
            "title": scrub.shared(f"{where}.title", procedure.title),
            "when_to_use": scrub.shared(f"{where}.when_to_use", procedure.when_to_use),
            "steps": scrub.texts(f"{where}.steps", procedure.steps),
            "pitfalls": scrub.texts(f"{where}.pitfalls", procedure.pitfalls),
            "keys": [scrub.shared(f"{where}.keys", key) for key in procedure.keys],
            "trajectories": [
                t.model_copy(
                    update={
                        "task": scrub.text(f"{where}.trajectories[{i}].task", t.task),
                        "steps": scrub.steps(f"{where}.trajectories[{i}].steps", t.steps),
                    }
                )
                for i, t in enumerate(procedure.trajectories)
            ],
            "skill": None if procedure.skill is None else _scrubbed_skill(f"{where}.skill", procedure.skill, scrub),
        }
    )


def _scrubbed_skill(where: str, skill: SkillDocument, scrub: Scrubber) -> SkillDocument:
    """The skill kept whole, less its secrets and private spans: its body, its frontmatter's texts and its
    text files (binary files are kept as they are). A skill without any comes back byte for byte."""
    files: dict[str, str] = {}
    for path, encoded in skill.files.items():
        try:
            text = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            files[path] = encoded
            continue
        cleaned = scrub.text(f"{where}.files[{path}]", text)
        files[path] = encoded if cleaned == text else base64.b64encode(cleaned.encode("utf-8")).decode("ascii")
    return skill.model_copy(
        update={
            "body": scrub.text(f"{where}.body", skill.body),
            "frontmatter": _scrubbed_value(f"{where}.frontmatter", skill.frontmatter, scrub),
            "files": files,
        }
    )


def _scrubbed_value(where: str, value: Any, scrub: Scrubber) -> Any:
    """A frontmatter value with every text in it scrubbed (YAML nests maps and lists)."""
    if isinstance(value, str):
        return scrub.text(where, value)
    if isinstance(value, list):
        return [_scrubbed_value(where, item, scrub) for item in value]
    if isinstance(value, dict):
        return {key: _scrubbed_value(f"{where}.{key}", item, scrub) for key, item in value.items()}
    return value


def _same_task(store: Store, namespace: str, procedure: ImportedProcedure) -> Procedure | None:
    """The existing procedure (active or deprecated) for the same task as an imported one, if any.

    The same task: a trajectory task they share (as recording merges), or, for a procedure imported
    without trajectories, the same title and when-to-use. Never a family key ("clean a {object}"),
    which procedures for different tasks share.
    """
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


def _same_skill(store: Store, namespace: str, skill: SkillDocument) -> list[int]:
    """The procedures of `namespace` imported from this very skill: the same content from the same place.
    A folder is the same place when one path ends the other: the same tree imported from its root, then
    from one of its folders, measures `author/family/pdf` and then `family/pdf`."""

    def same_place(held: str) -> bool:
        ours, theirs = skill.folder.split("/"), held.split("/")
        shorter = min(len(ours), len(theirs))
        return ours[len(ours) - shorter :] == theirs[len(theirs) - shorter :]

    found = store.procedures_with_skill(namespace, skill.name, skill.digest())
    return [pid for pid in found if (held := store.skill_of(pid)) is not None and same_place(held.folder)]


def _exported_origin(store: Store, namespace: str, procedure: ImportedProcedure) -> Procedure | None:
    """The procedure of `namespace` that `procedure` is an export of, if any.

    Ids and namespace names repeat between databases (every new one has a procedure 1 in "default"), so
    the id is confirmed by content: a procedure kept with a skill by the skill's name; one from recorded
    work by the title or when-to-use it had in the version exported, one of which an edit leaves.
    """
    exported = procedure.exported_as
    if exported is None or exported.namespace != namespace or procedure.skill is None:
        return None
    try:
        found = store.get_procedure(exported.id)
    except NotFoundError:
        return None
    if found.namespace != namespace:
        return None
    if (skill := store.skill_of(found.id)) is not None:
        return found if skill.name == procedure.skill.name else None
    then = _content_at(store, found, exported.version)
    return found if then is not None and (procedure.title == then[0] or procedure.when_to_use == then[1]) else None


def _content_at(store: Store, procedure: Procedure, version: int) -> tuple[str, str, list[str], list[str]] | None:
    """The title, when-to-use, steps and pitfalls `procedure` had at `version` (None: no such version)."""
    if version == procedure.version:
        return procedure.title, procedure.when_to_use, procedure.steps, procedure.pitfalls
    past = next((v for v in store.versions(procedure.id) if v.version == version), None)
    return None if past is None else (past.title, past.when_to_use, past.steps, past.pitfalls)


def _holds(store: Store, origin: Procedure, procedure: ImportedProcedure) -> bool:
    """Whether `origin` already holds what its export `procedure` says: nothing was edited in it since.

    A skill kept whole is compared whole (an edit of its prose matters, not only of its steps); recorded
    work by its content, now or in the version exported (an older export brings nothing newer).
    """
    assert procedure.exported_as is not None and procedure.skill is not None
    if (skill := store.skill_of(origin.id)) is not None:
        return skill.digest() == procedure.skill.digest()
    content = (procedure.title, procedure.when_to_use, procedure.steps, procedure.pitfalls)
    return content in (
        _content_at(store, origin, origin.version),
        _content_at(store, origin, procedure.exported_as.version),
    )


def _update_from_export(
    store: Store, origin: Procedure, procedure: ImportedProcedure, key_pairs: list[tuple[str, Any]], principal: str
) -> int:
    """Write an edited copy of `origin`'s export over it, the old content kept as a version; its new version."""
    assert procedure.skill is not None
    revised = store.revise_procedure(
        origin.id,
        reason=f"import: its skill '{procedure.skill.name}' was edited since the export",
        changed_by=principal,
        title=procedure.title,
        when_to_use=procedure.when_to_use,
        steps=procedure.steps,
        pitfalls=procedure.pitfalls,
        fresh_record=procedure.steps != origin.steps,
    )
    store.add_keys(origin.id, key_pairs[: max(0, MAX_KEYS_PER_PROCEDURE - len(store.keys(origin.id)))])
    if store.skill_of(origin.id) is not None:
        store.save_skill(origin.id, procedure.skill)  # what an export writes back is the edited skill
    return revised.version


def _fingerprint(trajectory: Trajectory | ImportedTrajectory) -> str:
    """What makes two trajectories the same record (ids and times differ between databases)."""
    steps = [s.model_dump(exclude_none=True) for s in trajectory.steps]
    return json.dumps([trajectory.task, trajectory.outcome.value, trajectory.agent, steps], sort_keys=True)
