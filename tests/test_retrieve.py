"""The relevance decision of hybrid retrieval, with an embedder whose similarities the test sets."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from memp_mcp.config import load_settings
from memp_mcp.engine.memory import Memory, open_memory
from memp_mcp.engine.retrieve import RetrievalTuning
from memp_mcp.errors import InvalidInputError
from memp_mcp.store import SQLiteStore

STEPS = [{"action": "run the thing", "observation": "done"}]
DIM = 64


class TableEmbedder:
    """Every text gets its own axis (cosine 0 with any other text), except the texts the test
    places on a shared axis with a chosen cosine."""

    identity = "table@1"
    dim = DIM

    def __init__(self, similar: dict[str, tuple[str, float] | dict[str, float]] | None = None) -> None:
        # text -> the text it resembles and the cosine between them (or several such texts)
        self.similar = {
            text: dict([other]) if isinstance(other, tuple) else other for text, other in (similar or {}).items()
        }

    def _axis(self, text: str) -> int:
        return 1 + int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") % (DIM - 1)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vector = [0.0] * DIM
            if text in self.similar:
                for other, cosine in self.similar[text].items():
                    assert vector[self._axis(other)] == 0.0, "two resembled texts share an axis"
                    vector[self._axis(other)] = cosine
                vector[0] = math.sqrt(1 - sum(c * c for c in self.similar[text].values()))
            else:
                vector[self._axis(text)] = 1.0
            out.append(vector)
        return out


def _memory(tmp_path: Path, embedder: TableEmbedder) -> Memory:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), embedder)
    memory.record("raise the minimum supported python version", STEPS, "success")
    return memory


def test_a_rewording_sharing_no_word_fits_on_its_cosine_alone(tmp_path: Path) -> None:
    floor = RetrievalTuning().semantic_floor
    request = "drop support for old interpreters"
    close = TableEmbedder({request: ("raise the minimum supported python version", floor + 0.02)})
    assert [p.exemplar_task for p in _memory(tmp_path / "a", close).recall(request).procedures] == [
        "raise the minimum supported python version"
    ]
    far = TableEmbedder({request: ("raise the minimum supported python version", floor - 0.02)})
    assert _memory(tmp_path / "b", far).recall(request).procedures == []


def test_a_request_holding_the_stored_words_fits_even_when_the_model_scores_it_low(tmp_path: Path) -> None:
    memory = _memory(tmp_path, TableEmbedder())
    assert memory.recall("python: raise minimum supported version").procedures
    # Half the keywords is not enough without the model's say-so.
    assert memory.recall("raise the python cage door minimum height").procedures == []


def test_the_relevance_floor_setting_reaches_recall_and_bad_values_name_it(tmp_path: Path) -> None:
    request = "drop support for old interpreters"
    embedder = TableEmbedder({request: ("raise the minimum supported python version", 0.30)})
    by_default = open_memory(load_settings(environ={"MEMP_DB_PATH": str(tmp_path / "a.db")}), embedder=embedder)
    by_default.record("raise the minimum supported python version", STEPS, "success")
    assert by_default.recall(request).procedures == []
    lowered = load_settings(environ={"MEMP_DB_PATH": str(tmp_path / "a.db"), "MEMP_RELEVANCE_FLOOR": "0.25"})
    assert [p.exemplar_task for p in open_memory(lowered, embedder=embedder).recall(request).procedures] == [
        "raise the minimum supported python version"
    ]
    for bad in ("high", "1.5"):
        with pytest.raises(InvalidInputError, match="MEMP_RELEVANCE_FLOOR"):
            load_settings(environ={"MEMP_RELEVANCE_FLOOR": bad})


RELEASE = "publish a new release of the package"
RELEASE_STEPS = [
    {"action": "python -m build", "observation": "built dist/pkg-1.5.tar.gz and the wheel"},
    {"action": "twine upload dist/*", "observation": "uploaded"},
]


def _recall_release(db: Path, request: str, cosine: float) -> list[str | None]:
    """The tasks a memory holding only the release procedure recalls for `request`, when the model
    scores the two at `cosine`."""
    memory = Memory(SQLiteStore(db), TableEmbedder({request: (RELEASE, cosine)}))
    memory.record(RELEASE, RELEASE_STEPS, "success")
    return [p.exemplar_task for p in memory.recall(request).procedures]


def test_a_request_worded_after_the_steps_fits_under_the_floor(tmp_path: Path) -> None:
    tuning = RetrievalTuning()
    request = "build the wheel and upload it with twine"
    # Under the floor, but the procedure's steps hold three of the request's four keywords.
    assert _recall_release(tmp_path / "a.db", request, tuning.semantic_floor - 0.1) == [RELEASE]
    # The words alone do not make a procedure the model finds unrelated fit.
    assert _recall_release(tmp_path / "b.db", request, tuning.steps_evidence_cosine - 0.05) == []


def test_the_less_of_the_request_the_text_holds_the_closer_the_model_must_find_it(tmp_path: Path) -> None:
    tuning = RetrievalTuning()
    request = "build it, twine it, then email the whole team"  # two of its five keywords are in the steps
    assert _recall_release(tmp_path / "a.db", request, tuning.semantic_floor - 0.07) == [RELEASE]
    # With two keywords in five, a cosine just over the lowest one read is not enough: that takes half.
    assert _recall_release(tmp_path / "b.db", request, tuning.steps_evidence_cosine + 0.01) == []


def test_a_higher_floor_raises_the_lowest_cosine_the_words_can_lift(tmp_path: Path) -> None:
    request = "build the wheel and upload it with twine"  # three of its four keywords are in the steps
    embedder = TableEmbedder({request: (RELEASE, 0.25)})
    for floor, fits in ((None, True), ("0.51", False)):
        environ = {"MEMP_DB_PATH": str(tmp_path / f"{floor}.db")} | ({"MEMP_RELEVANCE_FLOOR": floor} if floor else {})
        memory = open_memory(load_settings(environ=environ), embedder=embedder)
        memory.record(RELEASE, RELEASE_STEPS, "success")
        assert bool(memory.recall(request).procedures) is fits, floor


def test_one_word_in_common_does_not_lift_a_procedure_over_the_floor(tmp_path: Path) -> None:
    floor = RetrievalTuning().semantic_floor
    task = "publish a new release of the package"
    steps = [{"action": "twine upload dist/*", "observation": "uploaded"}]
    request = "upload the holiday photos to the family album"
    memory = Memory(SQLiteStore(tmp_path / "m.db"), TableEmbedder({request: (task, floor - 0.02)}))
    memory.record(task, steps, "success")
    assert memory.recall(request).procedures == []


def test_a_word_shared_by_chance_does_not_outrank_a_closer_rewording(tmp_path: Path) -> None:
    rewording = "warm up my coffee cup and return it to the espresso maker"
    closer, sharing_a_word, sharing_half = (
        "heat some mug and put it in coffeemachine",
        "cool some cup and put it in shelf",
        "warm the coffee in a cup on the espresso stand",
    )
    embedder = TableEmbedder({rewording: {closer: 0.65, sharing_a_word: 0.6, sharing_half: 0.45}})
    memory = Memory(SQLiteStore(tmp_path / "m.db"), embedder)
    for task in (closer, sharing_a_word, sharing_half):
        memory.record(task, STEPS, "success")
    # "cup" is one of the request's six keywords: chance, not evidence; the closer rewording leads.
    # A key holding more of them ("warm", "coffee", "cup", "espresso") still earns its boost.
    assert [p.exemplar_task for p in memory.recall(rewording, k=3).procedures] == [sharing_half, closer, sharing_a_word]
