"""Recall: the procedures that fit a task, best first, with a worked example, fitted to a budget.

retrieve.py finds and ranks procedures; budget.py fits them to an answer's size; trust.py says which
candidates recall withholds. This module puts them together and logs the recall for its outcome.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from memp_mcp.config import RetrieveStrategy
from memp_mcp.embedding import Embedder
from memp_mcp.engine.budget import fit
from memp_mcp.engine.build import ABRIDGED_NOTE, LOOK_STEP_OPENINGS, REPRODUCES_NOTE
from memp_mcp.engine.change import STEP_OPENINGS
from memp_mcp.engine.freshness import check_many
from memp_mcp.engine.inputs import check_task
from memp_mcp.engine.model import ModelBinding
from memp_mcp.engine.results import ExemplarStep, RecalledProcedure, RecallResult
from memp_mcp.engine.retrieve import Retriever, Scored, procedure_vocabulary, query_terms, share_found
from memp_mcp.engine.strategies import Strategies
from memp_mcp.engine.trust import Scope, withheld_candidates
from memp_mcp.engine.uplift import HOLDOUT, MEMORY, draw_arm, task_key
from memp_mcp.engine.verdict import passed_its_tests
from memp_mcp.errors import InvalidInputError, StoreError
from memp_mcp.models import Outcome, Procedure, Step, Trajectory
from memp_mcp.redact import redact, redact_personal
from memp_mcp.store import Store

logger = logging.getLogger(__name__)

MAX_RECALL_K = 20
EXEMPLAR_STEPS = 12
# Trajectory ids a recall lists per procedure (the closest first); get_procedure lists them all.
RECALLED_SOURCES = 5
# Source runs read for whether one succeeded on its own passing test run (see `_verified_by_test_run`).
VERIFYING_SOURCES = 3
# How long a recall waits for a model that is still loading before using keywords alone.
MODEL_WAIT_SECONDS = 5.0


@dataclass
class Recaller:
    """Answers recalls from one store under the memory's strategies and namespaces."""

    store: Store
    model: ModelBinding
    strategies: Strategies
    scope: Scope
    retriever: Retriever
    # The share of tasks memory is withheld from (MEMP_HOLDOUT), and the draw's generator.
    holdout: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def recall(
        self,
        task: str,
        k: int,
        namespace: str | None,
        strategy: RetrieveStrategy | None,
        wait_for_model: float,
        log: bool,
        budget: int | None,
        cost: Callable[[RecalledProcedure], int] | None,
        overhead: int,
        origin: str = "recall_procedure",
        project_root: Path | None = None,
        words_under_floor: bool = True,
    ) -> RecallResult:
        """Memory.recall, its inputs unchecked."""
        task = redact(check_task(task)).text  # the task is logged with the recall, and a report stores it
        if project_root is not None and not project_root.is_dir():
            raise InvalidInputError(f"project_root {str(project_root)[:200]!r} is not a folder on this machine")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_RECALL_K:
            raise InvalidInputError(f"k must be an integer from 1 to {MAX_RECALL_K}; got {k!r}")
        namespace = self.scope.namespace(namespace)
        strategy = strategy or self.strategies.retrieve
        if namespace not in self.store.namespaces():
            return RecallResult(
                recall_id=None,
                namespace=namespace,
                strategy=strategy,
                retrieval="the namespace holds nothing yet",
                procedures=[],
            )
        model = self.model.get(wait_for_model) if strategy != "random" else None
        if strategy == "random":
            retrieval = "random"
        elif model is not None:
            retrieval = "vector+keyword" if strategy == "hybrid" else f"vector ({strategy})"
        else:
            retrieval = f"keyword only (embedding model {self.model.status()})"
        scored = self._retrieve_trusted(task, namespace, k, strategy, model, words_under_floor)
        why = Why(task, origin, retrieval, self._floor(strategy, model, words_under_floor))
        fresh = check_many([(s.procedure.id, s.procedure.steps) for s in scored], project_root) if project_root else {}
        if fresh:
            # Stale procedures rank below fresh ones; one stale in every step that cites anything is not given.
            why.stale = {pid: f.reasons() for pid, f in fresh.items() if f.stale}
            why.stale_left_out = [pid for pid, f in fresh.items() if f.stale_throughout]
            scored = sorted(
                (s for s in scored if s.procedure.id not in why.stale_left_out),
                key=lambda s: bool(fresh[s.procedure.id].stale),
            )
        drawn = self._draw(namespace, task) if log else (None, MEMORY)
        if log and drawn[1] == HOLDOUT:
            # Answered as if nothing fitted: the agent must not be able to tell the arms apart.
            self._log(namespace, task, drawn, None, why.withheld(scored))
            return RecallResult(
                recall_id=None, namespace=namespace, strategy=strategy, retrieval=retrieval, procedures=[]
            )
        left_out = None
        if budget is None:
            procedures = [self._present(s.procedure, s.relevance, s.ranked_sources) for s in scored]
            _mark_stale(procedures, why.stale)
        else:
            # Worked examples are read only for the procedures the budget places (at k=10 most
            # procedures found do not fit, and reading each one's trajectory was a tenth of a recall).
            closest = self.store.trajectory_tasks([s.ranked_sources[0] for s in scored if s.ranked_sources])
            procedures = [
                self._present(s.procedure, s.relevance, s.ranked_sources, closest_task=closest) for s in scored
            ]
            for p in procedures:
                p.source_trajectory_ids = p.source_trajectory_ids[:RECALLED_SOURCES]
            _mark_stale(procedures, why.stale)
            empty = RecallResult(
                recall_id="0" * 16, namespace=namespace, strategy=strategy, retrieval=retrieval, procedures=[]
            )
            fitted = fit(
                procedures, budget, cost or _json_cost, _json_cost(empty) + overhead, with_exemplar=self._with_exemplar
            )
            procedures, left_out = fitted.procedures, fitted.left_out
        recall_id = None
        if procedures and log:
            try:
                event_id = uuid.uuid4().hex[:16]
                with self.store.transaction():
                    self.store.add_recall_event(
                        event_id, namespace, task, [p.id for p in procedures], strategy, [p.version for p in procedures]
                    )
                    self._log(namespace, task, drawn, event_id, why.given(scored, procedures, left_out))
                recall_id = event_id
                for p in procedures:
                    p.retrieved_count += 1
            except StoreError as exc:
                # A database that cannot be written (read-only file, full disk) still answers
                # recalls; only the outcome report, which needs the recall logged, is lost.
                logger.warning("recall not logged: %s", exc)
                retrieval += f"; not logged, so no outcome can be reported ({exc})"
        elif log:
            self._log(namespace, task, drawn, None, why.given(scored, procedures, left_out))
        return RecallResult(
            recall_id=recall_id,
            namespace=namespace,
            strategy=strategy,
            retrieval=retrieval,
            procedures=procedures,
            left_out=left_out,
        )

    def _floor(self, strategy: RetrieveStrategy, model: Embedder | None, words_under_floor: bool) -> str:
        tuning = self.retriever.tuning
        if strategy == "random":
            return "none (random)"
        if model is None:
            return f"{tuning.keyword_floor:.0%} of the task's keywords, in two words or more"
        if strategy != "hybrid":
            return f"cosine {tuning.semantic_floor:.2f}"
        words = (
            "or the task's words" if words_under_floor else f"or {tuning.keyword_fit:.0%} of the task's words in a key"
        )
        return f"cosine {tuning.semantic_floor:.2f} {words}; one word in common is no evidence"

    def _draw(self, namespace: str, task: str) -> tuple[int | None, str]:
        """The task's arm: the one drawn at an earlier recall of it still open, else a new draw."""
        try:
            found = self.store.open_task_arm(namespace, task_key(task))
        except StoreError as exc:
            logger.warning("task arm not read: %s", exc)
            found = None
        return found if found is not None else (None, draw_arm(self.holdout, self.rng))

    def _log(
        self,
        namespace: str,
        task: str,
        drawn: tuple[int | None, str],
        recall_id: str | None,
        event: tuple[str, dict[str, Any]],
    ) -> None:
        """Write the task's arm (a new draw) and the recall's event; a store that cannot be written
        loses the entry, never the answer."""
        arm_id, arm = drawn
        summary, detail = event
        try:
            with self.store.transaction():
                if arm_id is None:
                    self.store.add_task_arm(namespace, task_key(task), arm, recall_id)
                elif recall_id is not None:
                    self.store.set_task_arm_recall(arm_id, recall_id)
                kind = "withheld" if arm == HOLDOUT else "recall"
                self.store.add_event(namespace, kind, task, summary, detail, recall_id=recall_id, arm=arm)
        except StoreError as exc:
            logger.warning("recall event not logged: %s", exc)

    def _retrieve_trusted(
        self,
        task: str,
        namespace: str,
        k: int,
        strategy: RetrieveStrategy,
        model: Embedder | None,
        words_under_floor: bool,
    ) -> list[Scored]:
        """The best k, leaving out candidates that have not succeeded while what they would replace serves."""
        wanted = k
        while True:
            scored = self.retriever.retrieve(task, namespace, wanted, strategy, model, words_under_floor)
            hidden = withheld_candidates(self.store, [s.procedure for s in scored])
            if not hidden or len(scored) < wanted or wanted >= k + MAX_RECALL_K:
                return [s for s in scored if s.procedure.id not in hidden][:k]
            wanted += len(hidden)

    def _present(
        self,
        procedure: Procedure,
        relevance: float,
        ranked_sources: list[int],
        *,
        closest_task: Mapping[int, str] | None = None,
    ) -> RecalledProcedure:
        """The procedure as recall returns it, with its worked example; given the tasks of the closest
        sources (`closest_task`), with that task only, its worked example being left to `_with_exemplar`."""
        exemplar = exemplar_task = None
        if self.strategies.build == "proceduralization" and ranked_sources:
            if closest_task is not None:
                exemplar_task = closest_task.get(ranked_sources[0])
            else:
                trajectory = self.store.get_trajectory(ranked_sources[0])
                exemplar_task, exemplar = trajectory.task, _exemplar(trajectory, procedure.steps)
        return RecalledProcedure(
            id=procedure.id,
            title=procedure.title,
            when_to_use=procedure.when_to_use,
            steps=procedure.steps,
            pitfalls=procedure.pitfalls,
            relevance=round(relevance, 4),
            retrieved_count=procedure.retrieved_count,
            success_count=procedure.success_count,
            failure_count=procedure.failure_count,
            success_rate=procedure.success_rate,
            version=procedure.version,
            source=procedure.source,
            author=procedure.author,
            source_trajectory_ids=ranked_sources,
            exemplar=exemplar,
            # The task travels with the procedure into another session: without personal data.
            exemplar_task=None if exemplar_task is None else redact_personal(exemplar_task).text,
            provisional=procedure.provisional,
            verified_by_test_run=self._verified_by_test_run(procedure),
            candidate_of=procedure.candidate_of,
        )

    def _verified_by_test_run(self, procedure: Procedure) -> bool:
        """Whether a provisional procedure nobody has reported failing was built from a run that succeeded
        on its own passing test run (the last few sources read: the newest are the likeliest to be it).
        Still provisional (trust.py): the run checked itself, and only a reported outcome proves a procedure."""
        if not procedure.provisional or procedure.failure_count:
            return False
        for trajectory_id in sorted(procedure.source_trajectory_ids, reverse=True)[:VERIFYING_SOURCES]:
            source = self.store.get_trajectory(trajectory_id)
            if source.outcome == Outcome.SUCCESS and passed_its_tests(source.steps):
                return True
        return False

    def _with_exemplar(self, recalled: RecalledProcedure) -> RecalledProcedure:
        """`recalled` with the worked example `_present` left out when it gave only the task."""
        if recalled.exemplar is not None or recalled.exemplar_task is None or not recalled.source_trajectory_ids:
            return recalled
        trajectory = self.store.get_trajectory(recalled.source_trajectory_ids[0])
        exemplar = _exemplar(trajectory, recalled.steps)
        return recalled.model_copy(update={"exemplar": exemplar}) if exemplar else recalled


@dataclass
class Why:
    """What a recall's log entry says: what was given or withheld, and why."""

    task: str
    origin: str
    retrieval: str
    floor: str
    stale: dict[int, list[str]] = field(default_factory=dict)
    stale_left_out: list[int] = field(default_factory=list)

    def _found(self, scored: Sequence[Scored], worded: set[int] | None = None) -> list[dict[str, Any]]:
        """What was found, best first; the task's words each one shares only for those in `worded`
        (all when None): a recall gives one to three of the ten it may find, and the log says why
        of those it gave."""
        terms = query_terms(self.task)
        found = []
        for s in scored:
            p = s.procedure
            matched: list[str] = []
            if worded is None or p.id in worded:
                words = procedure_vocabulary(p)
                matched = sorted({t for t in terms if share_found([t], words)})
            found.append(
                {
                    "id": p.id,
                    "title": p.title[:120],
                    "relevance": round(s.relevance, 3),
                    "score": round(s.score, 3),
                    "words": matched[:12],
                    # What the floor judged (a cosine), when the relevance that ranks is another number.
                    **({"cosine": round(s.fit, 3)} if s.fit is not None else {}),
                }
            )
        return found

    def _detail(self, **more: Any) -> dict[str, Any]:
        stale = {"stale": {str(k): v for k, v in self.stale.items()}} if self.stale else {}
        return {"via": self.origin, "retrieval": self.retrieval, "floor": self.floor, **stale, **more}

    def given(
        self, scored: Sequence[Scored], procedures: Sequence[RecalledProcedure], left_out: str | None
    ) -> tuple[str, dict[str, Any]]:
        placed = {p.id for p in procedures}
        found = self._found(scored, placed)
        given = [f for f in found if f["id"] in placed]
        cut = [f["id"] for f in found if f["id"] not in placed]
        abridged = [p.id for p in procedures if p.abridged]
        if not given:
            summary = f"nothing fits ({self.retrieval}; floor {self.floor})"
        else:
            summary = "gave " + ", ".join(
                f"#{f['id']} (relevance {f['relevance']:.2f}"
                + (f", cosine {f['cosine']:.2f}" if "cosine" in f else "")
                + (f"; words {', '.join(f['words'][:5])}" if f["words"] else "")
                + ")"
                for f in given
            )
            summary += f"; floor {self.floor}"
            if cut or abridged:
                summary += f"; budget left out {cut} abridged {abridged}"
        if self.stale:
            summary += "; stale: " + "; ".join(f"#{pid} {r[0]}" for pid, r in self.stale.items())
        if self.stale_left_out:
            summary += f"; left out as stale throughout {self.stale_left_out}"
        return summary, self._detail(given=given, left_out_ids=cut, abridged_ids=abridged, left_out=left_out)

    def withheld(self, scored: Sequence[Scored]) -> tuple[str, dict[str, Any]]:
        found = self._found(scored)
        would = ", ".join(f"#{f['id']}" for f in found) or "nothing"
        return f"held out: memory withheld (would have given {would}); answered as if nothing fits", self._detail(
            would_have_given=found
        )


def _mark_stale(procedures: Sequence[RecalledProcedure], stale: Mapping[int, list[str]]) -> None:
    for p in procedures:
        p.stale = stale.get(p.id, [])


def _json_cost(model: BaseModel) -> int:
    """What a model adds to an answer sent as JSON and again as text of about the same length."""
    return 2 * len(model.model_dump_json())


def _exemplar(trajectory: Trajectory, procedure_steps: Sequence[str]) -> list[ExemplarStep] | None:
    """The trajectory as a worked example, abridged; None when its actions are the steps themselves
    (nothing was abstracted, as in coding work): then only the task it came from is worth the space."""
    if _repeats(trajectory.steps, procedure_steps):
        return None
    return [
        ExemplarStep(action=s.action[:300], observation=(s.observation or "")[:200] or None)
        for s in trajectory.steps[:EXEMPLAR_STEPS]
    ]


def _repeats(trajectory_steps: Sequence[Step], procedure_steps: Sequence[str]) -> bool:
    """Whether the steps are the trajectory's own actions: kept as they were (their paths perhaps made
    relative, so a step may be part of its action), folded reads of them, abridged copies of them, or
    what a coding run established (engine/change.py: its change, checks and commands)."""
    actions = {" ".join(s.action.split()) for s in trajectory_steps}

    def repeated(step: str) -> bool:
        text = " ".join(step.removesuffix(REPRODUCES_NOTE).split())
        return text in actions or any(text in action for action in actions)

    return all(
        step.startswith((*LOOK_STEP_OPENINGS, *STEP_OPENINGS)) or ABRIDGED_NOTE in step or repeated(step)
        for step in procedure_steps
    )
