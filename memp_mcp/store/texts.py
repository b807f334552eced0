"""Every text the store keeps that an agent or a user sent, read row by row and rewritten in place:
what `memp-mcp scan` searches for secrets and redacts, history included. One SQL for every backend."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from memp_mcp.store.base import StoredRow
from memp_mcp.store.database import Database
from memp_mcp.store.rows import from_json

_IN_PROCEDURE_NAMESPACE = "(SELECT p.namespace FROM procedures p WHERE p.id = procedure_id)"


@dataclass(frozen=True)
class _TextTable:
    name: str
    keys: tuple[str, ...]
    texts: tuple[str, ...]
    json: tuple[str, ...]  # JSON columns (lists of strings, or of steps)
    namespace: str  # an expression of the row's namespace


TEXT_TABLES = (
    _TextTable("trajectories", ("id",), ("task",), ("steps_json",), "namespace"),
    _TextTable("procedures", ("id",), ("title", "when_to_use"), ("steps_json", "pitfalls_json"), "namespace"),
    _TextTable(
        "procedure_versions",
        ("procedure_id", "version"),
        ("title", "when_to_use"),
        ("steps_json", "pitfalls_json"),
        _IN_PROCEDURE_NAMESPACE,
    ),
    _TextTable("procedure_keys", ("id", "procedure_id"), ("text",), (), _IN_PROCEDURE_NAMESPACE),
    _TextTable("recall_events", ("id",), ("task",), (), "namespace"),
)


class StoredTexts(Database):
    def stored_rows(self, namespace: str | None = None) -> Iterator[StoredRow]:
        """Every row holding sent text, table by table, in `namespace` or in all of them."""
        for table in TEXT_TABLES:
            columns = [*table.keys, *table.texts, *(self.dialect.json_as_text(c) for c in table.json)]
            where = "" if namespace is None else f" WHERE {table.namespace} = ?"
            sql = f"SELECT {', '.join(columns)} FROM {table.name}{where} ORDER BY {', '.join(table.keys)}"
            for row in self._select(sql, () if namespace is None else (namespace,)):
                values: dict[str, Any] = dict(zip(table.texts, row[len(table.keys) :], strict=False))
                for column, raw in zip(table.json, row[len(table.keys) + len(table.texts) :], strict=True):
                    values[column] = from_json(raw)
                yield StoredRow(table.name, tuple(row[: len(table.keys)]), values)

    def rewrite_row(self, row: StoredRow, changes: dict[str, Any]) -> None:
        """Write new values of some of a row's texts, keeping keyword search in step."""
        self._write()
        table = next(t for t in TEXT_TABLES if t.name == row.table)
        if row.table == "procedure_keys" and "text" in changes:
            key_id, procedure_id = row.key
            taken = self._select(
                "SELECT 1 FROM procedure_keys WHERE procedure_id = ? AND text = ? AND id <> ?",
                (procedure_id, changes["text"], key_id),
            )
            if taken:  # two keys that differed only in their secrets: keep them apart
                changes = {"text": f"{changes['text']} [key {key_id}]"}
        assignments = ", ".join(f"{column} = ?" for column in changes)
        params = [self.dialect.json(v) if column in table.json else v for column, v in changes.items()]
        condition = " AND ".join(f"{column} = ?" for column in table.keys)
        self._change(f"UPDATE {row.table} SET {assignments} WHERE {condition}", [*params, *row.key])
        if row.table in ("procedures", "procedure_keys"):
            procedure_id = row.key[0] if row.table == "procedures" else row.key[1]
            self._refresh_search_text(int(procedure_id))

    @abstractmethod
    def _refresh_search_text(self, procedure_id: int) -> None:
        """Rewrite a procedure's keyword-search text from its title, when-to-use and keys (procedures.py)."""
