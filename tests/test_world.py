"""The simulated world, the scripted agents, and a small lifelong run through the real server."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from memp_mcp.bench.agents import STRONG, Agent, read_procedure
from memp_mcp.bench.lifelong import CONFIGURATIONS, run_lifelong
from memp_mcp.bench.world import FAMILIES, NOTHING, STEP_BUDGET, Task, World, oracle_actions, task_stream


def test_every_family_is_solvable_within_budget_by_an_agent_that_knows_the_rules() -> None:
    seen = set()
    for task, seed in task_stream(60, seed=3):
        world = World.generate(task, seed)
        plan = oracle_actions(world)
        assert len(plan) <= STEP_BUDGET
        for action in plan:
            world.act(action)
        assert world.solved, (task, plan)
        assert world.failed_actions == 0
        seen.add(task.family)
    assert seen == set(FAMILIES)


def test_an_invalid_action_says_nothing_happens_and_changes_nothing() -> None:
    task = Task("heat", "egg", "shelf 1")
    world = World.generate(task, seed=5)
    before = copy.deepcopy((world.contents, world.closed, world.location, world.holding, world.states))
    for action in [
        "fly to the moon",
        "take egg 1 from shelf 2",
        "open shelf 1",
        "put egg 1 in/on shelf 1",
        "heat egg 1 with microwave 1",
        "use desklamp 1",
        "open",
    ]:
        assert world.act(action) == NOTHING
    assert (world.contents, world.closed, world.location, world.holding, world.states) == before
    assert world.failed_actions == 7 and world.steps == 7


def test_hidden_rules_decoy_devices_and_closed_microwave_do_nothing() -> None:
    world = World.generate(Task("heat", "egg", "shelf 1"), seed=1)
    place = next(p for p, things in world.contents.items() if "egg 1" in things)
    world.act(f"go to {place}")
    world.act(f"open {place}")
    assert world.act(f"take egg 1 from {place}").startswith("You pick up")
    world.act("go to stoveburner 1")
    assert world.act("heat egg 1 with stoveburner 1") == NOTHING
    world.act("go to microwave 1")
    assert world.act("heat egg 1 with microwave 1") == NOTHING  # closed
    world.act("open microwave 1")
    assert world.act("heat egg 1 with microwave 1").startswith("You heat")


def test_worlds_are_deterministic_per_seed() -> None:
    task = Task("two", "pen", "desk 1")
    assert World.generate(task, 42).contents == World.generate(task, 42).contents
    assert World.generate(task, 42).contents != World.generate(task, 43).contents
    assert task_stream(10, 7) == task_stream(10, 7)


def test_an_agent_reads_devices_order_places_and_pitfalls_from_a_procedure() -> None:
    task = Task("heat", "egg", "shelf 2")
    procedure = {
        "steps": [
            "go to cabinet 3",
            "take {object} from cabinet 3",
            "go to microwave 1",
            "open microwave 1",
            "heat {object} with microwave 1",
            "go to {target}",
            "put {object} in/on {target}",
        ],
        "pitfalls": ['"heat {object} with stoveburner 1" did not work (Nothing happens.)'],
        "exemplar_task": "put a hot egg in cabinet 1",
    }
    knowledge = read_procedure(procedure, task)
    assert knowledge.devices == {"heat": ["microwave 1"]}
    assert knowledge.open_first == {"microwave 1"}
    assert knowledge.places == ["cabinet 3"]
    assert knowledge.avoid == {("heat", "stoveburner 1")}
    # A procedure about another kind of object says nothing about where this one is.
    other = read_procedure({**procedure, "exemplar_task": "put a hot potato in cabinet 1"}, task)
    assert other.places == [] and other.devices == {"heat": ["microwave 1"]}


def test_knowledge_saves_steps_in_the_world() -> None:
    task = Task("heat", "egg", "shelf 2")
    knowing = read_procedure({"steps": ["open microwave 1", "heat {object} with microwave 1"]}, task)
    steps_with, steps_without = [], []
    for seed in range(20):
        for knowledge, bucket in ((knowing, steps_with), (None, steps_without)):
            agent = Agent(STRONG, seed)
            world = World.generate(task, seed)
            procedures = (
                [] if knowledge is None else [{"steps": ["open microwave 1", "heat {object} with microwave 1"]}]
            )

            class Port:
                def __init__(self, procedures: list[dict[str, object]]) -> None:
                    self.procedures = procedures

                async def recall(self, text: str) -> tuple[str | None, list[dict[str, object]], int]:
                    return None, self.procedures, 0

                async def record(self, *args: object) -> None:
                    return None

                async def report(self, *args: object) -> None:
                    return None

            result = anyio.run(agent.run, world, Port(procedures))
            bucket.append(result.failed_actions)
    assert sum(steps_with) < sum(steps_without)


@pytest.mark.slow
def test_a_small_lifelong_run_goes_through_the_real_server(tmp_path: Path) -> None:
    configurations = [c for c in CONFIGURATIONS if c.name in ("no memory", "proceduralization+adjust")]
    report = run_lifelong(
        episodes=8, seed=1, groups=2, base_env={"MEMP_EMBEDDINGS": "0"}, configurations=configurations
    )
    with_memory = report["configurations"]["proceduralization+adjust"]
    assert set(with_memory["overall"]) == {
        "episodes",
        "success_rate",
        "mean_steps",
        "mean_failed_actions",
        "mean_memory_chars",
        "misled_rate",
    }
    assert with_memory["overall"]["episodes"] == 8 and len(with_memory["curve"]) == 2
    # Memory was really used: later episodes were handed procedure text.
    assert with_memory["overall"]["mean_memory_chars"] > 0
    assert report["configurations"]["no memory"]["overall"]["mean_memory_chars"] == 0
    assert set(report["transfer"]) == {"weak alone", "weak + strong's memory"}


@pytest.mark.slow
def test_bench_lifelong_command_prints_json_and_writes_a_plot(tmp_path: Path) -> None:
    plot = tmp_path / "curves.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "memp_mcp.cli",
            "bench",
            "lifelong",
            "--episodes",
            "6",
            "--groups",
            "2",
            "--json",
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "MEMP_EMBEDDINGS": "0"},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "no memory" in report["configurations"] and "transfer" in report
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.real_model
def test_the_readme_main_command_demo_runs_with_the_real_model(tmp_path: Path, real_model_dir: Path) -> None:
    plot = tmp_path / "demo.png"
    env = {**__import__("os").environ, "MEMP_MODEL_CACHE_DIR": str(real_model_dir.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.cli", "demo", "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "no memory" in done.stdout and "adjustment" in done.stdout and "weak + strong's memory" in done.stdout
    assert all(len(line) <= 80 for line in done.stdout.splitlines())
    assert f"plot written to {plot}" in done.stdout.replace("\n", "")
    assert plot.read_bytes()[:4] == b"\x89PNG"
    said = " ".join(done.stdout.split())
    # It says what the lines are, what came out, and what to do next.
    assert "Configurations: 'no memory' runs without memp-mcp" in said and "After the world changed" in said
    assert said.rstrip().endswith("the full benchmarks are in docs/benchmarks.md.")
    assert "memp-mcp install claude-code" in said


def test_the_demo_headline_names_the_best_configuration_and_the_transfer() -> None:
    from memp_mcp.bench.lifelong import drift_headline

    def rate(value: float) -> dict[str, dict[str, float]]:
        return {"success_rate": {"median": value, "min": value, "max": value}}

    report = {
        "summary": {
            "no memory": {"before": rate(0.6), "window": rate(0.4), "after": rate(0.5)},
            "vanilla": {"before": rate(0.9), "window": rate(0.3), "after": rate(0.6)},
            "adjustment": {"before": rate(0.9), "window": rate(0.7), "after": rate(0.95)},
        },
        "transfer": {"weak alone": rate(0.2), "weak + strong's memory": rate(0.8)},
    }
    headline = drift_headline(report)
    assert headline.startswith("After the world changed, memory updated by adjustment succeeded on 95% of tasks")
    assert "(70% while it adapted) against 50% with no memory." in headline
    assert headline.endswith("A weak agent went from 20% alone to 80% with the strong agent's memory.")
