"""Outcomes: credit or blame the procedure a recall's agent followed, correct it, and retire what keeps failing.

An outcome judges one procedure of its recall (attribute); under the 'adjustment' strategy a failure
or a correction revises it (Outcomes._adjust), and every strategy but 'vanilla' retires a version whose
record falls under the paper's rule (should_retire).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memp_mcp.engine.build import failure_pitfalls
from memp_mcp.engine.inputs import check_agent, check_draft, check_id, check_steps
from memp_mcp.engine.lessons import lesson_pitfall, lessons, merged_pitfalls, spread_lessons, warned_message
from memp_mcp.engine.results import OutcomeResult
from memp_mcp.engine.scrub import Scrubber
from memp_mcp.engine.strategies import Strategies
from memp_mcp.engine.trust import (
    MAX_CANDIDATES_PER_PROCEDURE,
    Scope,
    may_correct_in_place,
    own_candidate,
    room_for_candidate,
)
from memp_mcp.engine.uplift import note_outcome
from memp_mcp.errors import InvalidInputError, NotFoundError
from memp_mcp.models import (
    MAX_PITFALL_CHARS,
    MAX_TEXT_CHARS,
    Outcome,
    Procedure,
    ProcedureDraft,
    ProcedureStatus,
    RecallEvent,
    Step,
)
from memp_mcp.redact import redact_personal
from memp_mcp.store import Store

# The paper's rule: a procedure retrieved at least 3 times whose success rate is under 50% is
# deprecated. Counted over judged recalls (reported outcomes), so unreported recalls do not
# count as failures.
DEPRECATE_MIN_JUDGED = 3
DEPRECATE_BELOW_RATE = 0.5
# An outcome judges the procedure a recall returned. A recall that found nothing has no id (null),
# and agents then send it as it came, or as a word: the answer says how to keep the work instead.
NO_RECALL_IDS = ("", "null", "none", "undefined")
NO_RECALL_TO_JUDGE = (
    "When the recall found nothing (recall_id null) there is no procedure to judge: call record_trajectory "
    "with the task, your steps and the outcome instead, so memory keeps what you did and builds a procedure from it"
)


@dataclass
class Outcomes:
    """Applies reported outcomes to one store under the memory's update strategy and namespaces."""

    store: Store
    strategies: Strategies
    scope: Scope

    def report(
        self,
        recall_id: str | None,
        success: bool,
        procedure_id: int | None,
        notes: str | None,
        correction: ProcedureDraft | str | None,
        trajectory: Sequence[Step | dict[str, object] | str] | None,
        agent: str | None,
        namespace: str | None,
        principal: str,
        origin: str = "report_outcome",
    ) -> OutcomeResult:
        """Memory.report_outcome, its inputs unchecked."""
        if not isinstance(success, bool):
            raise InvalidInputError("success must be true or false")
        if not isinstance(recall_id, str) or recall_id.strip().lower() in NO_RECALL_IDS:
            raise InvalidInputError(
                f"recall_id is required: pass the recall_id that recall_procedure returned. {NO_RECALL_TO_JUDGE}"
            )
        try:
            event = self.store.get_recall_event(recall_id.strip())
        except NotFoundError as exc:
            raise NotFoundError(f"{exc}. {NO_RECALL_TO_JUDGE}") from None
        scope = self.scope.namespace(namespace)
        if event.namespace != scope:
            raise NotFoundError(
                f"no recall with id {recall_id.strip()!r} in namespace '{scope}'; pass the namespace you recalled in"
            )
        if event.reported:
            raise InvalidInputError(
                f"recall {event.id} already has a reported outcome ({'success' if event.success else 'failure'}); "
                "each recall is reported once - call recall_procedure again for a new attempt"
            )
        self.scope.writable(event.namespace)
        agent = check_agent(agent)
        followed, attribution = attribute(event.procedure_ids, procedure_id, event.id)
        served = served_version(event, followed)
        if notes is not None and len(notes) > MAX_TEXT_CHARS:
            raise InvalidInputError(f"notes is too long: at most {MAX_TEXT_CHARS} characters")
        steps = check_steps(trajectory) if trajectory is not None else None
        if isinstance(correction, ProcedureDraft):
            correction = check_draft(correction)
        elif correction is not None and (not isinstance(correction, str) or len(correction) > MAX_PITFALL_CHARS):
            raise InvalidInputError(
                f"correction must be a procedure draft or a text of at most {MAX_PITFALL_CHARS} characters"
            )
        scrub = Scrubber()
        notes = scrub.optional("notes", notes)
        steps = None if steps is None else scrub.steps("trajectory", steps)
        if isinstance(correction, ProcedureDraft):
            correction = scrub.draft("correction", correction)
        elif correction is not None:
            correction = scrub.text("correction", correction)
        adjusted: list[int] = []
        proposed: int | None = None
        deprecated: list[int] = []
        warned: list[int] = []
        trajectory_id = None
        with self.store.transaction():
            # Checked again under the write lock: two reports of one recall (two processes, or a
            # retried call) may both have passed the check above; only the first applies.
            if not self.store.mark_recall_reported(event.id, success):
                raise InvalidInputError(
                    f"recall {event.id} already has a reported outcome; each recall is reported once - "
                    "call recall_procedure again for a new attempt"
                )
            if steps is not None:
                outcome = Outcome.SUCCESS if success else Outcome.FAILURE
                trajectory_id = self.store.add_trajectory(event.namespace, event.task, steps, outcome, agent)
            target = self.store.get_procedure(followed)  # as the agent found it, before this outcome counts
            current = target.version
            if served is not None and served != current and self._steps_of(followed, served) != target.steps:
                # The agent followed steps the procedure has since replaced: the outcome is theirs, and
                # the current steps, which nobody followed here, are neither credited nor blamed. (A
                # version that only added pitfalls kept the steps followed: the outcome is the current's.)
                self.store.credit_past_version(followed, served, succeeded=int(success), failed=int(not success))
                past = (
                    f"Procedure {followed} changed after this recall: you followed version {served}, it is now "
                    f"at version {current}. The outcome counts for version {served} only."
                )
                return OutcomeResult(
                    recall_id=event.id,
                    success=success,
                    credited_procedure_ids=[followed],
                    attribution=attribution,
                    trajectory_id=trajectory_id,
                    message=f"Recorded {'success' if success else 'failure'} for procedure {followed} "
                    f"({attribution}). {past}",
                )
            self.store.bump_stats(followed, succeeded=int(success), failed=int(not success))
            note_outcome(
                self.store,
                event.namespace,
                event.task,
                event.id,
                success,
                len(steps or []),
                "outcome",
                f"{'success' if success else 'failure'} reported for procedure {followed} ({attribution})",
                {"via": origin, "agent": agent, "procedure": followed, "notes": (notes or "")[:500]},
            )
            if success and trajectory_id is not None:
                self.store.add_sources(followed, [trajectory_id])
            # A success reached only by departing from the procedure, with the agent saying what to
            # do instead (a step that no longer works), corrects it too: otherwise it is credited
            # and keeps being served as it was.
            if self.strategies.update == "adjustment" and correction is not None and not may_correct_in_place(target):
                # None: no room for another candidate (0 is never an id).
                proposed = self._propose(target, correction, agent, principal, trajectory_id) or 0
                correction = None
            if self.strategies.update == "adjustment" and (not success or correction is not None):
                self._adjust(followed, event.task, notes, correction, None if success else steps, agent, success)
                adjusted.append(followed)
            # Vanilla keeps everything it stored, as in the paper; the other strategies retire what fails.
            if self.strategies.update != "vanilla" and should_retire(self.store.get_procedure(followed)):
                self.store.set_status(followed, ProcedureStatus.DEPRECATED)
                deprecated.append(followed)
            if self.strategies.update == "adjustment" and steps and trajectory_id is not None:
                # The followed procedure's own key vector places the task among its neighbours.
                keys = self.store.keys_with_vectors([followed]).get(followed, [])
                near = np.frombuffer(keys[0][1], dtype=np.float32).tolist() if keys else None
                warned = spread_lessons(
                    self.store,
                    event.namespace,
                    lessons(steps),
                    event.task,
                    trajectory_id,
                    agent,
                    principal,
                    set(adjusted),
                    near,
                )
        parts = [f"Recorded {'success' if success else 'failure'} for procedure {followed} ({attribution})."]
        if adjusted:
            fresh = " with a fresh record" if correction else ""
            parts.append(f"Revised procedure {followed}: a new version{fresh}; the old one is kept in its history.")
        if proposed:
            parts.append(
                f"Procedure {followed} has worked before, so your correction is kept apart as candidate procedure "
                f"{proposed}, which recall serves once it has a reported success."
            )
        elif proposed is not None:
            parts.append(
                f"Procedure {followed} has worked before and already has {MAX_CANDIDATES_PER_PROCEDURE} candidates "
                "waiting for a success, so your correction was not kept."
            )
        if deprecated:
            parts.append(
                f"Deprecated procedure {followed}: its current version keeps failing (success rate under 50% over "
                f"{DEPRECATE_MIN_JUDGED}+ reported uses); restore it with restore_procedure."
            )
        if warned:
            parts.append(warned_message(warned))
        if scrub.found:
            parts.append(f"Redacted before storing: {'; '.join(scrub.found)}.")
        return OutcomeResult(
            recall_id=event.id,
            success=success,
            credited_procedure_ids=[followed],
            attribution=attribution,
            adjusted_procedure_ids=adjusted,
            deprecated_procedure_ids=deprecated,
            warned_procedure_ids=warned,
            trajectory_id=trajectory_id,
            message=" ".join(parts),
            redacted=scrub.found,
        )

    def _steps_of(self, procedure_id: int, version: int) -> list[str] | None:
        """The steps `version` of a procedure had, from its history (None when it is not kept)."""
        return next((v.steps for v in self.store.versions(procedure_id) if v.version == version), None)

    def _propose(
        self,
        procedure: Procedure,
        correction: ProcedureDraft | str,
        agent: str | None,
        principal: str,
        trajectory_id: int | None,
    ) -> int | None:
        """Keep a correction to proven steps as a candidate of `procedure` (the agent's own, revised if it has
        one), found by the same keys; None when the procedure has no room for another candidate."""
        if isinstance(correction, ProcedureDraft):
            title, when_to_use = correction.title or procedure.title, correction.when_to_use or procedure.when_to_use
            steps, pitfalls = correction.steps, merged_pitfalls(procedure.pitfalls, correction.pitfalls)
        else:
            title, when_to_use, steps = procedure.title, procedure.when_to_use, procedure.steps
            pitfalls = merged_pitfalls(procedure.pitfalls, [" ".join(correction.split())])
        candidates = self.store.candidates_of(procedure.id)
        mine = own_candidate(candidates, principal)
        if mine is not None:
            self.store.revise_procedure(
                mine.id,
                reason=f"its author's correction after using procedure {procedure.id}",
                changed_by=agent,
                steps=steps if isinstance(correction, ProcedureDraft) else mine.steps,
                pitfalls=merged_pitfalls(mine.pitfalls, pitfalls),
                source="agent",
                fresh_record=True,
            )
            return mine.id
        if not room_for_candidate(candidates):
            return None
        vectors = dict(self.store.keys_with_vectors([procedure.id]).get(procedure.id, []))
        keys = [
            (text, np.frombuffer(vectors[text], dtype=np.float32).tolist() if text in vectors else None)
            for text in self.store.keys(procedure.id)
        ]
        sources = [] if trajectory_id is None else [trajectory_id]
        return self.store.add_procedure(
            procedure.namespace,
            title,
            when_to_use,
            steps,
            pitfalls,
            "agent",
            agent,
            sources,
            trajectory_id,
            keys,
            candidate_of=procedure.id,
            principal=principal,
        )

    def _adjust(
        self,
        procedure_id: int,
        task: str,
        notes: str | None,
        correction: ProcedureDraft | str | None,
        steps: list[Step] | None,
        agent: str | None,
        succeeded: bool = False,
    ) -> None:
        """Revise a procedure that failed, or misled an agent that succeeded anyway and says what to do
        instead: the agent's corrected steps if given, else pitfalls.

        A correction from the agent (new steps, or a sentence saying what to do instead) makes a
        version with a fresh record; pitfalls the server derives from the failure alone do not, so
        a procedure that keeps failing without a correction is still retired.
        """
        procedure = self.store.get_procedure(procedure_id)
        task = redact_personal(task).text  # named in pitfalls, which travel with the procedure
        pitfalls: list[str] = []
        new_steps: list[str] | None = None
        source = None
        if isinstance(correction, ProcedureDraft):
            new_steps, source = correction.steps, "agent"
            pitfalls += correction.pitfalls
        elif correction:
            pitfalls.append(" ".join(correction.split()))
        if steps:
            # The procedure's own steps that the run found refused, in its own terms; else what failed.
            own = [p for lesson in lessons(steps) if (p := lesson_pitfall(procedure.steps, lesson))]
            pitfalls += own or failure_pitfalls(steps, limit=3)
        if notes:
            what = "Worked around on" if succeeded else "Failed on"
            pitfalls.append(f"{what} '{task[:120]}': {' '.join(notes.split())[:300]}")
        if not pitfalls and new_steps is None:
            pitfalls.append(f"Failed once on '{task[:120]}' with no details reported; verify each step.")
        self.store.revise_procedure(
            procedure_id,
            reason=f"adjusted after {'a correction on a success' if succeeded else 'a failure'} on '{task[:120]}'",
            changed_by=agent,
            steps=new_steps,
            pitfalls=merged_pitfalls(procedure.pitfalls, pitfalls),
            source=source,
            fresh_record=bool(correction),
        )


def should_retire(procedure: Procedure) -> bool:
    """The paper's rule, applied to the current version's own record: a version that has just been
    corrected starts from nothing and so is never retired before it has been tried."""
    judged = procedure.version_success_count + procedure.version_failure_count
    return (
        procedure.status == ProcedureStatus.ACTIVE
        and judged >= DEPRECATE_MIN_JUDGED
        and procedure.version_success_count / judged < DEPRECATE_BELOW_RATE
    )


def served_version(event: RecallEvent, procedure_id: int) -> int | None:
    """The version of `procedure_id` that `event` served, when the recall kept it."""
    versions = event.procedure_versions
    if versions is None or len(versions) != len(event.procedure_ids):
        return None
    return versions[event.procedure_ids.index(procedure_id)]


def attribute(returned: Sequence[int], procedure_id: object, recall_id: str) -> tuple[int, str]:
    """The procedure an outcome is about, and why it was chosen."""
    if not returned:
        raise InvalidInputError(f"recall {recall_id} returned no procedure, so there is nothing to credit or blame")
    if procedure_id is None:
        if len(returned) == 1:
            return returned[0], "the only procedure this recall returned"
        return returned[0], (
            "no procedure_id given: attributed to the recall's top-ranked procedure only; the others are "
            "neither credited nor blamed (pass procedure_id to name the one you followed)"
        )
    checked = check_id(procedure_id)
    if checked not in returned:
        raise InvalidInputError(
            f"procedure {checked} was not returned by recall {recall_id} (it returned {list(returned)}); "
            "pass the id of the procedure you followed from that recall, or omit procedure_id"
        )
    return checked, "the procedure_id given"
