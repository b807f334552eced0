"""Move a SQLite memory into PostgreSQL, row for row.

Everything is copied with its id (agents and recall events refer to procedures by id): namespaces,
trajectories, procedures with their counts, status, versions and times, sources, search keys with
their exact vectors (no re-embedding), version history, recall events, the event log and the tasks'
holdout arms, and the embedding model the vectors came from. The target must be empty; the copy is
one transaction, so a failure leaves it empty again. The SQLite file is read, never written (beyond
bringing its schema up to date when it is opened, as any memp-mcp command does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memp_mcp.errors import StoreError
from memp_mcp.store import rows
from memp_mcp.store.events import EVENT_COLUMNS, TASK_ARM_COLUMNS
from memp_mcp.store.postgres import PostgresStore
from memp_mcp.store.sqlite import SQLiteStore

# (table, columns read from SQLite, columns written to PostgreSQL); JSON columns are named *_json.
_TABLES: list[tuple[str, str, str]] = [
    ("namespaces", "name, created_at", "name, created_at"),
    ("trajectories", rows.TRAJECTORY_COLUMNS, rows.TRAJECTORY_COLUMNS),
    ("procedures", rows.PROCEDURE_COLUMNS, rows.PROCEDURE_COLUMNS),
    ("procedure_sources", "procedure_id, trajectory_id", "procedure_id, trajectory_id"),
    ("procedure_versions", f"procedure_id, {rows.VERSION_COLUMNS}", f"procedure_id, {rows.VERSION_COLUMNS}"),
    ("recall_events", rows.RECALL_EVENT_COLUMNS, rows.RECALL_EVENT_COLUMNS),
    ("skill_documents", rows.SKILL_DOCUMENT_COLUMNS, rows.SKILL_DOCUMENT_COLUMNS),
    ("events", EVENT_COLUMNS, EVENT_COLUMNS),
    ("task_arms", TASK_ARM_COLUMNS, TASK_ARM_COLUMNS),
]
_BOOLEAN_COLUMNS = frozenset({"reported", "success"})
# PostgreSQL's keys carry their procedure's namespace and whether it is active (see postgres_migrations).
_KEY_COLUMNS = ("id", "procedure_id", "namespace", "active", "text", "embedding")

Progress = Callable[[str, int], None]


@dataclass
class TransferReport:
    """Rows copied per table (equal to the source's, or the copy is refused)."""

    copied: dict[str, int]


def copy_sqlite_to_postgres(
    source: SQLiteStore, target: PostgresStore, progress: Progress | None = None
) -> TransferReport:
    """Copy every row of `source` into the empty `target`, in one transaction.

    Raises StoreError when the target already holds a memory, or when the counts after the copy
    differ from the source's (the transaction is then rolled back).
    """
    held = target.count_trajectories() + target.count_procedures()
    if held:
        raise StoreError(f"{target.location} already holds a memory ({held} rows); migrate into an empty database")
    copied: dict[str, int] = {}
    bound = source.embedding_model()
    with target.transaction():
        target.prepare_copy(bound)
        for table, read, write in _TABLES:
            names = [c.strip() for c in write.split(",")]
            count = 0
            for batch in source.read_rows(table, read, "rowid"):
                target.write_rows(table, names, [_converted(target, names, row) for row in batch])
                count += len(batch)
                if progress:
                    progress(table, count)
            copied[table] = count
        copied["procedure_keys"] = _copy_keys(source, target, bound, progress)
        target.set_search_texts(
            [
                (int(r[0]), str(r[1]))
                for batch in source.read_rows("procedure_fts", "rowid, body", "rowid")
                for r in batch
            ]
        )
        for table, count in copied.items():
            expected = source.count_rows(table)
            if count != expected:
                raise StoreError(f"copied {count} rows of {table}, the source has {expected}; nothing was written")
        target.finish_copy(bound, list(copied))
    return TransferReport(copied)


def _copy_keys(
    source: SQLiteStore, target: PostgresStore, bound: tuple[str, int] | None, progress: Progress | None
) -> int:
    count = 0
    keys = "procedure_keys k JOIN procedures p ON p.id = k.procedure_id"
    for batch in source.read_rows(
        keys, "k.id, k.procedure_id, p.namespace, p.status = 'active', k.text, k.vector", "k.id"
    ):
        values = [
            (
                key_id,
                procedure_id,
                namespace,
                bool(active),
                text,
                np.frombuffer(vector, dtype=np.float32) if vector is not None and bound is not None else None,
            )
            for key_id, procedure_id, namespace, active, text, vector in batch
        ]
        target.write_rows("procedure_keys", _KEY_COLUMNS, values)
        count += len(batch)
        if progress:
            progress("procedure_keys", count)
    return count


def _converted(target: PostgresStore, names: list[str], row: Sequence[Any]) -> list[Any]:
    values: list[Any] = []
    for name, value in zip(names, row, strict=True):
        if name.endswith("_json"):
            values.append(target.dialect.json(rows.from_json(value)))
        elif name in _BOOLEAN_COLUMNS:
            values.append(None if value is None else bool(value))
        else:
            values.append(value)
    return values
