"""Numbered, forward-only schema migrations: the runner both stores share.

Each store keeps its own list (store/migrations.py for SQLite, store/postgres_migrations.py for
PostgreSQL; numbered apart, as a schema version of one says nothing of the other's), and its own way
of holding the write lock around the run and of recognising a database that is not memp-mcp's (a
SQLite file must be left byte for byte as it was, a PostgreSQL server may hold other data); what a
version means, and how pending migrations are applied and recorded, is written here once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from memp_mcp.errors import SchemaTooNewError
from memp_mcp.store.dialect import Dialect

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


def apply_pending(conn: Any, migrations: Sequence[Migration], dialect: Dialect, *, subject: str) -> None:
    """Apply the migrations `conn`'s database lacks, inside the caller's transaction, which must hold
    the database's write lock (another process may have migrated since the caller last looked).

    `conn` is the driver's connection (execute returning rows), spoken to in `dialect`.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        f"(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {dialect.time_type} NOT NULL)"
    )
    current = int(conn.execute(CURRENT_VERSION_SQL).fetchone()[0])
    refuse_too_new(subject, current, migrations)
    applied_at = dialect.now()
    for version, name, sql in migrations:
        if version <= current:
            continue
        logger.info("applying migration %03d_%s to %s", version, name, subject)
        dialect.run_script(conn, sql)
        conn.execute(
            dialect.native("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
            (version, name, applied_at),
        )
