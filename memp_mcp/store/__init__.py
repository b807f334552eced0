"""Persistence behind one interface (`Store`): a SQLite file by default, or a shared PostgreSQL
database with pgvector when a database URL is configured.

What lives where:
- base.py: the `Store` protocol the engine depends on, and the checks both stores share;
- database.py: `Database`, what every store does with its database (statements, meta, namespaces,
  rows table by table) and what the shared SQL needs of a backend; dialect.py: `Dialect`, what the
  two databases spell apart (placeholders, JSON, times, lists of ids, a few expressions);
- procedures.py, history.py, sql_store.py: the SQL of procedures, trajectories, recall events and
  statistics, written once for both backends; rows.py: rows to models;
- texts.py: every stored text a user or an agent sent, read and rewritten row by row (`scan`);
- schema.py: the migration runner; migrations.py and postgres_migrations.py: each backend's list;
- sqlite/: the SQLite store (connection, dialect, sqlite-vec vectors with the in-memory codes of
  binary_codes.py and bit_index.py, FTS5 full-text; health.py, backups.py and recovery.py: a damaged
  file said, copied and put right); driver.py opens SQLite with sqlite-vec loaded, through the one
  SQLite library of the process;
- postgres/: the PostgreSQL store (pooled connection and advisory locks, dialect, pgvector vectors,
  tsvector full-text), imported only when a database URL is configured (its driver is optional);
- transfer.py: a SQLite memory copied into PostgreSQL (`memp-mcp migrate`), through the stores'
  public methods.

The store is domain code: it imports nothing from memp_mcp.engine, server, hooks, cli or bench, nor
from the mcp SDK.
"""

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
