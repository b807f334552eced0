"""The retrieval benchmark's own sets: what they claim about themselves, and the behaviour they
measure, with the real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from memp_mcp.bench.retrieval import calibrated_floor, load_dataset
from memp_mcp.bench.retrieval_sets import (
    alfworld_signature,
    coding_corpus,
    coding_sets,
    household_paraphrase_sets,
    multilingual_set,
    unrelated_sets,
)
from memp_mcp.embedding import FastEmbedEmbedder
from memp_mcp.engine.memory import Memory
from memp_mcp.store import SQLiteStore
from memp_mcp.text import compounds, keywords, stem, words
from tests.test_retrieval_bench import DATASET, needs_dataset


def _content_stems(text: str) -> set[str]:
    terms = keywords(text)
    return {stem(t) for t in terms} | {stem(c) for c in compounds(terms)}


def test_alfworld_tasks_are_read_as_kind_object_and_receptacle() -> None:
    assert alfworld_signature("put a clean soapbar in cabinet.") == ("clean", "soapbar", "cabinet")
    assert alfworld_signature("clean some soapbar and put it in cabinet.") == ("clean", "soapbar", "cabinet")
    assert alfworld_signature("find two laptop and put them in bed.") == ("two", "laptop", "bed")
    assert alfworld_signature("examine the cellphone with the desklamp.") == ("look", "cellphone")
    assert alfworld_signature("put some keychain on sofa.") == ("place", "keychain", "sofa")
    assert alfworld_signature("drop python 3.9 support") is None


@needs_dataset
def test_every_household_paraphrase_rewords_a_stored_task_without_sharing_a_content_word() -> None:
    trajectories, _ = load_dataset(DATASET)
    stored = {t.id: t.task for t in trajectories}
    sets = household_paraphrase_sets(stored)
    assert [s.tuning for s in sets] == [True, False]
    for eval_set in sets:
        for query in eval_set.queries:
            exact = [tid for tid, score in query.relevance.items() if score == max(query.relevance.values())]
            assert exact, f"{query.id} rewords no stored task"
            for tid in exact:
                shared = _content_stems(query.text) & {stem(w) for w in words(stored[tid])}
                assert not shared, f"{query.id} shares {shared} with {stored[tid]!r}"


def test_judged_sets_name_only_procedures_the_coding_corpus_has() -> None:
    ids = {task.id for task in coding_corpus()}
    sets = [*coding_sets(), multilingual_set()]
    assert [s.tuning for s in sets] == [True, False, False]
    for eval_set in sets:
        assert eval_set.queries
        for query in eval_set.queries:
            assert query.relevance and set(query.relevance) <= ids, query.id
    assert all(s.unrelated for s in unrelated_sets())


def test_calibrated_floor_leaves_the_asked_share_of_unrelated_tasks_below_it() -> None:
    scores = [0.1, 0.2, 0.25, 0.3, 0.31, 0.32, 0.33, 0.34, 0.35, 0.6]
    floor = calibrated_floor(scores, share=0.9)
    assert sum(s < floor for s in scores) == 9 and floor <= 0.36
    assert calibrated_floor([]) == 0.0


@pytest.fixture(scope="module")
def coding_memory(tmp_path_factory: pytest.TempPathFactory, real_embedder: FastEmbedEmbedder) -> Memory:
    memory = Memory(SQLiteStore(tmp_path_factory.mktemp("coding") / "m.db"), real_embedder)
    for task in coding_corpus():
        memory.record(task.task, task.steps, "success")
    return memory


@pytest.mark.real_model
def test_a_reworded_coding_request_finds_its_procedure(coding_memory: Memory) -> None:
    found = coding_memory.recall("drop Python 3.9 support", k=3)
    assert found.procedures, "nothing recalled"
    assert found.procedures[0].exemplar_task == "Raise the minimum supported Python version"
    found = coding_memory.recall("no space left on device on the production box", k=3)
    assert found.procedures and found.procedures[0].exemplar_task == "Free disk space on a server whose disk is full"


@pytest.mark.real_model
def test_a_request_naming_what_the_steps_use_finds_its_procedure(coding_memory: Memory) -> None:
    # The model scores this request under the floor against "Publish a new release of the package
    # to PyPI"; the procedure's steps ("twine upload dist/*") and title hold half its keywords.
    found = coding_memory.recall("ship 2.0 to the package index with twine", k=3)
    assert found.procedures and found.procedures[0].exemplar_task == "Publish a new release of the package to PyPI"
    # One word in common with a procedure's steps ("upload") is not enough.
    assert coding_memory.recall("upload the holiday photos to the family album", k=3).procedures == []


@pytest.mark.real_model
def test_a_request_the_model_scores_under_the_floor_finds_its_procedure_on_some_of_its_words(
    coding_memory: Memory,
) -> None:
    # Three of seven keywords in the steps ("kubectl describe deployment api", "rollout restart"),
    # with a cosine not far under the floor.
    found = coding_memory.recall("the api deployment keeps restarting and never becomes ready", k=3)
    assert found.procedures and found.procedures[0].exemplar_task == "Debug a Kubernetes pod stuck in CrashLoopBackOff"


@pytest.mark.real_model
def test_tasks_no_procedure_serves_get_nothing(coding_memory: Memory) -> None:
    for text in ("write a haiku about autumn leaves", "book a table for two at an Italian restaurant"):
        assert coding_memory.recall(text, k=5).procedures == [], text


@needs_dataset
@pytest.mark.real_model
def test_a_household_paraphrase_sharing_no_word_finds_its_task(
    tmp_path: Path, real_embedder: FastEmbedEmbedder
) -> None:
    trajectories, _ = load_dataset(DATASET)
    memory = Memory(SQLiteStore(tmp_path / "m.db"), real_embedder)
    ids = {}
    for trajectory in trajectories:
        if (
            alfworld_signature(trajectory.task) in {("clean", "dishsponge", "cabinet"), ("cool", "plate", "shelf")}
            or (alfworld_signature(trajectory.task) or ("",))[0] == "heat"
        ):
            ids[memory.record(trajectory.task, trajectory.steps, "success").trajectory_id] = trajectory.task
    found = memory.recall("Give the scouring pad a rinse in the basin and stack it in a kitchen cupboard", k=5)
    assert found.procedures, "a paraphrase sharing no word got nothing"
    first = ids[found.procedures[0].source_trajectory_ids[0]]
    assert alfworld_signature(first) == ("clean", "dishsponge", "cabinet")
