"""The PostgreSQL store: the same memory in a database several servers share, with pgvector.

Vectors live in pgvector columns under an HNSW index (cosine); keyword search is PostgreSQL's
full-text search (a tsvector kept by the database, a GIN index, ranked by ts_rank).

Concurrency: connections come from a pool (psycopg_pool), one per thread while it works. Reads
outside a transaction run in autocommit on any pooled connection and see every committed write,
whichever server made it. A transaction holds one connection for its thread and starts by taking
a transaction-level advisory lock that every memp-mcp writer takes: writers are serialised across
all processes, exactly as SQLite's BEGIN IMMEDIATE serialises them, so the engine's
check-then-write steps (is this task already known? has this recall been reported?) hold on both
backends. Writes are short (embedding happens outside them); readers never wait for the lock.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from memp_mcp.errors import InvalidInputError, NotFoundError, StoreError
from memp_mcp.models import (
    NamespaceStats,
    Outcome,
    Procedure,
    ProcedureStatus,
    ProcedureVersion,
    RecallEvent,
    Step,
    Trajectory,
)
from memp_mcp.store import rows as mapping
from memp_mcp.store.base import ProgressCallback, Vector, check_dimension, embed_keys, model_mismatch
from memp_mcp.store.postgres_migrations import MIGRATIONS
from memp_mcp.store.schema import apply_pending
from memp_mcp.text import fts_document

logger = logging.getLogger(__name__)

# Advisory lock keys ('memp' and 'memq' as integers): one for every write, one for migrations.
WRITE_LOCK = 0x6D656D70
MIGRATION_LOCK = 0x6D656D71
# As long as SQLite's busy timeout: a writer waits this long for another before giving up.
LOCK_TIMEOUT_SECONDS = 15
CONNECT_TIMEOUT_SECONDS = 10
POOL_MAX_SIZE = 10
# Keys the HNSW index returns per procedure wanted: a procedure has several keys, and is as near as
# its nearest one. `hnsw.ef_search` is at least this many; iterative scans go on past the namespace
# and status filter until enough keys pass it.
KEYS_PER_PROCEDURE = 3
EF_SEARCH = 100
TEXT_SEARCH_CONFIG = "english"


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


def _now() -> datetime:
    return datetime.now(UTC)


def _clean(value: Any) -> Any:
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


def _json(value: Any) -> Jsonb:
    """A jsonb parameter, its strings cleaned like text parameters."""
    return Jsonb(_deep_clean(value))


def _deep_clean(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, list | tuple):
        return [_deep_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _deep_clean(v) for k, v in value.items()}
    return value


class PostgresStore:
    """Procedures, trajectories and recall events in a PostgreSQL database with pgvector."""

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

    # -- opening -------------------------------------------------------------------------

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
                        applied_at=_now(),
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

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions and statements ------------------------------------------------------

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
        cleaned = [_clean(p) for p in params]
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
        return conn.execute(sql, [_clean(p) for p in params]).rowcount

    # -- meta and embedding model ---------------------------------------------------------

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

    def embedding_model(self) -> tuple[str, int] | None:
        found = dict(self._rows("SELECT key, value FROM meta WHERE key IN ('embedding_model', 'embedding_dim')"))
        name, dim = found.get("embedding_model"), found.get("embedding_dim")
        return None if name is None or dim is None else (str(name), int(dim))

    def bind_embedding_model(self, name: str, dim: int) -> None:
        """Record the model for this database, or check it is the one already recorded.

        Raises EmbeddingModelMismatchError when the database's vectors come from another model.
        """
        with self.transaction():
            bound = self.embedding_model()
            if bound is None:
                self._set_meta("embedding_model", name)
                self._set_meta("embedding_dim", str(dim))
                self._prepare_vectors(dim)
                self._index_vectors()
            elif bound != (name, dim):
                raise model_mismatch(self.location, bound, name, dim)

    def check_embedding_model(self, name: str, dim: int) -> None:
        bound = self.embedding_model()
        if bound is not None and bound != (name, dim):
            raise model_mismatch(self.location, bound, name, dim)

    def has_keys_without_vectors(self) -> bool:
        return self._one("SELECT 1 FROM procedure_keys WHERE embedding IS NULL LIMIT 1") is not None

    def _prepare_vectors(self, dim: int) -> None:
        """Empty the vector column and give it `dim` dimensions (the HNSW index needs a fixed one)."""
        self._modify("DROP INDEX IF EXISTS procedure_keys_embedding")
        self._modify("UPDATE procedure_keys SET embedding = NULL WHERE embedding IS NOT NULL")
        self._modify(f"ALTER TABLE procedure_keys ALTER COLUMN embedding TYPE vector({int(dim)})")

    def _index_vectors(self) -> None:
        self._modify("CREATE INDEX procedure_keys_embedding ON procedure_keys USING hnsw (embedding vector_cosine_ops)")

    def reindex(
        self,
        name: str,
        dim: int,
        embed: Callable[[list[str]], Sequence[Vector]],
        progress: ProgressCallback | None = None,
        batch_size: int = 64,
    ) -> int:
        """Replace every vector with one from model `name`. Returns the count.

        The texts are embedded outside any transaction (other servers go on writing meanwhile); the
        vectors are swapped in one transaction, so the database never mixes two models. Keys added
        during the embedding are left without a vector, for the engine's backfill.
        """
        keys = self._rows("SELECT id, text FROM procedure_keys ORDER BY id")
        embedded = embed_keys(keys, embed, progress, batch_size)
        with self.transaction():
            self._set_meta("embedding_model", name)
            self._set_meta("embedding_dim", str(dim))
            self._prepare_vectors(dim)
            self._store_key_vectors(embedded)
            self._index_vectors()
        return len(keys)

    def keys_without_vectors(self, limit: int = 10_000) -> list[tuple[int, str]]:
        found = self._rows("SELECT id, text FROM procedure_keys WHERE embedding IS NULL ORDER BY id LIMIT %s", (limit,))
        return [(int(r[0]), str(r[1])) for r in found]

    def store_key_vectors(self, vectors: list[tuple[int, Vector]]) -> None:
        """Give existing keys their vectors (a backfill: new keys get theirs through add_keys)."""
        with self.transaction():
            self._store_key_vectors(vectors)

    def _store_key_vectors(self, vectors: list[tuple[int, Vector]]) -> None:
        conn = self._write()
        dim = self._bound_dim()
        with conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE procedure_keys SET embedding = %s WHERE id = %s",
                [(_vector(v, dim), key_id) for key_id, v in vectors],
            )

    def _bound_dim(self) -> int:
        bound = self.embedding_model()
        if bound is None:
            raise StoreError("no embedding model is bound to this database")
        return bound[1]

    # -- namespaces ----------------------------------------------------------------------

    def ensure_namespace(self, namespace: str) -> None:
        self._modify(
            "INSERT INTO namespaces (name, created_at) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
            (namespace, _now()),
        )

    def namespaces(self) -> list[str]:
        return [str(r[0]) for r in self._rows("SELECT name FROM namespaces ORDER BY name")]

    def namespace_exists(self, namespace: str) -> bool:
        return self._one("SELECT 1 FROM namespaces WHERE name = %s", (namespace,)) is not None

    # -- trajectories --------------------------------------------------------------------

    def add_trajectory(
        self,
        namespace: str,
        task: str,
        steps: Sequence[Step],
        outcome: Outcome,
        agent: str | None = None,
        score: float | None = None,
    ) -> int:
        conn = self._write()
        self.ensure_namespace(namespace)
        row = conn.execute(
            "INSERT INTO trajectories (namespace, task, steps_json, outcome, score, agent, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                namespace,
                _clean(task),
                _json([s.model_dump(exclude_none=True) for s in steps]),
                outcome.value,
                score,
                _clean(agent),
                _now(),
            ),
        ).fetchone()
        assert row is not None  # INSERT ... RETURNING returns the row it inserted
        return int(row[0])

    def get_trajectory(self, trajectory_id: int) -> Trajectory:
        row = self._one(f"SELECT {mapping.TRAJECTORY_COLUMNS} FROM trajectories WHERE id = %s", (trajectory_id,))
        if row is None:
            raise NotFoundError(f"no trajectory with id {trajectory_id}")
        return mapping.trajectory(row)

    def count_trajectories(self, namespace: str | None = None) -> int:
        if namespace is None:
            return self._count("SELECT COUNT(*) FROM trajectories")
        return self._count("SELECT COUNT(*) FROM trajectories WHERE namespace = %s", (namespace,))

    def trajectory_tasks(self, trajectory_ids: Sequence[int]) -> dict[int, str]:
        if not trajectory_ids:
            return {}
        found = self._rows("SELECT id, task FROM trajectories WHERE id = ANY(%s)", (list(trajectory_ids),))
        return {int(r[0]): str(r[1]) for r in found}

    # -- procedures ----------------------------------------------------------------------

    def add_procedure(
        self,
        namespace: str,
        title: str,
        when_to_use: str,
        steps: Sequence[str],
        pitfalls: Sequence[str],
        source: str,
        author: str | None,
        source_trajectory_ids: Sequence[int],
        exemplar_trajectory_id: int | None,
        keys: Sequence[tuple[str, Vector | None]],
        *,
        candidate_of: int | None = None,
    ) -> int:
        """Insert a procedure with its sources and search keys; returns its id.

        `candidate_of`: the procedure whose steps this one proposes to replace (see Memory.record).
        """
        conn = self._write()
        self.ensure_namespace(namespace)
        now = _now()
        row = conn.execute(
            "INSERT INTO procedures (namespace, title, when_to_use, steps_json, pitfalls_json, source, author, "
            "exemplar_trajectory_id, support_count, created_at, updated_at, candidate_of) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                namespace,
                _clean(title),
                _clean(when_to_use),
                _json(list(steps)),
                _json(list(pitfalls)),
                source,
                _clean(author),
                exemplar_trajectory_id,
                max(1, len(source_trajectory_ids)),
                now,
                now,
                candidate_of,
            ),
        ).fetchone()
        assert row is not None
        procedure_id = int(row[0])
        self._link_sources(procedure_id, source_trajectory_ids)
        self.add_keys(procedure_id, keys)
        self._refresh_search_text(procedure_id)
        return procedure_id

    def _link_sources(self, procedure_id: int, trajectory_ids: Sequence[int]) -> int:
        """Link trajectories as a procedure's sources; returns how many were new."""
        if not trajectory_ids:
            return 0
        return self._modify(
            "INSERT INTO procedure_sources (procedure_id, trajectory_id) SELECT %s, t FROM unnest(%s::bigint[]) t "
            "ON CONFLICT DO NOTHING",
            (procedure_id, list(dict.fromkeys(trajectory_ids))),
        )

    def add_keys(self, procedure_id: int, keys: Sequence[tuple[str, Vector | None]]) -> int:
        """Add search keys (text, optional vector) to a procedure; returns how many were new."""
        conn = self._write()
        owner = self._one("SELECT namespace, status FROM procedures WHERE id = %s", (procedure_id,))
        if owner is None or not keys:
            return 0
        bound = self.embedding_model()
        added = 0
        for text, vector in keys:
            embedding = _vector(vector, bound[1]) if vector is not None and bound is not None else None
            added += conn.execute(
                "INSERT INTO procedure_keys (procedure_id, namespace, active, text, embedding) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (procedure_id, text) DO NOTHING",
                (procedure_id, owner[0], owner[1] == ProcedureStatus.ACTIVE, _clean(text), embedding),
            ).rowcount
        if added:
            self._refresh_search_text(procedure_id)
        return added

    def keys(self, procedure_id: int) -> list[str]:
        found = self._rows("SELECT text FROM procedure_keys WHERE procedure_id = %s ORDER BY id", (procedure_id,))
        return [str(r[0]) for r in found]

    def add_sources(self, procedure_id: int, trajectory_ids: Sequence[int]) -> None:
        """Credit more trajectories as evidence for a procedure (a merge)."""
        added = self._link_sources(procedure_id, trajectory_ids)
        if added:
            self._modify(
                "UPDATE procedures SET support_count = support_count + %s, updated_at = %s WHERE id = %s",
                (added, _now(), procedure_id),
            )

    def _refresh_search_text(self, procedure_id: int) -> None:
        # The same text as SQLite's full-text index: what the procedure is for, not its steps.
        row = self._one("SELECT title, when_to_use FROM procedures WHERE id = %s", (procedure_id,))
        if row is None:
            return
        body = fts_document(row[0], row[1], *self.keys(procedure_id))
        self._modify("UPDATE procedures SET search_text = %s WHERE id = %s", (body, procedure_id))

    def get_procedure(self, procedure_id: int) -> Procedure:
        found = self.get_procedures([procedure_id])
        if not found:
            raise NotFoundError(f"no procedure with id {procedure_id}")
        return found[0]

    def candidates_of(self, procedure_id: int) -> list[Procedure]:
        """The candidates proposed to replace a procedure's steps, oldest first."""
        found = self._rows("SELECT id FROM procedures WHERE candidate_of = %s ORDER BY id", (procedure_id,))
        return self.get_procedures([int(r[0]) for r in found])

    def get_procedures(self, procedure_ids: Sequence[int]) -> list[Procedure]:
        """Procedures in the order of `procedure_ids`; unknown ids are skipped."""
        if not procedure_ids:
            return []
        wanted = [i for i in procedure_ids if 0 < i < 2**63]
        # With each procedure's sources in the same round trip.
        found = self._rows(
            f"SELECT {mapping.PROCEDURE_COLUMNS}, ARRAY(SELECT s.trajectory_id FROM procedure_sources s "
            "WHERE s.procedure_id = procedures.id ORDER BY s.trajectory_id) FROM procedures WHERE id = ANY(%s)",
            (wanted,),
        )
        by_id = {int(r[0]): r for r in found}
        return [mapping.procedure(by_id[i][:-1], [int(t) for t in by_id[i][-1]]) for i in procedure_ids if i in by_id]

    def outcome_counts(self, procedure_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(successes, failures) of each known procedure's current version."""
        if not procedure_ids:
            return {}
        found = self._rows(
            "SELECT id, version_success_count, version_failure_count FROM procedures WHERE id = ANY(%s)",
            (list(procedure_ids),),
        )
        return {int(r[0]): (int(r[1]), int(r[2])) for r in found}

    def list_procedures(
        self,
        namespace: str | None = None,
        status: ProcedureStatus | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Procedure]:
        # A plain substring filter (strpos), never pattern or search syntax.
        matching = [("(strpos(title, %s) > 0 OR strpos(when_to_use, %s) > 0)", [text, text])] if text else []
        where, params = mapping.procedure_filter(namespace, status, "%s", *matching)
        found = self._rows(
            f"SELECT id FROM procedures {where} ORDER BY id LIMIT %s OFFSET %s", (*params, limit, offset)
        )
        return self.get_procedures([int(r[0]) for r in found])

    def count_procedures(self, namespace: str | None = None, status: ProcedureStatus | None = None) -> int:
        where, params = mapping.procedure_filter(namespace, status, "%s")
        return self._count(f"SELECT COUNT(*) FROM procedures {where}", params)

    def revise_procedure(
        self,
        procedure_id: int,
        *,
        reason: str,
        changed_by: str | None,
        title: str | None = None,
        when_to_use: str | None = None,
        steps: Sequence[str] | None = None,
        pitfalls: Sequence[str] | None = None,
        source: str | None = None,
        fresh_record: bool = False,
    ) -> Procedure:
        """Change a procedure's content, keeping the previous content (and its outcome record) as a version."""
        self._write()
        current = self.get_procedure(procedure_id)
        self._modify(
            "INSERT INTO procedure_versions (procedure_id, version, title, when_to_use, steps_json, pitfalls_json, "
            "reason, changed_by, created_at, success_count, failure_count) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                procedure_id,
                current.version,
                current.title,
                current.when_to_use,
                _json(current.steps),
                _json(current.pitfalls),
                reason,
                changed_by,
                _now(),
                current.version_success_count,
                current.version_failure_count,
            ),
        )
        self._modify(
            "UPDATE procedures SET title = %s, when_to_use = %s, steps_json = %s, pitfalls_json = %s, source = %s, "
            "version = version + 1, updated_at = %s, "
            "version_success_count = CASE WHEN %s THEN 0 ELSE version_success_count END, "
            "version_failure_count = CASE WHEN %s THEN 0 ELSE version_failure_count END WHERE id = %s",
            (
                current.title if title is None else title,
                current.when_to_use if when_to_use is None else when_to_use,
                _json(list(current.steps if steps is None else steps)),
                _json(list(current.pitfalls if pitfalls is None else pitfalls)),
                current.source if source is None else source,
                _now(),
                fresh_record,
                fresh_record,
                procedure_id,
            ),
        )
        self._refresh_search_text(procedure_id)
        return self.get_procedure(procedure_id)

    def versions(self, procedure_id: int) -> list[ProcedureVersion]:
        found = self._rows(
            f"SELECT {mapping.VERSION_COLUMNS} FROM procedure_versions WHERE procedure_id = %s ORDER BY version",
            (procedure_id,),
        )
        return [mapping.version(r) for r in found]

    def set_status(self, procedure_id: int, status: ProcedureStatus) -> None:
        self._write()
        self.get_procedure(procedure_id)
        self._modify(
            "UPDATE procedures SET status = %s, updated_at = %s WHERE id = %s", (status.value, _now(), procedure_id)
        )
        self._modify(
            "UPDATE procedure_keys SET active = %s WHERE procedure_id = %s",
            (status == ProcedureStatus.ACTIVE, procedure_id),
        )

    def bump_stats(self, procedure_id: int, *, retrieved: int = 0, succeeded: int = 0, failed: int = 0) -> None:
        self._modify(
            "UPDATE procedures SET retrieved_count = retrieved_count + %s, success_count = success_count + %s, "
            "failure_count = failure_count + %s, version_success_count = version_success_count + %s, "
            "version_failure_count = version_failure_count + %s WHERE id = %s",
            (retrieved, succeeded, failed, succeeded, failed, procedure_id),
        )

    # -- search --------------------------------------------------------------------------

    def vector_search(self, namespace: str, vector: Vector, k: int) -> list[tuple[int, float]]:
        """Active procedures nearest to `vector`: (procedure id, cosine similarity), best first.

        A procedure's similarity is that of its nearest key.
        """
        if getattr(self._local, "conn", None) is not None:
            # In a transaction a failed statement would abort it: check the dimension first. Outside
            # one, pgvector's own check saves the round trip.
            bound = self.embedding_model()
            if bound is None:
                return []
            check_dimension(vector, bound[1], "query vector")
        try:
            found = self._rows(
                "SELECT procedure_id, MIN(distance) AS nearest FROM ("
                "  SELECT procedure_id, embedding <=> %s AS distance FROM procedure_keys"
                "  WHERE namespace = %s AND active AND embedding IS NOT NULL ORDER BY distance LIMIT %s"
                ") keys GROUP BY procedure_id ORDER BY nearest, procedure_id LIMIT %s",
                (np.asarray(vector, dtype=np.float32), namespace, max(1, k) * KEYS_PER_PROCEDURE, k),
            )
        except psycopg.errors.DataException:
            bound = self.embedding_model()
            raise InvalidInputError(
                f"query vector has {len(vector)} dimensions, the database uses {bound[1] if bound else 'none'}"
            ) from None
        # A zero vector has no direction: its cosine distance is NaN, taken as unrelated (0).
        return [(int(r[0]), 0.0 if math.isnan(r[1]) else 1.0 - float(r[1])) for r in found]

    def key_vectors(self, procedure_ids: Sequence[int]) -> dict[int, list[list[float]]]:
        """Every key vector of the given procedures."""
        return {
            pid: [np.frombuffer(blob, dtype=np.float32).tolist() for _, blob in keys]
            for pid, keys in self.keys_with_vectors(procedure_ids).items()
        }

    def keys_with_vectors(self, procedure_ids: Sequence[int]) -> dict[int, list[tuple[str, bytes]]]:
        """Each procedure's embedded keys as (text, float32 vector bytes)."""
        if not procedure_ids:
            return {}
        found = self._rows(
            "SELECT procedure_id, text, embedding FROM procedure_keys "
            "WHERE procedure_id = ANY(%s) AND embedding IS NOT NULL ORDER BY id",
            (list(procedure_ids),),
            binary=True,
        )
        return mapping.grouped(
            [(r[0], (str(r[1]), np.asarray(r[2].to_numpy(), dtype=np.float32).tobytes())) for r in found]
        )

    def procedures_with_key(self, namespace: str, text: str, *, include_deprecated: bool = False) -> list[int]:
        """Active (or all) procedures that have exactly this key text (the merge check without vectors)."""
        status = "" if include_deprecated else "AND active "
        found = self._rows(
            f"SELECT DISTINCT procedure_id FROM procedure_keys WHERE text = %s AND namespace = %s {status}"
            "ORDER BY procedure_id",
            (text, namespace),
        )
        return [int(r[0]) for r in found]

    def procedure_texts(self, procedure_ids: Sequence[int]) -> dict[int, str]:
        if not procedure_ids:
            return {}
        found = self._rows("SELECT id, search_text FROM procedures WHERE id = ANY(%s)", (list(procedure_ids),))
        return {int(r[0]): str(r[1]) for r in found}

    def keyword_search(self, namespace: str, terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        """Active procedures whose indexed text holds any of `terms`: (id, ts_rank), best first."""
        terms = [t for t in terms if t.strip()][:64]
        if not terms:
            return []
        # plainto_tsquery reads each term as plain text (no operators), OR-ed together.
        query = " || ".join([f"plainto_tsquery('{TEXT_SEARCH_CONFIG}', %s)"] * len(terms))
        found = self._rows(
            f"SELECT id, ts_rank(search, q) AS score FROM procedures, ({'SELECT ' + query}) AS t(q) "
            "WHERE search @@ q AND namespace = %s AND status = 'active' ORDER BY score DESC, id LIMIT %s",
            (*terms, namespace, k),
        )
        return [(int(r[0]), float(r[1])) for r in found]

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        if not terms:
            return {}
        found = self._rows(
            "SELECT t, (SELECT COUNT(*) FROM procedures "
            f"WHERE search @@ plainto_tsquery('{TEXT_SEARCH_CONFIG}', t)) FROM unnest(%s::text[]) AS t",
            ([_clean(t) for t in terms],),
        )
        return {str(r[0]): int(r[1]) for r in found}

    def indexed_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM procedures")

    def random_procedures(self, namespace: str, k: int, rng: random.Random) -> list[int]:
        ids = [
            int(r[0])
            for r in self._rows(
                "SELECT id FROM procedures WHERE namespace = %s AND status = 'active' ORDER BY id", (namespace,)
            )
        ]
        return rng.sample(ids, min(k, len(ids)))

    # -- recall events -------------------------------------------------------------------

    def add_recall_event(
        self, event_id: str, namespace: str, task: str, procedure_ids: Sequence[int], strategy: str
    ) -> None:
        self._modify(
            "WITH event AS (INSERT INTO recall_events (id, namespace, task, procedure_ids_json, strategy, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)) "
            "UPDATE procedures SET retrieved_count = retrieved_count + 1 WHERE id = ANY(%s)",
            (event_id, namespace, task, _json(list(procedure_ids)), strategy, _now(), list(procedure_ids)),
        )

    def get_recall_event(self, event_id: str) -> RecallEvent:
        row = self._one(f"SELECT {mapping.RECALL_EVENT_COLUMNS} FROM recall_events WHERE id = %s", (event_id,))
        if row is None:
            raise NotFoundError(f"no recall with id {event_id!r}; pass the recall_id that recall_procedure returned")
        return mapping.recall_event(row)

    def mark_recall_reported(self, event_id: str, success: bool) -> bool:
        """Mark a recall reported; False when it already was (another report came first)."""
        changed = self._modify(
            "UPDATE recall_events SET reported = TRUE, success = %s WHERE id = %s AND NOT reported", (success, event_id)
        )
        return changed == 1

    # -- statistics and checks -----------------------------------------------------------

    def stats(self, namespace: str) -> NamespaceStats:
        return NamespaceStats(
            namespace=namespace,
            trajectories=self.count_trajectories(namespace),
            procedures_active=self.count_procedures(namespace, ProcedureStatus.ACTIVE),
            procedures_deprecated=self.count_procedures(namespace, ProcedureStatus.DEPRECATED),
            recalls=self._count("SELECT COUNT(*) FROM recall_events WHERE namespace = %s", (namespace,)),
        )

    def integrity_problems(self) -> list[str]:
        """Disagreements between rows and what search reads. Empty when sound."""
        problems = []
        drifted = self._count(
            "SELECT COUNT(*) FROM procedure_keys k JOIN procedures p ON p.id = k.procedure_id "
            "WHERE k.namespace <> p.namespace OR k.active <> (p.status = 'active')"
        )
        if drifted:
            problems.append(f"{drifted} search keys disagree with their procedure's namespace or status")
        unindexed = self._count("SELECT COUNT(*) FROM procedures WHERE search_text = ''")
        if unindexed:
            problems.append(f"{unindexed} procedures have no keyword-search text")
        bound = self.embedding_model()
        if bound is not None:
            index = self._one("SELECT to_regclass('procedure_keys_embedding')")
            embedded = self._count("SELECT COUNT(*) FROM procedure_keys WHERE embedding IS NOT NULL")
            if embedded and (index is None or index[0] is None):
                problems.append("the vector index (HNSW) is missing")
        return problems


def _vector(vector: Vector, dim: int, what: str = "vector") -> np.ndarray:
    check_dimension(vector, dim, what)
    return np.asarray(vector, dtype=np.float32)
