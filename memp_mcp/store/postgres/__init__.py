"""The PostgreSQL store: the same memory in a database several servers share, with pgvector.

Vectors live in pgvector columns under an HNSW index (cosine); keyword search is PostgreSQL's
full-text search (a tsvector kept by the database, a GIN index, ranked by ts_rank).

Split by concern as the SQLite store is (see memp_mcp.store.sqlite for why mixins): `connection`
(pool, migrations, transactions under the advisory write lock), `vectors`, `fulltext`,
`procedures` and `history`, assembled here into `PostgresStore`.
"""

from __future__ import annotations

from memp_mcp.models import NamespaceStats, ProcedureStatus
from memp_mcp.store.postgres.connection import is_database_url, redacted
from memp_mcp.store.postgres.history import History
from memp_mcp.store.postgres.procedures import Procedures

__all__ = ["PostgresStore", "is_database_url", "redacted"]


class PostgresStore(Procedures, History):
    """Procedures, trajectories and recall events in a PostgreSQL database with pgvector."""

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
            # Whether any key has a vector: the first one found answers (a count read every key).
            embedded = self._one("SELECT 1 FROM procedure_keys WHERE embedding IS NOT NULL LIMIT 1") is not None
            if embedded and (index is None or index[0] is None):
                problems.append("the vector index (HNSW) is missing")
        return problems
