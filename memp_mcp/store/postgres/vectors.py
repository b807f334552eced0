"""Keys' vectors in pgvector: the embedding model a database is bound to, the `vector(dim)` column
under an HNSW index (cosine), reindex and backfill, and the nearest-procedure search."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import psycopg

from memp_mcp.errors import InvalidInputError, StoreError
from memp_mcp.store import rows as mapping
from memp_mcp.store.base import ProgressCallback, Vector, check_dimension, embed_keys, model_mismatch
from memp_mcp.store.postgres.connection import PostgresConnection

# Keys the HNSW index returns per procedure wanted: a procedure has several keys, and is as near as
# its nearest one. An index detail, not retrieval policy: what it takes to return the k nearest
# procedures the engine asked for (memp_mcp.engine.retrieve decides how many candidates it wants).
KEYS_PER_PROCEDURE = 3


class KeyVectors(PostgresConnection):
    """The vector side of the store."""

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
        return self._select_one("SELECT 1 FROM procedure_keys WHERE embedding IS NULL LIMIT 1") is not None

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
        dim = self._bound_dim()
        self._modify_many(
            "UPDATE procedure_keys SET embedding = %s WHERE id = %s",
            [(as_vector(v, dim), key_id) for key_id, v in vectors],
        )

    def _insert_keys(
        self, procedure_id: int, namespace: str, active: bool, keys: Sequence[tuple[str, Vector | None]]
    ) -> int:
        """Insert keys that are new to the procedure, in one round trip; returns how many were new."""
        self._write()
        if not keys:
            return 0
        bound = self.embedding_model() if any(vector is not None for _, vector in keys) else None
        values = [
            (
                procedure_id,
                namespace,
                active,
                text,
                as_vector(vector, bound[1]) if vector is not None and bound is not None else None,
            )
            for text, vector in keys
        ]
        # A key it already has inserts nothing.
        return self._modify_many(
            "INSERT INTO procedure_keys (procedure_id, namespace, active, text, embedding) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (procedure_id, text) DO NOTHING",
            values,
        )

    def _set_keys_active(self, procedure_id: int, active: bool) -> None:
        self._modify("UPDATE procedure_keys SET active = %s WHERE procedure_id = %s", (active, procedure_id))

    def _bound_dim(self) -> int:
        bound = self.embedding_model()
        if bound is None:
            raise StoreError("no embedding model is bound to this database")
        return bound[1]

    def catch_up_vector_index(self) -> None:
        """Nothing to do: the HNSW index is the database's own."""

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


def as_vector(vector: Vector, dim: int, what: str = "vector") -> np.ndarray:
    check_dimension(vector, dim, what)
    return np.asarray(vector, dtype=np.float32)
