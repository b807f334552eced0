"""Text helpers: keywords, compounds and full-text queries that nothing a user writes can break."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memp_mcp.store import driver
from memp_mcp.text import compounds, fts_document, fts_match_query, keywords, stem, words


@pytest.fixture(scope="module")
def fts() -> Iterator[Any]:
    """An FTS5 table set up like the store's."""
    conn = driver.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE docs USING fts5(body, tokenize = 'porter unicode61')")
    for rowid, body in enumerate(
        ["put a clean mug on the coffee machine", "examine the book under the desk lamp", "NEAR the AND table"], 1
    ):
        conn.execute("INSERT INTO docs (rowid, body) VALUES (?, ?)", (rowid, fts_document(body)))
    yield conn
    conn.close()


def match(conn: Any, query: str) -> list[int]:
    return [r[0] for r in conn.execute("SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY rowid", (query,))]


def test_words_and_keywords() -> None:
    assert words("Put the Mug_1 on shelf-2!") == ["put", "the", "mug", "1", "on", "shelf", "2"]
    assert keywords("Put the mug on the shelf, then put the MUG in 2 drawers") == ["put", "mug", "shelf", "drawers"]
    assert keywords("Café: ÜBER straße") == ["café", "über", "straße"]


def test_compounds_join_adjacent_pairs() -> None:
    assert compounds(["desk", "lamp", "on"]) == ["desklamp", "lampon"]
    assert compounds(["a", "lamp", "x"]) == []  # single letters do not join
    assert compounds(["lamp"]) == []
    assert compounds([]) == []


def test_fts_match_query_quotes_every_term() -> None:
    query = fts_match_query('find the desk lamp NEAR(book) AND "x" OR title:*')
    # Keywords in order, then compounds of neighbouring words ("x" is too short to join).
    assert query == (
        '"find" OR "desk" OR "lamp" OR "near" OR "book" OR "x" OR "title" '
        'OR "finddesk" OR "desklamp" OR "lampnear" OR "nearbook"'
    )
    for term in query.split(" OR "):
        assert term.startswith('"') and term.endswith('"')
        assert '"' not in term[1:-1]


@pytest.mark.parametrize("text", ["", "   ", "the and of", "AND OR NOT", "?!*()\"'", "12 345", "_ __"])
def test_fts_match_query_is_none_when_nothing_to_match(text: str) -> None:
    assert fts_match_query(text) is None


def test_fts_match_query_caps_the_number_of_terms() -> None:
    query = fts_match_query(" ".join(f"word{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(200)))
    assert query is not None
    assert query.count(" OR ") + 1 == 64


def test_fts_queries_match_what_they_should(fts: Any) -> None:
    assert match(fts, fts_match_query("coffee") or "") == [1]
    assert match(fts, fts_match_query("desklamp") or "") == [2]  # compound in the document
    assert match(fts, fts_match_query("coffeemachine please") or "") == [1]
    assert match(fts, fts_match_query("examining books") or "") == [2]  # porter stems both sides
    # Words that are FTS5 operators are searched for as words.
    assert match(fts, fts_match_query("near") or "") == [3]
    assert match(fts, fts_match_query("table AND") or "") == [3]


@pytest.mark.parametrize(
    "hostile",
    ['"AND (', "NEAR(", "*", "'; DROP TABLE docs; --", "body:mug", "^mug", "mug*", "{body}: x", '\\"', "- + :"],
)
def test_hostile_text_never_breaks_the_query(fts: Any, hostile: str) -> None:
    query = fts_match_query(hostile + " mug")
    assert query is not None
    # The mug document is found; the operator-like words only match the document containing them.
    assert match(fts, query) == ([1, 3] if {"near", "table"} & set(keywords(hostile)) else [1])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_gives_a_valid_query_or_none(text: str) -> None:
    conn = driver.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE docs USING fts5(body, tokenize = 'porter unicode61')")
        conn.execute("INSERT INTO docs (body) VALUES (?)", (fts_document(text),))
        query = fts_match_query(text)
        if query is None:
            assert keywords(text) == []
        else:
            match(conn, query)  # must not raise
    finally:
        conn.close()


# Words a coding or household agent writes, chosen where stemmers differ: Porter2 (Snowball's
# "english") disagrees with FTS5's porter on "using", "deployed", "has", "generously", "spray".
STEMMER_WORDS = (
    "cups knives mugs dishes boxes glasses tests testing tested running runs dependencies dependency "
    "supported support versions deployed deploying deployment using used uses has was this is as gas "
    "news analysis generously generous relational quickly spray sprayed caresses ponies installed "
    "installing configures configuration migrations databases upgraded requirements builds failures "
    "fixes patched python py3 ci i18n x über naïve café résumés 数据库 mañana"
).split()


def test_stemmer_agrees_with_the_full_text_index_word_for_word() -> None:
    conn = driver.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE one USING fts5(body, tokenize = 'porter unicode61')")
    conn.execute("CREATE VIRTUAL TABLE terms USING fts5vocab(one, 'row')")
    disagreements = []
    for word in STEMMER_WORDS:
        conn.execute("DELETE FROM one")
        conn.execute("INSERT INTO one (body) VALUES (?)", (word,))
        (indexed,) = conn.execute("SELECT term FROM terms").fetchone()
        if stem(word) != indexed:
            disagreements.append((word, stem(word), indexed))
    conn.close()
    assert disagreements == []
    assert stem("cups") == stem("cup") and stem("tests") == stem("testing") == "test"
