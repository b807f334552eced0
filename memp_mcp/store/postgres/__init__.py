"""The PostgreSQL store: the same memory in a database several servers share, with pgvector.

Vectors live in pgvector columns under an HNSW index (cosine); keyword search is PostgreSQL's
full-text search (a tsvector kept by the database, a GIN index, ranked by ts_rank).

Built as the SQLite store is (see memp_mcp.store.sqlite for why mixins): the shared SQL
(store/sql_store.py, spelt by `dialect`) over `connection` (pool, migrations, transactions under the
advisory write lock), `vectors` and `fulltext`, assembled here into `PostgresStore`.
"""

from __future__ import annotations

from collections.abc import Sequence

from memp_mcp.store.postgres.connection import is_database_url, redacted
from memp_mcp.store.postgres.fulltext import FullTextSearch
from memp_mcp.store.postgres.vectors import KeyVectors
from memp_mcp.store.sql_store import SQLStore

__all__ = ["PostgresStore", "is_database_url", "redacted"]

# Tables whose ids PostgreSQL generates: after a copy their sequences continue past the copied ids.
_IDENTITY_TABLES = ("trajectories", "procedures", "procedure_keys", "events", "task_arms")


class PostgresStore(SQLStore, KeyVectors, FullTextSearch):
    """Procedures, trajectories and recall events in a PostgreSQL database with pgvector."""

    def prepare_copy(self, model: tuple[str, int] | None) -> None:
        """Before rows are copied in with their ids and vectors (inside the copy's transaction): bind
        the vectors' `model`, if any, leaving the vector index to finish_copy (built once, after)."""
        if model is not None:
            self._set_meta("embedding_model", model[0])
            self._set_meta("embedding_dim", str(model[1]))
            self._prepare_vectors(model[1])

    def finish_copy(self, model: tuple[str, int] | None, tables: Sequence[str]) -> None:
        """After rows were copied in (inside the copy's transaction): new ids continue past the copied
        ones, the vectors get their index, and the planner its statistics of `tables`."""
        for table in _IDENTITY_TABLES:
            self._modify(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )
        if model is not None:
            self._index_vectors()
        # In the copy's transaction, so they commit with it or not at all: until autovacuum got to a
        # copy, the planner knew nothing of its rows and planned the vector and keyword searches as
        # scans of every row (recalls of ~320 ms at 100,000 procedures against ~27 ms once analysed).
        self._modify(f"ANALYZE {', '.join(sorted(tables))}")

    def integrity_problems(self) -> list[str]:
        """Disagreements between rows and what search reads. Empty when sound."""
        problems = []
        drifted = self._select_count(
            "SELECT COUNT(*) FROM procedure_keys k JOIN procedures p ON p.id = k.procedure_id "
            "WHERE k.namespace <> p.namespace OR k.active <> (p.status = 'active')"
        )
        if drifted:
            problems.append(f"{drifted} search keys disagree with their procedure's namespace or status")
        unindexed = self._select_count("SELECT COUNT(*) FROM procedures WHERE search_text = ''")
        if unindexed:
            problems.append(f"{unindexed} procedures have no keyword-search text")
        bound = self.embedding_model()
        if bound is not None:
            index = self._select_one("SELECT to_regclass('procedure_keys_embedding')")
            # Whether any key has a vector: the first one found answers (a count read every key).
            embedded = self._select_one("SELECT 1 FROM procedure_keys WHERE embedding IS NOT NULL LIMIT 1") is not None
            if embedded and (index is None or index[0] is None):
                problems.append("the vector index (HNSW) is missing")
        return problems
