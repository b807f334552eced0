"""The right memory or none: what the prompt hook injects must reach the relevance floor on its own.

A project's procedures all name the project's package and main functions, and the model scores any
request naming them close to any of them: a bug-fix prompt that names `render_table` reached cosine
0.45 with a docs-page procedure (0.16 without the name). One word in common, a name included, is no
evidence that a procedure fits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from memp_mcp.config import load_settings
from memp_mcp.embedding import FastEmbedEmbedder
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.retrieve import RetrievalTuning
from memp_mcp.hooks.handlers import run_hook
from memp_mcp.store import SQLiteStore

DOCS_TASK = "write the documentation page for tablewright's render_table"
DOCS_STEPS = [
    {"action": "Read: tablewright/core.py", "observation": "def render_table(rows, columns): ..."},
    {"action": "Write: docs/usage.md", "observation": "File created successfully at: docs/usage.md"},
    {"action": "Bash: mkdocs build --strict", "observation": "INFO - Documentation built in 0.41 seconds"},
]
DIM = 64
FLOOR = RetrievalTuning().semantic_floor


class PhraseEmbedder:
    """The stored tasks (`anchors`) share one axis; a text holding one of `phrases` has that cosine with
    them (the highest, when it holds several); every other text has an axis of its own (cosine 0)."""

    identity = "phrase@1"
    dim = DIM

    def __init__(self, anchors: Sequence[str], phrases: dict[str, float]) -> None:
        self.anchors = {a.lower() for a in anchors}
        self.phrases = phrases

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vector = [0.0] * DIM
            cosine = max((c for p, c in self.phrases.items() if p in text), default=0.0)
            if text.lower() in self.anchors:
                vector[0] = 1.0
            else:
                vector[0] = cosine
                vector[1 + hash(text) % (DIM - 1)] = math.sqrt(1 - cosine * cosine)
            out.append(vector)
        return out


def docs_memory(path: Path, phrases: dict[str, float]) -> Memory:
    memory = Memory(SQLiteStore(path), PhraseEmbedder([DOCS_TASK], phrases))
    memory.record(DOCS_TASK, DOCS_STEPS, "success")
    return memory


def test_a_name_shared_with_a_procedure_does_not_carry_it_over_the_floor(tmp_path: Path) -> None:
    # The model's score comes from the name alone: without it, the request resembles nothing stored.
    memory = docs_memory(tmp_path / "m.db", {"render_table": FLOOR + 0.1, "explain to users how to call": FLOOR + 0.05})
    assert memory.recall("fix the crash in render_table when a row is empty").procedures == []
    assert memory.recall("Behebe den Fehler in render_table, wenn die Tabelle leer ist").procedures == []
    # A request that resembles the procedure beyond the name it shares still gets it.
    assert [p.exemplar_task for p in memory.recall("explain to users how to call render_table").procedures] == [
        DOCS_TASK
    ]
    # And so does one sharing more than the name, on its cosine as before.
    assert memory.recall("update the documentation page of render_table").procedures


def test_an_identifier_is_one_word_in_common_for_the_words_under_the_floor(tmp_path: Path) -> None:
    # Under the floor but within the words rule's reach: "render_table" used to count as two words.
    memory = docs_memory(tmp_path / "m.db", {"crashes on an empty row": FLOOR - 0.08})
    assert memory.recall("render_table crashes on an empty row").procedures == []


def test_keyword_recall_needs_more_than_one_shared_word(tmp_path: Path) -> None:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), None)
    memory.record(DOCS_TASK, DOCS_STEPS, "success")
    assert memory.recall("render_table Fehler beheben").procedures == []  # half its keywords, one name
    assert memory.recall("fix tablewright").procedures == []
    assert memory.recall("tablewright documentation page").procedures


RELEASE = "publish a new release of the package"
RELEASE_STEPS = [
    {"action": "python -m build", "observation": "built dist/pkg-1.5.tar.gz and the wheel"},
    {"action": "twine upload dist/*", "observation": "uploaded"},
]
WORDED_AFTER_THE_STEPS = "build the wheel and upload it with twine"


class OneMemory:
    """The hooks' Memories over one Memory the test built (with the embedder it chose)."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    @contextmanager
    def open(self, namespace: str) -> Iterator[Any]:
        yield self.memory


def prompt_hook(tmp_path: Path, memory: Memory, prompt: str) -> str | None:
    """What the prompt hook injects for `prompt` from `memory` (its namespace: the hooks')."""
    settings = load_settings(environ={"MEMP_DB_PATH": str(tmp_path / "m.db"), "MEMP_HOOK_NAMESPACE": "default"})
    payload = {"session_id": "s", "cwd": str(tmp_path), "hook_event_name": "UserPromptSubmit", "prompt": prompt}
    reply = run_hook(json.dumps(payload).encode(), settings, OneMemory(memory))
    return None if reply is None else str(json.loads(reply)["hookSpecificOutput"]["additionalContext"])


def test_the_prompt_hook_injects_nothing_that_fits_only_under_the_floor(tmp_path: Path) -> None:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), PhraseEmbedder([RELEASE], {WORDED_AFTER_THE_STEPS: FLOOR - 0.1}))
    memory.record(RELEASE, RELEASE_STEPS, "success")
    # Asked through the tool, the words of its steps still offer it, its relevance shown to weigh.
    asked = memory.recall(WORDED_AFTER_THE_STEPS).procedures
    assert [p.exemplar_task for p in asked] == [RELEASE] and asked[0].relevance < FLOOR
    # Injected unasked into a prompt: only what reaches the floor.
    assert prompt_hook(tmp_path, memory, WORDED_AFTER_THE_STEPS) is None
    assert "floor" in memory.events(last=1)[0].summary and "nothing fits" in memory.events(last=1)[0].summary


BUG_FIX_PROMPTS = [
    "Fix the crash in render_table when a row has fewer cells than the header",
    "tablewright raises KeyError on an empty column name, fix it",
    "render_table drops the last column when the terminal is narrow",
    "Behebe den Fehler in render_table, wenn die Tabelle leer ist",
    "tablewright: Absturz bei leerer Eingabe beheben",
]


@pytest.mark.real_model
def test_with_the_model_bug_fix_prompts_naming_the_package_get_no_docs_procedure(
    tmp_path: Path, real_embedder: FastEmbedEmbedder
) -> None:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), real_embedder)
    memory.record(DOCS_TASK, DOCS_STEPS, "success")
    for prompt in BUG_FIX_PROMPTS:
        assert prompt_hook(tmp_path, memory, prompt) is None, (prompt, memory.events(last=1)[0].summary)
    for prompt in (
        "update the tablewright docs page for render_table's new align option",
        "add a usage page to the tablewright documentation",
    ):
        injected = prompt_hook(tmp_path, memory, prompt)
        assert injected is not None and "<procedure id=" in injected, prompt
