"""The SQLite store: rows, a sqlite-vec vector table and an FTS5 table, kept in step.

Concurrency: one connection per store, shared by the threads of one process under a lock
(tools run in worker threads; a connection per thread would multiply page caches and gain
nothing, as SQLite admits one writer at a time anyway). Other processes share the file through
WAL mode and a busy timeout. Every logical write runs inside `transaction()` (BEGIN IMMEDIATE),
so a crash leaves either all of it or none of it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_vec

from memp_mcp.errors import (
    InvalidInputError,
    NotFoundError,
    SchemaTooNewError,
    StoreError,
)
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
from memp_mcp.store import driver
from memp_mcp.store import rows as mapping
from memp_mcp.store.base import ProgressCallback, Vector, check_dimension, model_mismatch
from memp_mcp.store.bit_index import BitIndex
from memp_mcp.store.migrations import LATEST_VERSION, MIGRATIONS
from memp_mcp.text import fts_document, fts_match_query

logger = logging.getLogger(__name__)

# The largest k sqlite-vec accepts in a KNN query.
MAX_KNN = 4096
# Keys fetched by the coarse (binary) search per procedure wanted, before exact rescoring.
COARSE_OVERSAMPLING = 3
# Changed by the database's triggers (migration 003) whenever a stored vector changes other than by a
# new key (a model bound, a reindex, a backfill), and whenever a procedure's status changes, so a
# process holding codes in memory knows what to load again, whichever process made the change.
VECTOR_EPOCH_KEY = "vector_epoch"
STATUS_EPOCH_KEY = "status_epoch"
# The in-memory binary index loads this many keys at a time: the first batch in the search that
# needs it, the rest in the background (sqlite-vec answers until it is whole), each batch holding
# the store's lock for a few milliseconds only.
BIT_INDEX_BATCH = 5_000


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


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class SQLiteStore:
    """Procedures, trajectories and recall events in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._errors = driver.database_errors()
        self._conn = self._open()
        # The thread whose transaction is open, if any: the store is shared by threads, and a
        # write from one thread must not count as inside another thread's transaction.
        self._transaction_owner: int | None = None
        # Binary codes of the key vectors in memory, for the coarse search (see bit_index). Guarded
        # by the lock; `_bits_ready` once every key is in, `_bits_epoch` the vectors it reflects.
        self._bits: BitIndex | None = None
        self._bits_epoch: str | None = None
        self._bits_status_epoch: str | None = None
        self._bits_ready = False

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> Any:
        path = self.path
        if str(path) != ":memory:":
            if path.is_dir():
                raise StoreError(f"database path {path} is a directory; give a file path (MEMP_DB_PATH)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for the database {path}: {exc.strerror}") from None
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
        try:
            return self._prepare(driver.connect(path, immutable=True), read_only=True)
        except self._errors as exc:
            raise self._open_error(str(exc)) from None

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
                current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
                if int(current) < LATEST_VERSION:
                    raise StoreError(
                        f"{path} is read-only and from an older memp-mcp (schema {current}, this one needs "
                        f"{LATEST_VERSION}); open it once where it can be written to upgrade it"
                    )
                return conn
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(driver.BUSY_TIMEOUT_SECONDS * 1000)}")
            # Read-only checks first: a file that is not ours, or is from a newer memp-mcp, must be
            # left byte for byte as it was (switching it to WAL would already rewrite its header).
            self._check_existing(conn)
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
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
        self._check_not_too_new(int(current))

    def _check_not_too_new(self, current: int) -> None:
        if current > LATEST_VERSION:
            raise SchemaTooNewError(
                f"{self.path} has schema version {current}, newer than this memp-mcp understands "
                f"({LATEST_VERSION}); upgrade memp-mcp (pip install -U memp-mcp)"
            )

    def _migrate(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            # Checked again under the write lock: another process may have migrated meanwhile.
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
            self._check_not_too_new(int(current))
            for version, name, sql in MIGRATIONS:
                if version <= current:
                    continue
                logger.info("applying migration %03d_%s to %s", version, name, self.path)
                for statement in _split_sql(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, _now()),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def engine_description(self) -> str:
        vec_version = self._execute("SELECT vec_version()").fetchone()[0]
        return f"{driver.driver_name()} with sqlite-vec {vec_version}"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions --------------------------------------------------------------------

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
                raise StoreError(f"cannot write to {self.path}: {exc}") from None
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
                self._rollback()
                raise StoreError(f"cannot write to {self.path}: {exc}") from None

    def _rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already done so (it does after some errors)."""
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> _Result:
        with self._lock:
            try:
                # Read whole under the lock: a cursor stepped after the lock is released would run
                # inside whatever transaction another thread has opened on this shared connection
                # since, and could return its rows before they are rolled back.
                return _Result(self._conn.execute(sql, params))
            except self._errors as exc:
                message = str(exc)
                if "readonly" in message or "disk" in message or "full" in message:
                    raise StoreError(f"cannot write to {self.path}: {message}") from None
                raise

    def _write(self) -> None:
        if self._transaction_owner != threading.get_ident():
            raise RuntimeError("store writes must run inside store.transaction()")

    # -- meta and embedding model ---------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._write()
        self._execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def schema_version(self) -> int:
        return int(self._execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0])

    def embedding_model(self) -> tuple[str, int] | None:
        """The (model name, dimension) the stored vectors were made with, if any."""
        name, dim = self.get_meta("embedding_model"), self.get_meta("embedding_dim")
        return None if name is None or dim is None else (name, int(dim))

    def bind_embedding_model(self, name: str, dim: int) -> None:
        """Record the model for this database, or check it is the one already recorded.

        Raises EmbeddingModelMismatchError when the database's vectors come from another model.
        """
        with self.transaction():
            if self.embedding_model() is None:
                self._set_meta("embedding_model", name)
                self._set_meta("embedding_dim", str(dim))
                self._create_vector_table(dim)
            self.check_embedding_model(name, dim)

    def check_embedding_model(self, name: str, dim: int) -> None:
        bound = self.embedding_model()
        if bound is not None and bound != (name, dim):
            raise model_mismatch(self.location, bound, name, dim)

    def _create_vector_table(self, dim: int) -> None:
        self._write()
        self._execute("DROP TABLE IF EXISTS key_vectors")
        self._execute(
            "CREATE VIRTUAL TABLE key_vectors USING vec0("
            "key_id INTEGER PRIMARY KEY, namespace TEXT PARTITION KEY, active INTEGER, "
            f"+procedure_id INTEGER, embedding bit[{int(dim)}])"
        )
        self._execute("UPDATE procedure_keys SET has_vector = 0, vector = NULL")

    def reindex(
        self,
        name: str,
        dim: int,
        embed: Callable[[list[str]], Sequence[Vector]],
        progress: ProgressCallback | None = None,
        batch_size: int = 64,
    ) -> int:
        """Replace every vector with one from model `name`. Returns the count.

        The texts are embedded first, outside any transaction (that can take minutes, and other
        processes sharing the file must be able to write meanwhile); the old vectors are then
        swapped for the new ones in one transaction, so the file never mixes two models. Keys
        added during the embedding are left without a vector, for the engine's backfill.
        """
        rows = self._execute("SELECT id, text FROM procedure_keys ORDER BY id").fetchall()
        embedded: list[tuple[int, Vector]] = []
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            vectors = embed([str(text) for _, text in batch])
            embedded += [(int(key_id), v) for (key_id, _), v in zip(batch, vectors, strict=True)]
            if progress:
                progress(min(start + batch_size, len(rows)), len(rows))
        with self.transaction():
            self._set_meta("embedding_model", name)
            self._set_meta("embedding_dim", str(dim))
            self._create_vector_table(dim)
            self._store_key_vectors(embedded)
        return len(rows)

    def has_keys_without_vectors(self) -> bool:
        """Whether any key waits for a vector (an index keeps this cheap enough for every recall)."""
        return self._execute("SELECT 1 FROM procedure_keys WHERE has_vector = 0 LIMIT 1").fetchone() is not None

    def keys_without_vectors(self, limit: int = 10_000) -> list[tuple[int, str]]:
        rows = self._execute(
            "SELECT id, text FROM procedure_keys WHERE has_vector = 0 ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def store_key_vectors(self, vectors: list[tuple[int, Vector]]) -> None:
        """Give existing keys their vectors (a backfill: new keys get theirs through add_keys)."""
        with self.transaction():
            self._store_key_vectors(vectors)

    def _store_key_vectors(self, vectors: list[tuple[int, Vector]]) -> None:
        """Set the vectors of existing keys (a backfill or a reindex; the database's trigger marks the
        change in the vector epoch, for processes that hold codes in memory)."""
        self._write()
        dim = self._bound_dim()
        for key_id, vector in vectors:
            exact = _serialized(vector, dim)
            row = self._execute(
                "SELECT p.id, p.namespace, p.status FROM procedure_keys k JOIN procedures p "
                "ON p.id = k.procedure_id WHERE k.id = ?",
                (key_id,),
            ).fetchone()
            if row is None:
                continue
            self._index_key_vector(key_id, int(row[0]), str(row[1]), row[2] == ProcedureStatus.ACTIVE, exact)
            self._execute("UPDATE procedure_keys SET has_vector = 1, vector = ? WHERE id = ?", (exact, key_id))

    def _bound_dim(self) -> int:
        bound = self.embedding_model()
        if bound is None:
            raise StoreError("no embedding model is bound to this database")
        return bound[1]

    def _index_key_vector(self, key_id: int, procedure_id: int, namespace: str, active: bool, exact: bytes) -> None:
        # The vector table holds one bit per dimension (sign), searched by Hamming distance;
        # the exact vector stays with the key for rescoring.
        self._execute("DELETE FROM key_vectors WHERE key_id = ?", (key_id,))
        self._execute(
            "INSERT INTO key_vectors (key_id, namespace, active, procedure_id, embedding) "
            "VALUES (?, ?, ?, ?, vec_quantize_binary(?))",
            (key_id, namespace, int(active), procedure_id, exact),
        )

    def has_vector_table(self) -> bool:
        row = self._execute("SELECT 1 FROM sqlite_master WHERE name = 'key_vectors'").fetchone()
        return row is not None

    # -- namespaces ----------------------------------------------------------------------

    def ensure_namespace(self, namespace: str) -> None:
        self._write()
        self._execute(
            "INSERT INTO namespaces (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (namespace, _now()),
        )

    def namespaces(self) -> list[str]:
        return [str(r[0]) for r in self._execute("SELECT name FROM namespaces ORDER BY name").fetchall()]

    def namespace_exists(self, namespace: str) -> bool:
        return self._execute("SELECT 1 FROM namespaces WHERE name = ?", (namespace,)).fetchone() is not None

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
        self._write()
        self.ensure_namespace(namespace)
        cursor = self._execute(
            "INSERT INTO trajectories (namespace, task, steps_json, outcome, score, agent, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                namespace,
                task,
                _json([s.model_dump(exclude_none=True) for s in steps]),
                outcome.value,
                score,
                agent,
                _now(),
            ),
        )
        return int(cursor.lastrowid)

    def get_trajectory(self, trajectory_id: int) -> Trajectory:
        row = self._execute(
            f"SELECT {mapping.TRAJECTORY_COLUMNS} FROM trajectories WHERE id = ?", (trajectory_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no trajectory with id {trajectory_id}")
        return mapping.trajectory(row)

    def count_trajectories(self, namespace: str | None = None) -> int:
        if namespace is None:
            return int(self._execute("SELECT COUNT(*) FROM trajectories").fetchone()[0])
        return int(self._execute("SELECT COUNT(*) FROM trajectories WHERE namespace = ?", (namespace,)).fetchone()[0])

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
        self._write()
        self.ensure_namespace(namespace)
        now = _now()
        cursor = self._execute(
            "INSERT INTO procedures (namespace, title, when_to_use, steps_json, pitfalls_json, source, author, "
            "exemplar_trajectory_id, support_count, created_at, updated_at, candidate_of) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                namespace,
                title,
                when_to_use,
                _json(list(steps)),
                _json(list(pitfalls)),
                source,
                author,
                exemplar_trajectory_id,
                max(1, len(source_trajectory_ids)),
                now,
                now,
                candidate_of,
            ),
        )
        procedure_id = int(cursor.lastrowid)
        for trajectory_id in source_trajectory_ids:
            self._execute(
                "INSERT OR IGNORE INTO procedure_sources (procedure_id, trajectory_id) VALUES (?, ?)",
                (procedure_id, trajectory_id),
            )
        self.add_keys(procedure_id, keys)
        self._refresh_fts(procedure_id)
        return procedure_id

    def add_keys(self, procedure_id: int, keys: Sequence[tuple[str, Vector | None]]) -> int:
        """Add search keys (text, optional vector) to a procedure; returns how many were new.

        A new key is inserted with its vector (not given one later), so that it reaches processes
        holding codes in memory as a new key id, not as a change to every vector.
        """
        self._write()
        added = 0
        owner = self._execute("SELECT namespace, status FROM procedures WHERE id = ?", (procedure_id,)).fetchone()
        dim = self._bound_dim() if self.has_vector_table() and any(v is not None for _, v in keys) else None
        for text, vector in keys:
            exact = _serialized(vector, dim) if vector is not None and dim is not None else None
            cursor = self._execute(
                "INSERT OR IGNORE INTO procedure_keys (procedure_id, text, has_vector, vector) VALUES (?, ?, ?, ?)",
                (procedure_id, text, int(exact is not None), exact),
            )
            if cursor.rowcount != 1:
                continue
            added += 1
            if exact is not None and owner is not None:
                active = owner[1] == ProcedureStatus.ACTIVE
                self._index_key_vector(int(cursor.lastrowid), procedure_id, str(owner[0]), active, exact)
        if added:
            self._refresh_fts(procedure_id)
        return added

    def keys(self, procedure_id: int) -> list[str]:
        rows = self._execute(
            "SELECT text FROM procedure_keys WHERE procedure_id = ? ORDER BY id", (procedure_id,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def add_sources(self, procedure_id: int, trajectory_ids: Sequence[int]) -> None:
        """Credit more trajectories as evidence for a procedure (a merge)."""
        self._write()
        for trajectory_id in trajectory_ids:
            cursor = self._execute(
                "INSERT OR IGNORE INTO procedure_sources (procedure_id, trajectory_id) VALUES (?, ?)",
                (procedure_id, trajectory_id),
            )
            if cursor.rowcount == 1:
                self._execute(
                    "UPDATE procedures SET support_count = support_count + 1, updated_at = ? WHERE id = ?",
                    (_now(), procedure_id),
                )

    def _refresh_fts(self, procedure_id: int) -> None:
        # Indexed: what the procedure is for (title, when-to-use, the tasks it served), not its
        # steps: step text (commands, "go to", "take") is shared by unrelated procedures and only
        # lengthens every posting list a query walks.
        row = self._execute("SELECT title, when_to_use FROM procedures WHERE id = ?", (procedure_id,)).fetchone()
        self._execute("DELETE FROM procedure_fts WHERE rowid = ?", (procedure_id,))
        if row is None:
            return
        body = fts_document(row[0], row[1], *self.keys(procedure_id))
        self._execute("INSERT INTO procedure_fts (rowid, body) VALUES (?, ?)", (procedure_id, body))

    def get_procedure(self, procedure_id: int) -> Procedure:
        row = self._execute(
            f"SELECT {mapping.PROCEDURE_COLUMNS} FROM procedures WHERE id = ?", (procedure_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no procedure with id {procedure_id}")
        return self._procedure(row)

    def candidates_of(self, procedure_id: int) -> list[Procedure]:
        """The candidates proposed to replace a procedure's steps, oldest first."""
        found = self._execute(
            "SELECT id FROM procedures WHERE candidate_of = ? ORDER BY id", (procedure_id,)
        ).fetchall()
        return self.get_procedures([int(r[0]) for r in found])

    def get_procedures(self, procedure_ids: Sequence[int]) -> list[Procedure]:
        """Procedures in the order of `procedure_ids`; unknown ids are skipped."""
        if not procedure_ids:
            return []
        marks = ",".join("?" * len(procedure_ids))
        rows = self._execute(
            f"SELECT {mapping.PROCEDURE_COLUMNS} FROM procedures WHERE id IN ({marks})", tuple(procedure_ids)
        ).fetchall()
        by_id = {int(r[0]): r for r in rows}
        sources = self._sources_for([int(r[0]) for r in rows])
        return [self._procedure(by_id[i], sources.get(i, [])) for i in procedure_ids if i in by_id]

    def outcome_counts(self, procedure_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(successes, failures) of each known procedure's current version, for scoring before loading it
        in full."""
        if not procedure_ids:
            return {}
        marks = ",".join("?" * len(procedure_ids))
        rows = self._execute(
            f"SELECT id, version_success_count, version_failure_count FROM procedures WHERE id IN ({marks})",
            tuple(procedure_ids),
        ).fetchall()
        return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def _sources_for(self, procedure_ids: Sequence[int]) -> dict[int, list[int]]:
        if not procedure_ids:
            return {}
        marks = mapping.placeholders(len(procedure_ids))
        return mapping.grouped(
            self._execute(
                "SELECT procedure_id, trajectory_id FROM procedure_sources "
                f"WHERE procedure_id IN ({marks}) ORDER BY procedure_id, trajectory_id",
                tuple(procedure_ids),
            ).fetchall()
        )

    def _procedure(self, row: Sequence[Any], sources: list[int] | None = None) -> Procedure:
        procedure_id = int(row[0])
        if sources is None:
            sources = self._sources_for([procedure_id]).get(procedure_id, [])
        return mapping.procedure(row, sources)

    def list_procedures(
        self,
        namespace: str | None = None,
        status: ProcedureStatus | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Procedure]:
        clauses: list[str] = []
        params: list[Any] = []
        if namespace is not None:
            clauses.append("namespace = ?")
            params.append(namespace)
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        if text:
            # A plain substring filter: LIKE with its wildcards escaped, never FTS syntax.
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("(title LIKE ? ESCAPE '\\' OR when_to_use LIKE ? ESCAPE '\\')")
            params += [f"%{escaped}%", f"%{escaped}%"]
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._execute(
            f"SELECT id FROM procedures {where} ORDER BY id LIMIT ? OFFSET ?", (*params, limit, offset)
        ).fetchall()
        return self.get_procedures([int(r[0]) for r in rows])

    def count_procedures(self, namespace: str | None = None, status: ProcedureStatus | None = None) -> int:
        clauses, params = [], []
        if namespace is not None:
            clauses.append("namespace = ?")
            params.append(namespace)
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return int(self._execute(f"SELECT COUNT(*) FROM procedures {where}", params).fetchone()[0])

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
        """Change a procedure's content, keeping the previous content (and its outcome record) as a version.

        With `fresh_record` the new version's success and failure counts start from zero; the
        procedure's totals over all versions are kept either way. Returns the new state.
        """
        self._write()
        current = self.get_procedure(procedure_id)
        self._execute(
            "INSERT INTO procedure_versions (procedure_id, version, title, when_to_use, steps_json, pitfalls_json, "
            "reason, changed_by, created_at, success_count, failure_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        if fresh_record:
            self._execute(
                "UPDATE procedures SET version_success_count = 0, version_failure_count = 0 WHERE id = ?",
                (procedure_id,),
            )
        self._execute(
            "UPDATE procedures SET title = ?, when_to_use = ?, steps_json = ?, pitfalls_json = ?, source = ?, "
            "version = version + 1, updated_at = ? WHERE id = ?",
            (
                current.title if title is None else title,
                current.when_to_use if when_to_use is None else when_to_use,
                _json(list(current.steps if steps is None else steps)),
                _json(list(current.pitfalls if pitfalls is None else pitfalls)),
                current.source if source is None else source,
                _now(),
                procedure_id,
            ),
        )
        self._refresh_fts(procedure_id)
        return self.get_procedure(procedure_id)

    def versions(self, procedure_id: int) -> list[ProcedureVersion]:
        found = self._execute(
            f"SELECT {mapping.VERSION_COLUMNS} FROM procedure_versions WHERE procedure_id = ? ORDER BY version",
            (procedure_id,),
        ).fetchall()
        return [mapping.version(r) for r in found]

    def set_status(self, procedure_id: int, status: ProcedureStatus) -> None:
        self._write()
        self.get_procedure(procedure_id)
        self._execute(
            "UPDATE procedures SET status = ?, updated_at = ? WHERE id = ?", (status.value, _now(), procedure_id)
        )
        if self.has_vector_table():
            # One key at a time: vec0 refuses an UPDATE whose WHERE holds a subquery
            # ("UPDATE on partition key columns are not supported yet").
            key_ids = self._execute(
                "SELECT id FROM procedure_keys WHERE procedure_id = ? AND has_vector = 1", (procedure_id,)
            ).fetchall()
            for (key_id,) in key_ids:
                self._execute(
                    "UPDATE key_vectors SET active = ? WHERE key_id = ?",
                    (int(status == ProcedureStatus.ACTIVE), key_id),
                )

    def bump_stats(self, procedure_id: int, *, retrieved: int = 0, succeeded: int = 0, failed: int = 0) -> None:
        self._write()
        self._execute(
            "UPDATE procedures SET retrieved_count = retrieved_count + ?, success_count = success_count + ?, "
            "failure_count = failure_count + ?, version_success_count = version_success_count + ?, "
            "version_failure_count = version_failure_count + ? WHERE id = ?",
            (retrieved, succeeded, failed, succeeded, failed, procedure_id),
        )

    # -- search --------------------------------------------------------------------------

    def vector_search(self, namespace: str, vector: Vector, k: int) -> list[tuple[int, float]]:
        """Active procedures nearest to `vector`: (procedure id, cosine similarity), best first.

        A procedure's similarity is that of its nearest key.
        """
        if not self.has_vector_table():
            return []
        bound = self.embedding_model()
        if bound is not None and len(vector) != bound[1]:
            raise InvalidInputError(f"query vector has {len(vector)} dimensions, the database uses {bound[1]}")
        # Coarse search over binary-quantised keys (48 bytes each for 384 dimensions), several
        # keys per wanted procedure; then exact cosine on the float vectors of those keys.
        query = np.asarray(vector, dtype=np.float32)
        coarse = min(max(1, k) * COARSE_OVERSAMPLING, MAX_KNN)
        key_ids = self._nearest_keys_in_memory(namespace, query.tobytes(), coarse, bound)
        if key_ids is None:
            key_ids = [
                int(r[0])
                for r in self._execute(
                    "SELECT key_id FROM key_vectors WHERE embedding MATCH vec_quantize_binary(?) AND k = ? "
                    "AND namespace = ? AND active = 1",
                    (query.tobytes(), coarse, namespace),
                ).fetchall()
            ]
        if not key_ids:
            return []
        marks = ",".join("?" * len(key_ids))
        # The in-memory index does not track status: deprecated procedures are dropped here. CROSS JOIN
        # keeps SQLite from starting at the namespace's procedures (a scan of all of them: ~45 ms at 100k).
        exact = self._execute(
            "SELECT k.procedure_id, k.vector FROM procedure_keys k CROSS JOIN procedures p ON p.id = k.procedure_id "
            f"WHERE k.id IN ({marks}) AND k.vector IS NOT NULL AND p.namespace = ? AND p.status = 'active'",
            (*key_ids, namespace),
        ).fetchall()
        if not exact:
            return []
        matrix = np.frombuffer(b"".join(bytes(r[1]) for r in exact), dtype=np.float32).reshape(len(exact), -1)
        norms = np.linalg.norm(matrix, axis=1) * (float(np.linalg.norm(query)) or 1.0)
        similarities = (matrix @ query) / np.where(norms == 0, 1.0, norms)
        best: dict[int, float] = {}
        for (procedure_id, _), similarity in zip(exact, similarities.tolist(), strict=True):
            if similarity > best.get(int(procedure_id), -2.0):
                best[int(procedure_id)] = similarity
        return sorted(best.items(), key=lambda item: -item[1])[:k]

    def _nearest_keys_in_memory(
        self, namespace: str, query: bytes, count: int, bound: tuple[str, int] | None
    ) -> list[int] | None:
        """The coarse search over the in-memory codes, or None when sqlite-vec must answer: while
        the index loads, and after a failure to load it (it is built again at the next search).
        `bound` is the database's model, as the caller read it."""
        with self._lock:
            if self._conn.in_transaction:
                return self._nearest_keys_in_transaction(namespace, query, count)
            if bound is None:
                return None
            recoverable: tuple[type[BaseException], ...] = (ValueError, *self._errors)
            try:
                index = self._current_bit_index(bound[1])
                if index is None:
                    return None
                return index.nearest(namespace, self._binary_code(query), count)
            except recoverable as exc:
                logger.warning("in-memory vector index dropped (sqlite-vec answers meanwhile): %s", exc)
                self._bits = None
                return None

    def _nearest_keys_in_transaction(self, namespace: str, query: bytes, count: int) -> list[int] | None:
        """Inside a write transaction the index is read but never loaded (what the transaction wrote
        may yet be rolled back): its nearest committed keys, plus every key newer than it holds, for
        the exact rescoring to judge. None (sqlite-vec answers) when the index is not current."""
        index = self._bits
        if index is None or not self._bits_ready:
            return None
        epochs = (self.get_meta(VECTOR_EPOCH_KEY) or "", self.get_meta(STATUS_EPOCH_KEY) or "")
        if epochs != (self._bits_epoch, self._bits_status_epoch):
            return None
        newer = self._execute(
            "SELECT id FROM procedure_keys WHERE id > ? AND vector IS NOT NULL LIMIT ?",
            (index.last_key_id, count + 1),
        ).fetchall()
        if len(newer) > count:
            return None  # too many keys it has not seen to pass them all to rescoring
        return index.nearest(namespace, self._binary_code(query), count) + [int(r[0]) for r in newer]

    def _binary_code(self, query: bytes) -> bytes:
        """A float32 vector's binary code, quantised by sqlite-vec exactly as the stored keys were."""
        return bytes(self._execute("SELECT vec_quantize_binary(?)", (query,)).fetchone()[0])

    def _current_bit_index(self, dim: int) -> BitIndex | None:
        """The in-memory index brought up to date with the database, or None while it loads."""
        # Each epoch is read before the data it tags: a change racing with the load costs at most
        # one more load, never stale codes.
        epoch = self.get_meta(VECTOR_EPOCH_KEY) or ""
        if self._bits is None or epoch != self._bits_epoch:
            index = BitIndex(dim // 8)
            self._bits, self._bits_epoch, self._bits_status_epoch, self._bits_ready = index, epoch, None, False
            if self._load_bits(index):
                threading.Thread(
                    target=self._load_remaining_bits, args=(index,), name="bit-index-load", daemon=True
                ).start()
            else:
                self._bits_ready = True
        if not self._bits_ready:
            return None
        while self._load_bits(self._bits):  # keys other processes (or this one) added since
            pass
        status_epoch = self.get_meta(STATUS_EPOCH_KEY) or ""
        if status_epoch != self._bits_status_epoch:
            inactive = self._execute(
                "SELECT k.id FROM procedures p CROSS JOIN procedure_keys k ON k.procedure_id = p.id "
                "WHERE p.status != 'active'"
            ).fetchall()
            self._bits.set_inactive([int(r[0]) for r in inactive])
            self._bits_status_epoch = status_epoch
        return self._bits

    def _load_bits(self, index: BitIndex) -> bool:
        """Add the next batch of keys (by id) to `index`; True when there may be more."""
        rows = self._execute(
            "SELECT k.id, p.namespace, vec_quantize_binary(k.vector), p.status FROM procedure_keys k "
            "CROSS JOIN procedures p ON p.id = k.procedure_id "
            "WHERE k.id > ? AND k.vector IS NOT NULL ORDER BY k.id LIMIT ?",
            (index.last_key_id, BIT_INDEX_BATCH),
        ).fetchall()
        index.add(
            [int(r[0]) for r in rows],
            [str(r[1]) for r in rows],
            [bytes(r[2]) for r in rows],
            [r[3] == ProcedureStatus.ACTIVE for r in rows],
        )
        return len(rows) == BIT_INDEX_BATCH

    def _load_remaining_bits(self, index: BitIndex) -> None:
        """Fill `index` batch by batch, releasing the lock between batches so recalls go on."""
        try:
            while True:
                with self._lock:
                    if self._bits is not index:
                        return  # the vectors changed meanwhile; a newer index has taken over
                    if not self._load_bits(index):
                        self._bits_ready = True
                        return
        except Exception as exc:  # a thread's top: whatever failed (store closed, file gone), sqlite-vec answers
            logger.warning("in-memory vector index not loaded (sqlite-vec answers meanwhile): %s", exc)
            with self._lock:
                if self._bits is index:
                    self._bits = None  # built again at the next search

    def key_vectors(self, procedure_ids: Sequence[int]) -> dict[int, list[list[float]]]:
        """Every key vector of the given procedures."""
        return {
            pid: [np.frombuffer(blob, dtype=np.float32).tolist() for _, blob in keys]
            for pid, keys in self.keys_with_vectors(procedure_ids).items()
        }

    def keys_with_vectors(self, procedure_ids: Sequence[int]) -> dict[int, list[tuple[str, bytes]]]:
        """Each procedure's embedded keys as (text, float32 vector bytes as sqlite-vec stores them)."""
        if not procedure_ids or not self.has_vector_table():
            return {}
        marks = ",".join("?" * len(procedure_ids))
        rows = self._execute(
            "SELECT procedure_id, text, vector FROM procedure_keys "
            f"WHERE procedure_id IN ({marks}) AND vector IS NOT NULL",
            tuple(procedure_ids),
        ).fetchall()
        result: dict[int, list[tuple[str, bytes]]] = {}
        for procedure_id, text, blob in rows:
            result.setdefault(int(procedure_id), []).append((str(text), bytes(blob)))
        return result

    def procedures_with_key(self, namespace: str, text: str, *, include_deprecated: bool = False) -> list[int]:
        """Active (or all) procedures that have exactly this key text (the merge check without vectors)."""
        status = "" if include_deprecated else "AND p.status = 'active' "
        rows = self._execute(
            # CROSS JOIN: start from the key's text index, not from every procedure of the namespace.
            "SELECT p.id FROM procedure_keys k CROSS JOIN procedures p ON p.id = k.procedure_id "
            f"WHERE k.text = ? AND p.namespace = ? {status}ORDER BY p.id",
            (text, namespace),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def trajectory_tasks(self, trajectory_ids: Sequence[int]) -> dict[int, str]:
        if not trajectory_ids:
            return {}
        marks = ",".join("?" * len(trajectory_ids))
        rows = self._execute(
            f"SELECT id, task FROM trajectories WHERE id IN ({marks})", tuple(trajectory_ids)
        ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def procedure_texts(self, procedure_ids: Sequence[int]) -> dict[int, str]:
        """The text each procedure is indexed by for keyword search."""
        if not procedure_ids:
            return {}
        marks = ",".join("?" * len(procedure_ids))
        rows = self._execute(
            f"SELECT rowid, body FROM procedure_fts WHERE rowid IN ({marks})", tuple(procedure_ids)
        ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many procedures' indexed text contains each term."""
        return {term: self._document_frequency(term) for term in terms}

    def _document_frequency(self, term: str) -> int:
        quoted = '"' + term.replace('"', '""') + '"'
        try:
            return int(
                self._execute("SELECT COUNT(*) FROM procedure_fts WHERE procedure_fts MATCH ?", (quoted,)).fetchone()[0]
            )
        except self._errors:
            return 0

    def indexed_count(self) -> int:
        """Procedures in the full-text index (all namespaces)."""
        return int(self._execute("SELECT COUNT(*) FROM procedures").fetchone()[0])

    def keyword_search(self, namespace: str, terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        """Active procedures whose indexed text holds any of `terms`: (id, score), best first.

        The score is the negated bm25 rank, so larger is better.
        """
        match_query = fts_match_query("", list(terms))
        if match_query is None:
            return []
        # FTS5 ranks fastest on its own (ORDER BY rank); the best few times k matches are ranked
        # there and filtered by namespace and status after. When the filter leaves too few, the
        # whole match is ranked with the filter inside.
        shortlist = k * 4
        ranked_first = (
            "SELECT p.id, -f.rank FROM (SELECT rowid, rank FROM procedure_fts WHERE procedure_fts MATCH ? "
            "ORDER BY rank LIMIT ?) f JOIN procedures p ON p.id = f.rowid "
            "WHERE p.namespace = ? AND p.status = 'active' ORDER BY f.rank LIMIT ?"
        )
        filtered_first = (
            "SELECT p.id, -bm25(procedure_fts) AS score FROM procedure_fts "
            "JOIN procedures p ON p.id = procedure_fts.rowid "
            "WHERE procedure_fts MATCH ? AND p.namespace = ? AND p.status = 'active' ORDER BY score DESC LIMIT ?"
        )
        try:
            rows = self._execute(ranked_first, (match_query, shortlist, namespace, k)).fetchall()
            if len(rows) < k:
                total = self._execute(
                    "SELECT COUNT(*) FROM procedure_fts WHERE procedure_fts MATCH ?", (match_query,)
                ).fetchone()[0]
                if total > shortlist:
                    rows = self._execute(filtered_first, (match_query, namespace, k)).fetchall()
        except self._errors as exc:
            # The statements are fixed, so a failure here is the expression's fault.
            raise InvalidInputError(
                f"not a valid full-text query: {match_query!r} ({exc}); build it with text.fts_match_query"
            ) from None
        return [(int(r[0]), float(r[1])) for r in rows]

    def random_procedures(self, namespace: str, k: int, rng: random.Random) -> list[int]:
        ids = [
            int(r[0])
            for r in self._execute(
                "SELECT id FROM procedures WHERE namespace = ? AND status = 'active' ORDER BY id", (namespace,)
            ).fetchall()
        ]
        return rng.sample(ids, min(k, len(ids)))

    # -- recall events -------------------------------------------------------------------

    def add_recall_event(
        self, event_id: str, namespace: str, task: str, procedure_ids: Sequence[int], strategy: str
    ) -> None:
        self._write()
        self._execute(
            "INSERT INTO recall_events (id, namespace, task, procedure_ids_json, strategy, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, namespace, task, _json(list(procedure_ids)), strategy, _now()),
        )
        for procedure_id in procedure_ids:
            self.bump_stats(procedure_id, retrieved=1)

    def get_recall_event(self, event_id: str) -> RecallEvent:
        row = self._execute(
            f"SELECT {mapping.RECALL_EVENT_COLUMNS} FROM recall_events WHERE id = ?", (event_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no recall with id {event_id!r}; pass the recall_id that recall_procedure returned")
        return mapping.recall_event(row)

    def mark_recall_reported(self, event_id: str, success: bool) -> bool:
        """Mark a recall reported; False when it already was (another report came first)."""
        self._write()
        cursor = self._execute(
            "UPDATE recall_events SET reported = 1, success = ? WHERE id = ? AND reported = 0", (int(success), event_id)
        )
        return int(cursor.rowcount) == 1

    # -- statistics and checks -----------------------------------------------------------

    def stats(self, namespace: str) -> NamespaceStats:
        return NamespaceStats(
            namespace=namespace,
            trajectories=self.count_trajectories(namespace),
            procedures_active=self.count_procedures(namespace, ProcedureStatus.ACTIVE),
            procedures_deprecated=self.count_procedures(namespace, ProcedureStatus.DEPRECATED),
            recalls=int(
                self._execute("SELECT COUNT(*) FROM recall_events WHERE namespace = ?", (namespace,)).fetchone()[0]
            ),
        )

    def integrity_problems(self) -> list[str]:
        """Disagreements between rows and indexes, plus SQLite's own integrity check. Empty when sound."""
        problems = [str(r[0]) for r in self._execute("PRAGMA integrity_check").fetchall() if r[0] != "ok"]
        fts_ids = {int(r[0]) for r in self._execute("SELECT rowid FROM procedure_fts").fetchall()}
        row_ids = {int(r[0]) for r in self._execute("SELECT id FROM procedures").fetchall()}
        if fts_ids != row_ids:
            problems.append(f"full-text index covers {len(fts_ids)} procedures, table has {len(row_ids)}")
        if self.has_vector_table():
            vector_keys = {int(r[0]) for r in self._execute("SELECT key_id FROM key_vectors").fetchall()}
            flagged = {
                int(r[0]) for r in self._execute("SELECT id FROM procedure_keys WHERE has_vector = 1").fetchall()
            }
            if vector_keys != flagged:
                problems.append(f"vector index holds {len(vector_keys)} keys, {len(flagged)} are marked embedded")
        return problems


def _serialized(vector: Vector, dim: int) -> bytes:
    """A key's exact vector as stored (float32), after checking it has the database's dimension."""
    check_dimension(vector, dim)
    return bytes(sqlite_vec.serialize_float32(vector))


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements: comment lines dropped first, then split on ';'
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
