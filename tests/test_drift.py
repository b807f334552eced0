"""The drifting world, the agents' recovery from stale procedures, and the drift benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from memp_mcp.bench.agents import STRONG, Agent, OutcomeReport, Skill, memory_name, read_procedure
from memp_mcp.bench.lifelong import DRIFT_CONFIGURATIONS, Transport, connect, run_drift, server_env
from memp_mcp.bench.world import (
    DEFAULT_RULES,
    DRIFTS,
    FAMILIES,
    HOMES,
    Task,
    World,
    drifted,
    oracle_actions,
    task_stream,
)
from memp_mcp.config import UpdateStrategy
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.strategies import Strategies
from memp_mcp.models import ProcedureDraft
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder

HOT_EGG = Task("heat", "egg", "shelf 1")
# Finds the egg, wastes its steps on the stale microwave, finds the stove, then runs out of steps.
HURRIED = Skill("hurried", budget=12, noise=0.0, systematic=True)


def test_after_every_drift_each_family_is_still_solvable_by_an_agent_that_knows_the_new_rules() -> None:
    rules = drifted(list(DRIFTS))
    seen = set()
    for task, seed in task_stream(60, seed=4):
        world = World.generate(task, seed, rules)
        for action in oracle_actions(world):
            world.act(action)
        assert world.solved and world.failed_actions == 0, task
        seen.add(task.family)
    assert seen == set(FAMILIES)


def test_the_heater_drift_retires_the_microwave_and_the_stove_works_once_switched_on() -> None:
    for rules, works_with in ((DEFAULT_RULES, "microwave 1"), (drifted(["heater"]), "stoveburner 1")):
        world = World.generate(HOT_EGG, 3, rules)
        place = next(p for p, things in world.contents.items() if "egg 1" in things)
        world.act(f"go to {place}")
        world.act(f"open {place}")
        assert world.act(f"take egg 1 from {place}").startswith("You pick up")
        for device in ("microwave 1", "stoveburner 1"):
            world.act(f"go to {device}")
            world.act(f"open {device}")
            world.act(f"turn on {device}")
            said = world.act(f"heat egg 1 with {device}")
            assert said.startswith("You heat") == (device == works_with), (rules, device, said)
            if device == works_with:
                break
    stove_cold = World.generate(HOT_EGG, 3, drifted(["heater"]))
    stove_cold.holding, stove_cold.location = "egg 1", "stoveburner 1"
    assert stove_cold.act("heat egg 1 with stoveburner 1") == "Nothing happens."


def test_the_tap_drift_makes_the_sink_clean_only_once_switched_on() -> None:
    world = World.generate(Task("clean", "mug", "shelf 1"), 2, drifted(["tap"]))
    world.holding, world.location = "mug 1", "sinkbasin 1"
    assert world.act("clean mug 1 with sinkbasin 1") == "Nothing happens."
    assert world.act("turn on sinkbasin 1") == "You turn on the sinkbasin 1."
    assert world.act("clean mug 1 with sinkbasin 1").startswith("You clean")


def test_the_homes_drift_moves_every_kind_of_object_and_worlds_follow_the_new_homes() -> None:
    moved = drifted(["homes"]).homes
    assert all(moved[thing] != home for thing, home in HOMES.items())
    at_new_home = sum(
        "book 1" in World.generate(Task("place", "book", "desk 1"), seed, drifted(["homes"])).contents[moved["book"]]
        for seed in range(40)
    )
    assert at_new_home >= 25  # most of the time, as before the move


def test_a_procedure_is_read_from_its_meaning_not_its_format() -> None:
    procedure = {
        "title": "Heat an egg and shelve it",
        "steps": [
            "Find the egg; it is usually in drawer 2, take it from there",
            "Warm the {object} in the microwave, after you open it",
            "Carry it to {target} and put it down",
        ],
        "pitfalls": [
            "Heating with the stove burner did not work",
            "The sink basin must be switched on before cleaning anything",
        ],
    }
    knowledge = read_procedure(procedure, HOT_EGG)
    assert knowledge.devices == {"heat": ["microwave 1"], "clean": ["sinkbasin 1"]}
    assert "microwave 1" in knowledge.open_first
    assert knowledge.places == ["drawer 2"]
    assert ("heat", "stoveburner 1") in knowledge.avoid and not knowledge.stale
    assert "sinkbasin 1" in knowledge.switch_on_first


def test_a_step_reported_as_no_longer_working_overrides_the_steps_that_still_say_it() -> None:
    procedure = {
        "steps": [
            "go to microwave 1",
            "open microwave 1",
            "heat {object} with microwave 1",
            "put {object} in/on {target}",
        ],
        "pitfalls": [
            "Failed on 'put a hot egg in shelf 1': \"heat the egg with microwave 1\" no longer works; "
            '"heat the egg with stoveburner 1" worked instead (switch it on first); the egg is no longer kept in '
            "cabinet 2"
        ],
        "exemplar_task": "put a hot egg in shelf 2",
    }
    knowledge = read_procedure(procedure, HOT_EGG)
    assert ("heat", "microwave 1") in knowledge.stale
    assert "stoveburner 1" in knowledge.devices["heat"] and "stoveburner 1" in knowledge.switch_on_first
    assert knowledge.gone_from == {"cabinet 2"}


class RecordingPort:
    """A memory that serves fixed procedures and keeps what the agent reports."""

    def __init__(self, procedures: list[dict[str, Any]]) -> None:
        self.procedures = procedures
        self.reports: list[OutcomeReport] = []
        self.records: list[tuple[str, list[dict[str, str]], str]] = []

    async def recall(self, task: str) -> tuple[str | None, list[dict[str, Any]], int]:
        return "r1", self.procedures, 0

    async def record(self, task: str, steps: list[dict[str, str]], outcome: str, agent: str) -> None:
        self.records.append((task, steps, outcome))

    async def report(self, report: OutcomeReport) -> None:
        self.reports.append(report)


def stale_heat_procedure(world: World) -> dict[str, Any]:
    """What memory held before the heater drift: the oracle's run in the old rules, as steps."""
    home = next(p for p, things in world.contents.items() if "egg 1" in things)
    return {
        "id": 7,
        "title": "Put a hot {object} in {target}",
        "when_to_use": "Tasks like: put a hot {object} in {target}",
        "steps": [
            f"go to {home}",
            f"open {home}",
            f"take {{object}} from {home}",
            "go to microwave 1",
            "open microwave 1",
            "heat {object} with microwave 1",
            "go to {target}",
            "put {object} in/on {target}",
        ],
        "pitfalls": [],
        "exemplar_task": "put a hot egg in cabinet 1",
    }


@pytest.mark.parametrize("skill", [STRONG, HURRIED], ids=["succeeds", "runs out of steps"])
def test_an_agent_misled_by_a_stale_step_explores_and_reports_what_worked_instead(skill: Skill) -> None:
    world = World.generate(HOT_EGG, 11, drifted(["heater"]))
    port = RecordingPort([stale_heat_procedure(world)])
    result = anyio.run(Agent(skill, 0).run, world, port)
    actions = [s["action"] for s in port.records[0][1]]
    # It followed the procedure first, then found the stove by exploring.
    assert actions.index("heat egg 1 with microwave 1") < actions.index("heat egg 1 with stoveburner 1")
    assert "turn on stoveburner 1" in actions
    assert result.misled and result.success == (skill is STRONG)
    report = port.reports[0]
    assert report.procedure_id == 7 and report.success == result.success
    assert '"heat the egg with microwave 1" no longer works' in report.notes
    assert '"heat the egg with stoveburner 1" worked instead (switch it on first)' in report.notes
    # Whether or not the task succeeded, the procedure it followed misled it: it says what to do instead.
    assert report.correction is not None
    steps = report.correction["steps"]
    assert "turn on stoveburner 1" in steps and "heat the {object} with stoveburner 1" in steps
    assert not any("microwave" in s for s in steps)
    assert any("microwave 1" in p and "no longer works" in p for p in report.correction["pitfalls"])


def test_an_agent_not_misled_sends_no_correction() -> None:
    world = World.generate(HOT_EGG, 11)
    port = RecordingPort([stale_heat_procedure(world)])
    result = anyio.run(Agent(STRONG, 0).run, world, port)
    assert result.success and not result.misled
    assert port.reports[0].correction is None and port.reports[0].notes == ""


def test_an_agent_told_that_a_step_no_longer_works_does_not_try_it() -> None:
    world = World.generate(HOT_EGG, 11, drifted(["heater"]))
    revised = stale_heat_procedure(world)
    revised["pitfalls"] = ['"heat the {object} with microwave 1" no longer works (Nothing happens)']
    port = RecordingPort([revised])
    result = anyio.run(Agent(STRONG, 0).run, world, port)
    actions = [s["action"] for s in port.records[0][1]]
    assert result.success and "heat egg 1 with microwave 1" not in actions


# -- through a real memp-mcp server ---------------------------------------------------------


async def actions_of_the_next_agent(memory: Any, task: Task) -> list[str]:
    """What a strong agent given `task` after the heater drift does, recalling through `memory`."""
    port = RecordingPort([])

    async def recall(text: str) -> tuple[str | None, list[dict[str, Any]], int]:
        recall_id, procedures, chars = await memory.recall(text)
        port.procedures = procedures
        return recall_id, procedures, chars

    port.recall = recall  # type: ignore[method-assign]
    await Agent(STRONG, 1).run(World.generate(task, 12, drifted(["heater"])), port)
    return [s["action"] for s in port.records[0][1]]


async def stale_procedure_after_drift(update: str, db: Path, transport: Transport) -> tuple[dict[str, Any], list[str]]:
    """Learn the hot-egg task before the heater drift, fail once after it, then try again.

    Returns the procedure as the server holds it after the failure, and the actions of the next
    attempt.
    """
    configuration = next(c for c in DRIFT_CONFIGURATIONS if c.update == update and c.memory)
    env = server_env(db, configuration, {"MEMP_EMBEDDINGS": "0"})
    from memp_mcp.bench.agents import McpMemory, reports_take_procedure_id

    async with connect(env, transport) as client:
        memory = McpMemory(client.call_tool, k=1, attribute=await reports_take_procedure_id(client.list_tools))
        before = World.generate(HOT_EGG, 5)
        steps = [{"action": a, "observation": before.act(a)} for a in oracle_actions(before)]
        recorded = await client.call_tool(
            "record_trajectory", {"task": HOT_EGG.text, "steps": steps, "outcome": "success"}
        )
        procedure_id = recorded.structured_content["procedure_id"]
        failed = await Agent(HURRIED, 0).run(World.generate(HOT_EGG, 11, drifted(["heater"])), memory)
        assert failed.misled and not failed.success
        detail = await client.call_tool("get_procedure", {"procedure_id": procedure_id})
        next_actions = await actions_of_the_next_agent(memory, HOT_EGG)
        return detail.structured_content["procedure"], next_actions


@pytest.mark.parametrize("transport", ["in-process", pytest.param("stdio", marks=pytest.mark.slow)])
def test_adjustment_revises_the_followed_procedure_and_the_next_agent_skips_the_stale_step(
    tmp_path: Path, transport: Transport
) -> None:
    procedure, next_actions = anyio.run(stale_procedure_after_drift, "adjustment", tmp_path / "m.db", transport)
    assert procedure["version"] >= 2 and procedure["source"] == "agent"
    assert "heat the {object} with stoveburner 1" in procedure["steps"]
    assert not any("microwave" in step for step in procedure["steps"])
    assert "heat egg 1 with microwave 1" not in next_actions
    assert "heat egg 1 with stoveburner 1" in next_actions


@pytest.mark.parametrize("transport", ["in-process", pytest.param("stdio", marks=pytest.mark.slow)])
def test_vanilla_keeps_serving_the_stale_procedure(tmp_path: Path, transport: Transport) -> None:
    procedure, next_actions = anyio.run(stale_procedure_after_drift, "vanilla", tmp_path / "m.db", transport)
    assert procedure["version"] == 1 and "heat {object} with microwave 1" in procedure["steps"]
    assert "heat egg 1 with microwave 1" in next_actions


HOT_POTATO = Task("heat", "potato", "desk 1")


async def lesson_for_another_task(update: str, db: Path, transport: Transport) -> tuple[dict[str, Any], list[str]]:
    """Learn two heat tasks before the heater drift; after it, an agent meets the change on one of them.

    Returns the other task's procedure as the server then holds it, and the actions of the next agent
    given that other task (its first run since the change).
    """
    configuration = next(c for c in DRIFT_CONFIGURATIONS if c.update == update and c.memory)
    env = server_env(db, configuration, {"MEMP_EMBEDDINGS": "0"})
    from memp_mcp.bench.agents import McpMemory, reports_take_procedure_id

    async with connect(env, transport) as client:
        memory = McpMemory(client.call_tool, k=1, attribute=await reports_take_procedure_id(client.list_tools))
        ids = {}
        for task, seed in ((HOT_EGG, 5), (HOT_POTATO, 6)):
            before = World.generate(task, seed)
            steps = [{"action": a, "observation": before.act(a)} for a in oracle_actions(before)]
            # Recorded under the agent's own name: lessons reach only the procedures their agent recorded.
            recorded = await client.call_tool(
                "record_trajectory",
                {"task": task.text, "steps": steps, "outcome": "success", "agent": memory_name(STRONG.name)},
            )
            ids[task] = recorded.structured_content["procedure_id"]
        met = await Agent(STRONG, 0).run(World.generate(HOT_EGG, 11, drifted(["heater"])), memory)
        assert met.misled and met.success
        detail = await client.call_tool("get_procedure", {"procedure_id": ids[HOT_POTATO]})
        next_actions = await actions_of_the_next_agent(memory, HOT_POTATO)
        return detail.structured_content["procedure"], next_actions


@pytest.mark.parametrize("transport", ["in-process", pytest.param("stdio", marks=pytest.mark.slow)])
def test_adjustment_teaches_other_procedures_the_step_that_no_longer_works(
    tmp_path: Path, transport: Transport
) -> None:
    procedure, next_actions = anyio.run(lesson_for_another_task, "adjustment", tmp_path / "m.db", transport)
    assert "heat {object} with microwave 1" in procedure["steps"]  # its steps wait for a run of its own task
    assert any(
        p.startswith('"heat {object} with microwave 1" no longer worked') and "stoveburner 1" in p
        for p in procedure["pitfalls"]
    )
    assert "heat potato 1 with microwave 1" not in next_actions
    assert next_actions.index("turn on stoveburner 1") < next_actions.index("heat potato 1 with stoveburner 1")


def test_vanilla_leaves_other_procedures_as_they_were(tmp_path: Path) -> None:
    procedure, next_actions = anyio.run(lesson_for_another_task, "vanilla", tmp_path / "m.db", "in-process")
    assert procedure["version"] == 1 and procedure["pitfalls"] == []
    assert "heat potato 1 with microwave 1" in next_actions


def test_the_drift_benchmark_reports_each_phase_per_configuration() -> None:
    report = run_drift(episodes=16, seed=2, at=8, window=4, base_env={"MEMP_EMBEDDINGS": "0"}, transport="in-process")
    assert report["drift_at"] == 8 and set(report["drifts"]) == {"heater", "tap", "homes"}
    assert list(report["configurations"]) == ["no memory", "vanilla", "validation", "adjustment"]
    for figures in report["configurations"].values():
        phases = figures["phases"]
        assert [phases[p]["episodes"] for p in ("before", "window", "window_early", "window_late", "after")] == [
            4,
            4,
            2,
            2,
            4,
        ]
        assert len(figures["success"]) == 16
    assert report["configurations"]["no memory"]["phases"]["before"]["misled_rate"] == 0


@pytest.mark.slow
def test_bench_lifelong_drift_command_runs_through_real_servers(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.cli", "bench", "lifelong", "--drift", "--episodes", "12", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MEMP_EMBEDDINGS": "0"},
    )
    assert done.returncode == 0, done.stderr
    assert "adjustment" in done.stdout and "window" in done.stdout
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report["runs"][0]["configurations"]) == {"no memory", "vanilla", "validation", "adjustment"}
    assert all(len(line) <= 80 for line in done.stdout.splitlines()[:-1])


def test_where_other_things_were_found_says_what_kind_of_place_to_search_first() -> None:
    other = {"steps": ["go to drawer 3", "take {object} from drawer 3"], "exemplar_task": "put a hot potato in desk 1"}
    knowledge = read_procedure(other, HOT_EGG)
    assert knowledge.places == [] and knowledge.storage == {"drawer"}
    world = World.generate(HOT_EGG, 21)
    port = RecordingPort([other])
    anyio.run(Agent(STRONG, 3).run, world, port)
    searched = [s["action"][6:] for s in port.records[0][1] if s["action"].startswith("go to ")]
    drawers_first = [p for p in searched if p.startswith("drawer")]
    assert searched[: len(drawers_first)] == drawers_first and drawers_first


async def retired_after_repeated_failures(update: str, db: Path) -> tuple[str, list[int]]:
    """Learn the hot-egg task, then fail it three times after the heater drift; returns the
    procedure's status and the ids a new recall returns."""
    configuration = next(c for c in DRIFT_CONFIGURATIONS if c.update == update and c.memory)
    from memp_mcp.bench.agents import McpMemory

    async with connect(server_env(db, configuration, {"MEMP_EMBEDDINGS": "0"}), "in-process") as client:
        before = World.generate(HOT_EGG, 5)
        steps = [{"action": a, "observation": before.act(a)} for a in oracle_actions(before)]
        recorded = await client.call_tool(
            "record_trajectory", {"task": HOT_EGG.text, "steps": steps, "outcome": "success"}
        )
        procedure_id = recorded.structured_content["procedure_id"]
        memory = McpMemory(client.call_tool, k=1, attribute=True)
        for seed in (11, 12, 13):
            await Agent(HURRIED, seed).run(World.generate(HOT_EGG, seed, drifted(["heater"])), memory)
        detail = await client.call_tool("get_procedure", {"procedure_id": procedure_id})
        recalled = await client.call_tool("recall_procedure", {"task": HOT_EGG.text})
        ids = [p["id"] for p in recalled.structured_content["procedures"]]
        return detail.structured_content["procedure"]["status"], [i for i in ids if i == procedure_id]


@pytest.mark.parametrize(
    ("update", "status", "served"), [("validation", "deprecated", False), ("vanilla", "active", True)]
)
def test_validation_stops_serving_a_procedure_that_keeps_failing_and_vanilla_keeps_it(
    tmp_path: Path, update: str, status: str, served: bool
) -> None:
    got_status, still_served = anyio.run(retired_after_repeated_failures, update, tmp_path / "m.db")
    assert got_status == status and bool(still_served) == served


@pytest.mark.parametrize(("update", "revised"), [("adjustment", True), ("validation", False), ("vanilla", False)])
def test_a_success_reported_with_a_correction_revises_the_procedure_only_under_adjustment(
    tmp_path: Path, fake_embedder: FakeEmbedder, update: UpdateStrategy, revised: bool
) -> None:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), fake_embedder, strategies=Strategies(update=update))
    world = World.generate(HOT_EGG, 5)
    steps = [{"action": a, "observation": world.act(a)} for a in oracle_actions(world)]
    procedure_id = memory.record(HOT_EGG.text, steps, "success").procedure_id
    recall = memory.recall(HOT_EGG.text)
    correction = ProcedureDraft(
        title="Put a hot {object} in {target}",
        steps=["go to stoveburner 1", "turn on stoveburner 1", "heat the {object} with stoveburner 1"],
        pitfalls=['"heat the {object} with microwave 1" no longer works'],
    )
    result = memory.report_outcome(str(recall.recall_id), True, procedure_id=procedure_id, correction=correction)
    assert result.adjusted_procedure_ids == ([procedure_id] if revised else [])
    procedure = memory.get_procedure(procedure_id).procedure
    assert ("turn on stoveburner 1" in procedure.steps) == revised
