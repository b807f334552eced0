"""Keys' vectors: the embedding model a file is bound to, the sqlite-vec table of binary codes, the
exact float32 vector kept beside each key, reindex and backfill, and the nearest-procedure search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sqlite_vec

from memp_mcp.errors import InvalidInputError, StoreError
from memp_mcp.models import ProcedureStatus
from memp_mcp.store import rows as mapping
from memp_mcp.store.base import ProgressCallback, Vector, check_dimension, embed_keys, model_mismatch
from memp_mcp.store.sqlite.binary_codes import InMemoryCodes

# The largest k sqlite-vec accepts in a KNN query.
MAX_KNN = 4096
# Keys fetched by the coarse (binary) search per procedure wanted, before exact rescoring. An index
# detail, not retrieval policy: how many binary-code hits it takes to return the k nearest
# procedures the engine asked for (memp_mcp.engine.retrieve decides how many candidates it wants).
# Measured on a 20,000-key file (the synthetic 10k latency memory) with the 191 benchmark requests,
# against exact search: 3 keys per procedure found 69% of the true 20 nearest and the true first in
# 160 of 191 (0.76 ms per search); 10 found 86% and 179 of 191 (1.26 ms); 30 found 94% (3.3 ms).
COARSE_OVERSAMPLING = 10


class KeyVectors(InMemoryCodes):
    """The vector side of the store."""

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
        embedded = embed_keys(rows, embed, progress, batch_size)
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
            exact = serialized(vector, dim)
            row = self._execute(
                "SELECT p.id, p.namespace, p.status FROM procedure_keys k JOIN procedures p "
                "ON p.id = k.procedure_id WHERE k.id = ?",
                (key_id,),
            ).fetchone()
            if row is None:
                continue
            self._index_key_vector(key_id, int(row[0]), str(row[1]), row[2] == ProcedureStatus.ACTIVE, exact)
            self._execute("UPDATE procedure_keys SET has_vector = 1, vector = ? WHERE id = ?", (exact, key_id))

    def _insert_keys(
        self, procedure_id: int, namespace: str, active: bool, keys: Sequence[tuple[str, Vector | None]]
    ) -> int:
        """Insert the keys new to a procedure, each with its exact vector and binary code when given
        (and a model is bound); returns how many were new."""
        dim = self._bound_dim() if self.has_vector_table() and any(v is not None for _, v in keys) else None
        added = 0
        for text, vector in keys:
            exact = serialized(vector, dim) if vector is not None and dim is not None else None
            cursor = self._execute(
                "INSERT OR IGNORE INTO procedure_keys (procedure_id, text, has_vector, vector) VALUES (?, ?, ?, ?)",
                (procedure_id, text, int(exact is not None), exact),
            )
            if cursor.rowcount != 1:
                continue
            added += 1
            if exact is not None:
                self._index_key_vector(cursor.lastrowid, procedure_id, namespace, active, exact)
        return added

    def _set_keys_active(self, procedure_id: int, active: bool) -> None:
        if not self.has_vector_table():
            return
        # One key at a time: vec0 refuses an UPDATE whose WHERE holds a subquery
        # ("UPDATE on partition key columns are not supported yet").
        key_ids = self._execute(
            "SELECT id FROM procedure_keys WHERE procedure_id = ? AND has_vector = 1", (procedure_id,)
        ).fetchall()
        for (key_id,) in key_ids:
            self._execute("UPDATE key_vectors SET active = ? WHERE key_id = ?", (int(active), key_id))

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

    def catch_up_vector_index(self) -> None:
        """Load the keys committed since the in-memory index last looked (outside a transaction only).

        Inside a write transaction the index is read but never loaded, and once more keys are new to it
        than a search would rescore, sqlite-vec answers: ~2 ms at 700 keys and ~16 ms at 200,000, twice
        per record (the merge check and the lesson's neighbours). A record calls this before its write.
        """
        if self._conn.in_transaction or not self.has_vector_table():
            return
        bound = self.embedding_model()
        if bound is None:
            return
        with self._lock:
            try:
                self._current_bit_index(bound[1])
            except self._index_errors() as exc:
                self._drop_bits(exc)

    def has_vector_table(self) -> bool:
        row = self._execute("SELECT 1 FROM sqlite_master WHERE name = 'key_vectors'").fetchone()
        return row is not None

    def vector_search(self, namespace: str, vector: Vector, k: int) -> list[tuple[int, float]]:
        """Active procedures nearest to `vector`: (procedure id, cosine similarity), best first.

        A procedure's similarity is that of its nearest key.
        """
        if not self.has_vector_table():
            return []
        bound = self.embedding_model()
        if bound is not None and len(vector) != bound[1]:
            raise InvalidInputError(f"query vector has {len(vector)} dimensions, the database uses {bound[1]}")
        # The in-memory index ranks every key exactly while the file is small (binary_codes.py);
        # otherwise a coarse search over binary-quantised keys (48 bytes each for 384 dimensions),
        # several keys per wanted procedure. Then exact cosine on the float vectors of those keys.
        query = np.asarray(vector, dtype=np.float32)
        coarse = min(max(1, k) * COARSE_OVERSAMPLING, MAX_KNN)
        key_ids = self._nearest_keys_in_memory(namespace, query.tobytes(), k, coarse, bound)
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
        marks = mapping.placeholders(len(key_ids))
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
        marks = mapping.placeholders(len(procedure_ids))
        rows = self._execute(
            "SELECT procedure_id, text, vector FROM procedure_keys "
            f"WHERE procedure_id IN ({marks}) AND vector IS NOT NULL",
            tuple(procedure_ids),
        ).fetchall()
        result: dict[int, list[tuple[str, bytes]]] = {}
        for procedure_id, text, blob in rows:
            result.setdefault(int(procedure_id), []).append((str(text), bytes(blob)))
        return result


def serialized(vector: Vector, dim: int) -> bytes:
    """A key's exact vector as stored (float32), after checking it has the database's dimension."""
    check_dimension(vector, dim)
    return bytes(sqlite_vec.serialize_float32(vector))
