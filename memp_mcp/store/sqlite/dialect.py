"""SQLite's spelling of the shared SQL: `?` marks, JSON and times as text, lists through IN."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from memp_mcp.store import driver, rows
from memp_mcp.store.dialect import Dialect


class SQLiteDialect(Dialect):
    time_type = "TEXT"
    # CROSS JOIN: SQLite's planner keeps the written order for it (and only for it).
    ordered_join = "CROSS JOIN"
    # LIKE ignores the case of ASCII letters in SQLite.
    like_ignoring_case = "LIKE"

    def native(self, sql: str) -> str:
        return sql

    def now(self) -> str:
        return datetime.now(UTC).isoformat()

    def json(self, value: Any) -> str:
        return rows.to_json(value)

    def packed_json(self, value: Any) -> str | bytes:
        return rows.to_packed_json(value)

    def text(self, value: str) -> str:
        return value

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN ({rows.placeholders(len(values))})", list(values)

    def ids_of(self, column: str, source: str) -> str:
        return f"(SELECT group_concat({column}) FROM {source})"

    def read_ids(self, value: Any) -> list[int]:
        # Text, not JSON: splitting it costs a fraction of parsing JSON, on every procedure read.
        return [int(i) for i in value.split(",")] if value else []

    def json_as_text(self, column: str) -> str:
        return column

    def contains(self, columns: Sequence[str], text: str) -> tuple[str, list[Any]]:
        # LIKE with its wildcards escaped, never FTS syntax.
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clause = " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for column in columns)
        return f"({clause})", [f"%{escaped}%"] * len(columns)

    def run_script(self, conn: Any, sql: str) -> None:
        for statement in split_sql(sql):
            conn.execute(statement)


def split_sql(script: str) -> list[str]:
    """Split a SQLite migration script into statements: comment lines dropped first, then split on ';'
    where SQLite says a statement is complete (a trigger's body holds semicolons of its own).

    Migrations contain no semicolons inside string literals, which keeps this simple split correct.
    """
    body = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
    statements, pending = [], ""
    for piece in body.split(";"):
        pending += piece + ";"
        if driver.complete_statement(pending):
            if pending.strip(" \n\t;"):
                statements.append(pending.strip().rstrip(";"))
            pending = ""
    return statements


DIALECT = SQLiteDialect()
