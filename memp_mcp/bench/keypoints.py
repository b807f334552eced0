"""Key points a later session is given: of what an expert judge found a session analysed, decided, changed
and checked (its variant's `keypoints.json`), the share that the text injected into its prompt says and
its prompt does not (`memp-mcp bench sessions`, beside its other figures).

Deterministic and model-free; the definition:

- A text's *terms* are its content words, stemmed (Porter, as the full-text index stems them, via
  memp_mcp.text.stem), without English function words (STOPWORDS below) and one-character words; and its
  code-ish tokens kept whole, lower-cased: a token with punctuation between two word characters (a path,
  a file name, a dotted or snake_case name, a version number such as 0.20.0, a URL), camelCase or
  PascalCase with an inner capital (JsonNode), a CLI flag (--offline-scan, -DskipTests), or an id with a
  hyphen before a digit (CVE-2021-23337). A code token is one term: its parts are not terms of their own.
- A text *says* a word term when one of its words has that stem (the parts of its own code tokens
  count, so "jackson-databind" says "jackson"); it says a code term when the term occurs in it as a
  whole token (not inside a longer word: "0.20.0" is not said by "0.20.01").
- A key point's terms that its variant's prompt says are dropped: the prompt already gives them, so
  a memory repeating them gives nothing. A key point left with no term (all its content is in the
  prompt) is not counted, for any of the texts compared.
- A counted key point with n terms left is *covered* by a text that says at least
  min(n, max(MIN_TERMS, ceil(COVERED_SHARE * n))) of them: all of one or two, two of three or four,
  half of more.
- A variant's coverage is the share of its counted key points covered; a family's is the mean over
  its later variants (those with a counted key point), and the overall figure the mean over every
  such variant.

The texts compared for each later variant (every variant of a family but its first):

- nothing injected: 0 by construction (an empty text says no term); computed like the others, as a check;
- what memp-mcp injects today (the prompt hook's additionalContext, whole, markup included), and the
  whole procedure memp built from the first variant (title, when to use, steps, pitfalls; what the
  injection is cut from);
- each SKILL.md of the family (`skills/<source>/<family>/<name>/SKILL.md`) as if it were the injected
  text; per source the skill with the best family coverage, and the best of the model-written sources
  (every source but `human_authored`, reported apart);
- the family's first variant's whole transcript as text (the prompt, user and assistant messages,
  thinking, tool calls with their input and tool results): what an extractor could at most take from
  the one session it learns from, the ceiling of extraction.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memp_mcp.text import STOPWORDS as RECALL_STOPWORDS
from memp_mcp.text import stem, words

COVERED_SHARE = 0.5
MIN_TERMS = 2
# A paragraph: a key point is said in one place, not pieced together from words scattered over a long
# text (another family's whole transcript covers most key points by its words alone).
PASSAGE_WORDS = 60
HUMAN_AUTHORED = "human_authored"
KEY_POINTS_FILE = "keypoints.json"

# English function words (the usual list of pronouns, articles, auxiliaries, prepositions and
# conjunctions, as NLTK's English list has them), beside the ones recall ignores: they say nothing of
# what a session did.
STOPWORDS = RECALL_STOPWORDS | frozenset(
    """about above after against am among because before below between both during few further
    more most nor only other own same such through until while whom yours yourself yourselves ours
    ourselves theirs themselves himself herself itself myself hers his her him once via per upon
    within whether either neither yet still even since""".split()
)

_PATH_STARTS = ("/", "./", "../", "~/")
_EDGE_PUNCTUATION = "\"'`()[]{}<>,;:!?*"
_CODE_TOKEN = re.compile(
    r"[^\W_][_./\\:][^\W_]"  # a path, file name, dotted or snake_case name, version number, URL
    r"|[a-z][A-Z]"  # camelCase, PascalCase with an inner capital
    r"|^--?[A-Za-z]"  # a CLI flag
    r"|[^\W_]-\d"  # an id such as CVE-2021-23337
)


@dataclass(frozen=True)
class Terms:
    """A text's terms: stems of its content words, and its code tokens kept whole."""

    stems: frozenset[str]
    code: frozenset[str]

    def __len__(self) -> int:
        return len(self.stems) + len(self.code)


def _tokens(text: str) -> Iterable[str]:
    for raw in text.split():
        token = raw.strip(_EDGE_PUNCTUATION).rstrip(".").strip(_EDGE_PUNCTUATION)
        if token:
            yield token


def _is_code(token: str) -> bool:
    # "e.g" and "i.e" have punctuation between letters but no part of two characters.
    if not _CODE_TOKEN.search(token) or not any(len(part) > 1 for part in words(token)):
        return False
    # "titles/abstracts" is prose for "titles or abstracts": a slash makes a path only with more to it.
    return bool(_CODE_TOKEN.search(token.replace("/", " "))) or token.startswith(_PATH_STARTS) or token.endswith("/")


def _stems(tokens: Iterable[str]) -> set[str]:
    return {stem(w) for token in tokens for w in words(token) if len(w) > 1 and w not in STOPWORDS}


def content_terms(text: str) -> Terms:
    """The terms of `text` (see the module docstring): what a key point is made of."""
    tokens = list(_tokens(text))
    code = {t.lower().rstrip("/") for t in tokens if _is_code(t)}
    return Terms(frozenset(_stems(t for t in tokens if not _is_code(t))), frozenset(code))


class Said:
    """What a text says, for looking terms up in it."""

    def __init__(self, text: str) -> None:
        tokens = list(_tokens(text))
        self.stems = frozenset(_stems(tokens))
        self.lowered = " ".join(tokens).lower()

    def says_code(self, term: str) -> bool:
        start = self.lowered.find(term)
        while start >= 0:
            end = start + len(term)
            before = self.lowered[start - 1] if start else " "
            after = self.lowered[end] if end < len(self.lowered) else " "
            if not _word_char(before) and not _word_char(after):
                return True
            start = self.lowered.find(term, start + 1)
        return False

    def terms_said(self, terms: Terms) -> int:
        return len(terms.stems & self.stems) + sum(self.says_code(term) for term in terms.code)


class Passages:
    """A given text as passages of PASSAGE_WORDS tokens, each overlapping the next by half, so that every
    run of up to half that length lies whole in one of them."""

    def __init__(self, text: str) -> None:
        tokens = list(_tokens(text))
        stride = PASSAGE_WORDS // 2
        starts = range(0, max(1, len(tokens) - stride), stride)
        self.passages = [Said(" ".join(tokens[start : start + PASSAGE_WORDS])) for start in starts]

    def covers(self, terms: Terms) -> bool:
        """Whether one passage says enough of `terms` (see `needed`)."""
        need = needed(len(terms))
        return any(passage.terms_said(terms) >= need for passage in self.passages)


def _word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def beyond_prompt(key_point: str, prompt: Said) -> Terms:
    """The terms of `key_point` that the prompt does not say."""
    terms = content_terms(key_point)
    return Terms(terms.stems - prompt.stems, frozenset(term for term in terms.code if not prompt.says_code(term)))


def needed(count: int) -> int:
    """How many of a key point's `count` terms (those beyond the prompt) a text must say to cover it."""
    return min(count, max(MIN_TERMS, math.ceil(COVERED_SHARE * count)))


@dataclass(frozen=True)
class VariantKeyPoints:
    """A later variant's key points, as the terms beyond its prompt of each one counted."""

    family: str
    variant: str
    counted: tuple[Terms, ...]
    said_by_prompt: int

    def covered(self, text: str | Passages) -> int:
        given = text if isinstance(text, Passages) else Passages(text)
        return sum(given.covers(terms) for terms in self.counted)

    def coverage(self, text: str | Passages) -> float:
        return self.covered(text) / len(self.counted) if self.counted else 0.0


def variant_key_points(family: str, variant: str, key_points: Sequence[str], prompt: str) -> VariantKeyPoints:
    said = Said(prompt)
    left = [beyond_prompt(point, said) for point in key_points]
    return VariantKeyPoints(family, variant, tuple(t for t in left if len(t)), sum(not len(t) for t in left))


def read_key_points(variant_folder: Path) -> list[str] | None:
    """The `key_point` of each entry of the variant's keypoints.json; None when it has none."""
    path = variant_folder / KEY_POINTS_FILE
    if not path.is_file():
        return None
    entries = json.loads(path.read_text(encoding="utf-8"))
    return [str(e["key_point"]) for e in entries if isinstance(e, dict) and e.get("key_point")]


def transcript_text(path: Path) -> str:
    """A Claude Code transcript (.jsonl, or .jsonl.gz) as text: every message's text and thinking, each tool
    call's name and the strings of its input (a command, a file written), each tool result's text."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    parts: list[str] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for raw in handle:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            message = entry.get("message") if isinstance(entry, dict) else None
            if isinstance(message, dict):
                parts.extend(_content_text(message.get("content")))
    return "\n".join(parts)


def _content_text(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
        return
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("text", "thinking"):
            yield str(block.get(kind, ""))
        elif kind == "tool_use":
            yield str(block.get("name", ""))
            yield from _strings(block.get("input"))
        elif kind == "tool_result":
            yield from _content_text(block.get("content"))


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def family_skills(dataset: Path, family: str) -> dict[str, dict[str, str]]:
    """The SKILL.md texts of `family` by source, each by the skill's folder name."""
    found: dict[str, dict[str, str]] = {}
    for skill in sorted((dataset / "skills").glob(f"*/{family}/*/SKILL.md")):
        source = skill.parent.parent.parent.name
        found.setdefault(source, {})[skill.parent.name] = skill.read_text(encoding="utf-8", errors="replace")
    return found


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


@dataclass(frozen=True)
class LaterVariant:
    """A family's variant after its first: its prompt, and the folder holding its keypoints.json."""

    family: str
    variant: str
    prompt: str
    folder: Path


def key_point_figures(
    dataset: Path,
    later: Sequence[LaterVariant],
    first_transcripts: Mapping[str, Path],
    injected: Mapping[tuple[str, str], str],
    procedures: Mapping[str, str],
) -> dict[str, Any]:
    """The coverage of the later variants' key points by each text compared (the module docstring), per
    family and overall. `first_transcripts` holds each family's first variant's transcript, `injected`
    what the prompt hook gave each later (family, variant), `procedures` the whole procedure memp built
    from each family's first variant."""
    scored: list[VariantKeyPoints] = []
    said_by_prompt = 0
    for entry in later:
        points = read_key_points(entry.folder)
        if points is None:
            continue
        variant = variant_key_points(entry.family, entry.variant, points, entry.prompt)
        said_by_prompt += variant.said_by_prompt
        if variant.counted:
            scored.append(variant)
    transcripts = {family: Passages(transcript_text(path)) for family, path in first_transcripts.items()}
    families: dict[str, Any] = {}
    per_variant: list[dict[str, Any]] = []
    overall: dict[str, list[float]] = {}
    for family in sorted({v.family for v in scored}):
        cases = [v for v in scored if v.family == family]
        procedure = Passages(procedures.get(family, ""))
        others = [given for other, given in transcripts.items() if other != family]
        figures: dict[str, list[float]] = {name: [] for name in COMPARED}
        for case in cases:
            row = {
                "nothing": case.coverage(""),
                "memp": case.coverage(injected.get((family, case.variant), "")),
                "memp_procedure": case.coverage(procedure),
                "transcript": case.coverage(transcripts.get(family, Passages(""))),
                "other_transcripts": sum(case.coverage(given) for given in others) / len(others) if others else 0.0,
            }
            for name, value in row.items():
                figures[name].append(value)
                overall.setdefault(name, []).append(value)
            per_variant.append(
                {"family": family, "variant": case.variant, "key_points": len(case.counted)}
                | {name: round(value, 3) for name, value in row.items()}
            )
        skills = _best_skills(family_skills(dataset, family), cases)
        model_written = [source for source in skills if source != HUMAN_AUTHORED]
        best_model = max(model_written, key=lambda source: skills[source][0]["coverage"] or 0.0, default=None)
        report: dict[str, Any] = {
            "variants": len(cases),
            "key_points": sum(len(c.counted) for c in cases),
            **{name: _mean(values) for name, values in figures.items()},
            "skills": {source: best for source, (best, _) in skills.items()},
            "best_model_written": {"source": best_model, **skills[best_model][0]} if best_model else None,
            "human_authored": skills[HUMAN_AUTHORED][0] if HUMAN_AUTHORED in skills else None,
        }
        if best_model:
            overall.setdefault("best_model_written", []).extend(skills[best_model][1])
        if HUMAN_AUTHORED in skills:
            overall.setdefault("human_authored", []).extend(skills[HUMAN_AUTHORED][1])
        families[family] = report
    return {
        "covered_share": COVERED_SHARE,
        "min_terms": MIN_TERMS,
        "passage_words": PASSAGE_WORDS,
        "variants": len(scored),
        "key_points": sum(len(v.counted) for v in scored),
        "said_by_prompt": said_by_prompt,
        "families": families,
        "overall": {name: _mean(values) for name, values in overall.items()},
        "per_variant": per_variant,
    }


# The texts every later variant is scored against, besides the skills.
COMPARED = ("nothing", "memp", "memp_procedure", "transcript", "other_transcripts")


def _best_skills(
    by_source: Mapping[str, Mapping[str, str]], cases: Sequence[VariantKeyPoints]
) -> dict[str, tuple[dict[str, Any], list[float]]]:
    """Per source, its skill with the best family coverage ({skill, coverage, chars}) and that skill's
    coverage of each case."""
    best: dict[str, tuple[dict[str, Any], list[float]]] = {}
    for source, skills in by_source.items():
        for name, text in skills.items():
            given = Passages(text)
            values = [case.coverage(given) for case in cases]
            mean = _mean(values)
            if source not in best or (mean or 0.0) > (best[source][0]["coverage"] or 0.0):
                best[source] = ({"skill": name, "coverage": mean, "chars": len(text)}, values)
    return best
