"""Record: store a trajectory and build a procedure from it, or merge it into the one for the same task.

Which steps may replace which, and who may change a procedure in place, is decided in trust.py; this
module builds, finds the twin, and writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memp_mcp.engine.build import (
    abstract_task,
    extract_procedure,
    step_skeleton,
    trajectory_as_procedure,
    why_nothing_to_build,
)
from memp_mcp.engine.inputs import check_agent, check_draft, check_outcome, check_steps, check_task
from memp_mcp.engine.lessons import Lesson, lesson_pitfall, lessons, merged_pitfalls, spread_lessons, warned_message
from memp_mcp.engine.model import ModelBinding
from memp_mcp.engine.results import RecordResult
from memp_mcp.engine.retrieve import key_text, search_keys
from memp_mcp.engine.scrub import Scrubber
from memp_mcp.engine.strategies import Strategies
from memp_mcp.engine.trust import (
    MAX_CANDIDATES_PER_PROCEDURE,
    SOURCE_RANK,
    Scope,
    may_rewrite_steps,
    own_candidate,
    room_for_candidate,
    takes_records,
    why_steps_win,
)
from memp_mcp.engine.uplift import note_outcome
from memp_mcp.models import MAX_TEXT_CHARS, Outcome, Procedure, ProcedureDraft, Step
from memp_mcp.store import Store
from memp_mcp.text import counted

# Keys (task texts) kept per procedure: enough to find it by many phrasings, bounded so a
# popular procedure does not dominate the vector table.
MAX_KEYS_PER_PROCEDURE = 32
# Two tasks are the same when their embeddings are this close (a rewording), and their
# procedures merge when they also do the same kinds of steps.
MERGE_SIMILARITY = 0.97
# _propose's answer when a procedure has no room for another candidate (ids start at 1).
NOT_PROPOSED = 0
MERGE_SKELETON_OVERLAP = 0.5

Keys = list[tuple[str, list[float] | None]]


@dataclass
class _Planned:
    draft: ProcedureDraft
    source: str
    family: str


def _shareable(planned: _Planned, scrub: Scrubber) -> _Planned:
    """The planned procedure without personal data in the texts that travel with it (written from the task)."""
    draft = planned.draft
    when_to_use = draft.when_to_use
    return _Planned(
        draft.model_copy(
            update={
                "title": scrub.shared("procedure.title", draft.title),
                "when_to_use": None if when_to_use is None else scrub.shared("procedure.when_to_use", when_to_use),
            }
        ),
        planned.source,
        scrub.shared("procedure.when_to_use", planned.family),
    )


@dataclass
class Recorder:
    """Records trajectories into one store under the memory's strategies and namespaces."""

    store: Store
    model: ModelBinding
    strategies: Strategies
    scope: Scope

    def record(
        self,
        task: object,
        steps: object,
        outcome: object,
        namespace: str | None,
        draft: ProcedureDraft | None,
        draft_source: str,
        agent: object,
        principal: str,
        root: str | None = None,
        origin: str = "record_trajectory",
    ) -> RecordResult:
        """Memory.record, its inputs unchecked; `principal` is who records, as authenticated."""
        heading = task if isinstance(task, str) else None  # the task as sent, its lines kept for the title
        task = check_task(task)
        parsed_steps = check_steps(steps)
        outcome = check_outcome(outcome)
        agent = check_agent(agent)
        namespace = self.scope.writable(namespace)
        scrub = Scrubber()
        task = scrub.text("task", task)
        parsed_steps = scrub.steps("steps", parsed_steps)
        if draft is not None:
            draft = scrub.draft("procedure", draft)
        why_not = self._why_no_procedure(parsed_steps, outcome, draft)
        planned = (
            self._plan(task, parsed_steps, outcome, draft, draft_source, root, heading) if why_not is None else None
        )
        if planned is not None:
            planned = _shareable(planned, scrub)
        model = self.model.get(0.0)
        vectors: list[list[float]] = []
        if planned is not None and model is not None:
            vectors = model.embed(search_keys(planned.family, task))
        learned = lessons(parsed_steps)
        if vectors:
            self.store.catch_up_vector_index()  # the write below searches twice
        with self.store.transaction():
            if vectors and not self.model.fits_database(model):
                vectors = []  # another process re-embedded with another model meanwhile: backfilled later
            trajectory_id = self.store.add_trajectory(namespace, task, parsed_steps, outcome, agent)
            if planned is None:
                result = RecordResult(
                    action="stored_only",
                    trajectory_id=trajectory_id,
                    procedure_id=None,
                    namespace=namespace,
                    message=f"Stored trajectory {trajectory_id}; no procedure built: {why_not}.",
                )
            else:
                result = self._build(
                    namespace, task, planned, outcome, trajectory_id, vectors, agent, principal, learned
                )
            if self.strategies.update == "adjustment":
                skip = {result.procedure_id} if result.procedure_id is not None else set()
                near = vectors[-1] if vectors else None
                result.warned_procedure_ids = spread_lessons(
                    self.store, namespace, learned, task, trajectory_id, agent, principal, skip, near
                )
            success = None if outcome == Outcome.UNKNOWN else outcome == Outcome.SUCCESS
            note_outcome(
                self.store,
                namespace,
                task,
                None,
                success,
                len(parsed_steps),
                "record",
                f"recorded trajectory {trajectory_id} ({outcome.value}, {len(parsed_steps)} steps): {result.action}"
                + (f" procedure {result.procedure_id}" if result.procedure_id is not None else ""),
                {"via": origin, "agent": agent, "message": result.message[:500]},
            )
        if result.warned_procedure_ids:
            result.message += f" {warned_message(result.warned_procedure_ids)}"
        result.redacted = scrub.found
        if result.redacted:
            result.message += f" Redacted before storing: {'; '.join(result.redacted)}."
        return result

    def _build(
        self,
        namespace: str,
        task: str,
        planned: _Planned,
        outcome: Outcome,
        trajectory_id: int,
        vectors: list[list[float]],
        agent: str | None,
        principal: str,
        learned: list[Lesson],
    ) -> RecordResult:
        """Inside record's write: add the planned procedure, or merge it into the one for the same task."""
        texts = search_keys(planned.family, task)
        keys: Keys = [(text, vectors[index] if vectors else None) for index, text in enumerate(texts)]
        twin = self._find_twin(namespace, planned, task, vectors[-1] if vectors else None)
        if twin is not None:
            candidate, revised = self._merge(
                twin,
                planned,
                trajectory_id,
                keys,
                agent,
                principal,
                learned if outcome == Outcome.SUCCESS else [],
                evidence_only=outcome == Outcome.UNKNOWN,
            )
            if candidate == NOT_PROPOSED:
                return RecordResult(
                    action="stored_only",
                    trajectory_id=trajectory_id,
                    procedure_id=None,
                    namespace=namespace,
                    message=f"Stored trajectory {trajectory_id}; its steps differ from those of procedure {twin.id} "
                    f"('{twin.title}'), which keep serving, and that procedure already has "
                    f"{MAX_CANDIDATES_PER_PROCEDURE} candidates waiting for a reported success, so they are not "
                    "proposed as another.",
                )
            if candidate is not None:
                return RecordResult(
                    action="candidate",
                    trajectory_id=trajectory_id,
                    procedure_id=candidate,
                    namespace=namespace,
                    message=f"Stored trajectory {trajectory_id}; its steps differ from those of procedure "
                    f"{twin.id} ('{twin.title}'), which keep serving: they are kept as candidate procedure "
                    f"{candidate}, which recall serves once it has a reported success.",
                )
            return RecordResult(
                action="merged",
                trajectory_id=trajectory_id,
                procedure_id=twin.id,
                namespace=namespace,
                message=f"Stored trajectory {trajectory_id} and revised procedure {twin.id} ('{twin.title}') with "
                f"its steps ({counted(len(planned.draft.steps), 'step')}, from {planned.source}): a new version, "
                "with a fresh record."
                if revised
                else f"Stored trajectory {trajectory_id} as more evidence for procedure {twin.id} ('{twin.title}').",
            )
        procedure_id = self._add_planned(namespace, planned, trajectory_id, keys, agent, principal)
        return RecordResult(
            action="created",
            trajectory_id=trajectory_id,
            procedure_id=procedure_id,
            namespace=namespace,
            message=f"Stored trajectory {trajectory_id} and built procedure {procedure_id} "
            f"('{planned.draft.title}', {counted(len(planned.draft.steps), 'step')}, from {planned.source}).",
        )

    def _why_no_procedure(self, steps: list[Step], outcome: Outcome, draft: ProcedureDraft | None) -> str | None:
        """Why this record builds no procedure, or None when it builds one.

        Successes build, and runs whose outcome nothing decided (unknown): most work that is not
        test-driven ends that way, and its procedure is ranked below verified ones until a success is
        reported (retrieve.RetrievalTuning.unverified_penalty). Failures build under the 'vanilla' update
        strategy only. The agent's own
        draft is enough; without one the steps must hold at least one action that worked, so an
        empty or all-failed "success" never becomes a procedure made of a placeholder sentence.
        """
        if outcome == Outcome.FAILURE and not (self.strategies.update == "vanilla" and steps):
            return f"failed trajectories build no procedure (update strategy '{self.strategies.update}')"
        if draft is not None and self.strategies.build != "trajectory":
            return None
        if not steps:
            return "the trajectory has no steps (send them, or your own procedure draft)"
        if self.strategies.build != "trajectory" and (reason := why_nothing_to_build(steps)):
            return f"{reason}; send a procedure draft if the task was done another way"
        return None

    def _plan(
        self,
        task: str,
        steps: list[Step],
        outcome: Outcome,
        draft: ProcedureDraft | None,
        draft_source: str,
        root: str | None = None,
        heading: str | None = None,
    ) -> _Planned:
        family = abstract_task(task, steps)
        if self.strategies.build == "trajectory":
            return _Planned(trajectory_as_procedure(task, steps), "trajectory", family)
        if draft is not None:
            draft = check_draft(draft)
            if not draft.when_to_use:
                draft = draft.model_copy(update={"when_to_use": f"Tasks like: {family}"[:MAX_TEXT_CHARS]})
            return _Planned(draft, draft_source if draft_source in SOURCE_RANK else "agent", family)
        return _Planned(extract_procedure(task, steps, outcome, root, heading), "extractive", family)

    def _find_twin(
        self, namespace: str, planned: _Planned, task: str, task_vector: list[float] | None
    ) -> Procedure | None:
        """An active procedure for the same task that does the same kinds of steps.

        The same task means the same key text, or (with a model) a task embedding this close that
        it is a rewording, provided the steps also do the same kinds of things. Tasks that share a
        family but not their entities ("clean a mug" and
        "clean a plate") keep separate procedures: merging them was measured to blur retrieval
        (see docs/benchmarks.md).
        """
        if planned.source == "trajectory":
            return None  # the trajectory strategy keeps every trajectory as its own memory
        for procedure in self.store.get_procedures(self.store.procedures_with_key(namespace, key_text(task))):
            if takes_records(procedure):
                return procedure
        if task_vector is None:
            return None
        candidates = [
            pid for pid, sim in self.store.vector_search(namespace, task_vector, 3) if sim >= MERGE_SIMILARITY
        ]
        skeleton = step_skeleton(planned.draft.steps)
        for procedure in self.store.get_procedures(candidates):
            if not takes_records(procedure):
                continue
            other = step_skeleton(procedure.steps)
            overlap = len(skeleton & other) / max(1, len(skeleton | other))
            if overlap >= MERGE_SKELETON_OVERLAP:
                return procedure
        return None

    def _merge(
        self,
        twin: Procedure,
        planned: _Planned,
        trajectory_id: int,
        keys: Keys,
        agent: str | None,
        principal: str,
        learned: Sequence[Lesson] = (),
        *,
        evidence_only: bool = False,
    ) -> tuple[int | None, bool]:
        """Add a trajectory for the same task to `twin`: (the id of a candidate when its steps went to one,
        whether they replaced the twin's own).

        Better steps (trust.why_steps_win) replace the twin's in place only when trust.may_rewrite_steps
        allows it; else they become a candidate procedure, which recall serves once it has succeeded, and
        an outdated twin is told meanwhile which of its steps no longer worked and what did. A run nothing
        verified (`evidence_only`) never replaces steps: it only backs the twin.
        """
        # Revising stored steps in the light of what a later run found refused is adjustment's work;
        # vanilla and validation only add evidence to what they stored, as in the paper.
        outdated = (
            [p for lesson in learned if (p := lesson_pitfall(twin.steps, lesson))]
            if self.strategies.update == "adjustment"
            else []
        )
        why = (
            None
            if evidence_only
            else why_steps_win(planned.source, planned.draft.steps, twin, refused_there=bool(outdated))
        )
        changed = why is not None and planned.draft.steps != twin.steps
        if changed and not may_rewrite_steps(twin, principal, refused_there=bool(outdated)):
            candidate = self._propose(twin, planned, trajectory_id, keys, agent, principal)
            if outdated:
                did_it = f"candidate {candidate}" if candidate != NOT_PROPOSED else f"trajectory {trajectory_id}"
                self.store.revise_procedure(
                    twin.id,
                    reason=f"trajectory {trajectory_id} found steps of it refused; {did_it} did the task another way",
                    changed_by=agent,
                    pitfalls=merged_pitfalls(twin.pitfalls, outdated),
                )
            return candidate, False
        self.store.add_sources(twin.id, [trajectory_id])
        if len(self.store.keys(twin.id)) < MAX_KEYS_PER_PROCEDURE:
            self.store.add_keys(twin.id, keys)
        if changed:
            self._take_steps(twin, planned, agent, f"merged trajectory {trajectory_id}: {why}")
        return None, changed

    def _add_planned(
        self,
        namespace: str,
        planned: _Planned,
        trajectory_id: int,
        keys: Keys,
        agent: str | None,
        principal: str,
        *,
        candidate_of: int | None = None,
    ) -> int:
        """Store a planned procedure built from one trajectory, which is its source and its exemplar."""
        return self.store.add_procedure(
            namespace,
            planned.draft.title,
            planned.draft.when_to_use or planned.family,
            planned.draft.steps,
            planned.draft.pitfalls,
            planned.source,
            agent,
            [trajectory_id],
            trajectory_id,
            keys,
            candidate_of=candidate_of,
            principal=principal,
        )

    def _propose(
        self, twin: Procedure, planned: _Planned, trajectory_id: int, keys: Keys, agent: str | None, principal: str
    ) -> int:
        """Keep other steps for `twin`'s task as a candidate: one per recording principal, revised by it alone, and
        at most MAX_CANDIDATES_PER_PROCEDURE waiting at once (NOT_PROPOSED when that many already are)."""
        candidates = self.store.candidates_of(twin.id)
        mine = own_candidate(candidates, principal)
        if mine is None:
            if not room_for_candidate(candidates):
                return NOT_PROPOSED
            return self._add_planned(
                twin.namespace, planned, trajectory_id, keys, agent, principal, candidate_of=twin.id
            )
        self.store.add_sources(mine.id, [trajectory_id])
        if planned.draft.steps != mine.steps:
            self._take_steps(mine, planned, agent, f"merged trajectory {trajectory_id}: its author's newer steps")
        return mine.id

    def _take_steps(self, procedure: Procedure, planned: _Planned, agent: str | None, reason: str) -> None:
        """Give `procedure` the planned steps: a new version with a fresh record, keeping its pitfalls."""
        self.store.revise_procedure(
            procedure.id,
            reason=reason,
            changed_by=agent,
            steps=planned.draft.steps,
            pitfalls=merged_pitfalls(procedure.pitfalls, planned.draft.pitfalls),
            source=planned.source,
            fresh_record=True,
        )
