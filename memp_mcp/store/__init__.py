"""Persistence behind one interface (`Store`): a SQLite file by default, or a shared PostgreSQL
database with pgvector when a database URL is configured."""

from __future__ import annotations

from pathlib import Path

from memp_mcp.store.base import Store, Vector
from memp_mcp.store.sqlite import SQLiteStore

__all__ = ["SQLiteStore", "Store", "Vector", "open_store"]


def open_store(db_path: Path, database_url: str | None = None) -> Store:
    """The store the settings name: PostgreSQL at `database_url` when given, else the SQLite file.

    The PostgreSQL store is imported only when used: its driver is an optional dependency
    (`pip install 'memp-mcp[postgres]'`). Raises StoreError when the database cannot be opened.
    """
    if database_url:
        try:
            from memp_mcp.store.postgres import PostgresStore
        except ImportError as exc:
            from memp_mcp.errors import StoreError

            raise StoreError(
                f"a PostgreSQL database is configured but its driver is not installed ({exc}); "
                "run pip install 'memp-mcp[postgres]'"
            ) from None
        return PostgresStore(database_url)
    return SQLiteStore(db_path)
