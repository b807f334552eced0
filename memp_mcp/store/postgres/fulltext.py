"""Keyword search: a tsvector PostgreSQL generates from each procedure's search text, under a GIN
index, ranked by ts_rank."""

from __future__ import annotations

from collections.abc import Sequence

from memp_mcp.store.postgres.connection import PostgresConnection, clean

TEXT_SEARCH_CONFIG = "english"


class FullTextSearch(PostgresConnection):
    """What each procedure is found by in words, and the search over it."""

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
            ([clean(t) for t in terms],),
        )
        return {str(r[0]): int(r[1]) for r in found}

    def indexed_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM procedures")
