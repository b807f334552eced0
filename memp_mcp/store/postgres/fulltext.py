"""Keyword search: a tsvector PostgreSQL generates from each procedure's search text, under a GIN
index, ranked by ts_rank."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from memp_mcp.store.postgres.connection import POOL_MAX_SIZE, PostgresConnection
from memp_mcp.store.postgres.dialect import clean

TEXT_SEARCH_CONFIG = "english"
# How far past a count bound the planner's sampled estimate must be for a word not to be counted: the
# sample (30,000 rows) puts a word's share within a few tenths of a percent, so a word estimated a
# quarter past the bound is past it.
SURELY_COMMON_MARGIN = 1.25
# How long the common lexemes read from the statistics are reused (as the engine's term statistics).
COMMON_LEXEMES_TTL_SECONDS = 300.0
# A term of letters and digits only (text.keywords makes terms of these).
_PLAIN_WORD = re.compile(r"[^\W_]+")


class FullTextSearch(PostgresConnection):
    """What each procedure is found by in words, and the search over it."""

    def __init__(self, url: str, *, pool_size: int = POOL_MAX_SIZE) -> None:
        super().__init__(url, pool_size=pool_size)
        # Per count bound: when the common lexemes were read, and which they were (see _surely_common).
        self._common_lexemes: dict[int, tuple[float, list[str]]] = {}

    def _index_document(self, procedure_id: int, body: str) -> None:
        self._modify("UPDATE procedures SET search_text = %s WHERE id = %s", (body, procedure_id))

    def set_search_texts(self, documents: Sequence[tuple[int, str]]) -> None:
        """Give procedures their search text, in one statement (a copy; inside a transaction)."""
        self._modify(
            "UPDATE procedures p SET search_text = t.body FROM unnest(%s::bigint[], %s::text[]) AS t(id, body) "
            "WHERE p.id = t.id",
            ([procedure_id for procedure_id, _ in documents], [clean(body) for _, body in documents]),
        )

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
        # With a bound, counting stops at it (without one, LIMIT NULL sets none): each match costs a visit
        # to its row (GIN cannot answer a count alone), and a common word matched thousands. A word the
        # planner's statistics already show well past the bound is not counted at all (see _surely_common).
        # At 100,000 procedures, for the words of 120 requests counted afresh: p50 45-47 ms counting each
        # up to 2,001, 13-15 ms so (two passes each), with the same words then chosen for every request.
        found = self._rows(
            "SELECT t, CASE WHEN cardinality(w.lexemes) = 1 AND w.lexemes[1] = ANY(%s::text[]) THEN %s "
            "ELSE (SELECT COUNT(*) FROM (SELECT 1 FROM procedures "
            f"WHERE search @@ plainto_tsquery('{TEXT_SEARCH_CONFIG}', t) LIMIT %s) AS matches) END "
            "FROM unnest(%s::text[]) AS t "
            f"CROSS JOIN LATERAL (SELECT tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', t)) AS lexemes) w",
            (
                [] if at_most is None else self._surely_common(at_most),
                at_most,
                at_most,
                [clean(t) for t in terms],
            ),
        )
        return {str(r[0]): int(r[1]) for r in found}

    def _surely_common(self, bound: int) -> list[str]:
        """The lexemes the planner's statistics show in well over `bound` procedures, read again after a
        while. ANALYZE keeps the ~1,000 commonest lexemes of the column with their share of a sample
        of rows; none when the table was never analysed, and then every word is counted."""
        now = time.monotonic()
        cached = self._common_lexemes.get(bound)
        if cached is not None and now - cached[0] < COMMON_LEXEMES_TTL_SECONDS:
            return cached[1]
        # The table as this connection resolves it (its schema, its row count); the shares array ends
        # with two more entries (the least and greatest share) than there are lexemes.
        rows = self._rows(
            "SELECT e.lexeme FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = 'search' "
            "CROSS JOIN LATERAL unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) "
            "AS e(lexeme, share) "
            "WHERE c.oid = 'procedures'::regclass AND e.lexeme IS NOT NULL "
            "AND e.share * GREATEST(c.reltuples, 0) > %s",
            (bound * SURELY_COMMON_MARGIN,),
        )
        lexemes = [str(r[0]) for r in rows]
        self._common_lexemes[bound] = (now, lexemes)
        return lexemes

    def indexed_count(self) -> int:
        return self._select_count("SELECT COUNT(*) FROM procedures")
