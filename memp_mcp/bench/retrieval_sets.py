"""The retrieval benchmark's own evaluation sets, beside the public one.

Written for this project and shipped in `bench/data/`:
- household paraphrases: requests reworded from tasks stored in the public benchmark's ALFWorld
  trajectories, sharing no content word with the task they reword (a tuning part and a held-out
  part);
- coding: a small memory of coding and operations procedures, with reworded requests (a part the
  relevance rules were revisited with, and a held-out part written after);
- non-English: requests in other languages (and mixed) for the coding procedures;
- unrelated: tasks no stored procedure serves, asked of both memories together (a tuning part
  and two held-out parts, one of them sharing a word with coding work on purpose); the right
  answer is nothing.

Which sets the retrieval defaults were tuned on is recorded here (`EvalSet.tuning`) and printed
with every figure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from memp_mcp.models import Step

Corpus = Literal["alfworld", "coding", "both"]

# ALFWorld task descriptions, by kind: (kind, pattern with the object and receptacle as groups).
_ALFWORLD_TASKS = (
    ("two", r"(?:find two|put two) (\w+) (?:and put them )?(?:in|on) (\w+)"),
    ("clean", r"(?:clean some (\w+) and put it|put a clean (\w+)) (?:in|on) (\w+)"),
    ("heat", r"(?:heat some (\w+) and put it|put a hot (\w+)) (?:in|on) (\w+)"),
    ("cool", r"(?:cool some (\w+) and put it|put a cool (\w+)) (?:in|on) (\w+)"),
    ("look", r"(?:look at (\w+) under the desklamp|examine the (\w+) with the desklamp)"),
    ("place", r"put (?:a|some) (\w+) (?:in|on) (\w+)"),
)
EXACT_TASK, SAME_KIND_AND_OBJECT = 10.0, 6.0


@dataclass(frozen=True)
class CorpusTask:
    id: str
    task: str
    steps: list[Step]


@dataclass(frozen=True)
class SetQuery:
    id: str
    text: str
    # trajectory id -> graded relevance (the public benchmark's 6..10 scale); empty: nothing fits.
    relevance: dict[str, float]


@dataclass(frozen=True)
class EvalSet:
    name: str
    corpus: Corpus
    queries: list[SetQuery]
    tuning: bool

    @property
    def unrelated(self) -> bool:
        return not any(q.relevance for q in self.queries)


def _data(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(resources.files("memp_mcp.bench").joinpath("data", name).read_text("utf-8"))
    return loaded


def alfworld_signature(task: str) -> tuple[str, ...] | None:
    """(kind, object[, receptacle]) of an ALFWorld task description, or None when it is not one."""
    text = task.strip().rstrip(".").lower()
    for kind, pattern in _ALFWORLD_TASKS:
        match = re.fullmatch(pattern, text)
        if match:
            return (kind, *(g for g in match.groups() if g))
    return None


def household_paraphrase_sets(stored: dict[str, str]) -> list[EvalSet]:
    """The tuning and held-out household paraphrase sets, judged against `stored` (id -> task)."""
    signatures = {tid: alfworld_signature(task) for tid, task in stored.items()}
    by_split: dict[str, list[SetQuery]] = {"tuning": [], "held_out": []}
    for item in _data("household_paraphrases.json")["queries"]:
        wanted = tuple(item["wants"])
        relevance = {}
        for tid, signature in signatures.items():
            if signature == wanted:
                relevance[tid] = EXACT_TASK
            elif signature is not None and signature[:2] == wanted[:2]:
                relevance[tid] = SAME_KIND_AND_OBJECT
        by_split[item["split"]].append(SetQuery(item["id"], item["text"], relevance))
    return [
        EvalSet("household paraphrases (tuning)", "alfworld", by_split["tuning"], tuning=True),
        EvalSet("household paraphrases (held out)", "alfworld", by_split["held_out"], tuning=False),
    ]


@cache
def coding_corpus() -> list[CorpusTask]:
    return [
        CorpusTask(item["id"], item["task"], [Step(action=a, observation=o) for a, o in item["steps"]])
        for item in _data("coding_corpus.json")["tasks"]
    ]


def _judged(items: list[dict[str, Any]]) -> list[SetQuery]:
    return [SetQuery(q["id"], q["text"], dict.fromkeys(q["relevant"], EXACT_TASK)) for q in items]


def coding_sets() -> list[EvalSet]:
    """The coding requests: those the relevance rules were revisited with in view (tuning), and
    those written after, without looking at a result (held out)."""
    queries = _data("coding_corpus.json")["queries"]
    return [
        EvalSet(
            f"coding and operations ({'tuning' if split == 'tuning' else 'held out'})",
            "coding",
            _judged([q for q in queries if q["split"] == split]),
            tuning=split == "tuning",
        )
        for split in ("tuning", "held_out")
    ]


def multilingual_set() -> EvalSet:
    return EvalSet("non-English", "coding", _judged(_data("multilingual.json")["queries"]), tuning=False)


def unrelated_sets() -> list[EvalSet]:
    queries = _data("unrelated.json")["queries"]
    names = {
        "tuning": "unrelated (tuning)",
        "held_out": "unrelated (held out)",
        "held_out_shared": "unrelated, sharing a word with coding work (held out)",
    }
    return [
        EvalSet(
            name,
            "both",
            [SetQuery(q["id"], q["text"], {}) for q in queries if q["split"] == split],
            tuning=split == "tuning",
        )
        for split, name in names.items()
    ]


def own_sets(alfworld_tasks: dict[str, str]) -> list[EvalSet]:
    """Every set of this project's own, in the order they are reported."""
    return [*household_paraphrase_sets(alfworld_tasks), *coding_sets(), multilingual_set(), *unrelated_sets()]
