"""Memory: the engine's facade, what the MCP server, the CLI, the hooks and the benchmarks call.

It knows nothing of MCP: inputs are plain values and pydantic models, outputs are the result models
(results.py), and every refusal is a MempError with a message written for whoever called. Each
operation is carried out by the module of its concern (record, recall, outcomes, imports); the
management of single procedures (show, list, edit, forget, restore) is here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from memp_mcp.config import RetrieveStrategy, Settings, validate_namespace
from memp_mcp.embedding import BackgroundEmbedder, Embedder
from memp_mcp.engine.freshness import Freshness, check_many
from memp_mcp.engine.imports import ImportedProcedure, import_procedures
from memp_mcp.engine.inputs import check_draft
from memp_mcp.engine.model import ModelBinding
from memp_mcp.engine.outcomes import Outcomes
from memp_mcp.engine.recall import MODEL_WAIT_SECONDS, Recaller
from memp_mcp.engine.record import Recorder
from memp_mcp.engine.results import (
    ImportReport,
    OutcomeResult,
    ProcedureDetail,
    RecalledProcedure,
    RecallResult,
    RecordResult,
)
from memp_mcp.engine.retrieve import RetrievalTuning, Retriever, tuning_for
from memp_mcp.engine.scrub import Scrubber
from memp_mcp.engine.strategies import Strategies
from memp_mcp.engine.trust import Scope, procedure_in
from memp_mcp.engine.uplift import Uplift, uplift
from memp_mcp.engine.worked_example import worked_example
from memp_mcp.errors import EditConflictError, InvalidInputError
from memp_mcp.models import (
    MAX_TEXT_CHARS,
    LoggedEvent,
    NamespaceStats,
    Outcome,
    Procedure,
    ProcedureDraft,
    ProcedureStatus,
    Step,
)
from memp_mcp.principals import local_principal
from memp_mcp.store import Store, open_store
from memp_mcp.store.events import MAX_EVENTS_READ
from memp_mcp.text import one_line


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
        principal: str | None = None,
        holdout: float = 0.0,
    ) -> None:
        """`principal`: who writes when a call names no one (memp_mcp.principals); the local account by default."""
        self.store = store
        self.principal = principal if principal is not None else local_principal().name
        self.model = ModelBinding(store, embedder)
        self.scope = Scope(validate_namespace(namespace), read_only_namespaces)
        self.strategies = strategies or Strategies()
        self.retriever = Retriever(store, tuning, seed)
        self._recorder = Recorder(store, self.model, self.strategies, self.scope)
        self._recaller = Recaller(
            store, self.model, self.strategies, self.scope, self.retriever, holdout, random.Random(seed)
        )
        self._outcomes = Outcomes(store, self.strategies, self.scope)

    @property
    def default_namespace(self) -> str:
        return self.scope.default

    @property
    def read_only_namespaces(self) -> frozenset[str]:
        return self.scope.read_only

    # -- the embedding model -------------------------------------------------------------

    def embedder(self, wait: float | None = 0.0) -> Embedder | None:
        """The model, once loaded and bound to the database; None while loading or unusable (see ModelBinding.get)."""
        return self.model.get(wait)

    def fits_database(self, model: Embedder | None) -> bool:
        """Inside a write: whether vectors from `model` still belong in this database."""
        return self.model.fits_database(model)

    def model_status(self) -> str:
        return self.model.status()

    # -- the operations of the concern modules -------------------------------------------

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
        principal: str | None = None,
        root: str | None = None,
        origin: str = "record_trajectory",
    ) -> RecordResult:
        """Store a trajectory and build, merge or skip a procedure per the strategies.

        `agent` is a label for readers; `principal` (default: this memory's) is who records, as
        authenticated, and is what the trust rules compare (engine/trust.py). Paths under `root` (the
        project's folder, when known) are written relative to it in the built steps. `origin` names
        the path it came by in the log."""
        return self._recorder.record(
            task,
            steps,
            outcome,
            namespace,
            draft,
            draft_source,
            agent,
            principal or self.principal,
            root=root,
            origin=origin,
        )

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
        origin: str = "recall_procedure",
        project_root: Path | str | None = None,
        words_under_floor: bool = True,
    ) -> RecallResult:
        """The procedures that fit `task`, best first; an empty list when nothing fits.

        With a `budget`, the answer is fitted to that many characters (see budget.fit), where `cost`
        says what one procedure adds to the answer as the caller sends it (by default twice its JSON:
        a structured copy and a text rendering) and `overhead` what the caller adds to any answer (a
        text header); each procedure then lists only its closest source trajectories. Without one
        (evaluation, or a caller with its own limit) every procedure found is returned whole.

        A logged recall (`log`) draws the task's arm (see uplift.py) and writes what it gave and why
        to the event log, naming `origin` (the tool or hook that asked). With a `project_root`, the
        procedures' citations are checked against it (see freshness.py). Without `words_under_floor`,
        only procedures that reach the relevance floor are given, none that fit on their words under
        it (see retrieve.py): for a caller that offers them unasked, as the prompt hook does.
        """
        root = Path(project_root) if project_root is not None and str(project_root).strip() else None
        return self._recaller.recall(
            task, k, namespace, strategy, wait_for_model, log, budget, cost, overhead, origin, root, words_under_floor
        )

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
        principal: str | None = None,
        origin: str = "report_outcome",
    ) -> OutcomeResult:
        """Credit or blame the procedure that was followed; on failure, revise it.

        Only one procedure of the recall is judged: `procedure_id` when given (it must be one the
        recall returned), else the recall's top-ranked procedure, the one agents are told to follow.
        The others are neither credited nor blamed.
        """
        return self._outcomes.report(
            recall_id,
            success,
            procedure_id,
            notes,
            correction,
            trajectory,
            agent,
            namespace,
            principal or self.principal,
            origin,
        )

    def import_procedures(self, procedures: Sequence[ImportedProcedure], namespace: str | None = None) -> ImportReport:
        """Add procedures written elsewhere, checked as records and edits are (see imports.py)."""
        return import_procedures(self.store, self.model, self.scope.writable(namespace), procedures, self.principal)

    # -- single procedures ---------------------------------------------------------------

    def get_procedure(
        self, procedure_id: int, namespace: str | None = None, with_worked_example: bool = False
    ) -> ProcedureDetail:
        """One procedure with its history; `with_worked_example` adds the latest run it was built from."""
        procedure = self._owned(procedure_id, namespace)
        example = None
        if with_worked_example and procedure.source_trajectory_ids:
            example = worked_example(self.store.get_trajectory(procedure.source_trajectory_ids[-1]))
        return ProcedureDetail(
            procedure=procedure,
            success_rate=procedure.success_rate,
            history=self.store.versions(procedure.id),
            candidates=[c.id for c in self.store.candidates_of(procedure.id)],
            worked_example=example,
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
        self.scope.writable(peek.namespace)
        if title is None and when_to_use is None and steps is None and pitfalls is None:
            raise InvalidInputError("nothing to change: give at least one of title, when_to_use, steps, pitfalls")
        if expected_version is not None and (not isinstance(expected_version, int) or expected_version < 1):
            raise InvalidInputError(
                f"version must be a positive integer (as get_procedure shows); got {expected_version!r}"
            )
        scrub = Scrubber()
        title = None if title is None else scrub.shared("title", title)
        when_to_use = None if when_to_use is None else scrub.shared("when_to_use", when_to_use)
        steps = None if steps is None else scrub.texts("steps", steps)
        pitfalls = None if pitfalls is None else scrub.texts("pitfalls", pitfalls)
        model = self.model.get(0.0)
        key_vector = model.embed([when_to_use])[0] if model and when_to_use else None
        with self.store.transaction():
            if key_vector is not None and not self.model.fits_database(model):
                key_vector = None
            procedure = self.store.get_procedure(peek.id)
            if expected_version is not None and procedure.version != expected_version:
                raise EditConflictError(self._changes_since(procedure, expected_version))
            draft = check_draft(
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
        self.scope.writable(procedure.namespace)
        with self.store.transaction():
            self.store.set_status(procedure.id, status)
            return self.store.get_procedure(procedure.id)

    def _owned(self, procedure_id: object, namespace: str | None) -> Procedure:
        return procedure_in(self.store, procedure_id, self.scope.namespace(namespace))

    def stats(self, namespace: str | None = None) -> NamespaceStats:
        return self.store.stats(self.scope.namespace(namespace))

    def events(self, namespace: str | None = None, last: int = 50) -> list[LoggedEvent]:
        """The most recent entries of the event log (of one namespace, or all), oldest first."""
        if namespace is not None:
            namespace = validate_namespace(namespace)
        if not isinstance(last, int) or not 1 <= last <= MAX_EVENTS_READ:
            raise InvalidInputError(f"--last must be 1 to {MAX_EVENTS_READ}; got {last!r}")
        return self.store.events(namespace, last)

    def uplift(self, namespace: str | None = None) -> list[Uplift]:
        """Per namespace (one, or every one with drawn tasks): outcomes with memory and without."""
        if namespace is not None:
            namespace = validate_namespace(namespace)
        arms = self.store.task_arms(namespace)
        names = [namespace] if namespace is not None else sorted({a.namespace for a in arms})
        return [uplift(name, [a for a in arms if a.namespace == name]) for name in names]

    def freshness(self, procedures: Sequence[Procedure], project_root: Path) -> dict[int, Freshness]:
        """Which steps of each procedure no longer hold in the project at `project_root`."""
        return check_many([(p.id, p.steps) for p in procedures], project_root)

    def writable_namespace(self, namespace: str | None) -> str:
        """The namespace a write goes to; ReadOnlyNamespaceError when this server only reads it."""
        return self.scope.writable(namespace)


def memory_for(
    settings: Settings,
    store: Store,
    embedder: Embedder | BackgroundEmbedder | None,
    *,
    namespace: str | None = None,
) -> Memory:
    """A Memory over `store` as the settings configure one: their strategies, read-only namespaces and
    retrieval tuning, and their namespace unless `namespace` names another."""
    return Memory(
        store,
        embedder,
        namespace=namespace if namespace is not None else settings.namespace,
        strategies=Strategies(settings.build_strategy, settings.retrieve_strategy, settings.update_strategy),
        read_only_namespaces=settings.read_only_namespaces,
        tuning=tuning_for(settings),
        holdout=settings.holdout,
    )


def open_memory(settings: Settings, *, embedder: Embedder | BackgroundEmbedder | None = None) -> Memory:
    """A Memory on the settings' database; the model loads in the background unless one is given."""
    store = open_store(settings.db_path, settings.database_url)
    return memory_for(settings, store, embedder if embedder is not None else BackgroundEmbedder(settings))
