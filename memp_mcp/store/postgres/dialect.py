"""PostgreSQL's spelling of the shared SQL: `%s` marks, jsonb, timestamptz, lists as arrays, and text
cleaned of what PostgreSQL cannot store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from memp_mcp.store.dialect import Dialect


def clean(value: Any) -> Any:
    """A parameter PostgreSQL accepts: text cannot hold NUL (replaced by U+FFFD, as a terminal shows
    it), nor unpaired surrogates (replaced the same way); other values pass through."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
        return value
    return value


def _deep_clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list | tuple):
        return [_deep_clean(v) for v in value]
    if isinstance(value, dict):
        return {clean(k): _deep_clean(v) for k, v in value.items()}
    return value


class PostgresDialect(Dialect):
    time_type = "TIMESTAMPTZ"
    # PostgreSQL plans joins itself; the written order needs no keeping.
    ordered_join = "JOIN"
    like_ignoring_case = "ILIKE"

    def native(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def now(self) -> datetime:
        return datetime.now(UTC)

    def json(self, value: Any) -> Jsonb:
        """A jsonb parameter, its strings cleaned like text parameters."""
        return Jsonb(_deep_clean(value))

    def text(self, value: str) -> str:
        return str(clean(value))

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        # One array parameter whatever the count: the statement is prepared once.
        return f"{column} = ANY(?)", [list(values)]

    def ids_of(self, column: str, source: str) -> str:
        return f"ARRAY(SELECT {column} FROM {source})"

    def read_ids(self, value: Any) -> list[int]:
        return [int(i) for i in value]

    def json_as_text(self, column: str) -> str:
        return f"{column}::text"

    def contains(self, columns: Sequence[str], text: str) -> tuple[str, list[Any]]:
        # strpos: a plain substring, never pattern or search syntax.
        clause = " OR ".join(f"strpos({column}, ?) > 0" for column in columns)
        return f"({clause})", [text] * len(columns)

    def run_script(self, conn: Any, sql: str) -> None:
        # As bytes: a script is sent whole, never read for parameters.
        conn.execute(sql.encode())


DIALECT = PostgresDialect()
