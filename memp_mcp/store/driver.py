"""Open a SQLite connection that can load sqlite-vec.

The stdlib `sqlite3` is used when this Python was built with extension loading. Many are not
(macOS system Python, several pyenv and distro builds), and on those `sqlean` (the sqlean.py
package, a DB-API drop-in bundling its own SQLite with wheels for Linux, macOS and Windows) is
used instead. pysqlite3-binary is Linux-only and apsw is not DB-API, hence sqlean.

One SQLite library per process, chosen once and kept: this module is the only one that imports the
stdlib `sqlite3`, and every connection to a memory file goes through `connect`. Two copies of SQLite
in one process do not see each other's POSIX locks on the same file: closing a connection of one
drops the locks the other holds, so another process that then closes believes it is the last,
checkpoints and deletes the WAL, and this process goes on writing into an unlinked WAL whose pages
it later checkpoints over newer ones (a corrupt file, committed rows gone).

MEMP_SQLITE_DRIVER=sqlean forces the fallback on a Python whose `sqlite3` could load extensions (the
tests run both paths); `sqlite3` insists on the stdlib module; `auto` (the default) picks as above.
It is read from the environment, not from Settings, because the driver is chosen before (and
without) any settings, and must not change afterwards.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlite_vec

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 15.0
DRIVER_VARIABLE = "MEMP_SQLITE_DRIVER"
DRIVER_CHOICES = ("auto", "sqlean", "sqlite3")

_chosen: ModuleType | None = None
_choosing = threading.Lock()


def stdlib_can_load_extensions() -> bool:
    return hasattr(sqlite3.Connection, "enable_load_extension")


def driver_module() -> ModuleType:
    """The DB-API module every connection of this process uses: chosen on first use, then fixed."""
    global _chosen
    with _choosing:
        if _chosen is None:
            _chosen = _choose(os.environ.get(DRIVER_VARIABLE, "auto").strip().lower() or "auto")
        return _chosen


def _choose(wanted: str) -> ModuleType:
    from memp_mcp.errors import StoreError

    if wanted not in DRIVER_CHOICES:
        raise StoreError(f"{DRIVER_VARIABLE}={wanted!r} is not a SQLite driver; use one of {', '.join(DRIVER_CHOICES)}")
    if wanted == "sqlite3" or (wanted == "auto" and stdlib_can_load_extensions()):
        if not stdlib_can_load_extensions():
            raise StoreError(
                f"{DRIVER_VARIABLE}=sqlite3, but this Python's sqlite3 cannot load extensions (sqlite-vec); "
                f"unset {DRIVER_VARIABLE} to use sqlean.py"
            )
        return sqlite3
    import sqlean

    return sqlean  # type: ignore[no-any-return]


def uses_fallback() -> bool:
    """Whether this process opens SQLite through sqlean.py rather than the stdlib module."""
    return driver_module() is not sqlite3


def complete_statement(sql: str) -> bool:
    """SQLite's own test of whether `sql` ends in a complete statement."""
    return bool(driver_module().complete_statement(sql))


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
    return (driver_module().Error,)
