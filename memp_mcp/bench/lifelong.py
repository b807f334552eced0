"""The Memp loop end to end: scripted agents in the simulated world, memory served by `memp-mcp serve`.

Every configuration runs its own server process over stdio (its own temporary database, its
strategies set through MEMP_* variables), and the agents reach it only through the MCP tools
(`transport="in-process"` serves the same tools from this process, for quick iteration and tests).
`run_drift` changes the world's hidden rules part way through and reports each configuration
before the change, in the window right after it, and after.
Reported per configuration and per group of episodes (the learning curve): success rate, mean
steps, mean failed actions ("Nothing happens."), and characters of memory text handed to the
agent (the token-cost proxy).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import anyio

from memp_mcp.bench.agents import STRONG, WEAK, Agent, EpisodeResult, McpMemory, Skill, reports_take_procedure_id
from memp_mcp.bench.world import DEFAULT_RULES, DRIFTS, Rules, Task, World, drifted, routine_stream, task_stream

Transport = Literal["stdio", "in-process"]


@dataclass(frozen=True)
class Configuration:
    name: str
    skill: Skill
    memory: bool
    build: str = "proceduralization"
    update: str = "adjustment"
    # Procedures recalled per task. None: 3 when report_outcome takes the id of the procedure that
    # was followed, else 1, so that an outcome is attributed to exactly what the agent followed.
    recall_k: int | None = 3


CONFIGURATIONS = [
    Configuration("no memory", STRONG, memory=False),
    Configuration("trajectory+adjust", STRONG, memory=True, build="trajectory"),
    Configuration("script+adjust", STRONG, memory=True, build="script"),
    Configuration("proceduralization+adjust", STRONG, memory=True),
    Configuration("proceduralization+vanilla", STRONG, memory=True, update="vanilla"),
    Configuration("proceduralization+validation", STRONG, memory=True, update="validation"),
]
DRIFT_CONFIGURATIONS = [
    Configuration("no memory", STRONG, memory=False),
    Configuration("vanilla", STRONG, memory=True, update="vanilla", recall_k=None),
    Configuration("validation", STRONG, memory=True, update="validation", recall_k=None),
    Configuration("adjustment", STRONG, memory=True, update="adjustment", recall_k=None),
]
DEFAULT_DRIFTS = ("heater", "tap", "homes")


def summarise(results: list[EpisodeResult]) -> dict[str, float]:
    if not results:
        return {}
    return {
        "episodes": len(results),
        "success_rate": round(sum(r.success for r in results) / len(results), 3),
        "mean_steps": round(statistics.fmean(r.steps for r in results), 2),
        "mean_failed_actions": round(statistics.fmean(r.failed_actions for r in results), 2),
        "mean_memory_chars": round(statistics.fmean(r.memory_chars for r in results), 1),
        "misled_rate": round(sum(r.misled for r in results) / len(results), 3),
    }


def curve(results: list[EpisodeResult], groups: int) -> list[dict[str, float]]:
    size = max(1, len(results) // groups)
    return [summarise(results[i * size : (i + 1) * size if i < groups - 1 else None]) for i in range(groups)]


def server_env(db: Path, configuration: Configuration, base: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **base,
        "MEMP_DB_PATH": str(db),
        "MEMP_BUILD_STRATEGY": configuration.build,
        "MEMP_UPDATE_STRATEGY": configuration.update,
        "MEMP_LOG_LEVEL": "WARNING",
    }


@asynccontextmanager
async def connect(env: dict[str, str], transport: Transport) -> AsyncIterator[Any]:
    """An MCP client of a memp-mcp server: a `memp-mcp serve` process over stdio, or in this process."""
    from mcp import Client, StdioServerParameters

    if transport == "stdio":
        params = StdioServerParameters(command=sys.executable, args=["-m", "memp_mcp.cli", "serve"], env=env)
        async with Client(params) as client:
            yield client
        return
    from memp_mcp.config import load_settings
    from memp_mcp.server.app import build_server

    async with Client(build_server(load_settings(environ=env))) as client:
        yield client


async def run_episodes(
    configuration: Configuration,
    tasks: list[tuple[Task, int]],
    seed: int,
    db: Path | None,
    base_env: dict[str, str],
    progress: Callable[[str, int, int], None] | None = None,
    rules: Callable[[int], Rules] | None = None,
    transport: Transport = "stdio",
) -> list[EpisodeResult]:
    """Play `tasks` in order with one agent; with memory, through one memp-mcp server.

    `rules(i)` gives the world's hidden rules for episode i (the default rules when None).
    """
    agent = Agent(configuration.skill, seed)
    results: list[EpisodeResult] = []

    def world(index: int) -> World:
        task, world_seed = tasks[index]
        return World.generate(task, world_seed, rules(index) if rules else DEFAULT_RULES)

    if not configuration.memory or db is None:
        for index in range(len(tasks)):
            results.append(await agent.run(world(index), None))
            if progress:
                progress(configuration.name, len(results), len(tasks))
        return results
    async with connect(server_env(db, configuration, base_env), transport) as client:
        attribute = await reports_take_procedure_id(client.list_tools)
        k = configuration.recall_k or (3 if attribute else 1)
        memory = McpMemory(client.call_tool, k=k, attribute=attribute)
        for index in range(len(tasks)):
            results.append(await agent.run(world(index), memory))
            if progress:
                progress(configuration.name, len(results), len(tasks))
    return results


def run_lifelong(
    episodes: int = 60,
    seed: int = 0,
    groups: int = 4,
    base_env: dict[str, str] | None = None,
    configurations: list[Configuration] | None = None,
    transfer: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    transport: Transport = "stdio",
) -> dict[str, Any]:
    """Run every configuration on the same task stream; returns all figures."""
    env = base_env or {}
    tasks = task_stream(episodes, seed)
    report: dict[str, Any] = {"episodes": episodes, "seed": seed, "groups": groups, "configurations": {}}
    strong_library: Path | None = None
    with tempfile.TemporaryDirectory(prefix="memp-lifelong-") as tmp:
        for index, configuration in enumerate(configurations or CONFIGURATIONS):
            db = Path(tmp) / f"config-{index}.db"
            results = anyio.run(run_episodes, configuration, tasks, seed, db, env, progress, None, transport)
            report["configurations"][configuration.name] = {
                "settings": {
                    "agent": configuration.skill.name,
                    "memory": configuration.memory,
                    "build": configuration.build,
                    "update": configuration.update,
                },
                "overall": summarise(results),
                "curve": curve(results, groups),
            }
            if configuration.name == "proceduralization+adjust":
                strong_library = db
        if transfer and strong_library is not None:
            # Memory built by the strong agent above, used (and kept learning) by the weak one on new tasks.
            fresh = task_stream(transfer_episodes(episodes), seed + 1)
            weak_alone = anyio.run(
                run_episodes, Configuration("weak alone", WEAK, memory=False), fresh, seed, None, env, progress
            )
            weak_with = anyio.run(
                run_episodes,
                Configuration("weak + strong's memory", WEAK, memory=True),
                fresh,
                seed,
                strong_library,
                env,
                progress,
                None,
                transport,
            )
            report["transfer"] = {"weak alone": summarise(weak_alone), "weak + strong's memory": summarise(weak_with)}
    return report


def run_holdout(
    episodes: int,
    seed: int,
    holdout: float,
    base_env: dict[str, str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    transport: Transport = "stdio",
) -> dict[str, Any]:
    """What `stats --uplift` estimates against what this benchmark measures directly, on one task stream.

    Directly: the strong agent plays the stream with memory (MEMP_HOLDOUT unset) and without any; the
    difference of their success rates is memory's uplift. Estimated: it plays the stream once more with
    MEMP_HOLDOUT=`holdout`, the server withholding memory from that share of tasks without telling the
    agent, and the uplift is read from that server's own database, as `memp-mcp stats --uplift` reads it.
    """
    from memp_mcp.engine.memory import Memory
    from memp_mcp.store import SQLiteStore

    env = base_env or {}
    tasks = task_stream(episodes, seed)
    with_memory = Configuration("with memory", STRONG, memory=True)
    with tempfile.TemporaryDirectory(prefix="memp-holdout-") as tmp:
        alone = anyio.run(
            run_episodes, Configuration("no memory", STRONG, memory=False), tasks, seed, None, env, progress
        )
        given = anyio.run(
            run_episodes, with_memory, tasks, seed, Path(tmp) / "given.db", env, progress, None, transport
        )
        held_db = Path(tmp) / "holdout.db"
        held_env = {**env, "MEMP_HOLDOUT": str(holdout)}
        held = anyio.run(
            run_episodes,
            Configuration(f"holdout {holdout:g}", STRONG, memory=True),
            tasks,
            seed,
            held_db,
            held_env,
            progress,
            None,
            transport,
        )
        store = SQLiteStore(held_db)
        try:
            (estimate,) = Memory(store, None).uplift("default")
        finally:
            store.close()
    direct = summarise(given)["success_rate"] - summarise(alone)["success_rate"]
    interval = estimate.interval
    return {
        "seed": seed,
        "episodes": episodes,
        "holdout": holdout,
        "direct": {
            "with_memory": summarise(given),
            "without_memory": summarise(alone),
            "uplift": round(direct, 4),
        },
        "holdout_run": summarise(held),
        "estimate": estimate.model_dump(mode="json"),
        "error_points": None if estimate.difference is None else round(100 * (estimate.difference - direct), 1),
        "covered": interval is not None and interval[0] <= direct <= interval[1],
    }


def holdout_table(reports: list[dict[str, Any]]) -> Any:
    """Per seed: the direct uplift, the estimate from the holdout run, its interval, and whether they agree."""
    from rich.table import Table

    first = reports[0]
    table = Table(
        title=f"Uplift: measured directly vs `stats --uplift` (holdout {first['holdout']:g}, "
        f"{first['episodes']} tasks)",
        title_justify="left",
    )
    for column in ("seed", "direct", "estimate", "95% interval", "error", "covered", "held out"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in reports:
        estimate = r["estimate"]
        interval = estimate["interval"]
        held, given = estimate["without_memory"]["judged"], estimate["with_memory"]["judged"]
        table.add_row(
            str(r["seed"]),
            f"{100 * r['direct']['uplift']:+.1f}",
            "-" if estimate["difference"] is None else f"{100 * estimate['difference']:+.1f}",
            "-" if interval is None else f"{100 * interval[0]:+.0f} to {100 * interval[1]:+.0f}",
            "-" if r["error_points"] is None else f"{r['error_points']:+.1f}",
            "yes" if r["covered"] else "no",
            f"{held}/{held + given}",
        )
    within = sum(1 for r in reports if r["error_points"] is not None and abs(r["error_points"]) <= 10)
    covered = sum(1 for r in reports if r["covered"])
    table.caption = (
        f"points of success rate. direct: with memory minus without, two full runs of the stream; estimate: "
        f"the holdout run's arms, as `stats --uplift` reports them. Within +/-10 points on {within}/{len(reports)} "
        f"seeds; interval covers the direct uplift on {covered}/{len(reports)}."
    )
    table.caption_justify = "left"
    return table


def transfer_episodes(episodes: int) -> int:
    return max(12, episodes // 2)


def drift_phases(results: list[EpisodeResult], at: int, window: int) -> dict[str, dict[str, float]]:
    """Figures before the change (the `window` episodes before it), in the window right after, and after it."""
    half = window // 2
    return {
        "before": summarise(results[max(0, at - window) : at]),
        "window": summarise(results[at : at + window]),
        "window_early": summarise(results[at : at + half]),
        "window_late": summarise(results[at + half : at + window]),
        "after": summarise(results[at + window :]),
    }


def run_drift(
    episodes: int = 100,
    seed: int = 0,
    at: int | None = None,
    window: int | None = None,
    drifts: tuple[str, ...] = DEFAULT_DRIFTS,
    base_env: dict[str, str] | None = None,
    configurations: list[Configuration] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    transport: Transport = "stdio",
    transfer: bool = False,
    pool: int | None = 20,
) -> dict[str, Any]:
    """Every configuration on the same task stream, the world's rules changing at episode `at`.

    With `pool`, the stream draws from that many recurring tasks (see `routine_stream`); with None,
    every task is new.

    With `transfer`, the weak agent then plays new tasks (in the changed world) alone and with the
    memory the strong agent built under adjustment.
    """
    at = episodes // 2 if at is None else at
    window = max(2, (episodes - at) // 2) if window is None else window
    if not 0 < at < episodes or window < 2:
        raise ValueError("the drift must come after the first episode and before the last, with a window of 2+")
    changed = drifted(list(drifts))

    def rules(index: int) -> Rules:
        return changed if index >= at else DEFAULT_RULES

    tasks = task_stream(episodes, seed) if pool is None else routine_stream(episodes, seed, pool)
    report: dict[str, Any] = {
        "episodes": episodes,
        "seed": seed,
        "pool": pool,
        "drift_at": at,
        "window": window,
        "drifts": {name: DRIFTS[name].description for name in drifts},
        "configurations": {},
    }
    strong_library: Path | None = None
    with tempfile.TemporaryDirectory(prefix="memp-drift-") as tmp:
        for index, configuration in enumerate(configurations or DRIFT_CONFIGURATIONS):
            db = Path(tmp) / f"config-{index}.db"
            results = anyio.run(
                run_episodes, configuration, tasks, seed, db, base_env or {}, progress, rules, transport
            )
            report["configurations"][configuration.name] = {
                "settings": {"memory": configuration.memory, "update": configuration.update},
                "phases": drift_phases(results, at, window),
                "success": [int(r.success) for r in results],
                "steps": [r.steps for r in results],
            }
            if configuration.memory and configuration.update == "adjustment":
                strong_library = db
        if transfer and strong_library is not None:
            fresh = task_stream(transfer_episodes(episodes), seed + 1)
            alone = anyio.run(
                run_episodes, Configuration("weak alone", WEAK, memory=False), fresh, seed, None, {}, progress, None
            )
            helped = anyio.run(
                run_episodes,
                Configuration("weak + strong's memory", WEAK, memory=True, recall_k=None),
                fresh,
                seed,
                strong_library,
                base_env or {},
                progress,
                lambda _: changed,
                transport,
            )
            report["transfer"] = {"weak alone": summarise(alone), "weak + strong's memory": summarise(helped)}
    return report


def run_drift_seeds(seeds: list[int], **options: Any) -> dict[str, Any]:
    """`run_drift` for each seed, with the median and range of every figure."""
    runs = [run_drift(seed=seed, **options) for seed in seeds]
    summary: dict[str, Any] = {}
    for name in runs[0]["configurations"]:

        def phases(report: dict[str, Any], name: str = name) -> dict[str, Any]:
            return dict(report["configurations"][name]["phases"])

        summary[name] = across_seeds(runs, phases)
    result: dict[str, Any] = {"seeds": seeds, "runs": runs, "summary": summary}
    if "transfer" in runs[0]:
        result["transfer"] = across_seeds(runs, lambda r: r["transfer"])
    return result


def median_range(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def across_seeds(reports: list[dict[str, Any]], path: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Median and range over seeds of every figure found at `path(report)` (a dict of dicts of numbers)."""
    first = path(reports[0])
    return {
        name: {key: median_range([path(r)[name][key] for r in reports]) for key in figures}
        for name, figures in first.items()
    }


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


PHASE_COLUMNS = {"before": "before", "window": "window", "window_late": "late window", "after": "after"}


def _cell(figure: dict[str, float], metric: str) -> str:
    if metric == "success_rate":
        median, low, high = (round(100 * figure[k]) for k in ("median", "min", "max"))
        return f"{median}" if low == high else f"{median} ({low}-{high})"
    if figure["min"] == figure["max"]:
        return f"{figure['median']:.1f}"
    return f"{figure['median']:.1f} ({figure['min']:.0f}-{figure['max']:.0f})"


def drift_table(report: dict[str, Any], what: str) -> Any:
    """Success (%) or mean steps per phase and configuration, median (range) over seeds; fits 80 columns."""
    from rich.table import Table

    metric = "success_rate" if what == "success" else "mean_steps"
    first = report["runs"][0]
    title = "Success %" if what == "success" else "Mean steps"
    table = Table(title=f"{title} through the change ({_seeds_label(report)})", title_justify="left")
    table.add_column("configuration", no_wrap=True)
    for label in PHASE_COLUMNS.values():
        table.add_column(label, justify="right", no_wrap=True)
    for name, phases in report["summary"].items():
        table.add_row(name, *(_cell(phases[p][metric], metric) if phases[p] else "-" for p in PHASE_COLUMNS))
    if what == "success":
        table.caption = (
            f"Rules change at task {first['drift_at'] + 1} of {first['episodes']}: "
            + "; ".join(first["drifts"].values())
            + f". before/window: the {first['window']} tasks before/after it; late window: its second half."
        )
        table.caption_justify = "left"
    return table


def drift_headline(report: dict[str, Any]) -> str:
    """The run's result in two sentences: who recovered after the change, and what memory gave the weak agent."""

    def success(name: str, phase: str) -> float | None:
        figures = report["summary"].get(name, {}).get(phase) or {}
        rate = figures.get("success_rate")
        return None if rate is None else 100 * rate["median"]

    names = list(report["summary"])
    best = max(names, key=lambda n: success(n, "after") or 0.0)
    parts = []
    after_best, after_none = success(best, "after"), success("no memory", "after")
    window_best = success(best, "window")
    if after_best is not None and after_none is not None:
        parts.append(
            f"After the world changed, memory updated by {best} succeeded on {after_best:.0f}% of tasks "
            f"({window_best:.0f}% while it adapted) against {after_none:.0f}% with no memory."
            if window_best is not None
            else f"After the world changed, memory updated by {best} succeeded on {after_best:.0f}% of tasks "
            f"against {after_none:.0f}% with no memory."
        )
    transfer = report.get("transfer")
    if transfer:
        alone, helped = (100 * figures["success_rate"]["median"] for figures in transfer.values())
        parts.append(f"A weak agent went from {alone:.0f}% alone to {helped:.0f}% with the strong agent's memory.")
    return " ".join(parts)


def _seeds_label(report: dict[str, Any]) -> str:
    seeds = report["seeds"]
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}; median (range)"


def transfer_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"Weak agent on new tasks ({_seeds_label(report)})", title_justify="left")
    table.add_column("agent", no_wrap=True)
    table.add_column("success %", justify="right")
    table.add_column("mean steps", justify="right")
    for name, figures in report["transfer"].items():
        table.add_row(name, _cell(figures["success_rate"], "success_rate"), _cell(figures["mean_steps"], "mean_steps"))
    return table


def _group_means(series: list[list[float]], size: int) -> list[float]:
    """Per group of `size` consecutive tasks, the mean over tasks, then the median over seeds."""
    groups = len(series[0]) // size
    return [
        statistics.median(statistics.fmean(run[g * size : (g + 1) * size]) for run in series) for g in range(groups)
    ]


STYLES = [("#222222", "o", "-"), ("#d95f02", "s", "--"), ("#7570b3", "^", "-."), ("#1b9e77", "D", "-")]


def write_drift_plot(report: dict[str, Any], path: Path) -> None:
    """Success and steps per group of tasks for each configuration, the change marked; the transfer as bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install 'memp-mcp[plot]'") from None
    first = report["runs"][0]
    at, window = first["drift_at"], first["window"]
    size = next(s for s in (10, 5, 3, 2, 1) if at % s == 0 and first["episodes"] // s >= 4)
    has_transfer = "transfer" in report
    figure, axes = plt.subplots(1, 3 if has_transfer else 2, figsize=(15 if has_transfer else 11, 4.2))
    success_axis, steps_axis = axes[0], axes[1]
    names = list(first["configurations"])
    for index, (name, (colour, marker, line)) in enumerate(zip(names, STYLES * 2, strict=False)):
        runs = [r["configurations"][name] for r in report["runs"]]
        success = _group_means([[float(x) for x in r["success"]] for r in runs], size)
        steps = _group_means([[float(x) for x in r["steps"]] for r in runs], size)
        # Lines that coincide are nudged apart sideways, so that each stays visible.
        groups = [g + 0.07 * (index - (len(names) - 1) / 2) for g in range(1, len(success) + 1)]
        style = {"color": colour, "marker": marker, "linestyle": line, "label": name, "linewidth": 2}
        success_axis.plot(groups, [100 * s for s in success], **style)
        steps_axis.plot(groups, steps, **style)
    for axis in (success_axis, steps_axis):
        axis.axvline(at / size + 0.5, color="#b2182b", linestyle=":", linewidth=2)
        axis.axvspan(at / size + 0.5, (at + window) / size + 0.5, color="#f4a582", alpha=0.25)
        axis.set_xticks(range(1, first["episodes"] // size + 1))
        axis.set_xlabel(f"task group ({size} tasks each)")
        axis.grid(alpha=0.3)
    success_axis.text(at / size + 0.6, 4, "rules change; shaded: the window", color="#b2182b", fontsize=9)
    success_axis.set(title="Success per task group", ylabel="success %", ylim=(0, 105))
    steps_axis.set(title="Steps per task (fewer is better)", ylabel="mean steps")
    # The lines are memory configurations: none, and memory under each of the paper's update strategies.
    success_axis.legend(fontsize=9, loc="lower left", title="memory configuration", title_fontsize=9)
    if has_transfer:
        names = list(report["transfer"])
        values = [100 * report["transfer"][n]["success_rate"]["median"] for n in names]
        bars = axes[2].bar(names, values, color=["#999999", "#1b9e77"])
        axes[2].bar_label(bars, labels=[f"{v:.0f}%" for v in values])
        axes[2].set(title="Weak agent on new tasks", ylabel="success %", ylim=(0, 105))
    headline = drift_headline(report)
    if headline:
        # One sentence a line, in room kept free above the axes.
        figure.suptitle(headline.replace(". ", ".\n"), fontsize=10)
        figure.tight_layout(rect=(0, 0, 1, 0.88))
    else:
        figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
