"""Keyword search: a tsvector PostgreSQL generates from each procedure's search text, under a GIN
index, ranked by ts_rank."""

from __future__ import annotations

import re
from collections.abc import Sequence

from memp_mcp.store.postgres.connection import PostgresConnection, clean

TEXT_SEARCH_CONFIG = "english"
# A term of letters and digits only (text.keywords makes terms of these).
_PLAIN_WORD = re.compile(r"[^\W_]+")


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
        if all(_PLAIN_WORD.fullmatch(t) for t in terms):
            # Words only (what the engine's terms are): one statement whatever their number, which the
            # driver prepares once per connection, with the query a function in FROM so the prepared
            # plan stays fast (~0.7 ms against ~6 ms for an OR of a dozen tsqueries at 1,000
            # procedures, same results). websearch_to_tsquery gives a word exactly what
            # plainto_tsquery gives it, and "or" between words is the only operator in the text.
            source, params = f"websearch_to_tsquery('{TEXT_SEARCH_CONFIG}', %s) AS q", [" or ".join(terms)]
        else:
            # Anything else is read by plainto_tsquery, term by term, as plain text (no operators).
            query = " || ".join([f"plainto_tsquery('{TEXT_SEARCH_CONFIG}', %s)"] * len(terms))
            source, params = f"(SELECT {query}) AS t(q)", terms
        found = self._rows(
            f"SELECT id, ts_rank(search, q) AS score FROM procedures, {source} "
            "WHERE search @@ q AND namespace = %s AND status = 'active' ORDER BY score DESC, id LIMIT %s",
            (*params, namespace, k),
        )
        return [(int(r[0]), float(r[1])) for r in found]

    def document_frequencies(self, terms: Sequence[str], at_most: int | None = None) -> dict[str, int]:
        if not terms:
            return {}
        # Counting stops at `at_most` rows: each match costs a visit to its row (GIN cannot answer a count
        # alone), and a common word matched thousands (8 such words: ~110 ms at 100,000 procedures, ~35
        # counted up to 2,001).
        found = self._rows(
            "SELECT t, (SELECT COUNT(*) FROM (SELECT 1 FROM procedures "
            f"WHERE search @@ plainto_tsquery('{TEXT_SEARCH_CONFIG}', t) LIMIT %s) AS matches) "
            "FROM unnest(%s::text[]) AS t",
            (at_most, [clean(t) for t in terms]),
        )
        return {str(r[0]): int(r[1]) for r in found}

    def indexed_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM procedures")
