"""Learning under change, through the MCP client: a step that the environment now refuses is a lesson
for every procedure that takes it, and (under adjustment) newer steps that worked replace steps a run
found refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

import memp_mcp.engine.lessons as lessons_module
from memp_mcp.config import load_settings
from memp_mcp.engine.lessons import lesson_pitfall, lessons, match_step
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.strategies import Strategies
from memp_mcp.models import Step
from memp_mcp.server.app import build_server
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder

pytestmark = pytest.mark.anyio

REFUSED = "error: externally-managed-environment\n\nThis environment is externally managed"
INSTALL = {"action": "pip install -e .", "observation": "Successfully installed app-0.1"}
INSTALL_REFUSED = {"action": "pip install -e .", "observation": REFUSED}
UV_INSTALL = {"action": "uv pip install -e .", "observation": "Installed 1 package in 40ms"}
TESTS = [INSTALL, {"action": "pytest -q", "observation": "12 passed in 0.4s"}]
# The same task after the tool changed: more steps, and pip's step refused.
RERUN_AFTER_CHANGE = [
    INSTALL_REFUSED,
    UV_INSTALL,
    {"action": "uv pip install pytest-xdist", "observation": "Installed 1 package"},
    {"action": "pytest -q -n 2", "observation": "12 passed"},
]
DOCS = [
    {"action": "git pull", "observation": "Already up to date."},
    INSTALL,
    {"action": "make -C docs html", "observation": "build succeeded."},
]
LINT = [{"action": "ruff check .", "observation": "All checks passed!"}]
# A run of another task that meets the change: pip is refused, uv does the install.
BENCH_AFTER_CHANGE = [
    INSTALL_REFUSED,
    UV_INSTALL,
    {"action": "python -m app.bench", "observation": "median 12 ms"},
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def connect(tmp_path: Path, update: str = "adjustment") -> Client:
    settings = load_settings({"db_path": tmp_path / "lessons.db"}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), FakeEmbedder(), strategies=Strategies(update=update))  # type: ignore[arg-type]
    return Client(build_server(settings, memory=memory), raise_exceptions=True)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with connect(tmp_path) as connected:
        yield connected


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def record(client: Client, task: str, steps: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return await call(client, "record_trajectory", {"task": task, "steps": steps, "outcome": "success", **extra})


async def procedure(client: Client, procedure_id: int) -> dict[str, Any]:
    return await call(client, "get_procedure", {"procedure_id": procedure_id})


# -- what a run teaches ------------------------------------------------------------------


def test_a_refused_action_and_what_did_the_job_instead_make_a_lesson() -> None:
    found = lessons([Step.model_validate(s) for s in BENCH_AFTER_CHANGE])
    assert [(x.action, x.instead, x.first) for x in found] == [("pip install -e .", "uv pip install -e .", None)]
    assert "externally-managed-environment" in found[0].said


def test_a_failing_check_is_not_a_lesson_and_a_next_step_of_another_kind_is_not_a_replacement() -> None:
    fixed = [
        {"action": "pytest -q", "observation": "1 failed, 11 passed"},
        {"action": "edit app/models.py", "observation": "applied"},
        {"action": "pytest -q", "observation": "12 passed"},
    ]
    assert lessons([Step.model_validate(s) for s in fixed]) == []
    looked = [
        {"action": "cat app/settings.py", "observation": "cat: app/settings.py: No such file or directory"},
        {"action": "ls app", "observation": "config.py models.py"},
    ]
    (lesson,) = lessons([Step.model_validate(s) for s in looked])
    assert lesson.instead is None and not lesson.shows_a_way


def test_an_action_that_works_only_after_another_teaches_what_to_do_first() -> None:
    run = [
        {"action": "go to sinkbasin 1", "observation": "On the sinkbasin 1, you see nothing."},
        {"action": "clean mug 1 with sinkbasin 1", "observation": "Nothing happens."},
        {"action": "turn on sinkbasin 1", "observation": "You turn on the sinkbasin 1."},
        {"action": "clean mug 1 with sinkbasin 1", "observation": "You clean the mug 1."},
    ]
    (lesson,) = lessons([Step.model_validate(s) for s in run])
    steps = ["go to sinkbasin 1", "clean the {object} with sinkbasin 1", "go to {target}"]
    pitfall = lesson_pitfall(steps, lesson)
    assert pitfall is not None
    assert pitfall.startswith('"clean the {object} with sinkbasin 1" did not work')
    assert pitfall.endswith('it worked after "turn on sinkbasin 1"') and "{object} = mug 1" in pitfall
    # A procedure that already switches it on first has nothing to learn.
    assert lesson_pitfall(["turn on sinkbasin 1", "clean the {object} with sinkbasin 1"], lesson) is None


def test_a_step_says_an_action_by_its_meaning_and_a_command_only_as_written() -> None:
    assert match_step("Heat the {object} with microwave 1.", "heat egg 1 with microwave 1") == {"object": "egg 1"}
    assert match_step("Install it with `pip install -e .`", "pip install -e .") == {}
    assert match_step("pip install -e .", "pip install -e .") == {}
    assert match_step("pip install .", "pip install -e .") is None
    assert match_step("uv pip install -e .", "pip install -e .") is None
    # A step that is mostly placeholders names no action of its own.
    assert match_step("go to {target}", "go to microwave 1") is None
    assert match_step("put {object} in/on {target}", "put mug 1 in/on shelf 1") is None


# -- the lesson reaches every procedure that takes the step (adjustment) -------------------------------


async def test_a_lesson_reaches_other_procedures_that_take_the_refused_step(client: Client) -> None:
    tests = (await record(client, "run the test suite", TESTS))["procedure_id"]
    docs = (await record(client, "build the documentation", DOCS))["procedure_id"]
    lint = (await record(client, "lint the code", LINT))["procedure_id"]

    recorded = await record(client, "run the benchmarks", BENCH_AFTER_CHANGE)
    assert sorted(recorded["warned_procedure_ids"]) == sorted([tests, docs])
    assert "got a pitfall" in recorded["message"]
    for warned in (tests, docs):
        detail = await procedure(client, warned)
        assert detail["procedure"]["version"] == 2 and "pip install -e ." in detail["procedure"]["steps"]
        (pitfall,) = detail["procedure"]["pitfalls"]
        assert pitfall.startswith('"pip install -e ." no longer worked in a recent run')
        assert pitfall.endswith('"uv pip install -e ." worked instead')
        assert "lesson from trajectory" in detail["history"][-1]["reason"]
    assert (await procedure(client, lint))["procedure"]["version"] == 1

    # The next task of another kind reads it before walking into it.
    recalled = await call(client, "recall_procedure", {"task": "build the documentation", "k": 1})
    assert recalled["procedures"][0]["id"] == docs
    assert any("uv pip install -e ." in p for p in recalled["procedures"][0]["pitfalls"])

    # The same evidence again (the agent records the run and reports it) teaches nothing new.
    again = await record(client, "run the benchmarks", BENCH_AFTER_CHANGE)
    assert again["warned_procedure_ids"] == []
    assert (await procedure(client, docs))["procedure"]["version"] == 2


def test_a_lesson_reaches_only_procedures_its_own_author_recorded(tmp_path: Path) -> None:
    memory = Memory(SQLiteStore(tmp_path / "authors.db"), FakeEmbedder())  # type: ignore[arg-type]
    docs = memory.record("build the documentation", DOCS, "success", principal="docs-team").procedure_id
    tests = memory.record("run the test suite", TESTS, "success", principal="ci").procedure_id

    # Another author's run cannot write what to run instead into the docs team's procedure, whatever
    # agent name it gives.
    recorded = memory.record("run the benchmarks", BENCH_AFTER_CHANGE, "success", agent="docs-bot", principal="ci")
    assert recorded.warned_procedure_ids == [tests]
    assert memory.store.get_procedure(docs or 0).pitfalls == []

    # An outcome report teaches as its principal.
    run = [INSTALL_REFUSED, UV_INSTALL, {"action": "make -C docs html", "observation": "build succeeded."}]
    recalled = memory.recall("build the documentation", k=1)
    assert recalled.procedures[0].id == docs
    other = memory.report_outcome(recalled.recall_id, True, procedure_id=docs, trajectory=run, principal="ci")
    assert other.warned_procedure_ids == []
    recalled = memory.recall("build the documentation", k=1)
    own = memory.report_outcome(recalled.recall_id, True, procedure_id=docs, trajectory=run, principal="docs-team")
    assert own.warned_procedure_ids == [docs]


async def test_one_run_teaches_a_bounded_number_of_procedures(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lessons_module, "MAX_WARNED_PER_RUN", 2)
    sharing = [
        (await record(client, task, DOCS))["procedure_id"]
        for task in ("build the documentation", "publish the docs site", "check the docs links")
    ]
    recorded = await record(client, "run the benchmarks", BENCH_AFTER_CHANGE)
    assert len(recorded["warned_procedure_ids"]) == 2
    assert set(recorded["warned_procedure_ids"]) < set(sharing)


async def test_an_outcome_report_with_its_trajectory_spreads_the_lesson_too(client: Client) -> None:
    docs = (await record(client, "build the documentation", DOCS))["procedure_id"]
    tests = (await record(client, "run the test suite", TESTS))["procedure_id"]
    recalled = await call(client, "recall_procedure", {"task": "run the test suite", "k": 1})
    assert recalled["procedures"][0]["id"] == tests
    run = [INSTALL_REFUSED, UV_INSTALL, {"action": "pytest -q", "observation": "12 passed"}]
    reported = await call(
        client,
        "report_outcome",
        {"recall_id": recalled["recall_id"], "success": True, "procedure_id": tests, "trajectory": run},
    )
    # The followed procedure is credited; it takes the refused step too, so it learns it as well.
    assert reported["credited_procedure_ids"] == [tests]
    assert sorted(reported["warned_procedure_ids"]) == sorted([tests, docs])
    followed = (await procedure(client, tests))["procedure"]
    assert followed["success_count"] == 1 and any("uv pip install -e ." in p for p in followed["pitfalls"])


@pytest.mark.parametrize("update", ["vanilla", "validation"])
async def test_only_adjustment_revises_procedures_that_were_not_followed(tmp_path: Path, update: str) -> None:
    async with connect(tmp_path, update) as client:
        docs = (await record(client, "build the documentation", DOCS))["procedure_id"]
        recorded = await record(client, "run the benchmarks", BENCH_AFTER_CHANGE)
        assert recorded["warned_procedure_ids"] == []
        assert (await procedure(client, docs))["procedure"]["pitfalls"] == []


# -- newer steps that worked replace steps a run found refused (adjustment only) ---------------------


async def test_a_newer_success_replaces_steps_it_found_refused_even_when_longer(tmp_path: Path) -> None:
    async with connect(tmp_path, "adjustment") as client:
        first = await record(client, "run the test suite", TESTS, agent="coder")
        # The tool changed: the same task now takes more steps, and pip's step is refused.
        merged = await record(client, "run the test suite", RERUN_AFTER_CHANGE, agent="coder")
        assert merged["action"] == "merged" and merged["procedure_id"] == first["procedure_id"]
        detail = await procedure(client, first["procedure_id"])
        steps = detail["procedure"]["steps"]
        assert steps[:2] == ["uv pip install -e .", "uv pip install pytest-xdist"]
        assert "pip install -e ." not in steps and len(steps) > len(TESTS)
        assert "found steps of this one refused" in detail["history"][-1]["reason"]
        # The old steps stay in the history; the new ones start a fresh record.
        assert detail["history"][0]["steps"] == ["pip install -e .", "pytest -q"]

        # A longer run that found nothing refused does not replace shorter steps.
        longer = [INSTALL, {"action": "pytest -q -x", "observation": "12 passed"}, {"action": "git status"}]
        await record(client, "run the test suite", longer, agent="coder")
        assert (await procedure(client, first["procedure_id"]))["procedure"]["steps"] == steps


@pytest.mark.parametrize("update", ["vanilla", "validation"])
async def test_without_adjustment_a_newer_success_is_kept_as_evidence_and_the_stored_steps_stay(
    tmp_path: Path, update: str
) -> None:
    # Revising stored steps is adjustment's work: the other strategies only add what they store.
    async with connect(tmp_path, update) as client:
        first = await record(client, "run the test suite", TESTS, agent="coder")
        merged = await record(client, "run the test suite", RERUN_AFTER_CHANGE, agent="coder")
        assert merged["action"] == "merged" and merged["procedure_id"] == first["procedure_id"]
        detail = await procedure(client, first["procedure_id"])
        assert detail["procedure"]["steps"] == ["pip install -e .", "pytest -q"]
        assert detail["procedure"]["version"] == 1 and detail["procedure"]["pitfalls"] == []
        assert merged["trajectory_id"] in detail["procedure"]["source_trajectory_ids"]


def test_another_authors_newer_steps_become_a_candidate_and_the_old_ones_are_told_what_was_refused(
    tmp_path: Path,
) -> None:
    memory = Memory(SQLiteStore(tmp_path / "authors.db"), FakeEmbedder())  # type: ignore[arg-type]
    first = memory.record("run the test suite", TESTS, "success", principal="coder").procedure_id or 0
    run = [INSTALL_REFUSED, UV_INSTALL, {"action": "pytest -q", "observation": "12 passed"}]
    proposed = memory.record("run the test suite", run, "success", principal="another")
    assert proposed.action == "candidate" and proposed.procedure_id != first
    twin = memory.store.get_procedure(first)
    assert twin.steps == ["pip install -e .", "pytest -q"]
    assert any(p.startswith('"pip install -e ." no longer worked') for p in twin.pitfalls)
    candidate = memory.store.get_procedure(proposed.procedure_id or 0)
    assert candidate.candidate_of == first and candidate.steps[0] == "uv pip install -e ."


async def test_a_lesson_quoting_a_long_step_is_kept_to_a_pitfalls_length_and_the_memory_still_exports(
    tmp_path: Path,
) -> None:
    from memp_mcp.engine.library import export_library, import_library
    from memp_mcp.models import MAX_PITFALL_CHARS

    install = "pip install -e . " + " ".join(f"extra-package-{n}" for n in range(90))
    assert 1_500 < len(install) < 2_000
    settings = load_settings({"db_path": tmp_path / "long.db"}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), FakeEmbedder())  # type: ignore[arg-type]
    first = memory.record(
        "run the test suite",
        [Step(action=install, observation="Successfully installed"), Step(action="pytest -q", observation="12 passed")],
        "success",
        principal="first-author",
    )
    refused = [
        Step(action=install, observation=REFUSED),
        Step(action="uv pip install -e .", observation="Installed 1 package in 40ms"),
        Step(action="pytest -q", observation="12 passed"),
    ]
    # Another agent's run: its steps become a candidate, and the stored procedure is told what was refused.
    memory.record("run the test suite", refused, "success", principal="second-author")
    pitfalls = memory.get_procedure(first.procedure_id).procedure.pitfalls
    assert pitfalls, "the refused step taught nothing"
    assert all(len(p) <= MAX_PITFALL_CHARS for p in pitfalls)

    exported = list(export_library(memory, "default"))
    report = import_library(memory, exported, namespace="copy")
    # The procedure and its candidate, which stays a candidate of the first.
    assert (report.created, report.merged) == (2, 0)
