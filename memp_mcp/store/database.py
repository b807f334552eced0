"""What every store does with its database, written once: statements in the shared SQL, meta values,
namespaces, and rows read or written table by table (`memp-mcp migrate`).

A backend's connection class subclasses `Database` and gives it the few primitives below (run a
statement in the driver's own spelling, insert a row and learn its id, refuse a write outside a
transaction) and the index upkeep procedures need; the shared SQL marks parameters with `?` and the
backend's `Dialect` spells the rest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

from memp_mcp.store import rows as mapping
from memp_mcp.store.base import Vector
from memp_mcp.store.dialect import Dialect

# Rows read at a time by read_rows.
READ_BATCH = 2_000


class Database(ABC):
    """A migrated database and the shared SQL spoken to it."""

    dialect: Dialect

    # -- a backend's primitives (SQL in the driver's own spelling) -------------------------------

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Sequence[Any]]:
        """A statement's rows, read whole."""

    @abstractmethod
    def _modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write inside this thread's transaction; returns how many rows it changed."""

    @abstractmethod
    def _modify_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run a write once per row of parameters, inside this thread's transaction; returns how many
        rows the runs changed in all."""

    @abstractmethod
    def _insert_row(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT of one row into a table with an `id` inside this thread's transaction; returns the id."""

    @abstractmethod
    def _write(self) -> object:
        """Raise RuntimeError unless this thread is inside a transaction."""

    # -- the index upkeep procedures need ------------------------------------------------------

    @abstractmethod
    def _insert_keys(
        self, procedure_id: int, namespace: str, active: bool, keys: Sequence[tuple[str, Vector | None]]
    ) -> int:
        """Insert the keys a procedure does not have yet, each with its vector when given; returns how
        many were new."""

    @abstractmethod
    def _set_keys_active(self, procedure_id: int, active: bool) -> None:
        """Tell vector search whether a procedure's keys are active (its status changed)."""

    @abstractmethod
    def _index_document(self, procedure_id: int, body: str) -> None:
        """Replace the text keyword search finds a procedure by."""

    # -- statements in the shared SQL ------------------------------------------------------------

    def _select(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Sequence[Any]]:
        return self._rows(self.dialect.native(sql), params)

    def _select_one(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        found = self._select(sql, params)
        return found[0] if found else None

    def _select_count(self, sql: str, params: Sequence[Any] = ()) -> int:
        row = self._select_one(sql, params)
        return int(row[0]) if row and row[0] is not None else 0

    def _change(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._modify(self.dialect.native(sql), params)

    def _change_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return self._modify_many(self.dialect.native(sql), rows) if rows else 0

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        return self._insert_row(self.dialect.native(sql), params)

    # -- meta and namespaces ---------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._select_one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def _meta_values(self, *keys: str) -> dict[str, str]:
        """Several meta values in one query (a recall reads some of them every time); absent keys left out."""
        clause, params = self.dialect.any_of("key", keys)
        return {str(r[0]): str(r[1]) for r in self._select(f"SELECT key, value FROM meta WHERE {clause}", params)}

    def embedding_model(self) -> tuple[str, int] | None:
        """The (model name, dimension) the stored vectors were made with, if any."""
        found = self._meta_values("embedding_model", "embedding_dim")
        name, dim = found.get("embedding_model"), found.get("embedding_dim")
        return None if name is None or dim is None else (name, int(dim))

    def _set_meta(self, key: str, value: str) -> None:
        self._change(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def schema_version(self) -> int:
        return self._select_count("SELECT MAX(version) FROM schema_migrations")

    def ensure_namespace(self, namespace: str) -> None:
        self._change(
            "INSERT INTO namespaces (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (namespace, self.dialect.now()),
        )

    def namespaces(self) -> list[str]:
        return [str(r[0]) for r in self._select("SELECT name FROM namespaces ORDER BY name")]

    def namespace_exists(self, namespace: str) -> bool:
        return self._select_one("SELECT 1 FROM namespaces WHERE name = ?", (namespace,)) is not None

    # -- rows table by table (copying a memory between databases) -------------------------------

    def read_rows(self, source: str, columns: str, order: str, batch: int = READ_BATCH) -> Iterator[list[Any]]:
        """`columns` of every row of `source` (a table, or tables joined), `batch` rows at a time in
        `order`, read by offset: the database must not be written meanwhile."""
        offset = 0
        sql = f"SELECT {columns} FROM {source} ORDER BY {order} LIMIT ? OFFSET ?"
        while found := list(self._select(sql, (batch, offset))):
            yield found
            offset += len(found)

    def count_rows(self, table: str) -> int:
        return self._select_count(f"SELECT COUNT(*) FROM {table}")

    def write_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows` (values of `columns`, as parameters: JSON through `dialect.json`) into
        `table`, inside this thread's transaction."""
        self._change_many(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({mapping.placeholders(len(columns))})", rows
        )
