"""Keyword search: the FTS5 table (rowid = procedure id, Porter-stemmed), ranked by bm25."""

from __future__ import annotations

from collections.abc import Sequence

from memp_mcp.errors import InvalidInputError
from memp_mcp.store import rows as mapping
from memp_mcp.store.sqlite.connection import SQLiteConnection
from memp_mcp.text import fts_match_query


class FullTextIndex(SQLiteConnection):
    """What each procedure is found by in words, and the search over it."""

    def _index_document(self, procedure_id: int, body: str) -> None:
        """Replace the procedure's indexed text with `body`."""
        self._modify("DELETE FROM procedure_fts WHERE rowid = ?", (procedure_id,))
        self._modify("INSERT INTO procedure_fts (rowid, body) VALUES (?, ?)", (procedure_id, body))

    def procedure_texts(self, procedure_ids: Sequence[int]) -> dict[int, str]:
        """The text each procedure is indexed by for keyword search."""
        if not procedure_ids:
            return {}
        marks = mapping.placeholders(len(procedure_ids))
        rows = self._execute(
            f"SELECT rowid, body FROM procedure_fts WHERE rowid IN ({marks})", tuple(procedure_ids)
        ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def document_frequencies(self, terms: Sequence[str], at_most: int | None = None) -> dict[str, int]:
        """How many procedures' indexed text contains each term, counted up to `at_most` when given."""
        return {term: self._document_frequency(term, at_most) for term in terms}

    def _document_frequency(self, term: str, at_most: int | None) -> int:
        quoted = '"' + term.replace('"', '""') + '"'
        try:
            return int(
                self._execute(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM procedure_fts WHERE procedure_fts MATCH ? LIMIT ?)",
                    (quoted, -1 if at_most is None else at_most),
                ).fetchone()[0]
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
        # there and filtered by namespace and status after (an index detail: k is the engine's).
        # When the filter leaves too few, the whole match is ranked with the filter inside.
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
