"""The Memp loop end to end: scripted agents in the simulated world, memory served by `memp-mcp serve`.

Every configuration runs its own server process over stdio (its own temporary database, its
strategies set through MEMP_* variables), and the agents reach it only through the MCP tools.
Reported per configuration and per group of episodes (the learning curve): success rate, mean
steps, mean failed actions ("Nothing happens."), and characters of memory text handed to the
agent (the token-cost proxy).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio

from memp_mcp.bench.agents import STRONG, WEAK, Agent, EpisodeResult, McpMemory, Skill
from memp_mcp.bench.world import World, task_stream


@dataclass(frozen=True)
class Configuration:
    name: str
    skill: Skill
    memory: bool
    build: str = "proceduralization"
    update: str = "adjustment"


CONFIGURATIONS = [
    Configuration("no memory", STRONG, memory=False),
    Configuration("trajectory+adjust", STRONG, memory=True, build="trajectory"),
    Configuration("script+adjust", STRONG, memory=True, build="script"),
    Configuration("proceduralization+adjust", STRONG, memory=True),
    Configuration("proceduralization+vanilla", STRONG, memory=True, update="vanilla"),
    Configuration("proceduralization+validation", STRONG, memory=True, update="validation"),
]


def summarise(results: list[EpisodeResult]) -> dict[str, float]:
    if not results:
        return {}
    return {
        "episodes": len(results),
        "success_rate": round(sum(r.success for r in results) / len(results), 3),
        "mean_steps": round(statistics.fmean(r.steps for r in results), 2),
        "mean_failed_actions": round(statistics.fmean(r.failed_actions for r in results), 2),
        "mean_memory_chars": round(statistics.fmean(r.memory_chars for r in results), 1),
    }


def curve(results: list[EpisodeResult], groups: int) -> list[dict[str, float]]:
    size = max(1, len(results) // groups)
    return [summarise(results[i * size : (i + 1) * size if i < groups - 1 else None]) for i in range(groups)]


def server_env(db: Path, configuration: Configuration, base: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **base, "MEMP_DB_PATH": str(db), "MEMP_BUILD_STRATEGY": configuration.build,
            "MEMP_UPDATE_STRATEGY": configuration.update, "MEMP_LOG_LEVEL": "WARNING"}


async def run_episodes(
    configuration: Configuration,
    tasks: list[Any],
    seed: int,
    db: Path | None,
    base_env: dict[str, str],
    progress: Callable[[str, int], None] | None = None,
) -> list[EpisodeResult]:
    """Play `tasks` in order with one agent; with memory, through one `memp-mcp serve` process."""
    from mcp import Client, StdioServerParameters

    agent = Agent(configuration.skill, seed)
    results: list[EpisodeResult] = []
    if not configuration.memory or db is None:
        for task, world_seed in tasks:
            results.append(await agent.run(World.generate(task, world_seed), None))
            if progress:
                progress(configuration.name, len(results))
        return results
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "memp_mcp.cli", "serve"], env=server_env(db, configuration, base_env)
    )
    async with Client(params) as client:
        memory = McpMemory(client.call_tool)
        for task, world_seed in tasks:
            results.append(await agent.run(World.generate(task, world_seed), memory))
            if progress:
                progress(configuration.name, len(results))
    return results


def run_lifelong(
    episodes: int = 60,
    seed: int = 0,
    groups: int = 4,
    base_env: dict[str, str] | None = None,
    configurations: list[Configuration] | None = None,
    transfer: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Run every configuration on the same task stream; returns all figures."""
    env = base_env or {}
    tasks = task_stream(episodes, seed)
    report: dict[str, Any] = {"episodes": episodes, "seed": seed, "groups": groups, "configurations": {}}
    strong_library: Path | None = None
    with tempfile.TemporaryDirectory(prefix="memp-lifelong-") as tmp:
        for index, configuration in enumerate(configurations or CONFIGURATIONS):
            db = Path(tmp) / f"config-{index}.db"
            results = anyio.run(run_episodes, configuration, tasks, seed, db, env, progress)
            report["configurations"][configuration.name] = {
                "settings": {"agent": configuration.skill.name, "memory": configuration.memory,
                             "build": configuration.build, "update": configuration.update},
                "overall": summarise(results),
                "curve": curve(results, groups),
            }
            if configuration.name == "proceduralization+adjust":
                strong_library = db
        if transfer and strong_library is not None:
            # Memory built by the strong agent above, used (and kept learning) by the weak one on new tasks.
            fresh = task_stream(max(12, episodes // 2), seed + 1)
            weak_alone = anyio.run(run_episodes, Configuration("weak alone", WEAK, memory=False), fresh, seed, None,
                                   env, progress)
            weak_with = anyio.run(run_episodes, Configuration("weak + strong's memory", WEAK, memory=True), fresh,
                                  seed, strong_library, env, progress)
            report["transfer"] = {"weak alone": summarise(weak_alone), "weak + strong's memory": summarise(weak_with)}
    return report


def episode_dicts(results: list[EpisodeResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Learning curves (success rate and mean steps per group) as a PNG. Needs matplotlib (the `plot` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'memp-mcp[plot]'") from None
    figure, (success_axis, steps_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for name, figures in report["configurations"].items():
        groups = range(1, len(figures["curve"]) + 1)
        success_axis.plot(groups, [g.get("success_rate", 0) for g in figures["curve"]], marker="o", label=name)
        steps_axis.plot(groups, [g.get("mean_steps", 0) for g in figures["curve"]], marker="o", label=name)
    success_axis.set(title="Success rate per task group", xlabel="group", ylabel="success rate", ylim=(0, 1.05))
    steps_axis.set(title="Mean steps per task group", xlabel="group", ylabel="steps")
    steps_axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
