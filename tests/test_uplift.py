"""Holdout uplift: tasks drawn into arms, outcomes joined to them, and the interval reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from memp_mcp.config import load_settings
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.uplift import HOLDOUT, MEMORY, newcombe, uplift, wilson
from memp_mcp.models import TaskArm
from memp_mcp.server.app import build_server
from memp_mcp.store import SQLiteStore, Store
from tests.conftest import FakeEmbedder
from tests.test_memory import CLEAN_SOAP

TASK = "put a clean soapbar in cabinet"


def test_the_intervals_are_those_of_the_literature() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890: 56/70 vs 48/80, method 10.
    low, high = newcombe(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    # Small counts stay inside [-1, 1], where a normal interval would not.
    low, high = newcombe(3, 3, 0, 3)
    assert -1 <= low < high <= 1


def arms(memory_outcomes: list[bool | None], holdout_outcomes: list[bool | None]) -> list[TaskArm]:
    def arm(name: str, success: bool | None) -> TaskArm:
        return TaskArm(namespace="n", arm=name, success=success, tool_calls=4, turns=1)

    return [arm(MEMORY, s) for s in memory_outcomes] + [arm(HOLDOUT, s) for s in holdout_outcomes]


def test_the_conclusion_says_what_the_counts_allow() -> None:
    assert "No task was held out" in uplift("n", arms([True] * 5, [])).conclusion
    assert "Not enough outcomes" in uplift("n", arms([True] * 5, [None])).conclusion
    assert "Too few judged tasks" in uplift("n", arms([True] * 5, [False] * 3)).conclusion
    helps = uplift("n", arms([True] * 36 + [False] * 4, [True] * 4 + [False] * 8))
    assert helps.difference == pytest.approx(0.9 - 1 / 3, abs=1e-4)
    assert helps.interval is not None and helps.interval[0] > 0 and helps.conclusion.startswith("Memory helps")
    unclear = uplift("n", arms([True] * 20 + [False] * 20, [True] * 6 + [False] * 6))
    assert unclear.conclusion.startswith("No difference shown yet")
    assert unclear.with_memory.judged == 40 and unclear.without_memory.mean_tool_calls == 4.0


@pytest.mark.backends("sqlite", "postgresql")
def test_events_and_task_arms_are_stored(store: Store) -> None:
    with store.transaction():
        arm_id = store.add_task_arm("ns", "a task", HOLDOUT, None)
        store.add_event("ns", "withheld", "A task", "held out", {"would_have_given": [{"id": 3}]}, arm=HOLDOUT)
    assert store.open_task_arm("ns", "a task") == (arm_id, HOLDOUT)
    assert store.task_arm_for("ns", "a task", "no-such-recall") == (arm_id, HOLDOUT)
    with store.transaction():
        store.judge_task_arm(arm_id, None, 3, "record")
        store.judge_task_arm(arm_id, True, 3, "outcome")  # the same attempt, reported as well
        store.judge_task_arm(arm_id, False, 2, "record")
        store.judge_task_arm(arm_id, None, 1, "record")
    assert store.open_task_arm("ns", "a task") is None
    assert store.task_arms("ns") == [TaskArm(namespace="ns", arm=HOLDOUT, success=False, tool_calls=6, turns=3)]
    assert store.task_arms("other") == []
    (logged,) = store.events("ns", 10)
    assert (logged.kind, logged.arm, logged.detail) == ("withheld", HOLDOUT, {"would_have_given": [{"id": 3}]})
    assert store.events(None, 10) == [logged] and store.events("other", 10) == []


def arm_of(memory: Memory, task: str) -> str | None:
    return next(e.arm for e in reversed(memory.events(last=500)) if e.task == task and e.kind in ("recall", "withheld"))


def test_a_task_keeps_its_arm_until_an_outcome_and_outcomes_join_their_task(tmp_path: Path) -> None:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), FakeEmbedder(), holdout=0.5, seed=3)
    memory.record("clean the soapbar and put it in the cabinet", CLEAN_SOAP, "success")
    tasks = [f"{TASK} number {i}" for i in range(40)]
    results = {task: memory.recall(task, 1) for task in tasks}
    drawn = {task: arm_of(memory, task) for task in tasks}
    held = [t for t in tasks if drawn[t] == HOLDOUT]
    assert 8 <= len(held) <= 32
    # Withheld: answered as if nothing fitted, with no recall to report against.
    assert all(not results[t].procedures and results[t].recall_id is None for t in held)
    assert all(results[t].procedures for t in tasks if drawn[t] == MEMORY)
    # Asked again before any outcome, a task keeps the arm it was drawn into.
    for task in tasks[:10]:
        assert bool(memory.recall(task, 1).procedures) == (drawn[task] == MEMORY)
    given = next(t for t in tasks if drawn[t] == MEMORY)
    # Recorded and reported, as many agents do: one attempt, counted once.
    memory.record(given, CLEAN_SOAP, "success")
    memory.report_outcome(results[given].recall_id, True, trajectory=CLEAN_SOAP)
    memory.record(held[0], CLEAN_SOAP[:3], "failure")
    (report,) = memory.uplift()
    assert report.with_memory.judged == 1 and report.with_memory.mean_tool_calls == 7
    assert report.with_memory.mean_turns == 1
    assert report.without_memory.judged == 1 and report.without_memory.successes == 0
    assert report.without_memory.mean_tool_calls == 3
    assert report.with_memory.tasks + report.without_memory.tasks == 40


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_over_mcp_a_held_out_recall_looks_like_one_where_nothing_fits(tmp_path: Path, anyio_backend: str) -> None:
    settings = load_settings({"db_path": tmp_path / "s.db", "holdout": 1.0}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), FakeEmbedder(), holdout=1.0, seed=0)
    memory.record("clean the soapbar and put it in the cabinet", CLEAN_SOAP, "success")
    async with Client(build_server(settings, memory=memory), raise_exceptions=True) as client:
        held = await client.call_tool("recall_procedure", {"task": TASK})
        nothing = await client.call_tool("recall_procedure", {"task": "compile the kernel with clang"})
        recorded = await client.call_tool(
            "record_trajectory", {"task": TASK, "steps": [s["action"] for s in CLEAN_SOAP], "outcome": "success"}
        )
    assert not recorded.is_error
    assert held.structured_content is not None and nothing.structured_content is not None
    assert held.structured_content["procedures"] == [] and held.structured_content["recall_id"] is None
    assert set(held.structured_content) == set(nothing.structured_content)
    assert held.structured_content["retrieval"] == nothing.structured_content["retrieval"]
    (report,) = memory.uplift()
    assert (report.without_memory.tasks, report.without_memory.judged, report.without_memory.successes) == (2, 1, 1)


def test_the_holdout_benchmark_compares_the_estimate_with_the_direct_measure() -> None:
    from memp_mcp.bench.lifelong import holdout_table, run_holdout

    report = run_holdout(40, 0, 0.3, {"MEMP_EMBEDDINGS": "0"}, transport="in-process")
    estimate = report["estimate"]
    assert estimate["without_memory"]["tasks"] > 0 and estimate["with_memory"]["tasks"] > 0
    assert estimate["with_memory"]["tasks"] + estimate["without_memory"]["tasks"] == 39  # the first finds no memory
    assert estimate["with_memory"]["mean_turns"] == 1.0  # recorded and reported: one attempt each
    direct = report["direct"]
    assert direct["uplift"] == pytest.approx(
        direct["with_memory"]["success_rate"] - direct["without_memory"]["success_rate"]
    )
    assert report["error_points"] == pytest.approx(100 * (estimate["difference"] - direct["uplift"]), abs=0.1)
    assert holdout_table([report]).caption.startswith("points of success rate")
