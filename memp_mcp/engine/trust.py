"""Who may change what: every rule that decides whether a write may touch a procedure.

The rules, and the function that applies each:
- A read-only namespace takes no write of any kind (Scope.writable). A namespace is a boundary:
  ids are global, but a procedure of another namespace is reported as not found (procedure_in).
- A record adds its evidence only to a serving procedure of the same task: never to a candidate,
  nor to a memory of the 'trajectory' build strategy (takes_records).
- Steps recorded for a procedure's task replace its own only when they are better (why_steps_win):
  a success that found some of its steps refused, a more trusted source (SOURCE_RANK), another draft
  a model wrote, or a shorter extraction. In place only by the procedure's own author (same_author), and only while
  it is provisional (no reported success for its current steps) or outdated (may_rewrite_steps): a
  proven procedure is never rewritten by a record. Otherwise the steps become a candidate, one per
  recording agent, which that agent alone revises (own_candidate), at most MAX_CANDIDATES_PER_PROCEDURE
  waiting at once (room_for_candidate), and recall withholds a candidate until it has a reported success
  while what it would replace still serves (withheld_candidates).
  A record that found steps of its own task's procedure refused adds that as a pitfall, whoever wrote it.
- A lesson one run teaches about the environment spreads only to procedures the same principal recorded
  (may_learn_from): one run is one author's word.
- An outcome report judges one procedure its recall returned, whoever wrote it; under the
  'adjustment' strategy a failure adds pitfalls. A correction from the reporter (steps, or a sentence
  saying what to do instead) revises a provisional procedure in place, but a proven one never
  (may_correct_in_place): it becomes a candidate, as other steps from a record do.
- Edits, forget and restore are the operator's (the CLI, or a tool of the server): any procedure of a
  writable namespace.
- An import keeps the source, author, status and statistics its file gives a new procedure (a file is
  trusted as its importer is), but never rewrites the steps of a procedure held for the same task
  (import_conflict): it adds its sources, keys and pitfalls. A procedure's own export coming back
  (a skill memp-mcp wrote, into the namespace it names) is that procedure, not a new one: unchanged, it
  adds nothing, its declared counts included; edited, it revises the procedure in place only as a record
  could, by its own author while it is provisional, and only when nothing changed it since the export
  (may_update_from_export); otherwise the edited copy becomes a candidate.

"Author" means principal throughout (memp_mcp.principals): the local account over stdio, in the hooks
and the CLI, and the bearer token's principal over HTTP. The agent name a caller sends is a label for
readers and decides nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from memp_mcp.config import validate_namespace
from memp_mcp.engine.inputs import check_id
from memp_mcp.errors import NotFoundError, ReadOnlyNamespaceError
from memp_mcp.models import Procedure, ProcedureStatus
from memp_mcp.store import Store

# How far a procedure's author is trusted, by who wrote its steps.
SOURCE_RANK = {"agent": 3, "sampling": 2, "extractive": 1, "trajectory": 0}
# Candidates of one procedure waiting for their first reported success.
MAX_CANDIDATES_PER_PROCEDURE = 3
# Steps a model wrote for the procedure (the calling agent's draft, or the client's model by sampling).
DRAFT_SOURCES = frozenset({"agent", "sampling"})


@dataclass(frozen=True)
class Scope:
    """The namespace calls default to, and those this server only reads."""

    default: str
    read_only: frozenset[str] = frozenset()

    def namespace(self, given: str | None) -> str:
        return validate_namespace(given) if given is not None else self.default

    def writable(self, given: str | None) -> str:
        """The namespace a write goes to; ReadOnlyNamespaceError when this server only reads it."""
        namespace = self.namespace(given)
        if namespace in self.read_only:
            raise ReadOnlyNamespaceError(
                f"namespace '{namespace}' is read-only on this server; record into another namespace"
            )
        return namespace


def procedure_in(store: Store, procedure_id: object, namespace: str) -> Procedure:
    """The procedure with this id in `namespace`; NotFoundError for one of another namespace."""
    checked = check_id(procedure_id)
    try:
        procedure = store.get_procedure(checked)
    except NotFoundError:
        procedure = None
    if procedure is None or procedure.namespace != namespace:
        raise NotFoundError(f"no procedure with id {checked} in namespace '{namespace}'")
    return procedure


def takes_records(procedure: Procedure) -> bool:
    """Whether a record of the same task may add its evidence to `procedure`."""
    return procedure.source != "trajectory" and procedure.candidate_of is None


def why_steps_win(source: str, steps: Sequence[str], current: Procedure, *, refused_there: bool) -> str | None:
    """Why steps recorded for `current`'s task are better than its own, or None when they are not.

    The newest evidence wins when it found steps of `current` refused (the tool changed, the option went
    away), whatever its length. An extraction is judged by its length (two runs of one task extract
    slightly different lists); a draft a model wrote is its author's considered proposal, never dropped
    for being as long.
    """
    if refused_there:
        return "a success that found steps of this one refused"
    new_rank, old_rank = SOURCE_RANK.get(source, 0), SOURCE_RANK.get(current.source, 0)
    if new_rank > old_rank:
        return "its steps are more trusted"
    if new_rank == old_rank and source in DRAFT_SOURCES:
        return "its steps are its author's newer draft"
    if new_rank == old_rank and len(steps) < len(current.steps):
        return "its steps are shorter"
    return None


def same_author(procedure: Procedure, principal: str) -> bool:
    """Whether `principal` recorded `procedure`. Who did is what authentication said, never the agent name
    a caller sends; a procedure from before principals were kept is nobody's."""
    return procedure.principal is not None and procedure.principal == principal


def may_rewrite_steps(procedure: Procedure, principal: str, *, refused_there: bool) -> bool:
    """Whether a record by `principal` may replace `procedure`'s steps in place: its own author refining it
    while it is provisional, or giving its newer way when the old one was refused (the old version is
    kept in the history). Anything else would hand its record to steps that have not earned it."""
    return (procedure.provisional or refused_there) and same_author(procedure, principal)


def own_candidate(candidates: Iterable[Procedure], principal: str) -> Procedure | None:
    """The candidate `principal` may revise: its own, while still unproven; another proposes its own."""
    return next((c for c in candidates if same_author(c, principal) and c.provisional), None)


def room_for_candidate(candidates: Iterable[Procedure]) -> bool:
    """Whether a procedure with these candidates may take another: each name an agent gives itself could
    otherwise propose its own, and unproven candidates would crowd real results out of a recall."""
    waiting = sum(c.provisional and c.status == ProcedureStatus.ACTIVE for c in candidates)
    return waiting < MAX_CANDIDATES_PER_PROCEDURE


def withheld_candidates(store: Store, procedures: Sequence[Procedure]) -> set[int]:
    """The ids of candidates recall leaves out: no reported success yet, and what they would replace serves."""
    candidates = [p for p in procedures if p.candidate_of is not None and p.provisional]
    if not candidates:
        return set()
    serving = {
        p.id
        for p in store.get_procedures([c.candidate_of or 0 for c in candidates])
        if p.status == ProcedureStatus.ACTIVE
    }
    return {c.id for c in candidates if c.candidate_of in serving}


def may_correct_in_place(procedure: Procedure) -> bool:
    """Whether a reporter's correction may revise `procedure` itself: only while its steps have no reported
    success. Steps that have worked are replaced only by steps that have worked too (a candidate)."""
    return procedure.provisional


def may_learn_from(procedure: Procedure, principal: str) -> bool:
    """Whether a lesson from a run by `principal` may add a pitfall to `procedure`: a lesson names what to
    run instead, so another author's procedures would otherwise take instructions from anyone who can
    record."""
    return same_author(procedure, principal)


def import_conflict(existing: Procedure, title: str, steps: Sequence[str]) -> str | None:
    """What to report when an import brings other steps for `existing`'s task, which keeps its own."""
    if existing.steps == list(steps):
        return None
    return (
        f"'{title}' is for the same task as existing procedure {existing.id} ('{existing.title}'); "
        "kept the existing steps and added the imported pitfalls and sources"
    )


def may_update_from_export(procedure: Procedure, principal: str, exported_version: int) -> bool:
    """Whether an edited copy of `procedure`'s own export, imported by `principal`, may revise it in place.

    As a record may (may_rewrite_steps): its own author, while no success vouches for its steps. And only
    when it is still the version that was exported: the copy knows nothing of a revision made since (a
    failure's pitfall, an edit), which writing it in place would undo.
    """
    return procedure.version == exported_version and procedure.provisional and same_author(procedure, principal)
