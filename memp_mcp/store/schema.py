"""Numbered, forward-only schema migrations: the runner both stores share.

Each store keeps its own list (store/migrations.py for SQLite, store/postgres_migrations.py for
PostgreSQL; numbered apart, as a schema version of one says nothing of the other's) and its own way
of taking the write lock around the run; what a version means, and how pending migrations are
applied and recorded, is written here once.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from memp_mcp.errors import SchemaTooNewError

logger = logging.getLogger(__name__)

# (version, name, SQL script): applied in order, each with the row recording it, in one transaction.
Migration = tuple[int, str, str]

CURRENT_VERSION_SQL = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"


def latest_version(migrations: Sequence[Migration]) -> int:
    return migrations[-1][0]


def refuse_too_new(subject: str, current: int, migrations: Sequence[Migration]) -> None:
    """Raise SchemaTooNewError when `subject` (the database, as messages name it) is from a newer memp-mcp."""
    latest = latest_version(migrations)
    if current > latest:
        raise SchemaTooNewError(
            f"{subject} has schema version {current}, newer than this memp-mcp understands "
            f"({latest}); upgrade memp-mcp (pip install -U memp-mcp)"
        )


def apply_pending(
    conn: Any,
    migrations: Sequence[Migration],
    *,
    subject: str,
    run_script: Callable[[str], object],
    mark: str,
    time_type: str,
    applied_at: Any,
) -> None:
    """Apply the migrations `conn`'s database lacks, inside the caller's transaction, which must hold
    the database's write lock (another process may have migrated since the caller last looked).

    `conn` is a DB-API-like connection (execute returning rows), `mark` its parameter placeholder;
    `run_script` runs one migration's SQL; `time_type` and `applied_at` are the column type and the
    value recording when.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        f"(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {time_type} NOT NULL)"
    )
    current = int(conn.execute(CURRENT_VERSION_SQL).fetchone()[0])
    refuse_too_new(subject, current, migrations)
    for version, name, sql in migrations:
        if version <= current:
            continue
        logger.info("applying migration %03d_%s to %s", version, name, subject)
        run_script(sql)
        conn.execute(
            f"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({mark}, {mark}, {mark})",
            (version, name, applied_at),
        )


def split_sql(script: str) -> list[str]:
    """Split a SQLite migration script into statements: comment lines dropped first, then split on ';'
    where SQLite says a statement is complete (a trigger's body holds semicolons of its own).

    Migrations contain no semicolons inside string literals, which keeps this simple split correct.
    """
    body = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
    statements, pending = [], ""
    for piece in body.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                statements.append(pending.strip().rstrip(";"))
            pending = ""
    return statements
