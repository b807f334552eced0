"""The storage interface the engine depends on, whichever database is behind it.

Two stores implement it: `SQLiteStore` (one file, the embedded default) and `PostgresStore` (a
shared PostgreSQL database with pgvector, for several servers). Both keep these promises:

- every write runs inside `transaction()`, which is re-entrant within a thread and commits all of
  a logical write or none of it; a write outside one raises RuntimeError (a bug, not bad input);
- writes are serialised, one transaction at a time across every process sharing the database, so
  a check-then-write inside a transaction (is this task already known?) sees no other writer;
- reads outside a transaction see what other transactions (any process) have committed;
- ids are positive integers given by the database, and never reused for another row.

Scoring, blending, caching of statistics and how many candidates to ask for are the engine's
(memp_mcp.engine.retrieve); a store answers the questions below exactly. What a store reads beyond the k
asked for (keys per procedure wanted, a keyword shortlist) is a detail of its index, there only to
return the k best.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from memp_mcp.errors import EmbeddingModelMismatchError, InvalidInputError
from memp_mcp.models import (
    LoggedEvent,
    NamespaceStats,
    Outcome,
    Procedure,
    ProcedureStatus,
    ProcedureVersion,
    RecallEvent,
    SkillDocument,
    Step,
    TaskArm,
    Trajectory,
)

Vector = Sequence[float]
ProgressCallback = Callable[[int, int], None]

__all__ = ["ProgressCallback", "Store", "Vector", "check_dimension", "embed_keys", "model_mismatch"]


def check_dimension(vector: Vector, dim: int, what: str = "vector") -> None:
    """Raise InvalidInputError unless `vector` has the database's dimension."""
    if len(vector) != dim:
        raise InvalidInputError(f"{what} has {len(vector)} dimensions, the database uses {dim}")


def model_mismatch(location: str, bound: tuple[str, int], name: str, dim: int) -> EmbeddingModelMismatchError:
    """The error for a database whose vectors come from model `bound`, not from `name`."""
    return EmbeddingModelMismatchError(
        f"{location} holds vectors from {bound[0]} ({bound[1]} dimensions), not from the "
        f"configured {name} ({dim}); run `memp-mcp reindex` to re-embed with {name}, "
        f"or set MEMP_EMBEDDING_MODEL={bound[0]}"
    )


def embed_keys(
    keys: Sequence[Sequence[Any]],
    embed: Callable[[list[str]], Sequence[Vector]],
    progress: ProgressCallback | None,
    batch_size: int,
) -> list[tuple[int, Vector]]:
    """(key id, vector) for each (key id, text) row, embedded `batch_size` texts at a time (a reindex)."""
    embedded: list[tuple[int, Vector]] = []
    for start in range(0, len(keys), batch_size):
        batch = keys[start : start + batch_size]
        vectors = embed([str(text) for _, text in batch])
        embedded += [(int(key_id), v) for (key_id, _), v in zip(batch, vectors, strict=True)]
        if progress:
            progress(min(start + batch_size, len(keys)), len(keys))
    return embedded


@dataclass(frozen=True)
class StoredRow:
    """One row's texts: plain columns as strings, JSON columns decoded."""

    table: str
    key: tuple[Any, ...]
    values: dict[str, Any]


class Store(Protocol):
    """Procedures, trajectories and recall events, with vector and keyword search over procedures."""

    @property
    def location(self) -> str:
        """Where the data lives, for messages (a file path, or a database URL without its password)."""
        ...

    @property
    def name(self) -> str:
        """The database's name without saying where it is (the file's name, or the PostgreSQL database's)."""
        ...

    def close(self) -> None: ...

    def engine_description(self) -> str:
        """The database engine and its vector extension, with versions (for `doctor`)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """One logical write: all of it is committed, or none of it. Re-entrant within a thread."""
        ...

    # -- schema and embedding model ----------------------------------------------------------

    def schema_version(self) -> int: ...

    def embedding_model(self) -> tuple[str, int] | None:
        """The (model name, dimension) the stored vectors were made with, if any."""
        ...

    def bind_embedding_model(self, name: str, dim: int) -> None:
        """Record the model, or raise EmbeddingModelMismatchError when the vectors come from another."""
        ...

    def reindex(
        self,
        name: str,
        dim: int,
        embed: Callable[[list[str]], Sequence[Vector]],
        progress: ProgressCallback | None = None,
        batch_size: int = 64,
    ) -> int:
        """Replace every vector with one from model `name` (embedding outside any transaction)."""
        ...

    def check_embedding_model(self, name: str, dim: int) -> None:
        """Raise EmbeddingModelMismatchError unless the vectors come from model `name` (or there are none)."""
        ...

    def has_keys_without_vectors(self) -> bool:
        """Whether any key waits for a vector (cheap enough to ask on every recall)."""
        ...

    def keys_without_vectors(self, limit: int = 10_000) -> list[tuple[int, str]]: ...

    def store_key_vectors(self, vectors: list[tuple[int, Vector]]) -> None: ...

    # -- namespaces and trajectories ---------------------------------------------------------

    def namespaces(self) -> list[str]: ...

    def add_trajectory(
        self,
        namespace: str,
        task: str,
        steps: Sequence[Step],
        outcome: Outcome,
        agent: str | None = None,
        score: float | None = None,
    ) -> int: ...

    def get_trajectory(self, trajectory_id: int) -> Trajectory: ...

    def count_trajectories(self, namespace: str | None = None) -> int: ...

    def trajectory_tasks(self, trajectory_ids: Sequence[int]) -> dict[int, str]: ...

    # -- procedures ----------------------------------------------------------------------------

    def add_procedure(
        self,
        namespace: str,
        title: str,
        when_to_use: str,
        steps: Sequence[str],
        pitfalls: Sequence[str],
        source: str,
        author: str | None,
        source_trajectory_ids: Sequence[int],
        exemplar_trajectory_id: int | None,
        keys: Sequence[tuple[str, Vector | None]],
        *,
        candidate_of: int | None = None,
        principal: str | None = None,
    ) -> int:
        """Insert a procedure with its sources and keys; `candidate_of` names the procedure whose steps
        it proposes to replace. Returns its id."""
        ...

    def add_keys(self, procedure_id: int, keys: Sequence[tuple[str, Vector | None]]) -> int: ...

    def keys(self, procedure_id: int) -> list[str]: ...

    def add_sources(self, procedure_id: int, trajectory_ids: Sequence[int]) -> None: ...

    def get_procedure(self, procedure_id: int) -> Procedure: ...

    def get_procedures(self, procedure_ids: Sequence[int]) -> list[Procedure]: ...

    def save_skill(self, procedure_id: int, skill: SkillDocument) -> None: ...

    def skill_of(self, procedure_id: int) -> SkillDocument | None: ...

    def procedures_with_skill(self, namespace: str, name: str, digest: str) -> list[int]: ...

    def candidates_of(self, procedure_id: int) -> list[Procedure]:
        """The candidates proposed to replace a procedure's steps, oldest first."""
        ...

    def outcome_counts(self, procedure_ids: Sequence[int]) -> dict[int, tuple[int, int]]: ...

    def unverified(self, procedure_ids: Sequence[int]) -> set[int]:
        """The procedures among these that nothing has verified: every source run's outcome is unknown and
        no success was reported for the current steps."""
        ...

    def list_procedures(
        self,
        namespace: str | None = None,
        status: ProcedureStatus | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Procedure]: ...

    def count_procedures(self, namespace: str | None = None, status: ProcedureStatus | None = None) -> int: ...

    def revise_procedure(
        self,
        procedure_id: int,
        *,
        reason: str,
        changed_by: str | None,
        title: str | None = None,
        when_to_use: str | None = None,
        steps: Sequence[str] | None = None,
        pitfalls: Sequence[str] | None = None,
        source: str | None = None,
        fresh_record: bool = False,
    ) -> Procedure: ...

    def versions(self, procedure_id: int) -> list[ProcedureVersion]: ...

    def set_status(self, procedure_id: int, status: ProcedureStatus) -> None: ...

    def bump_stats(
        self, procedure_id: int, *, retrieved: int = 0, succeeded: int = 0, failed: int = 0, this_version: bool = True
    ) -> None:
        """Add to a procedure's counts; with `this_version` False, to its totals only (its current version's
        record, which trust is judged on, is left as it is)."""
        ...

    def credit_past_version(self, procedure_id: int, version: int, *, succeeded: int = 0, failed: int = 0) -> None:
        """Count an outcome of a version the procedure has since left: in its totals and that version's record."""
        ...

    # -- every sent text, for `scan` (texts.py) ----------------------------------------------------

    def stored_rows(self, namespace: str | None = None) -> Iterator[StoredRow]:
        """Every row holding text an agent or a user sent, history included."""
        ...

    def rewrite_row(self, row: StoredRow, changes: dict[str, Any]) -> None:
        """Write new values of some of a row's texts (inside a transaction), keeping search in step."""
        ...

    def purge_freed(self) -> None:
        """Rewrite the storage so that no freed space keeps overwritten text (outside a transaction)."""
        ...

    # -- search --------------------------------------------------------------------------------

    def vector_search(self, namespace: str, vector: Vector, k: int) -> list[tuple[int, float]]:
        """Active procedures nearest to `vector` by their nearest key: (id, cosine), best first."""
        ...

    def catch_up_vector_index(self) -> None:
        """Bring what speeds up vector search up to date with what is committed, before a write
        transaction that will search (a store whose index lives in the database does nothing)."""
        ...

    def keys_with_vectors(self, procedure_ids: Sequence[int]) -> dict[int, list[tuple[str, bytes]]]:
        """Each procedure's embedded keys as (text, float32 vector bytes)."""
        ...

    def procedures_with_key(self, namespace: str, text: str, *, include_deprecated: bool = False) -> list[int]: ...

    def procedures_with_step_words(self, namespace: str, word: str, others: Sequence[str]) -> list[int]:
        """Active procedures whose steps hold `word` and, when `others` are given, at least one of them:
        each a plain word (letters and digits), matched anywhere in a step without regard to case."""
        ...

    def procedure_texts(self, procedure_ids: Sequence[int]) -> dict[int, str]:
        """The text each procedure is indexed by for keyword search."""
        ...

    def keyword_search(self, namespace: str, terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        """Active procedures whose indexed text holds any of `terms` (plain words, never query
        syntax): (id, score), best first, the score larger for a better match."""
        ...

    def document_frequencies(self, terms: Sequence[str], at_most: int | None = None) -> dict[str, int]:
        """How many procedures' indexed text holds each term (all namespaces), counted up to `at_most`
        when given (a caller that only needs to know whether a term is rarer than some bound): then
        `at_most` means at least that many, which a store may also read off its own statistics (the
        PostgreSQL store does, for words its planner's statistics show well past the bound)."""
        ...

    def indexed_count(self) -> int:
        """Procedures in the keyword index (all namespaces)."""
        ...

    def random_procedures(self, namespace: str, k: int, rng: random.Random) -> list[int]: ...

    # -- recall events, statistics, checks -----------------------------------------------------

    def add_recall_event(
        self,
        event_id: str,
        namespace: str,
        task: str,
        procedure_ids: Sequence[int],
        strategy: str,
        procedure_versions: Sequence[int] | None = None,
    ) -> None: ...

    def get_recall_event(self, event_id: str) -> RecallEvent: ...

    def mark_recall_reported(self, event_id: str, success: bool) -> bool: ...

    def stats(self, namespace: str) -> NamespaceStats: ...

    # -- the event log and the task arms (store/events.py) --------------------------------------

    def add_event(
        self,
        namespace: str,
        kind: str,
        task: str,
        summary: str,
        detail: Mapping[str, Any],
        *,
        recall_id: str | None = None,
        arm: str | None = None,
    ) -> int: ...

    def events(self, namespace: str | None, last: int) -> list[LoggedEvent]: ...

    def open_task_arm(self, namespace: str, task_key: str) -> tuple[int, str] | None: ...

    def add_task_arm(self, namespace: str, task_key: str, arm: str, recall_id: str | None) -> int: ...

    def set_task_arm_recall(self, arm_id: int, recall_id: str) -> None: ...

    def task_arm_for(self, namespace: str, task_key: str, recall_id: str | None) -> tuple[int, str] | None: ...

    def judge_task_arm(self, arm_id: int, success: bool | None, tool_calls: int, kind: str) -> None: ...

    def task_arms(self, namespace: str | None) -> list[TaskArm]: ...

    def integrity_problems(self) -> list[str]: ...
