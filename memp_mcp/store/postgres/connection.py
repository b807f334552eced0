"""The PostgreSQL database itself: connections, schema and migrations, transactions, statements, meta.

Connections come from a pool (psycopg_pool), one per thread while it works. Reads outside a
transaction run in autocommit on any pooled connection and see every committed write, whichever
server made it. A transaction holds one connection for its thread and starts by taking a
transaction-level advisory lock that every memp-mcp writer takes: writers are serialised across all
processes, exactly as SQLite's BEGIN IMMEDIATE serialises them, so the engine's check-then-write
steps (is this task already known? has this recall been reported?) hold on both backends. Writes are
short (embedding happens outside them); readers never wait for the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool, PoolTimeout

from memp_mcp.errors import StoreError
from memp_mcp.store.database import Database
from memp_mcp.store.postgres.dialect import DIALECT, clean
from memp_mcp.store.postgres_migrations import MIGRATIONS
from memp_mcp.store.schema import apply_pending

# Advisory lock keys ('memp' and 'memq' as integers): one for every write, one for migrations.
WRITE_LOCK = 0x6D656D70
MIGRATION_LOCK = 0x6D656D71
# As long as SQLite's busy timeout: a writer waits this long for another before giving up.
LOCK_TIMEOUT_SECONDS = 15
CONNECT_TIMEOUT_SECONDS = 10
POOL_MAX_SIZE = 10
# HNSW candidates per search, at least the keys a vector search asks for (see vectors.py); iterative
# scans go on past the namespace and status filter until enough keys pass it.
EF_SEARCH = 100


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable database URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def is_database_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


class PostgresConnection(Database):
    """A migrated PostgreSQL database and the pool of connections a store uses."""

    dialect = DIALECT

    def __init__(self, url: str, *, pool_size: int = POOL_MAX_SIZE) -> None:
        self.url = url
        self._local = threading.local()
        self._migrate()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
            configure=self._configure,
            open=False,
            name="memp-mcp",
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
        except PoolTimeout:
            self._pool.close()
            raise StoreError(f"cannot connect to PostgreSQL at {self.location}; check MEMP_DATABASE_URL") from None

    @property
    def location(self) -> str:
        return redacted(self.url)

    @property
    def name(self) -> str:
        return f"PostgreSQL database {psycopg.conninfo.conninfo_to_dict(self.url).get('dbname', '')}".strip()

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        register_vector(conn)
        # Set on the session, before each query would need a transaction for SET LOCAL.
        conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
        conn.execute("SET hnsw.iterative_scan = relaxed_order")

    def _connect_once(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.location}: {str(exc).strip()}; check MEMP_DATABASE_URL"
            ) from None

    def _migrate(self) -> None:
        """Bring the schema to the latest version; several processes may start at once (they take
        turns under an advisory lock, and each migration commits whole or not at all)."""
        with self._connect_once() as conn:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    self._ensure_pgvector(conn)
                    known = conn.execute(
                        "SELECT to_regclass('schema_migrations'), to_regclass('procedures')"
                    ).fetchone()
                    if known is not None and known[0] is None and known[1] is not None:
                        raise StoreError(
                            f"database {self.location} has a 'procedures' table but is not a memp-mcp database; "
                            "give memp-mcp a database of its own (CREATE DATABASE memp)"
                        )
                    apply_pending(conn, MIGRATIONS, self.dialect, subject=f"database {self.location}")
            except psycopg.Error as exc:
                raise StoreError(f"cannot prepare the database {self.location}: {str(exc).strip()}") from None

    def _ensure_pgvector(self, conn: psycopg.Connection[Any]) -> None:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            return
        try:
            with conn.transaction():  # a savepoint: a refusal leaves the outer transaction usable
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise StoreError(
                f"the pgvector extension is not enabled in {self.location} and memp-mcp could not enable it "
                f"({str(exc).strip()}); install pgvector on the server and run CREATE EXTENSION vector "
                "in this database as its owner or a superuser"
            ) from None

    def engine_description(self) -> str:
        row = self._select_one(
            "SELECT current_setting('server_version'), (SELECT extversion FROM pg_extension WHERE extname = 'vector')"
        )
        assert row is not None
        return f"PostgreSQL {row[0]} with pgvector {row[1]}"

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One logical write: all of it is committed, or none of it. Re-entrant within a thread."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        try:
            with self._pool.connection() as conn, conn.transaction():
                # One round trip for both (no parameters: sent as one simple query).
                conn.execute(
                    f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
                )
                self._local.conn = conn
                try:
                    yield
                finally:
                    self._local.conn = None
        except psycopg.errors.LockNotAvailable:
            raise StoreError(
                f"another writer held {self.location} for over {LOCK_TIMEOUT_SECONDS} s; try again"
            ) from None
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot write to {self.location}: {str(exc).strip()}") from None
        except PoolTimeout:
            raise StoreError(f"no connection to {self.location} came free; try again") from None

    def purge_freed(self) -> None:
        """Rewrite the tables holding sent text, so that no dead row keeps text that was overwritten,
        such as a redacted secret (VACUUM FULL: it locks each table while it copies it)."""
        try:
            with self._pool.connection() as pooled:
                for table in ("trajectories", "procedures", "procedure_versions", "procedure_keys", "recall_events"):
                    pooled.execute(f"VACUUM FULL {table}")
        except PoolTimeout:
            raise StoreError(f"no connection to {self.location} came free; try again") from None

    def _write(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("store writes must run inside store.transaction()")
        return conn

    def _rows(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> list[tuple[Any, ...]]:
        """A statement's rows, on this thread's transaction when it has one. `binary` results for
        vectors: parsing their text form costs ~0.4 ms per vector, their binary form next to nothing."""
        cleaned = [clean(p) for p in params]
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn.execute(sql, cleaned, binary=binary).fetchall()
        try:
            with self._pool.connection() as pooled:
                return pooled.execute(sql, cleaned, binary=binary).fetchall()
        except PoolTimeout:
            raise StoreError(f"no connection to {self.location} came free; try again") from None

    def _modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write inside this thread's transaction; returns how many rows it changed."""
        conn = self._write()
        return conn.execute(sql, [clean(p) for p in params]).rowcount

    def _modify_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        conn = self._write()
        with conn.cursor() as cursor:
            # Sent in one pipeline; rowcount sums the runs'.
            cursor.executemany(sql, [[clean(p) for p in row] for row in rows])
            return cursor.rowcount

    def _insert_row(self, sql: str, params: Sequence[Any]) -> int:
        conn = self._write()
        row = conn.execute(f"{sql} RETURNING id", [clean(p) for p in params]).fetchone()
        assert row is not None  # INSERT ... RETURNING returns the row it inserted
        return int(row[0])
