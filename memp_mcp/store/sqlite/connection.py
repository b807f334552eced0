"""The SQLite file itself: opening it, its schema and migrations, transactions, statements, meta.

One connection per store, shared by the threads of one process under a lock (tools run in worker
threads; a connection per thread would multiply page caches and gain nothing, as SQLite admits one
writer at a time anyway). Other processes share the file through WAL mode and a busy timeout. Every
logical write runs inside `transaction()` (BEGIN IMMEDIATE), so a crash leaves either all of it or
none of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from memp_mcp.errors import StoreError
from memp_mcp.paths import create_private_file, private_folder
from memp_mcp.store import driver
from memp_mcp.store.database import Database
from memp_mcp.store.schema import CURRENT_VERSION_SQL, Migration, apply_pending, latest_version, refuse_too_new
from memp_mcp.store.sqlite import backups, health
from memp_mcp.store.sqlite.dialect import DIALECT

logger = logging.getLogger(__name__)

NEW_DATABASE_PAGE_SIZE = 8192


class _Result:
    """A statement's rows and counts, read in full while the store's lock was held."""

    __slots__ = ("_rows", "lastrowid", "rowcount")

    def __init__(self, cursor: Any) -> None:
        self._rows: list[Any] = cursor.fetchall()
        self.lastrowid: int = cursor.lastrowid or 0
        self.rowcount: int = cursor.rowcount

    def fetchall(self) -> list[Any]:
        return self._rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None


class SQLiteConnection(Database):
    """A migrated SQLite file and the one connection a store reads and writes it through."""

    dialect = DIALECT

    def __init__(self, path: Path | str, migrations: Sequence[Migration]) -> None:
        """Open (creating it if need be) the file at `path` and bring it to the last of `migrations`."""
        self.path = Path(path)
        self._migrations = migrations
        self._lock = threading.RLock()
        self._errors = driver.database_errors()
        # True while the file is read as immutable (see _open_read_only).
        self._immutable = False
        self._conn = self._open()
        # The thread whose transaction is open, if any: the store is shared by threads, and a
        # write from one thread must not count as inside another thread's transaction.
        self._transaction_owner: int | None = None

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def _open(self) -> Any:
        path = self.path
        if str(path) != ":memory:":
            if path.is_dir():
                raise StoreError(f"database path {path} is a directory; give a file path (MEMP_DB_PATH)")
            try:
                private_folder(path.parent)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for the database {path}: {exc.strerror}") from None
            # A new file made 0600 before SQLite opens it: SQLite gives the -wal and -shm files it creates
            # beside it the database's own mode, so none is readable by other local users. In a folder this
            # process may not write, SQLite's own error below says what to do.
            with contextlib.suppress(OSError):
                create_private_file(path)
        try:
            return self._prepare(driver.connect(path))
        except self._errors as exc:
            error = self._open_error(str(exc))
        except StoreError as exc:
            error = exc
        if not self._unwritable_where_it_is():
            raise error
        # A file in a folder nobody may write (a shared library on a read-only mount): SQLite cannot
        # create the journal files beside it, yet the file can still be read, unchanged, for recalls.
        logger.warning("%s cannot be written where it is: opened read-only (recalls work, writes are refused)", path)
        return self._open_read_only()

    def _open_read_only(self) -> Any:
        """A reading connection to a file this process may not write, correct while others write it.

        Where another account writes the file, its WAL and WAL index sit beside it and a plain
        read-only connection follows them. Where neither exists and none can be created here,
        SQLite can only read the file as immutable, which is wrong once someone writes it again:
        `_follow_new_writers` then reopens the plain way.
        """
        path = self.path
        self._immutable = False
        try:
            return self._prepare(driver.connect(path, read_only=True), read_only=True)
        except self._errors as exc:
            error = self._open_error(str(exc))
        except StoreError as exc:
            error = exc
        if self._wal_path.exists():
            raise error
        self._immutable = True
        try:
            return self._prepare(driver.connect(path, immutable=True), read_only=True)
        except self._errors as exc:
            raise self._open_error(str(exc)) from None

    @property
    def _wal_path(self) -> Path:
        return Path(f"{self.path}-wal")

    def _follow_new_writers(self) -> None:
        """Leave immutable reading as soon as a writer's WAL appears beside the file (called under the lock)."""
        if self._immutable and self._wal_path.exists():
            self._conn.close()
            self._conn = self._open_read_only()

    def _unwritable_where_it_is(self) -> bool:
        """An existing database in a folder this process may not write (not even as root: immutable)."""
        path = self.path
        return str(path) != ":memory:" and path.is_file() and not os.access(path.parent, os.W_OK)

    def _prepare(self, conn: Any, *, read_only: bool = False) -> Any:
        """Set up a new connection: pragmas, checks, WAL and migrations (only checks when read-only)."""
        path = self.path
        try:
            if read_only:
                self._check_existing(conn)
                current = conn.execute(CURRENT_VERSION_SQL).fetchone()[0]
                if int(current) < latest_version(self._migrations):
                    raise StoreError(
                        f"{path} is read-only and from an older memp-mcp (schema {current}, this one needs "
                        f"{latest_version(self._migrations)}); open it once where it can be written to upgrade it"
                    )
                return conn
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(driver.BUSY_TIMEOUT_SECONDS * 1000)}")
            # Read-only checks first: a file that is not ours, or is from a newer memp-mcp, must be
            # left byte for byte as it was (switching it to WAL would already rewrite its header).
            self._check_existing(conn)
            # A new file only (SQLite ignores it once the file has content, and WAL mode fixes it):
            # a key's row (its text and float32 vector) takes ~1.6 KB, two to a 4 KB page with a
            # fifth of it empty; 8 KB pages made a 5,000-procedure file 11% smaller.
            conn.execute(f"PRAGMA page_size = {NEW_DATABASE_PAGE_SIZE}")
            # WAL lets readers in other processes go on while one writes; NORMAL sync in WAL
            # mode keeps every committed transaction through a process crash.
            mode = self._enable_wal(conn)
            if str(mode).lower() != "wal" and str(path) != ":memory:":
                logger.warning("database %s is in %s journal mode, not WAL", path, mode)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
        except StoreError:
            conn.close()
            raise
        except self._errors as exc:
            conn.close()
            raise self._open_error(str(exc)) from None
        return conn

    def _open_error(self, message: str) -> StoreError:
        """A StoreError saying, in words a user can act on, why the file could not be opened."""
        path = self.path
        if "malformed" in message:
            health.mark_damaged(path, message)
        if "not a database" in message or "malformed" in message:
            return StoreError(
                f"{path} is not a memp-mcp database or is corrupt ({message}); "
                "move it aside or point MEMP_DB_PATH at another file"
            )
        if "readonly" in message or "read-only" in message:
            return StoreError(
                f"database {path} is read-only ({message}); make it and its folder writable, "
                "or point MEMP_DB_PATH at another file"
            )
        if "locked" in message:
            return StoreError(_locked(path, message))
        if "unable to open" in message:
            return StoreError(
                f"cannot open or create the database {path} ({message}); check that its folder is writable, "
                "or point MEMP_DB_PATH at another file"
            )
        return StoreError(f"cannot open the database {path}: {message}")

    def _enable_wal(self, conn: Any) -> str:
        """Switch to WAL mode, waiting while another connection holds the lock.

        Switching needs an exclusive lock and SQLite reports "database is locked" at once,
        without its busy handler, when another process is opening the same new file: retry.
        """
        deadline = time.monotonic() + driver.BUSY_TIMEOUT_SECONDS
        delay = 0.005
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except self._errors as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _check_existing(self, conn: Any) -> None:
        """Refuse, without writing anything, a database that is not memp-mcp's or is too new."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return
        if "schema_migrations" not in tables:
            raise StoreError(
                f"{self.path} is a SQLite database but not a memp-mcp one; point MEMP_DB_PATH at another file"
            )
        refuse_too_new(str(self.path), int(conn.execute(CURRENT_VERSION_SQL).fetchone()[0]), self._migrations)

    def _migrate(self, conn: Any) -> None:
        if self._is_current(conn):
            # Nothing to write: a process that only reads (`memp-mcp list`, a prompt hook) must not queue
            # behind another process's write for a lock it would not use; WAL lets it read meanwhile.
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            apply_pending(conn, self._migrations, self.dialect, subject=str(self.path))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _is_current(self, conn: Any) -> bool:
        """The file has every migration already (read without a transaction's write lock; apply_pending
        checks again under the lock, since another process may migrate in between)."""
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
        if found.fetchone() is None:
            return False
        return int(conn.execute(CURRENT_VERSION_SQL).fetchone()[0]) >= latest_version(self._migrations)

    def engine_description(self) -> str:
        vec_version = self._execute("SELECT vec_version()").fetchone()[0]
        return f"{driver.driver_name()} with sqlite-vec {vec_version}"

    def purge_freed(self) -> None:
        """Rewrite the file (and empty the write-ahead log) so that no freed page keeps text that was
        overwritten, such as a redacted secret."""
        with self._statement():
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if str(self.path) != ":memory:":
            # A backup taken before holds the old values in its own pages: none is kept.
            backups.discard_backups(self.path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One logical write: all of it is committed, or none of it. Re-entrant."""
        with self._lock:
            if self._transaction_owner is not None:
                # Only the owning thread can get here: the lock is held for the whole transaction.
                yield
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except self._errors as exc:
                said = _locked(self.path, str(exc)) if "locked" in str(exc) else f"cannot write to {self.path}: {exc}"
                raise StoreError(said) from None
            self._transaction_owner = threading.get_ident()
            try:
                yield
            except BaseException:
                self._transaction_owner = None
                self._rollback()
                raise
            self._transaction_owner = None
            try:
                self._conn.execute("COMMIT")
            except self._errors as exc:
                self._note_damage(exc)
                self._rollback()
                raise StoreError(f"cannot write to {self.path}: {exc}") from None

    def _rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already done so (it does after some errors)."""
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    @contextmanager
    def _statement(self) -> Iterator[None]:
        """Run statements under the store's lock, a write the file refuses raised as a StoreError."""
        with self._lock:
            try:
                yield
            except self._errors as exc:
                self._note_damage(exc)
                message = str(exc)
                if "readonly" in message or "disk" in message or "full" in message:
                    raise StoreError(f"cannot write to {self.path}: {message}") from None
                raise

    def _note_damage(self, exc: BaseException) -> None:
        """Mark the file damaged when SQLite says it is, so that every later hook and command says so."""
        if health.is_corruption(exc) and str(self.path) != ":memory:":
            health.mark_damaged(self.path, str(exc))

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> _Result:
        with self._statement():
            self._follow_new_writers()
            # Read whole under the lock: a cursor stepped after the lock is released would run
            # inside whatever transaction another thread has opened on this shared connection
            # since, and could return its rows before they are rolled back.
            return _Result(self._conn.execute(sql, params))

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._execute(sql, params).fetchall()

    def _modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._write()
        return self._execute(sql, params).rowcount

    def _modify_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        self._write()
        with self._statement():
            return int(self._conn.executemany(sql, rows).rowcount)

    def _insert_row(self, sql: str, params: Sequence[Any]) -> int:
        self._write()
        return self._execute(sql, params).lastrowid

    def _write(self) -> None:
        if self._transaction_owner != threading.get_ident():
            raise RuntimeError("store writes must run inside store.transaction()")


def _locked(path: Path, message: str) -> str:
    """What to do about a write lock another process kept past the busy timeout."""
    return (
        f"database {path} is locked by another process ({message}, after {driver.BUSY_TIMEOUT_SECONDS:.0f} s): "
        "a long write is under way (an import, a reindex, a migration) or the process holding it hangs; "
        "try again when it is done, or find the process with `fuser` or `lsof` on the file"
    )
