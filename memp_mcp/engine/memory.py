"""The Memp engine: build, retrieve and update procedural memory over one store.

`Memory` is what the MCP server, the CLI and the benchmarks call. It knows nothing of MCP:
inputs are plain values and pydantic models, outputs are the result models below, and every
refusal is a MempError with a message written for whoever called.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from memp_mcp.config import BuildStrategy, RetrieveStrategy, Settings, UpdateStrategy, validate_namespace
from memp_mcp.embedding import BackgroundEmbedder, Embedder
from memp_mcp.engine.budget import fit
from memp_mcp.engine.build import (
    REPRODUCES_NOTE,
    Lesson,
    abstract_task,
    extract_procedure,
    failure_pitfalls,
    lesson_pitfall,
    lessons,
    step_skeleton,
    trajectory_as_procedure,
    why_nothing_to_build,
)
from memp_mcp.engine.retrieve import RetrievalTuning, Retriever, Scored, key_text, tuning_for
from memp_mcp.errors import (
    EditConflictError,
    EmbeddingModelMismatchError,
    InvalidInputError,
    NotFoundError,
    ReadOnlyNamespaceError,
    StoreError,
)
from memp_mcp.models import (
    COMPACT_SCHEMA,
    MAX_NAME_CHARS,
    MAX_PITFALL_CHARS,
    MAX_PITFALLS,
    MAX_STEPS,
    MAX_TASK_CHARS,
    MAX_TEXT_CHARS,
    NamespaceStats,
    Outcome,
    Procedure,
    ProcedureDraft,
    ProcedureStatus,
    ProcedureVersion,
    Step,
    Trajectory,
)
from memp_mcp.store import Store, open_store
from memp_mcp.text import STOPWORDS, counted, one_line

logger = logging.getLogger(__name__)

MAX_RECALL_K = 20
# Keys (task texts) kept per procedure: enough to find it by many phrasings, bounded so a
# popular procedure does not dominate the vector table.
MAX_KEYS_PER_PROCEDURE = 32
# Two tasks are the same when their embeddings are this close (a rewording), and their
# procedures merge when they also do the same kinds of steps.
MERGE_SIMILARITY = 0.97
MERGE_SKELETON_OVERLAP = 0.5
# The paper's rule: a procedure retrieved at least 3 times whose success rate is under 50% is
# deprecated. Counted over judged recalls (reported outcomes), so unreported recalls do not
# count as failures.
DEPRECATE_MIN_JUDGED = 3
DEPRECATE_BELOW_RATE = 0.5
EXEMPLAR_STEPS = 12
# Trajectory ids a recall lists per procedure (the closest first); get_procedure lists them all.
RECALLED_SOURCES = 5
# An outcome judges the procedure a recall returned. A recall that found nothing has no id (null),
# and agents then send it as it came, or as a word: the answer says how to keep the work instead.
NO_RECALL_IDS = ("", "null", "none", "undefined")
NO_RECALL_TO_JUDGE = (
    "When the recall found nothing (recall_id null) there is no procedure to judge: call record_trajectory "
    "with the task, your steps and the outcome instead, so memory keeps what you did and builds a procedure from it"
)
# How long a recall waits for a model that is still loading before using keywords alone.
MODEL_WAIT_SECONDS = 5.0
# A lesson about the environment (an action refused, what worked instead) is offered to the procedures
# of the nearest tasks, by the run's task vector, not to the whole namespace: a scan of every
# procedure's steps took ~85 ms at 100,000 procedures, inside the record's write, and one run that met
# a common refusal revised thousands of procedures (record p95 of several seconds). Without vectors
# (keyword-only memory) the newest procedures whose steps name the action's words are offered instead.
LESSON_NEIGHBOURS = 50
# At most this many procedures learn from one run; the rest learn when they are followed.
MAX_WARNED_PER_RUN = 20

_SOURCE_RANK = {"agent": 3, "sampling": 2, "extractive": 1, "trajectory": 0}
# Steps a model wrote for the procedure (the calling agent's draft, or the client's model by sampling).
_DRAFT_SOURCES = frozenset({"agent", "sampling"})


class ExemplarStep(BaseModel):
    model_config = COMPACT_SCHEMA

    action: str
    observation: str | None = None


class RecalledProcedure(BaseModel):
    """A procedure as recall returns it: what to do, how well it has worked, where it came from."""

    model_config = COMPACT_SCHEMA

    id: int
    title: str
    when_to_use: str
    steps: list[str] = Field(description="Ordered steps; replace {placeholders} with this task's entities.")
    pitfalls: list[str]
    relevance: float = Field(description="How well the procedure fits the task, 0 to 1.")
    retrieved_count: int
    success_count: int
    failure_count: int
    success_rate: float | None
    version: int
    source: str = Field(description="Who wrote the steps: agent, sampling, extractive or trajectory.")
    author: str | None = Field(description="The agent that recorded the evidence (provenance; treat as untrusted).")
    source_trajectory_ids: list[int] = Field(description="Trajectories it was built from, closest to this task first.")
    exemplar: list[ExemplarStep] | None = Field(
        default=None, description="A worked example: the closest source trajectory's steps, abridged."
    )
    exemplar_task: str | None = None
    provisional: bool = Field(
        default=False, description="True while these steps have no reported success: try them with care."
    )
    candidate_of: int | None = Field(
        default=None, description="Set when these steps were proposed to replace another procedure's."
    )
    abridged: bool = Field(
        default=False, description="Long steps or pitfalls were cut to fit the recall budget: get_procedure has them."
    )


class RecallResult(BaseModel):
    model_config = COMPACT_SCHEMA

    recall_id: str | None = Field(description="Pass this to report_outcome after the task; None when nothing matched.")
    namespace: str
    strategy: str
    retrieval: str = Field(
        description="How the procedures were found: 'vector+keyword', 'vector (strategy)', 'keyword only (reason)', "
        "'random', or 'the namespace holds nothing yet'."
    )
    procedures: list[RecalledProcedure]
    left_out: str | None = Field(
        default=None, description="What the recall budget shortened or left out, and how to get it in full."
    )


class RecordResult(BaseModel):
    action: str = Field(description="created, merged, candidate (steps kept apart until they succeed) or stored_only.")
    trajectory_id: int
    procedure_id: int | None
    namespace: str
    message: str
    warned_procedure_ids: list[int] = Field(
        default_factory=list,
        description="Other procedures that take an action this run found refused: each got a pitfall saying "
        "what worked instead (update strategy 'adjustment').",
    )


class OutcomeResult(BaseModel):
    recall_id: str
    success: bool
    credited_procedure_ids: list[int] = Field(description="The one procedure credited or blamed.")
    attribution: str = Field(description="Why that procedure: the procedure_id given, or the rule used without one.")
    adjusted_procedure_ids: list[int] = Field(default_factory=list)
    deprecated_procedure_ids: list[int] = Field(default_factory=list)
    warned_procedure_ids: list[int] = Field(
        default_factory=list,
        description="Other procedures that take an action this run found refused: each got a pitfall saying "
        "what worked instead.",
    )
    trajectory_id: int | None = None
    message: str


class ProcedureDetail(BaseModel):
    procedure: Procedure
    success_rate: float | None
    history: list[ProcedureVersion]
    candidates: list[int] = Field(
        default_factory=list, description="Procedures proposed to replace these steps (served once they succeed)."
    )


@dataclass
class Strategies:
    build: BuildStrategy = "proceduralization"
    retrieve: RetrieveStrategy = "hybrid"
    update: UpdateStrategy = "adjustment"


@dataclass
class _Embedding:
    """The state of the embedding model as the engine sees it."""

    source: BackgroundEmbedder
    problem: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Memory:
    """Procedural memory: record trajectories, recall procedures, learn from outcomes."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder | BackgroundEmbedder | None,
        *,
        namespace: str = "default",
        strategies: Strategies | None = None,
        read_only_namespaces: frozenset[str] = frozenset(),
        tuning: RetrievalTuning | None = None,
        seed: int | None = None,
    ) -> None:
        self.store = store
        source = embedder if isinstance(embedder, BackgroundEmbedder) else BackgroundEmbedder(embedder=embedder)
        self._embedding = _Embedding(source)
        self.default_namespace = validate_namespace(namespace)
        self.strategies = strategies or Strategies()
        self.read_only_namespaces = read_only_namespaces
        self.retriever = Retriever(store, tuning, seed)

    # -- the embedding model -------------------------------------------------------------

    def embedder(self, wait: float | None = 0.0) -> Embedder | None:
        """The model, once loaded and bound to the database; None while loading or unusable.

        The database's model is read on every call (two rows of a small table), not remembered: another
        process may have run `reindex` with another model since, and vectors from this one would then
        land in the wrong space. Keys another process stored without a vector (no model there, or one
        still loading) are embedded here as soon as they are seen, not at the next restart.
        """
        state = self._embedding
        model = state.source.get(wait)
        if model is None:
            return None
        with state.lock:
            try:
                self.store.check_embedding_model(model.identity, model.dim)
                if self.store.embedding_model() is None:
                    self.store.bind_embedding_model(model.identity, model.dim)
                if self.store.has_keys_without_vectors():
                    self._backfill(model)
            except EmbeddingModelMismatchError as exc:
                if state.problem != str(exc):
                    logger.warning("vector search is off: %s", exc)
                state.problem = str(exc)
                return None
            except StoreError as exc:
                # Cannot write the binding or the missing vectors now (read-only file, full
                # disk, a long lock): keywords for this call, try again on the next.
                logger.warning("vector search unavailable for now: %s", exc)
                return None
            state.problem = None
        return model

    def fits_database(self, model: Embedder | None) -> bool:
        """Inside a write: whether vectors from `model` still belong in this database."""
        return model is not None and self.store.embedding_model() == (model.identity, model.dim)

    def model_status(self) -> str:
        if self._embedding.problem:
            return f"unavailable: {self._embedding.problem}"
        return self._embedding.source.status

    def _backfill(self, model: Embedder) -> None:
        """Embed keys stored while the model was loading (or before any model was bound)."""
        while pending := self.store.keys_without_vectors(256):
            vectors = model.embed([text for _, text in pending])
            self.store.store_key_vectors([(key_id, v) for (key_id, _), v in zip(pending, vectors, strict=True)])

    # -- record --------------------------------------------------------------------------

    def record(
        self,
        task: str,
        steps: Sequence[Step | dict[str, object] | str],
        outcome: Outcome | str,
        *,
        namespace: str | None = None,
        draft: ProcedureDraft | None = None,
        draft_source: str = "agent",
        agent: str | None = None,
    ) -> RecordResult:
        """Store a trajectory and build, merge or skip a procedure per the strategies."""
        task = _check_task(task)
        parsed_steps = _check_steps(steps)
        outcome = _check_outcome(outcome)
        agent = _check_agent(agent)
        namespace = self.writable_namespace(namespace)
        why_not = self._why_no_procedure(parsed_steps, outcome, draft)
        planned = self._plan(task, parsed_steps, outcome, draft, draft_source) if why_not is None else None
        model = self.embedder(0.0)
        vectors: list[list[float]] = []
        if planned is not None and model is not None:
            vectors = model.embed([planned.family, key_text(task)])
        learned = lessons(parsed_steps)
        with self.store.transaction():
            if vectors and not self.fits_database(model):
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
                result = self._build(namespace, task, planned, outcome, trajectory_id, vectors, agent, learned)
            if self.strategies.update == "adjustment":
                skip = {result.procedure_id} if result.procedure_id is not None else set()
                near = vectors[1] if vectors else None
                result.warned_procedure_ids = self._spread_lessons(
                    namespace, learned, task, trajectory_id, agent, skip, near
                )
        if result.warned_procedure_ids:
            result.message += f" {_warned_message(result.warned_procedure_ids)}"
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
        learned: list[Lesson],
    ) -> RecordResult:
        """Inside record's write: add the planned procedure, or merge it into the one for the same task."""
        keys = [
            (planned.family, vectors[0] if vectors else None),
            (key_text(task), vectors[1] if vectors else None),
        ]
        twin = self._find_twin(namespace, planned, task, vectors[1] if vectors else None)
        if twin is not None:
            candidate, revised = self._merge(
                twin, planned, trajectory_id, keys, agent, learned if outcome == Outcome.SUCCESS else []
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
        procedure_id = self._add_planned(namespace, planned, trajectory_id, keys, agent)
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

        Only successes build (failures too under the 'vanilla' update strategy). The agent's own
        draft is enough; without one the steps must hold at least one action that worked, so an
        empty or all-failed "success" never becomes a procedure made of a placeholder sentence.
        """
        if outcome != Outcome.SUCCESS and not (self.strategies.update == "vanilla" and steps):
            return f"only successful trajectories build procedures (update strategy '{self.strategies.update}')"
        if draft is not None and self.strategies.build != "trajectory":
            return None
        if not steps:
            return "the trajectory has no steps (send them, or your own procedure draft)"
        if self.strategies.build != "trajectory" and (reason := why_nothing_to_build(steps)):
            return f"{reason}; send a procedure draft if the task was done another way"
        return None

    def _plan(
        self, task: str, steps: list[Step], outcome: Outcome, draft: ProcedureDraft | None, draft_source: str
    ) -> _Planned:
        family = abstract_task(task, steps)
        if self.strategies.build == "trajectory":
            return _Planned(trajectory_as_procedure(task, steps), "trajectory", family)
        if draft is not None:
            draft = _check_draft(draft)
            if not draft.when_to_use:
                draft = draft.model_copy(update={"when_to_use": f"Tasks like: {family}"[:MAX_TEXT_CHARS]})
            return _Planned(draft, draft_source if draft_source in _SOURCE_RANK else "agent", family)
        return _Planned(extract_procedure(task, steps, outcome), "extractive", family)

    def _find_twin(
        self, namespace: str, planned: _Planned, task: str, task_vector: list[float] | None
    ) -> Procedure | None:
        """An active procedure for the same task that does the same kinds of steps.

        The same task means the same key text, or (with a model) a task embedding this close that
        it is a rewording, provided the steps also do the same kinds of things. Tasks that share a
        family but not their entities ("clean a mug" and
        "clean a plate") keep separate procedures: merging them was measured to blur retrieval
        (see README, benchmarks).
        """
        if planned.source == "trajectory":
            return None  # the trajectory strategy keeps every trajectory as its own memory
        for procedure in self.store.get_procedures(self.store.procedures_with_key(namespace, key_text(task))):
            if procedure.source != "trajectory" and procedure.candidate_of is None:
                return procedure
        if task_vector is None:
            return None
        candidates = [
            pid for pid, sim in self.store.vector_search(namespace, task_vector, 3) if sim >= MERGE_SIMILARITY
        ]
        skeleton = step_skeleton(planned.draft.steps)
        for procedure in self.store.get_procedures(candidates):
            if procedure.source == "trajectory" or procedure.candidate_of is not None:
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
        keys: list[tuple[str, list[float] | None]],
        agent: str | None,
        learned: Sequence[Lesson] = (),
    ) -> tuple[int | None, bool]:
        """Add a trajectory for the same task to `twin`: (the id of a candidate when its steps went to one,
        whether they replaced the twin's own).

        Better steps replace the twin's: under adjustment, steps from a success that found some of the
        twin's own steps refused (the tool changed, the option went away: the newest evidence wins,
        whatever its length), else a more trusted author's, else another draft from a model, else a
        shorter extraction. They replace them in place only
        when the same agent recorded both and the twin is provisional (its refinement by its own
        author) or outdated (its author's newer way, the old version kept in the history). Anything
        else would hand the twin's record to steps that have not earned it, so the steps become a
        candidate procedure instead, which recall serves once it has succeeded; an outdated twin is
        told meanwhile which of its steps no longer worked and what did.
        """
        # Revising stored steps in the light of what a later run found refused is adjustment's work;
        # vanilla and validation only add evidence to what they stored, as in the paper.
        outdated = (
            [p for lesson in learned if (p := lesson_pitfall(twin.steps, lesson))]
            if self.strategies.update == "adjustment"
            else []
        )
        new_rank, old_rank = _SOURCE_RANK.get(planned.source, 0), _SOURCE_RANK.get(twin.source, 0)
        # An extraction is judged by its length (two runs of one task extract slightly different lists);
        # a draft a model wrote is its author's considered proposal, never dropped for being as long.
        better = (
            bool(outdated)
            or new_rank > old_rank
            or (
                new_rank == old_rank
                and (planned.source in _DRAFT_SOURCES or len(planned.draft.steps) < len(twin.steps))
            )
        )
        changed = better and planned.draft.steps != twin.steps
        # Callers that give no agent name count as one author (a local server's one user); a shared server
        # that must tell its agents apart has them name themselves (see the trust model).
        if changed and not ((twin.provisional or outdated) and twin.author == agent):
            candidate = self._propose(twin, planned, trajectory_id, keys, agent)
            if outdated:
                self.store.revise_procedure(
                    twin.id,
                    reason=f"trajectory {trajectory_id} found steps of it refused; candidate {candidate} did the "
                    "task another way",
                    changed_by=agent,
                    pitfalls=_merge_lists(twin.pitfalls, outdated, MAX_PITFALLS),
                )
            return candidate, False
        self.store.add_sources(twin.id, [trajectory_id])
        if len(self.store.keys(twin.id)) < MAX_KEYS_PER_PROCEDURE:
            self.store.add_keys(twin.id, keys)
        if changed:
            if new_rank > old_rank:
                why = "more trusted"
            elif planned.source in _DRAFT_SOURCES:
                why = "its author's newer draft"
            else:
                why = "shorter"
            self.store.revise_procedure(
                twin.id,
                reason=f"merged trajectory {trajectory_id}: a success that found steps of this one refused"
                if outdated
                else f"merged trajectory {trajectory_id}: its steps are {why}",
                changed_by=agent,
                steps=planned.draft.steps,
                pitfalls=_merge_lists(twin.pitfalls, planned.draft.pitfalls, MAX_PITFALLS),
                source=planned.source,
                fresh_record=True,
            )
        return None, changed

    def _add_planned(
        self,
        namespace: str,
        planned: _Planned,
        trajectory_id: int,
        keys: list[tuple[str, list[float] | None]],
        agent: str | None,
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
        )

    def _propose(
        self,
        twin: Procedure,
        planned: _Planned,
        trajectory_id: int,
        keys: list[tuple[str, list[float] | None]],
        agent: str | None,
    ) -> int:
        """Keep other steps for `twin`'s task as a candidate: one per recording agent, revised by it alone."""
        mine = next((c for c in self.store.candidates_of(twin.id) if c.author == agent and c.provisional), None)
        if mine is None:
            return self._add_planned(twin.namespace, planned, trajectory_id, keys, agent, candidate_of=twin.id)
        self.store.add_sources(mine.id, [trajectory_id])
        if planned.draft.steps != mine.steps:
            self.store.revise_procedure(
                mine.id,
                reason=f"merged trajectory {trajectory_id}: its author's newer steps",
                changed_by=agent,
                steps=planned.draft.steps,
                pitfalls=_merge_lists(mine.pitfalls, planned.draft.pitfalls, MAX_PITFALLS),
                source=planned.source,
                fresh_record=True,
            )
        return mine.id

    def _spread_lessons(
        self,
        namespace: str,
        learned: Sequence[Lesson],
        task: str,
        trajectory_id: int,
        agent: str | None,
        skip: set[int],
        near: Sequence[float] | None,
    ) -> list[int]:
        """Inside a write: give every active procedure of the namespace that takes an action this run found
        refused, where the run also found what worked instead, a pitfall saying so. The lesson is about the
        environment (a command replaced, a service to start first), so the next task of another kind does
        not walk into it. A new version, not a fresh record: no step is rewritten without a run of that task.

        Only procedures the same agent recorded learn it: one run is one agent's word, and a lesson names
        what to run instead, so another author's procedures would otherwise take instructions from any
        agent that can record (the trust model's rule for merges, applied to pitfalls that spread).
        """
        useful = [lesson for lesson in learned if lesson.shows_a_way]
        if not useful:
            return []
        warned: list[int] = []
        for procedure in self._procedures_taking(namespace, useful, near):
            if len(warned) >= MAX_WARNED_PER_RUN:
                break
            if procedure.id in skip or procedure.author != agent:
                continue
            new = [p for lesson in useful if (p := lesson_pitfall(procedure.steps, lesson))]
            new = [p[:MAX_PITFALL_CHARS] for p in dict.fromkeys(new) if p[:MAX_PITFALL_CHARS] not in procedure.pitfalls]
            if not new:
                continue
            self.store.revise_procedure(
                procedure.id,
                reason=f"lesson from trajectory {trajectory_id} on '{task[:120]}': a step it shares was refused "
                "there and something else worked",
                changed_by=agent,
                pitfalls=_merge_lists(procedure.pitfalls, new, MAX_PITFALLS),
            )
            warned.append(procedure.id)
        return warned

    def _procedures_taking(
        self, namespace: str, learned: Sequence[Lesson], near: Sequence[float] | None
    ) -> list[Procedure]:
        """Active procedures that may take one of the refused actions, each then matched step by step: those
        of the tasks nearest `near`, or without it the newest whose steps name the action's first word (the
        program, or the verb) and another of its words."""
        if near is not None:
            ids = [pid for pid, _ in self.store.vector_search(namespace, list(near), LESSON_NEIGHBOURS)]
            return self.store.get_procedures(ids)
        found: set[int] = set()
        for lesson in learned:
            tokens = [t for t in re.findall(r"[A-Za-z0-9]+", lesson.action) if t.lower() not in STOPWORDS]
            if tokens:
                others = [t for t in tokens[1:] if len(t) >= 3]
                found.update(self.store.procedures_with_step_words(namespace, tokens[0], others))
        return self.store.get_procedures(sorted(found, reverse=True)[:LESSON_NEIGHBOURS])

    # -- recall --------------------------------------------------------------------------

    def recall(
        self,
        task: str,
        k: int = 3,
        *,
        namespace: str | None = None,
        strategy: RetrieveStrategy | None = None,
        wait_for_model: float = MODEL_WAIT_SECONDS,
        log: bool = True,
        budget: int | None = None,
        cost: Callable[[RecalledProcedure], int] | None = None,
        overhead: int = 0,
    ) -> RecallResult:
        """The procedures that fit `task`, best first; an empty list when nothing fits.

        With a `budget`, the answer is fitted to that many characters (see budget.fit), where `cost`
        says what one procedure adds to the answer as the caller sends it (by default twice its JSON:
        a structured copy and a text rendering) and `overhead` what the caller adds to any answer (a
        text header); each procedure then lists only its closest source trajectories. Without one
        (evaluation, or a caller with its own limit) every procedure found is returned whole.
        """
        task = _check_task(task)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_RECALL_K:
            raise InvalidInputError(f"k must be an integer from 1 to {MAX_RECALL_K}; got {k!r}")
        namespace = validate_namespace(namespace) if namespace is not None else self.default_namespace
        strategy = strategy or self.strategies.retrieve
        if namespace not in self.store.namespaces():
            return RecallResult(
                recall_id=None,
                namespace=namespace,
                strategy=strategy,
                retrieval="the namespace holds nothing yet",
                procedures=[],
            )
        model = self.embedder(wait_for_model) if strategy != "random" else None
        if strategy == "random":
            retrieval = "random"
        elif model is not None:
            retrieval = "vector+keyword" if strategy == "hybrid" else f"vector ({strategy})"
        else:
            retrieval = f"keyword only (embedding model {self.model_status()})"
        scored = self._retrieve_trusted(task, namespace, k, strategy, model)
        left_out = None
        if budget is None:
            procedures = [self._present(s.procedure, s.relevance, s.ranked_sources) for s in scored]
        else:
            # Worked examples are read only for the procedures the budget places (at k=10 most
            # procedures found do not fit, and reading each one's trajectory was a tenth of a recall).
            closest = self.store.trajectory_tasks([s.ranked_sources[0] for s in scored if s.ranked_sources])
            procedures = [
                self._present(s.procedure, s.relevance, s.ranked_sources, closest_task=closest) for s in scored
            ]
            for p in procedures:
                p.source_trajectory_ids = p.source_trajectory_ids[:RECALLED_SOURCES]
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
                    self.store.add_recall_event(event_id, namespace, task, [p.id for p in procedures], strategy)
                recall_id = event_id
                for p in procedures:
                    p.retrieved_count += 1
            except StoreError as exc:
                # A database that cannot be written (read-only file, full disk) still answers
                # recalls; only the outcome report, which needs the recall logged, is lost.
                logger.warning("recall not logged: %s", exc)
                retrieval += f"; not logged, so no outcome can be reported ({exc})"
        return RecallResult(
            recall_id=recall_id,
            namespace=namespace,
            strategy=strategy,
            retrieval=retrieval,
            procedures=procedures,
            left_out=left_out,
        )

    def _retrieve_trusted(
        self, task: str, namespace: str, k: int, strategy: RetrieveStrategy, model: Embedder | None
    ) -> list[Scored]:
        """The best k, leaving out candidates that have not succeeded while what they would replace serves."""
        wanted = k
        while True:
            scored = self.retriever.retrieve(task, namespace, wanted, strategy, model)
            hidden = self._unproven_candidates([s.procedure for s in scored])
            if not hidden or len(scored) < wanted or wanted >= k + MAX_RECALL_K:
                return [s for s in scored if s.procedure.id not in hidden][:k]
            wanted += len(hidden)

    def _unproven_candidates(self, procedures: Sequence[Procedure]) -> set[int]:
        candidates = [p for p in procedures if p.candidate_of is not None and p.provisional]
        if not candidates:
            return set()
        serving = {
            p.id
            for p in self.store.get_procedures([c.candidate_of or 0 for c in candidates])
            if p.status == ProcedureStatus.ACTIVE
        }
        return {c.id for c in candidates if c.candidate_of in serving}

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
            exemplar_task=exemplar_task,
            provisional=procedure.provisional,
            candidate_of=procedure.candidate_of,
        )

    def _with_exemplar(self, recalled: RecalledProcedure) -> RecalledProcedure:
        """`recalled` with the worked example `_present` left out when it gave only the task."""
        if recalled.exemplar is not None or recalled.exemplar_task is None or not recalled.source_trajectory_ids:
            return recalled
        trajectory = self.store.get_trajectory(recalled.source_trajectory_ids[0])
        exemplar = _exemplar(trajectory, recalled.steps)
        return recalled.model_copy(update={"exemplar": exemplar}) if exemplar else recalled

    # -- update --------------------------------------------------------------------------

    def report_outcome(
        self,
        recall_id: str | None,
        success: bool,
        *,
        procedure_id: int | None = None,
        notes: str | None = None,
        correction: ProcedureDraft | str | None = None,
        trajectory: Sequence[Step | dict[str, object] | str] | None = None,
        agent: str | None = None,
        namespace: str | None = None,
    ) -> OutcomeResult:
        """Credit or blame the procedure that was followed; on failure, revise it.

        Only one procedure of the recall is judged: `procedure_id` when given (it must be one the
        recall returned), else the recall's top-ranked procedure, the one agents are told to follow.
        The others are neither credited nor blamed.
        """
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
        scope = validate_namespace(namespace) if namespace is not None else self.default_namespace
        if event.namespace != scope:
            raise NotFoundError(
                f"no recall with id {recall_id.strip()!r} in namespace '{scope}'; pass the namespace you recalled in"
            )
        if event.reported:
            raise InvalidInputError(
                f"recall {event.id} already has a reported outcome ({'success' if event.success else 'failure'}); "
                "each recall is reported once - call recall_procedure again for a new attempt"
            )
        self.writable_namespace(event.namespace)
        agent = _check_agent(agent)
        followed, attribution = _attribute(event.procedure_ids, procedure_id, event.id)
        if notes is not None and len(notes) > MAX_TEXT_CHARS:
            raise InvalidInputError(f"notes is too long: at most {MAX_TEXT_CHARS} characters")
        steps = _check_steps(trajectory) if trajectory is not None else None
        if isinstance(correction, ProcedureDraft):
            correction = _check_draft(correction)
        elif correction is not None and (not isinstance(correction, str) or len(correction) > MAX_PITFALL_CHARS):
            raise InvalidInputError(
                f"correction must be a procedure draft or a text of at most {MAX_PITFALL_CHARS} characters"
            )
        adjusted: list[int] = []
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
            self.store.bump_stats(followed, succeeded=int(success), failed=int(not success))
            if success and trajectory_id is not None:
                self.store.add_sources(followed, [trajectory_id])
            # A success reached only by departing from the procedure, with the agent saying what to
            # do instead (a step that no longer works), corrects it too: otherwise it is credited
            # and keeps being served as it was.
            if self.strategies.update == "adjustment" and (not success or correction is not None):
                self._adjust(followed, event.task, notes, correction, None if success else steps, agent, success)
                adjusted.append(followed)
            # Vanilla keeps everything it stored, as in the paper; the other strategies retire what fails.
            if self.strategies.update != "vanilla" and self._should_retire(self.store.get_procedure(followed)):
                self.store.set_status(followed, ProcedureStatus.DEPRECATED)
                deprecated.append(followed)
            if self.strategies.update == "adjustment" and steps and trajectory_id is not None:
                # The followed procedure's own key vector places the task among its neighbours.
                keys = self.store.keys_with_vectors([followed]).get(followed, [])
                near = np.frombuffer(keys[0][1], dtype=np.float32).tolist() if keys else None
                warned = self._spread_lessons(
                    event.namespace, lessons(steps), event.task, trajectory_id, agent, set(adjusted), near
                )
        parts = [f"Recorded {'success' if success else 'failure'} for procedure {followed} ({attribution})."]
        if adjusted:
            fresh = " with a fresh record" if correction else ""
            parts.append(f"Revised procedure {followed}: a new version{fresh}; the old one is kept in its history.")
        if deprecated:
            parts.append(
                f"Deprecated procedure {followed}: its current version keeps failing (success rate under 50% over "
                f"{DEPRECATE_MIN_JUDGED}+ reported uses); restore it with restore_procedure."
            )
        if warned:
            parts.append(_warned_message(warned))
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
        )

    @staticmethod
    def _should_retire(procedure: Procedure) -> bool:
        """The paper's rule, applied to the current version's own record: a version that has just been
        corrected starts from nothing and so is never retired before it has been tried."""
        judged = procedure.version_success_count + procedure.version_failure_count
        return (
            procedure.status == ProcedureStatus.ACTIVE
            and judged >= DEPRECATE_MIN_JUDGED
            and procedure.version_success_count / judged < DEPRECATE_BELOW_RATE
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
            pitfalls=_merge_lists(procedure.pitfalls, [p[:MAX_PITFALL_CHARS] for p in pitfalls], MAX_PITFALLS),
            source=source,
            fresh_record=bool(correction),
        )

    # -- management ----------------------------------------------------------------------

    def get_procedure(self, procedure_id: int, namespace: str | None = None) -> ProcedureDetail:
        procedure = self._owned(procedure_id, namespace)
        return ProcedureDetail(
            procedure=procedure,
            success_rate=procedure.success_rate,
            history=self.store.versions(procedure.id),
            candidates=[c.id for c in self.store.candidates_of(procedure.id)],
        )

    def list_procedures(
        self,
        namespace: str | None = None,
        status: ProcedureStatus | str | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Procedure]:
        if namespace is not None:
            namespace = validate_namespace(namespace)
        if status is not None:
            try:
                status = ProcedureStatus(status)
            except ValueError:
                raise InvalidInputError("status must be 'active' or 'deprecated'") from None
        if not 1 <= limit <= 500 or offset < 0:
            raise InvalidInputError("limit must be 1-500 and offset >= 0")
        if text is not None and len(text) > MAX_TEXT_CHARS:
            raise InvalidInputError(f"text filter is too long: at most {MAX_TEXT_CHARS} characters")
        return self.store.list_procedures(namespace, status, text, limit, offset)

    def edit(
        self,
        procedure_id: int,
        *,
        namespace: str | None = None,
        expected_version: int | None = None,
        title: str | None = None,
        when_to_use: str | None = None,
        steps: list[str] | None = None,
        pitfalls: list[str] | None = None,
        agent: str | None = None,
        reason: str = "edited",
    ) -> Procedure:
        """Change a procedure by hand; fields not given keep their current value.

        With `expected_version` (the version the edit was based on) an edit is refused with
        EditConflictError when the procedure has changed since, saying what changed, instead of
        writing back a stale copy over a revision made meanwhile (a failure's pitfall, another edit).
        """
        peek = self._owned(procedure_id, namespace)
        self.writable_namespace(peek.namespace)
        if title is None and when_to_use is None and steps is None and pitfalls is None:
            raise InvalidInputError("nothing to change: give at least one of title, when_to_use, steps, pitfalls")
        if expected_version is not None and (not isinstance(expected_version, int) or expected_version < 1):
            raise InvalidInputError(
                f"version must be a positive integer (as get_procedure shows); got {expected_version!r}"
            )
        model = self.embedder(0.0)
        key_vector = model.embed([when_to_use])[0] if model and when_to_use else None
        with self.store.transaction():
            if key_vector is not None and not self.fits_database(model):
                key_vector = None
            procedure = self.store.get_procedure(peek.id)
            if expected_version is not None and procedure.version != expected_version:
                raise EditConflictError(self._changes_since(procedure, expected_version))
            draft = _check_draft(
                ProcedureDraft.model_construct(
                    title=title if title is not None else procedure.title,
                    steps=steps if steps is not None else procedure.steps,
                    when_to_use=when_to_use if when_to_use is not None else procedure.when_to_use,
                    pitfalls=pitfalls if pitfalls is not None else procedure.pitfalls,
                )
            )
            revised = self.store.revise_procedure(
                procedure.id,
                reason=reason,
                changed_by=agent,
                title=draft.title,
                when_to_use=draft.when_to_use,
                steps=draft.steps,
                pitfalls=draft.pitfalls,
                source="agent",
                fresh_record=draft.steps != procedure.steps,
            )
            if when_to_use:
                self.store.add_keys(procedure.id, [(when_to_use, key_vector)])
        return revised

    def _changes_since(self, procedure: Procedure, version: int) -> str:
        """What happened to a procedure after `version`, for an edit based on that version."""
        history = {v.version: v for v in self.store.versions(procedure.id)}
        if version > procedure.version or version not in history:
            return (
                f"procedure {procedure.id} has no version {version}; it is at version {procedure.version} - "
                "read it again and base the edit on that"
            )
        changes = [
            f"v{v.version}->v{v.version + 1}: {one_line(v.reason)} (by {one_line(v.changed_by or 'unknown')})"
            for number, v in sorted(history.items())
            if number >= version
        ]
        base = history[version]
        differences = []
        if base.steps != procedure.steps:
            differences.append("its steps changed")
        added = [p for p in procedure.pitfalls if p not in base.pitfalls]
        if added:
            differences.append("pitfalls were added: " + "; ".join(f"'{one_line(p)[:120]}'" for p in added))
        removed = [p for p in base.pitfalls if p not in procedure.pitfalls]
        if removed:
            differences.append(f"{len(removed)} pitfalls were removed")
        if (base.title, base.when_to_use) != (procedure.title, procedure.when_to_use):
            differences.append("its title or when-to-use changed")
        return (
            f"procedure {procedure.id} changed since version {version}, which the edit was based on: "
            + "; ".join(changes)
            + (" - " + ", ".join(differences) if differences else "")
            + f". Nothing was written: read version {procedure.version} again and redo the edit on it."
        )

    def forget(self, procedure_id: int, namespace: str | None = None) -> Procedure:
        """Deprecate a procedure: recall stops returning it; it stays, and can be restored."""
        return self._set_status(procedure_id, namespace, ProcedureStatus.DEPRECATED)

    def restore(self, procedure_id: int, namespace: str | None = None) -> Procedure:
        return self._set_status(procedure_id, namespace, ProcedureStatus.ACTIVE)

    def _set_status(self, procedure_id: int, namespace: str | None, status: ProcedureStatus) -> Procedure:
        procedure = self._owned(procedure_id, namespace)
        self.writable_namespace(procedure.namespace)
        with self.store.transaction():
            self.store.set_status(procedure.id, status)
            return self.store.get_procedure(procedure.id)

    def _owned(self, procedure_id: object, namespace: str | None) -> Procedure:
        """The procedure with this id in `namespace` (the default when None): ids are global, but a
        namespace is a boundary, so a procedure of another namespace is reported as not found."""
        namespace = validate_namespace(namespace) if namespace is not None else self.default_namespace
        checked = _check_id(procedure_id)
        try:
            procedure = self.store.get_procedure(checked)
        except NotFoundError:
            procedure = None
        if procedure is None or procedure.namespace != namespace:
            raise NotFoundError(f"no procedure with id {checked} in namespace '{namespace}'")
        return procedure

    def stats(self, namespace: str | None = None) -> NamespaceStats:
        namespace = validate_namespace(namespace) if namespace is not None else self.default_namespace
        return self.store.stats(namespace)

    # -- checks --------------------------------------------------------------------------

    def writable_namespace(self, namespace: str | None) -> str:
        namespace = validate_namespace(namespace) if namespace is not None else self.default_namespace
        if namespace in self.read_only_namespaces:
            raise ReadOnlyNamespaceError(
                f"namespace '{namespace}' is read-only on this server; record into another namespace"
            )
        return namespace


def open_memory(settings: Settings, *, embedder: Embedder | BackgroundEmbedder | None = None) -> Memory:
    """A Memory on the settings' database; the model loads in the background unless one is given."""
    store = open_store(settings.db_path, settings.database_url)
    if embedder is None:
        embedder = BackgroundEmbedder(settings)
    return Memory(
        store,
        embedder,
        namespace=settings.namespace,
        strategies=Strategies(settings.build_strategy, settings.retrieve_strategy, settings.update_strategy),
        read_only_namespaces=settings.read_only_namespaces,
        tuning=tuning_for(settings),
    )


@dataclass
class _Planned:
    draft: ProcedureDraft
    source: str
    family: str


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
    actions = {" ".join(s.action.split()) for s in trajectory_steps}
    return all(step.removesuffix(REPRODUCES_NOTE) in actions for step in procedure_steps)


def _warned_message(procedure_ids: Sequence[int]) -> str:
    listed = ", ".join(map(str, procedure_ids))
    return f"Procedures {listed} take an action this run found refused: each got a pitfall saying what worked instead."


def _merge_lists(old: Sequence[str], new: Sequence[str], limit: int) -> list[str]:
    merged = list(dict.fromkeys([*old, *new]))
    return merged[-limit:]


def _attribute(returned: Sequence[int], procedure_id: object, recall_id: str) -> tuple[int, str]:
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
    checked = _check_id(procedure_id)
    if checked not in returned:
        raise InvalidInputError(
            f"procedure {checked} was not returned by recall {recall_id} (it returned {list(returned)}); "
            "pass the id of the procedure you followed from that recall, or omit procedure_id"
        )
    return checked, "the procedure_id given"


def _check_id(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**63:
        raise InvalidInputError(f"procedure id must be a positive integer (as list_procedures shows); got {value!r}")
    return value


def _check_task(task: object) -> str:
    if not isinstance(task, str) or not task.strip():
        raise InvalidInputError("task must be a non-empty description of what the agent is doing")
    if len(task) > MAX_TASK_CHARS:
        raise InvalidInputError(f"task is {len(task)} characters; at most {MAX_TASK_CHARS} (summarise it)")
    return " ".join(task.split())


def _check_agent(agent: object) -> str | None:
    if agent is None:
        return None
    if not isinstance(agent, str) or len(agent) > MAX_NAME_CHARS:
        raise InvalidInputError(f"agent must be a name of at most {MAX_NAME_CHARS} characters")
    return " ".join(agent.split()) or None


def _check_outcome(outcome: object) -> Outcome:
    try:
        return Outcome(str(outcome))
    except ValueError:
        raise InvalidInputError(f"outcome must be 'success', 'failure' or 'unknown'; got {outcome!r}") from None


def _check_steps(steps: object) -> list[Step]:
    """Steps as Step models; a plain string is an action whose result was not recorded."""
    if not isinstance(steps, list | tuple):
        raise InvalidInputError("steps must be a list of {action, observation?, ok?, exit_code?} objects or strings")
    if len(steps) > MAX_STEPS:
        raise InvalidInputError(
            f"{len(steps)} steps is too many: at most {MAX_STEPS} per trajectory (keep the last ones)"
        )
    parsed = []
    for index, step in enumerate(steps):
        try:
            if isinstance(step, str):
                step = {"action": step}
            parsed.append(step if isinstance(step, Step) else Step.model_validate(step))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "step"
            raise InvalidInputError(f"steps[{index}].{where}: {error['msg']}") from None
    return parsed


def _check_draft(draft: ProcedureDraft) -> ProcedureDraft:
    try:
        return ProcedureDraft.model_validate(dict(draft))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InvalidInputError(f"procedure.{where}: {error['msg']}") from None
