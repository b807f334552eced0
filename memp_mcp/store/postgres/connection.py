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
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from memp_mcp.errors import StoreError
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


def now() -> datetime:
    return datetime.now(UTC)


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


def jsonb(value: Any) -> Jsonb:
    """A jsonb parameter, its strings cleaned like text parameters."""
    return Jsonb(_deep_clean(value))


def _deep_clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list | tuple):
        return [_deep_clean(v) for v in value]
    if isinstance(value, dict):
        return {clean(k): _deep_clean(v) for k, v in value.items()}
    return value


class PostgresConnection:
    """A migrated PostgreSQL database and the pool of connections a store uses."""

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
                    apply_pending(
                        conn,
                        MIGRATIONS,
                        subject=f"database {self.location}",
                        # As bytes: a script is sent whole, never read for parameters.
                        run_script=lambda sql: conn.execute(sql.encode()),
                        mark="%s",
                        time_type="TIMESTAMPTZ",
                        applied_at=now(),
                    )
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
        row = self._one(
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

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        found = self._rows(sql, params)
        return found[0] if found else None

    def _count(self, sql: str, params: Sequence[Any] = ()) -> int:
        row = self._one(sql, params)
        return int(row[0]) if row else 0

    def _modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write inside this thread's transaction; returns how many rows it changed."""
        conn = self._write()
        return conn.execute(sql, [clean(p) for p in params]).rowcount

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._modify(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def schema_version(self) -> int:
        return self._count("SELECT MAX(version) FROM schema_migrations")

    def ensure_namespace(self, namespace: str) -> None:
        self._modify(
            "INSERT INTO namespaces (name, created_at) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
            (namespace, now()),
        )

    def namespaces(self) -> list[str]:
        return [str(r[0]) for r in self._rows("SELECT name FROM namespaces ORDER BY name")]

    def namespace_exists(self, namespace: str) -> bool:
        return self._one("SELECT 1 FROM namespaces WHERE name = %s", (namespace,)) is not None
