"""Move a SQLite memory into PostgreSQL, row for row.

Everything is copied with its id (agents and recall events refer to procedures by id): namespaces,
trajectories, procedures with their counts, status, versions and times, sources, search keys with
their exact vectors (no re-embedding), version history and recall events, and the embedding model
the vectors came from. The target must be empty; the copy is one transaction, so a failure leaves
it empty again. The SQLite file is read, never written (beyond bringing its schema up to date
when it is opened, as any memp-mcp command does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memp_mcp.errors import StoreError
from memp_mcp.store import rows
from memp_mcp.store.postgres import PostgresStore
from memp_mcp.store.postgres.connection import clean, jsonb
from memp_mcp.store.sqlite import SQLiteStore

BATCH = 2_000
# (table, columns read from SQLite, columns written to PostgreSQL); JSON columns are named *_json.
_TABLES: list[tuple[str, str, str]] = [
    ("namespaces", "name, created_at", "name, created_at"),
    ("trajectories", rows.TRAJECTORY_COLUMNS, rows.TRAJECTORY_COLUMNS),
    ("procedures", rows.PROCEDURE_COLUMNS, rows.PROCEDURE_COLUMNS),
    ("procedure_sources", "procedure_id, trajectory_id", "procedure_id, trajectory_id"),
    ("procedure_versions", f"procedure_id, {rows.VERSION_COLUMNS}", f"procedure_id, {rows.VERSION_COLUMNS}"),
    ("recall_events", rows.RECALL_EVENT_COLUMNS, rows.RECALL_EVENT_COLUMNS),
]
_BOOLEAN_COLUMNS = frozenset({"reported", "success"})
# Tables whose ids PostgreSQL generates: their sequences continue after the copied ids.
_IDENTITY_TABLES = ("trajectories", "procedures", "procedure_keys")

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
        conn = target._write()
        if bound is not None:
            target._set_meta("embedding_model", bound[0])
            target._set_meta("embedding_dim", str(bound[1]))
            target._prepare_vectors(bound[1])
        for table, read, write in _TABLES:
            names = [c.strip() for c in write.split(",")]
            statement = f"INSERT INTO {table} ({write}) VALUES ({rows.placeholders(len(names), '%s')})"
            count = 0
            for batch in _batches(source, f"SELECT {read} FROM {table}"):
                with conn.cursor() as cursor:
                    cursor.executemany(statement, [_converted(names, row) for row in batch])
                count += len(batch)
                if progress:
                    progress(table, count)
            copied[table] = count
        copied["procedure_keys"] = _copy_keys(source, target, bound, progress)
        conn.execute(
            "UPDATE procedures p SET search_text = t.body FROM unnest(%s::bigint[], %s::text[]) AS t(id, body) "
            "WHERE p.id = t.id",
            _search_texts(source),
        )
        for table in _IDENTITY_TABLES:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )
        if bound is not None:
            target._index_vectors()
        for table, count in copied.items():
            expected = _count(source, table)
            if count != expected:
                raise StoreError(f"copied {count} rows of {table}, the source has {expected}; nothing was written")
        # The planner's statistics, in the same transaction (so they commit with the copy or not at
        # all): until autovacuum got to a copy, the planner knew nothing of its rows and planned the
        # vector and keyword searches as scans of every row (recalls of ~320 ms at 100,000
        # procedures against ~27 ms once analysed).
        conn.execute(f"ANALYZE {', '.join(sorted({table for table, _, _ in _TABLES} | {'procedure_keys'}))}")
    return TransferReport(copied)


def _copy_keys(
    source: SQLiteStore, target: PostgresStore, bound: tuple[str, int] | None, progress: Progress | None
) -> int:
    conn = target._write()
    count = 0
    query = (
        "SELECT k.id, k.procedure_id, p.namespace, p.status = 'active', k.text, k.vector "
        "FROM procedure_keys k JOIN procedures p ON p.id = k.procedure_id"
    )
    for batch in _batches(source, query, "k.id"):
        values = [
            (
                key_id,
                procedure_id,
                namespace,
                bool(active),
                clean(text),
                np.frombuffer(vector, dtype=np.float32) if vector is not None and bound is not None else None,
            )
            for key_id, procedure_id, namespace, active, text, vector in batch
        ]
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO procedure_keys (id, procedure_id, namespace, active, text, embedding) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                values,
            )
        count += len(batch)
        if progress:
            progress("procedure_keys", count)
    return count


def _search_texts(source: SQLiteStore) -> tuple[list[int], list[str]]:
    found = source._execute("SELECT rowid, body FROM procedure_fts").fetchall()
    return [int(r[0]) for r in found], [clean(str(r[1])) for r in found]


def _batches(source: SQLiteStore, query: str, order: str = "rowid") -> Iterator[list[Sequence[Any]]]:
    """The query's rows in batches, in `order`, read by offset (the source is not written meanwhile)."""
    offset = 0
    while batch := source._execute(f"{query} ORDER BY {order} LIMIT ? OFFSET ?", (BATCH, offset)).fetchall():
        yield batch
        offset += len(batch)


def _converted(names: list[str], row: Sequence[Any]) -> list[Any]:
    values: list[Any] = []
    for name, value in zip(names, row, strict=True):
        if name.endswith("_json"):
            values.append(jsonb(rows.from_json(value)))
        elif name in _BOOLEAN_COLUMNS:
            values.append(None if value is None else bool(value))
        else:
            values.append(clean(value))
    return values


def _count(source: SQLiteStore, table: str) -> int:
    return int(source._execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
