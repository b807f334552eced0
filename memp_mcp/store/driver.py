"""Open a SQLite connection that can load sqlite-vec.

The stdlib `sqlite3` is used when this Python was built with extension loading. Many are not
(macOS system Python, several pyenv and distro builds), and on those `sqlean` (the sqlean.py
package, a DB-API drop-in bundling its own SQLite with wheels for Linux, macOS and Windows) is
used instead. pysqlite3-binary is Linux-only and apsw is not DB-API, hence sqlean.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlite_vec

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 15.0


def stdlib_can_load_extensions() -> bool:
    return hasattr(sqlite3.Connection, "enable_load_extension")


def driver_module() -> ModuleType:
    """The DB-API module used to open databases."""
    if stdlib_can_load_extensions():
        return sqlite3
    import sqlean

    return sqlean  # type: ignore[no-any-return]


def driver_name() -> str:
    module = driver_module()
    return f"{module.__name__} (SQLite {module.sqlite_version})"


def connect(path: Path | str, *, read_only: bool = False, immutable: bool = False) -> Any:
    """A connection with sqlite-vec loaded, in autocommit mode (transactions are explicit).

    `read_only`: open for reading only. SQLite still follows other processes' writes through the
    WAL and its index, which must exist beside the file or be creatable there.
    `immutable`: also promise SQLite that nobody changes the file, so it reads without the WAL
    index and lock files; only correct while no one writes it (see SQLiteConnection._open).
    Raises the driver's own errors; the store turns them into StoreError with context.
    """
    module = driver_module()
    uri = read_only or immutable
    target = str(path)
    if uri:
        target = f"{Path(path).resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a write transaction takes the
    # write lock up front and waits (busy timeout) instead of failing half-way through.
    # check_same_thread=False: the store serialises access with its own lock (see SQLiteStore).
    conn = module.connect(target, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False, uri=uri)
    try:
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
    except Exception:
        conn.close()
        raise
    return conn


def database_errors() -> tuple[type[BaseException], ...]:
    """The exception classes a connection from `connect` may raise."""
    module = driver_module()
    return (module.Error, sqlite3.Error)
