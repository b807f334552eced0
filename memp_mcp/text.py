"""Plain-text helpers shared by build and retrieve: words, keywords and safe full-text queries."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata

import snowballstemmer

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

STOPWORDS = frozenset(
    """a an the and or but if then else of in on at to for from by with without into onto over under
    is are was were be been being it its this that these those some any all each every two one
    i you he she we they me my your our their them us do does did done doing have has had
    can could should would will shall may might must not no so as than too very just also
    please task how what when where which who why up down out off again there here""".split()
)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits), in order."""
    return [w.lower() for w in _WORD.findall(text)]


_PORTER = snowballstemmer.stemmer("porter")
# FTS5's porter tokenizer passes through tokens shorter than 3 or longer than 64 characters.
_PORTER_MIN, _PORTER_MAX = 3, 64


@functools.lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """`word`'s stem as the full-text index (FTS5 `porter unicode61`) stores it, so that a term
    keyword search found is a term keyword scoring counts: "cups" -> "cup", "using" -> "us"."""
    # unicode61 drops diacritics ("über" -> "uber") before the porter step sees the token.
    folded = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    if not folded.isascii() or not _PORTER_MIN <= len(folded) <= _PORTER_MAX:
        return folded
    return str(_PORTER.stemWord(folded))


def keywords(text: str) -> list[str]:
    """Content words of `text`, in order, without duplicates or stopwords."""
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in STOPWORDS and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)


# A name written as one token of several words ("render_table", "tablewright.core"): one word to
# whoever wrote it, however many keywords it splits into.
_NAME = re.compile(r"[^\W_]+(?:[_.]+[^\W_]+)*", re.UNICODE)


def names(text: str) -> list[tuple[str, list[str]]]:
    """The words of `text` with a name of several words ("render_table") kept as one, each with its
    keywords; in order, without repeats, and leaving out those with no keyword (stopwords, numbers)."""
    seen: dict[str, list[str]] = {}
    for match in _NAME.finditer(text):
        name = match.group().lower()
        if name not in seen and (found := keywords(name)):
            seen[name] = found
    return list(seen.items())


# A token written as code: a path, a dotted or snake_case name, camelCase, a call.
_CODE_MARK = re.compile(r"[^\W_][_./][^\W_]|[a-z][A-Z]|[^\W_]\(")


def code_words(text: str) -> set[str]:
    """The words `text` writes inside code ("tablewright/core.py", "render_table", "cli.main()"),
    lower-cased: the names of a project's package, modules and functions, as its procedures cite them."""
    found: set[str] = set()
    for token in text.split():
        if _CODE_MARK.search(token):
            found.update(words(token))
    return found


def without_names(text: str, dropped: set[str]) -> str:
    """`text` without the names in `dropped` (lower-cased, as `names` gives them)."""
    kept = _NAME.sub(lambda m: "" if m.group().lower() in dropped else m.group(), text)
    return " ".join(kept.split())


def compounds(tokens: list[str]) -> list[str]:
    """Adjacent pairs written as one word ("desk lamp" -> "desklamp"), for names spelt either way."""
    return [a + b for a, b in itertools.pairwise(tokens) if len(a) > 1 and len(b) > 1]


def fts_terms(text: str) -> list[str]:
    """The terms a keyword search for `text` looks for: its keywords, then their compounds."""
    terms = keywords(text)
    return (terms + [c for c in compounds(terms) if c not in terms])[:64]


def fts_match_query(text: str, terms: list[str] | None = None) -> str | None:
    """An FTS5 MATCH expression for `text` (or for the given `terms`) that matches any of them.

    Every term is a double-quoted string, so nothing the user wrote can act as FTS5 syntax
    (operators, column filters, NEAR, prefix stars). Returns None when there is nothing to match.
    """
    terms = fts_terms(text) if terms is None else terms
    if not terms:
        return None
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms[:64])


def fts_document(*parts: str) -> str:
    """The text indexed for full-text search: the parts, plus their compounds."""
    body = "\n".join(p for p in parts if p)
    extra = compounds(keywords(body))
    return body + ("\n" + " ".join(extra) if extra else "")


def one_line(text: str) -> str:
    """Stored text made safe to place inside one rendered line: runs of whitespace (line breaks
    included) become one space, and other control, format and surrogate characters (terminal
    escapes, bidirectional overrides, zero-width marks) are dropped, so that text written by one
    agent cannot start a heading, a list item or a delimiter line in what another agent reads."""
    if text.isprintable() and "  " not in text and text == text.strip():
        return text  # nothing to change (no control, format or separator characters but single spaces)
    kept = "".join(c for c in text if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    return " ".join(kept.split())


def counted(count: int, noun: str) -> str:
    """ "1 step", "3 steps": a count with its noun (one that takes an s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def code_fence(text: str) -> str:
    """A Markdown fence that `text` cannot close: more backticks than its longest run of them (at least three)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def code_lines(text: str) -> str:
    """Stored code made safe to show between fences: its line breaks and indentation kept (tabs as four
    spaces), every other control, format and surrogate character dropped, as one_line drops them."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    kept = "".join(c for c in text if c == "\n" or unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    return "\n".join(line.rstrip() for line in kept.strip("\n").split("\n"))
