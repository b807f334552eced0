"""The benchmarks (`bench ...`) and `demo`, with their progress bars and tables; the runs themselves
live in memp_mcp.bench.

`bench ...` is registered here; memp_mcp.cli.root registers `demo`.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from memp_mcp.cli.common import console, errors, fail, settings_with
from memp_mcp.cli.options import DatabaseUrlOption
from memp_mcp.errors import MempError

STEPS = 50

bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)

JsonFiguresOption = Annotated[bool, typer.Option("--json", help="End with one JSON line of every figure.")]


@contextlib.contextmanager
def _progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per named stage (a benchmark's phase, a simulated world's configuration), and the
    callback that moves them."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=errors
    ) as bar:
        bars: dict[str, Any] = {}

        def report_progress(name: str, done: int, total: int) -> None:
            if name not in bars:
                bars[name] = bar.add_task(name, total=total)
            bar.update(bars[name], completed=done)

        yield report_progress


@bench_app.command("retrieval")
def bench_retrieval(
    dataset: Annotated[Path, typer.Option(help="The proced_mem_bench directory.")] = Path(
        "../shared/datasets/proced_mem_bench"
    ),
    strategy: Annotated[
        list[str] | None, typer.Option("--strategy", help="Retrieve strategies to run (default: all).")
    ] = None,
    as_json: JsonFiguresOption = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Run on PostgreSQL: a server where this user may create databases (a scratch one, dropped after).",
        ),
    ] = None,
) -> None:
    """Retrieval quality: the public benchmark per strategy and tier, then this project's own sets
    (paraphrases, coding, non-English, unrelated) beside the plain-cosine baseline."""
    from memp_mcp.bench.retrieval import STRATEGIES, run_benchmark
    from memp_mcp.embedding import resolve_embedder
    from memp_mcp.engine.retrieve import tuning_for
    from memp_mcp.model_fetch import minilm_dir

    chosen = strategy or list(STRATEGIES)
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown:
        fail(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    if not dataset.is_dir():
        fail(f"dataset directory {dataset} not found; pass --dataset path/to/proced_mem_bench")
    settings = settings_with(database_url=database_url)
    try:
        embedder = resolve_embedder(settings)
        model_dir = settings.model_dir or minilm_dir(settings.model_cache_dir)
        tuning = tuning_for(settings)
        with _progress_bars() as report:
            results = run_benchmark(
                dataset,
                embedder,
                strategies=chosen,
                model_dir=model_dir,
                tuning=tuning,
                progress=report,
                database_url=settings.database_url,
            )
    except MempError as exc:
        fail(str(exc))
    results["model"] = embedder.identity
    backend = "PostgreSQL" if settings.database_url else "SQLite"
    table = Table(
        title=f"Retrieval on {dataset.name} ({results['counts']['queries']} queries, {embedder.identity}, {backend})"
    )
    for column in ("method", "MAP", "AP@10", "P@1", "P@5", "nDCG@10", "EASY MAP", "MEDIUM MAP", "HARD MAP"):
        table.add_column(column, justify="right" if column != "method" else "left")
    rows = {**{f"memp {k}": v for k, v in results["strategies"].items()}, **results["baselines"]}
    for name, m in rows.items():
        table.add_row(
            name,
            *(f"{m[key]:.3f}" for key in ("map", "ap@10", "p@1", "p@5", "ndcg@10")),
            *(f"{m['tiers'][tier].get('map', 0):.3f}" for tier in ("EASY", "MEDIUM", "HARD")),
        )
    console.print(table)
    own = Table(title="Own sets (tuning: the defaults were set on it; held out: never looked at while tuning)")
    for column in ("set", "queries", "method", "MAP", "P@1", "P@5", "nDCG@10", "answered", "empty"):
        own.add_column(column, justify="left" if column in ("set", "method") else "right")
    for name, figures in results["sets"].items():
        for method, m in figures["methods"].items():
            own.add_row(
                name,
                str(figures["queries"]),
                method,
                *(f"{m[key]:.3f}" if key in m else "" for key in ("map", "p@1", "p@5", "ndcg@10", "answered", "empty")),
            )
    console.print(own)
    if "calibrated_floor" in results:
        console.print(
            f"semantic floor calibrated on the unrelated tuning set: {results['calibrated_floor']:.2f} "
            f"(in use: {tuning.semantic_floor:.2f}; MEMP_RELEVANCE_FLOOR sets it)"
        )
    console.print(f"timing: {results['timing']}")
    if as_json:
        print(json.dumps(results))


@bench_app.command("latency")
def bench_latency(
    procedures: Annotated[
        list[int] | None,
        typer.Option("--procedures", help="Database size; repeat for several (default 1000 and 10000)."),
    ] = None,
    runs: Annotated[int, typer.Option(help="Server runs per size (figures are medians).")] = 3,
    recalls: Annotated[int, typer.Option(help="Recalls per run.")] = 200,
    records: Annotated[int, typer.Option(help="record_trajectory calls per run.")] = 50,
    as_json: JsonFiguresOption = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Keep the built databases here and reuse them next time (100,000 takes ~25 min to build)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Also measure on PostgreSQL: a server where this user may create databases (one per size, "
            "holding a copy of the SQLite one, dropped after). Sizes from --bulk-from on are measured on "
            "PostgreSQL only, on a database built there by the bulk loader.",
        ),
    ] = None,
    bulk_from: Annotated[
        int,
        typer.Option(
            help="With --database-url: from this size on, build the PostgreSQL database directly with COPY "
            "(--targets procedures embedded with the real model, the rest derived from them) instead of "
            "through SQLite. With --cache-dir it is kept on the server and reused."
        ),
    ] = 200_000,
    targets: Annotated[
        int, typer.Option(help="Procedures embedded with the real model in a bulk-loaded database (recall targets).")
    ] = 5_000,
) -> None:
    """Latency through the MCP protocol (stdio): recall, record, report, start-up, RSS, size on disk."""
    from memp_mcp.bench.latency import run_latency
    from memp_mcp.embedding import resolve_embedder

    sizes = procedures or [1000, 10_000]
    if any(size < 10 or size > 1_000_000 for size in sizes) or runs < 1 or recalls < 10 or records < 1:
        fail("--procedures must be 10..1,000,000, --runs >= 1, --recalls >= 10, --records >= 1")
    if targets < 10 or bulk_from < 10:
        fail("--targets and --bulk-from must be at least 10")
    settings = settings_with(database_url=database_url)
    try:
        embedder = resolve_embedder(settings)
    except MempError as exc:
        fail(str(exc))
    env = {"MEMP_MODEL_CACHE_DIR": str(settings.model_cache_dir), "MEMP_LOG_LEVEL": "WARNING"}
    if settings.model_dir:
        env["MEMP_MODEL_DIR"] = str(settings.model_dir)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=errors,
    ) as bar:
        bars: dict[int, Any] = {}
        phases: dict[str, Any] = {}

        def on_build(done: int, total: int) -> None:
            if total not in bars:
                bars[total] = bar.add_task(f"building {total:,} procedures", total=total)
            bar.update(bars[total], completed=done)

        def on_phase(phase: str, done: int, total: int) -> None:
            if phase not in phases:
                phases[phase] = bar.add_task(phase, total=total)
            bar.update(phases[phase], completed=done)

        def on_run(size: int, run: int, figures: dict[str, Any]) -> None:
            errors.print(
                f"N={size:,} run {run + 1}: recall p95 {figures['recall_p95_ms']:.1f} ms, "
                f"record p95 {figures['record_p95_ms']:.1f} ms, initialize {figures['initialize_s']:.2f} s, "
                f"load average {figures['load_average']:.1f}"
            )

        results = run_latency(
            sizes,
            embedder,
            env=env,
            runs=runs,
            recalls=recalls,
            records=records,
            cache_dir=cache_dir,
            database_url=settings.database_url,
            bulk_from=bulk_from,
            targets=targets,
            on_build=on_build,
            on_run=on_run,
            on_phase=on_phase,
        )
    columns = [(f"N={int(size):,}", figures) for size, figures in results["sizes"].items()]
    if "postgresql" in results:
        columns = [(f"{label} sqlite", figures) for label, figures in columns] + [
            (f"N={int(size):,} postgresql", figures) for size, figures in results["postgresql"]["sizes"].items()
        ]
    table = Table(title=f"Latency over stdio (median [min-max] of {runs} runs)")
    keys = [
        "recall_p50_ms",
        "recall_p95_ms",
        "recall_p99_ms",
        "record_p50_ms",
        "record_p95_ms",
        "report_p50_ms",
        "initialize_s",
        "first_recall_s",
        "peak_rss_mb",
        "load_average",
    ]
    table.add_column("figure")
    for label, _ in columns:
        table.add_column(label, justify="right")
    for key in keys:
        cells = []
        for _, figures in columns:
            value = figures.get(key)
            cells.append("n/a" if value is None else f"{value['median']:.2f} [{value['min']:.2f}-{value['max']:.2f}]")
        table.add_row(key, *cells)
    for key in ("pg_backend_peak_rss_mb", "pg_backends_private_mb"):
        if any(key in figures for _, figures in columns):
            table.add_row(
                key,
                *(
                    f"{f[key]['median']:.1f} [{f[key]['min']:.1f}-{f[key]['max']:.1f}]" if key in f else "n/a"
                    for _, f in columns
                ),
            )
    table.add_row("db size MB", *(str(f["db_mb_after_runs"]) for _, f in columns))
    table.add_row("build s", *("reused" if f["build_s"] is None else str(f["build_s"]) for _, f in columns))
    console.print(table)
    for size, figures in results.get("postgresql", {}).get("sizes", {}).items():
        if "corpus" in figures:
            _print_bulk_details(int(size), figures)
    if as_json:
        print(json.dumps(results))


def _print_bulk_details(size: int, figures: dict[str, Any]) -> None:
    """What a bulk-loaded PostgreSQL database is made of and cost: corpus, build phases, HNSW, disk, server."""
    console.print(f"PostgreSQL, {size:,} procedures (bulk-loaded)")
    console.print(f"  real: {figures['corpus']['real']}")
    console.print(f"  synthetic: {figures['corpus']['synthetic']}")
    build = figures["build"]
    if build.get("reused"):
        console.print("  build: reused (kept on the server from an earlier run)")
    else:
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in build["phases_s"].items())
        console.print(f"  build {build['build_s']:.1f} s: {phases}")
        console.print("  HNSW index: " + ", ".join(f"{name}={value}" for name, value in build["hnsw"].items()))
    disk = figures["disk"]
    console.print(f"  on disk before the runs: {disk['database_mb']:,.1f} MB")
    for table, split in disk["tables"].items():
        if split["rows_mb"] + split["indexes_mb"] >= 1:
            console.print(f"    {table}: rows {split['rows_mb']:,.1f} MB, indexes {split['indexes_mb']:,.1f} MB")
    console.print(
        "  largest indexes: " + ", ".join(f"{name} {mb:,.1f} MB" for name, mb in disk["largest_indexes_mb"].items())
    )
    console.print("  server: " + ", ".join(f"{name}={value}" for name, value in figures["server"].items()))
    warmed = figures.get("page_cache_warmed_mb")
    console.print(
        f"  before the runs, {warmed:,.0f} MB of the database's files were read into the page cache"
        if warmed is not None
        else "  the database's files were out of reach: the runs started with a cold page cache"
    )


@bench_app.command("hook")
def bench_hook(
    procedures: Annotated[
        list[int] | None, typer.Option("--procedures", help="Memory size; repeat for several (default 1000).")
    ] = None,
    runs: Annotated[int, typer.Option(help="Warm prompts per size.")] = 40,
    cold_runs: Annotated[int, typer.Option(help="Prompts per size after dropping the files from the page cache.")] = 5,
    workdir: Annotated[Path | None, typer.Option(help="Keep the databases here for the next run.")] = None,
    as_json: JsonFiguresOption = False,
) -> None:
    """What the prompt hook adds to a prompt: p50/p95 warm and cold, and what it injects."""
    from memp_mcp.bench.hook import run_hook_bench
    from memp_mcp.hooks.install import launcher

    sizes = procedures or [1000]
    if any(size < 10 or size > 200_000 for size in sizes) or runs < 5 or cold_runs < 1:
        fail("--procedures must be 10..200,000, --runs >= 5, --cold-runs >= 1")
    with tempfile.TemporaryDirectory(prefix="memp-bench-hook-") as scratch:
        folder = workdir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        results = run_hook_bench([*launcher(), "hook"], sizes, folder, runs=runs, cold_runs=cold_runs)
    table = Table(title=f"Prompt hook, one process per prompt ({results['command'][0]})")
    columns = ("memory", "warm p50/p95 ms", "in-process p50/p95 ms", "cold p50/p95 ms", "injected", "chars mean/max")
    for column in columns:
        table.add_column(column, justify="right")
    for size, figures in results["sizes"].items():
        warm, plain, cold = figures["warm_ms"], figures["in_process_ms"], figures["cold_ms"]
        chars = figures["injection_chars"]
        table.add_row(
            f"{int(size):,}",
            f"{warm['p50']:.0f}/{warm['p95']:.0f}" + ("" if figures["warm_with_model"] else " (no model)"),
            f"{plain['p50']:.0f}/{plain['p95']:.0f}",
            f"{cold['p50']:.0f}/{cold['p95']:.0f}",
            f"{figures['injected']}/{warm['n']}",
            f"{chars['mean']}/{chars['max']}",
        )
    table.caption = (
        "warm: the warm server answers; in-process: no server (MEMP_HOOK_SERVER=0); "
        "cold: no server and the files out of the page cache"
    )
    console.print(table)
    startup = results["python_startup_ms"]
    console.print(f"an empty Python process takes {startup['p50']:.0f} ms (p50), {startup['p95']:.0f} ms (p95) here")
    if as_json:
        print(json.dumps(results))


@bench_app.command("runs")
def bench_runs(
    file: Annotated[Path, typer.Argument(help="A JSONL of runs: task, steps [{action, observation}], outcome.")],
    fake_embedder: Annotated[
        bool, typer.Option("--fake-embedder", help="A hashing stand-in for the model: fast, no retrieval quality.")
    ] = False,
    as_json: JsonFiguresOption = False,
) -> None:
    """Other agents' runs recorded into a fresh database: refused, plumbing share, title P@1, record time.
    The MEMP_*_STRATEGY settings apply (MEMP_UPDATE_STRATEGY=vanilla builds from unresolved runs too)."""
    from memp_mcp.bench.hashing import HashingEmbedder
    from memp_mcp.bench.runs import load_runs, run_runs_benchmark
    from memp_mcp.embedding import Embedder, resolve_embedder
    from memp_mcp.engine.strategies import Strategies

    if not file.is_file():
        fail(f"{file} is not a file; pass a JSONL of runs (one {{task, steps, outcome}} object a line)")
    settings = settings_with()
    strategies = Strategies(settings.build_strategy, settings.retrieve_strategy, settings.update_strategy)
    try:
        runs = load_runs(file)
        embedder: Embedder = HashingEmbedder() if fake_embedder else resolve_embedder(settings)
        with _progress_bars() as report:
            results = run_runs_benchmark(runs, embedder, progress=report, strategies=strategies)
    except MempError as exc:
        fail(str(exc))
    table = Table(
        title=f"Runs of {file.name} recorded ({results['runs']} runs, {results['model']}, "
        f"update strategy {results['update_strategy']})"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    steps = results["steps_per_procedure"]
    rows = {
        "runs (resolved)": f"{results['runs']} ({results['resolved']})",
        "refused": str(results["refused"]),
        "procedures built": str(results["procedures"]),
        "plumbing share of steps": f"{results['plumbing_share']:.1%} ({results['plumbing_steps']}/{results['steps']})",
        "title P@1": f"{results['title_p_at_1']:.1%} of {results['title_queries']}",
        "steps per procedure (median/max)": f"{steps['median']}/{steps['max']}",
        "resolved runs whose procedure names every patched file": f"{results['patch_files_held']}",
        "steps that are probes or one line over 600 characters": f"{results['probe_or_long_line_share']:.1%}",
        "record p50/p95 ms": f"{results['record_ms']['p50']:.1f}/{results['record_ms']['p95']:.1f}",
        "record CPU p50/p95 ms": f"{results['record_cpu_ms']['p50']:.1f}/{results['record_cpu_ms']['p95']:.1f}",
        "served from unresolved runs (as proven)": (
            f"{results['served_from_unresolved']} ({results['proven_from_unresolved']})"
        ),
    }
    for name, value in rows.items():
        table.add_row(name, value)
    console.print(table)
    for example in results["refused_examples"]:
        console.print(f"refused {example['id']}: {example['reason']}")
    for example in results["plumbing_examples"]:
        console.print(f"plumbing: {example}")
    if as_json:
        print(json.dumps(results))


@bench_app.command("redaction")
def bench_redaction(
    datasets: Annotated[
        Path, typer.Argument(help="The datasets folder (swe_trajectories/, claude_code_sessions/).")
    ] = Path("shared/datasets"),
    as_json: JsonFiguresOption = False,
) -> None:
    """False redactions on real development work, and the time redaction adds to a record and a Stop hook."""
    from memp_mcp.bench.redaction import run_redaction_bench

    if not (datasets / "swe_trajectories" / "django.jsonl").is_file():
        fail(f"{datasets} has no swe_trajectories/django.jsonl; give the datasets folder")
    with tempfile.TemporaryDirectory(prefix="memp-bench-redaction-") as scratch:
        results = run_redaction_bench(datasets, Path(scratch))
    false = results["false_redactions"]
    swe_share = false["swe_steps_redacted"] / max(1, false["swe_steps"])
    session_share = false["session_texts_redacted"] / max(1, false["session_texts"])
    console.print(
        f"false redactions: {false['swe_steps_redacted']}/{false['swe_steps']} SWE-agent steps ({swe_share:.2%}), "
        f"{false['session_texts_redacted']}/{false['session_texts']} Claude Code prompts, tool calls and results "
        f"({session_share:.2%}), {false['instructions_redacted']}/{false['instructions']} instructions; "
        f"held out (not tuned on): {false['skills_redacted']}/{false['skills']} published SKILL.md files"
    )
    console.print(f"  by kind: {false['kinds'] or 'none'}")
    for example in false["examples"]:
        console.print(f"  {example}", highlight=False)
    record = results["record_50_steps"]["ms"]
    console.print(
        f"record, redaction pass over a {STEPS}-step trajectory: "
        f"p50 {record['p50']:.2f} ms, p95 {record['p95']:.2f} ms "
        f"({record['n']} windows of the real runs, {results['record_50_steps']['chars_p50']:,} characters p50)"
    )
    stop = results["stop_hook_2mb"]
    console.print(
        f"Stop hook on a {stop['bytes']:,}-byte transcript ({stop['steps']} steps): "
        f"{stop['without_ms']['p95']:.1f} ms p95 without redaction, {stop['with_ms']['p95']:.1f} ms with; "
        f"added p50 {stop['added_ms']['p50']:.1f} ms, p95 {stop['added_ms']['p95']:.1f} ms "
        f"(fastest against fastest: {stop['added_best_ms']:.1f} ms)"
    )
    console.print(f"first redaction in a fresh process (loads detect-secrets' plugins): {results['first_use_ms']} ms")
    if as_json:
        print(json.dumps(results))


@bench_app.command("multi-server")
def bench_multi_server(
    database_url: DatabaseUrlOption = None,
    servers: Annotated[int, typer.Option(help="HTTP server processes on the one database.")] = 3,
    clients: Annotated[int, typer.Option(help="MCP clients at once, spread across the servers.")] = 12,
    writes: Annotated[int, typer.Option(help="record_trajectory calls per client (each followed by a recall).")] = 20,
    as_json: JsonFiguresOption = False,
) -> None:
    """Several streamable-HTTP servers on one PostgreSQL database, clients spread across them: errors,
    anything lost, and whether every server sees every other's writes. Use an empty database."""
    from memp_mcp.bench.multi_server import run_multi_server

    settings = settings_with(database_url=database_url)
    if not settings.database_url:
        fail("give the PostgreSQL database with --database-url (or MEMP_DATABASE_URL); it should be empty")
    if not 1 <= servers <= 32 or not 1 <= clients <= 1000 or not 1 <= writes <= 10_000:
        fail("--servers must be 1..32, --clients 1..1000, --writes 1..10000")
    env = {
        "MEMP_DATABASE_URL": settings.database_url,
        "MEMP_LOG_LEVEL": "WARNING",
        "MEMP_MODEL_CACHE_DIR": str(settings.model_cache_dir),
    }
    if settings.model_dir:
        env["MEMP_MODEL_DIR"] = str(settings.model_dir)
    if not settings.embeddings:
        env["MEMP_EMBEDDINGS"] = "0"
    figures = run_multi_server(env, servers=servers, clients=clients, writes=writes).as_dict()
    for key, value in figures.items():
        console.print(f"{key}: {value}", highlight=False)
    if as_json:
        print(json.dumps(figures))
    if figures["errors"] or figures["missing_trajectories"] or figures["unseen_procedures"]:
        raise typer.Exit(1)


def _lifelong_table(report: dict[str, Any]) -> Table:
    """The lifelong figures in 80 columns: short names, success per group as plain percentages."""
    table = Table(title=f"Lifelong: {report['episodes']} tasks (seed {report['seed']})", title_justify="left")
    table.add_column("configuration", no_wrap=True)
    for column in ("success", "steps", "failed", "chars", "% by group"):
        table.add_column(column, justify="right", no_wrap=True)
    short = {"proceduralization": "proc.", "weak + strong's memory": "weak + strong mem"}
    rows = {name: (f["overall"], f["curve"]) for name, f in report["configurations"].items()}
    rows.update({name: (figures, []) for name, figures in report.get("transfer", {}).items()})
    table.caption = (
        "strong agent unless noted (weak: new tasks); failed = actions answered 'Nothing happens.'; "
        "chars = memory text recalled per task; proc. = proceduralization"
    )
    table.caption_justify = "left"
    for name, (overall, groups) in rows.items():
        for long, abbreviation in short.items():
            name = name.replace(long, abbreviation)
        table.add_row(
            name,
            f"{overall['success_rate']:.0%}",
            f"{overall['mean_steps']:.1f}",
            f"{overall['mean_failed_actions']:.2f}",
            f"{overall['mean_memory_chars']:.0f}",
            " ".join(f"{100 * g.get('success_rate', 0):.0f}" for g in groups),
        )
    return table


def _run_lifelong(episodes: int, seed: int, groups: int, plot: Path | None, as_json: bool) -> None:
    from memp_mcp.bench.lifelong import run_lifelong, write_plot

    env = _bench_env()
    with _progress_bars() as report_progress:
        report = run_lifelong(episodes, seed, groups, env, progress=report_progress)
    console.print(_lifelong_table(report))
    _finish_report(report, plot, write_plot, "learning curves", as_json)


@bench_app.command("freshness")
def bench_freshness(
    modules: Annotated[int, typer.Option(help="Modules in the repository (one recorded session each).")] = 39,
    seed: Annotated[int, typer.Option(help="Seed of the churn.")] = 0,
    repeats: Annotated[int, typer.Option(help="Recalls per task for the timing.")] = 5,
    as_json: JsonFiguresOption = False,
) -> None:
    """Churn: procedures recorded against a repository that is then renamed, deleted and edited under them;
    the stale steps flagged, the fresh steps flagged, and the time the check adds to a prompt's recall."""
    from memp_mcp.bench.freshness import run_freshness

    if not 4 <= modules <= 100 or not 1 <= repeats <= 100:
        fail("--modules must be 4..100 and --repeats 1..100")
    results = run_freshness(modules, seed, repeats)
    table = Table(
        title=f"Freshness under churn ({results['procedures']} procedures, {results['steps']} steps, seed {seed})",
        title_justify="left",
    )
    for column in ("figure", "value", "target"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    table.add_row(
        "truly stale steps flagged",
        f"{results['stale_flagged']}/{results['stale_steps']} = {results['stale_flagged_share']:.1%}",
        ">= 95%",
    )
    table.add_row(
        "fresh steps flagged",
        f"{results['fresh_flagged']}/{results['fresh_steps']} = {results['fresh_flagged_share']:.1%}",
        "<= 5%",
    )
    table.add_row(
        "steps flagged before the churn", f"{results['flagged_before_churn']}/{results['steps_before_churn']}", "0"
    )
    p95, p50 = results["p95_ms"], results["p50_ms"]
    table.add_row("recall p95 / p50 without the check (ms)", f"{p95['without']:.2f} / {p50['without']:.2f}", "")
    table.add_row("recall p95 / p50 with the check (ms)", f"{p95['with']:.2f} / {p50['with']:.2f}", "")
    table.add_row("added p95 (ms)", f"{results['added_p95_ms']:.2f}", "<= 5")
    table.add_row("the check alone, p95 / p50 (ms)", f"{p95['check']:.2f} / {p50['check']:.2f}", "")
    table.add_row("the check alone, CPU p95 / p50 (ms)", f"{p95['check_cpu']:.2f} / {p50['check_cpu']:.2f}", "")
    console.print(table)
    for example in results["examples"]:
        console.print(Text(f"  {example}"), highlight=False)
    if as_json:
        print(json.dumps(results))


@bench_app.command("coding")
def bench_coding(
    k: Annotated[int, typer.Option(help="Procedures per recall.")] = 3,
    as_json: JsonFiguresOption = False,
) -> None:
    """The coding-agent corpus through the MCP server: steps kept, failures, placeholders, recall sizes."""
    import anyio

    from memp_mcp.bench.coding import run_coding_benchmark
    from memp_mcp.embedding import resolve_embedder

    try:
        embedder = resolve_embedder(settings_with())
    except MempError as exc:
        errors.print(f"no embedding model ({exc}); keyword retrieval only", highlight=False)
        embedder = None
    results = anyio.run(run_coding_benchmark, embedder, k)
    table = Table(title=f"Coding corpus ({results['model']})")
    columns = (
        "case",
        "actions",
        "steps kept",
        "as expected",
        "failed actions",
        "kept as reproduction",
        "failed kept otherwise",
        "pitfalls",
        "placeholders in code",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "case" else "right")
    for case in results["cases"]:
        table.add_row(
            case["case"],
            str(case["actions"]),
            str(case["steps_kept"]),
            str(case["matches_expected"]),
            str(case["failed_actions"]),
            str(case["failed_kept_as_reproduction"]),
            str(case["failed_kept_otherwise"]),
            str(case["pitfalls"]),
            str(case["placeholders_in_code"]),
        )
    console.print(table)
    sizes = Table(title=f"k={k} recalls: characters received (text + structured), budget {results['budget']:,}")
    for column in ("query", "chars", "procedures", "left out"):
        sizes.add_column(column, justify="right" if column in ("chars", "procedures") else "left")
    for recall in results["recalls"]:
        sizes.add_row(recall["query"], str(recall["chars"]), str(recall["procedures"]), recall["left_out"] or "")
    console.print(sizes)
    console.print(f"largest k={k} recall: {results['largest_recall_chars']:,} characters")
    if as_json:
        print(json.dumps(results))


@bench_app.command("peer")
def bench_peer(
    peer_command: Annotated[
        str, typer.Option(help="How to start mcp-server-qdrant over stdio (installed apart, in a venv of its own).")
    ] = "mcp-server-qdrant",
    size: Annotated[list[int] | None, typer.Option("--size", help="Documents; repeat (default 336 and 5000).")] = None,
    queries: Annotated[int, typer.Option(help="Timed queries per server and run.")] = 100,
    k: Annotated[int, typer.Option(help="Results per query, both servers.")] = 10,
    runs: Annotated[int, typer.Option(help="Runs per size, the servers taking turns to go first (medians).")] = 3,
    stores: Annotated[int, typer.Option(help="New documents stored per server and run, after the queries.")] = 50,
    calm_load: Annotated[
        float | None,
        typer.Option(help="Before each run, wait up to --calm-wait seconds for the 1-minute load average below this."),
    ] = None,
    calm_wait: Annotated[float, typer.Option(help="With --calm-load: the longest wait before a run, seconds.")] = 600,
    as_json: JsonFiguresOption = False,
) -> None:
    """memp-mcp side by side with mcp-server-qdrant over stdio: same model, documents and queries; query
    latency, store per document, server CPU per query, answer bytes, restart, peak RSS and disk, with the
    targets met or missed. MEMP_EMBEDDINGS=0 runs memp-mcp on keyword retrieval (a check of the benchmark)."""
    import shlex

    import anyio
    from mcp.shared.exceptions import MCPError

    from memp_mcp.bench.peer import run_peer_comparison
    from memp_mcp.embedding import Embedder, resolve_embedder
    from memp_mcp.model_fetch import minilm_dir

    sizes = tuple(size or (336, 5000))
    if not all(1 <= n <= 1_000_000 for n in sizes) or not 1 <= queries <= 100_000 or not 1 <= k <= 50:
        fail("--size must be 1..1000000, --queries 1..100000 and --k 1..50")
    if not 1 <= runs <= 100 or not 1 <= stores <= 10_000:
        fail("--runs must be 1..100 and --stores 1..10000")
    if calm_load is not None and (calm_load <= 0 or not 0 <= calm_wait <= 86_400):
        fail("--calm-load must be above 0 and --calm-wait 0..86400 seconds")
    command = shlex.split(peer_command)
    if not command:
        fail("--peer-command is empty; give the command that starts mcp-server-qdrant")
    settings = settings_with()
    embedder: Embedder | None = None
    model_dir: Path | None = None
    if settings.embeddings:
        try:
            embedder = resolve_embedder(settings)
        except MempError as exc:
            fail(str(exc))
        model_dir = settings.model_dir or minilm_dir(settings.model_cache_dir)
    with _progress_bars() as report:
        try:
            results = anyio.run(
                lambda: run_peer_comparison(
                    command, embedder, model_dir, sizes, queries, k, runs, stores, 0, report, calm_load, calm_wait
                )
            )
        except (OSError, RuntimeError, MCPError, ExceptionGroup) as exc:
            fail(
                f"the comparison stopped: {_innermost_error(exc)} (a server that will not start says why above; "
                "try its command by hand)"
            )
    for documents, figures in results["sizes"].items():
        console.print(_peer_table(documents, figures, results))
    if as_json:
        print(json.dumps(results))


def _innermost_error(exc: BaseException) -> BaseException:
    """The first error inside task groups' exception groups (what actually went wrong)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


_PEER_ROWS = (
    ("query p50 ms", "query_p50_ms", "{:.1f}"),
    ("query p95 ms", "query_p95_ms", "{:.1f}"),
    ("store a doc p50 ms", "store_p50_ms", "{:.1f}"),
    ("store a doc p95 ms", "store_p95_ms", "{:.1f}"),
    ("CPU per query ms", "cpu_per_query_ms", "{:.1f}"),
    ("answer bytes p50", "answer_bytes_p50", "{:,.0f}"),
    ("start: initialize s", "initialize_s", "{:.2f}"),
    ("start: 1st answer s", "first_query_s", "{:.2f}"),
    ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
    ("disk MB", "disk_mb", "{:.1f}"),
)


def _peer_table(documents: str, figures: dict[str, Any], results: dict[str, Any]) -> Table:
    loads = "; ".join(
        f"run {n} ({' then '.join(run['order'])}) load {run['load'][0]:.1f}-{run['load'][1]:.1f}"
        + (f" after {run['waited_s']:.0f} s waiting" if run.get("waited_s") else "")
        for n, run in enumerate(figures["runs"], 1)
    )
    table = Table(
        title=f"{documents} documents: memp-mcp against mcp-server-qdrant over stdio, k={results['k']}, "
        f"{results['queries']} queries and {results['stores']} stores a run, medians of {results['runs']} runs "
        f"({results['model']})",
        caption=loads,
    )
    for column in ("figure", "memp-mcp", "mcp-server-qdrant", "target", "result"):
        table.add_column(column, justify="left" if column in ("figure", "target", "result") else "right")
    for label, key, form in _PEER_ROWS:
        memp, peer = figures["memp"].get(key), figures["peer"].get(key)
        target = figures["targets"].get(key)
        rule, result = "", Text("")
        if target:
            rule = target["rule"]
            if key == "answer_bytes_p50" and figures["answer_bytes_ratio"] is not None:
                rule += f" (ratio {figures['answer_bytes_ratio']:.2f})"
            result = {True: Text("met", "green"), False: Text("missed", "red"), None: Text("n/a")}[target["met"]]
        table.add_row(
            label,
            "-" if memp is None else form.format(memp),
            "-" if peer is None else form.format(peer),
            rule,
            result,
        )
    return table


@bench_app.command("lifelong")
def bench_lifelong(
    episodes: Annotated[
        int | None, typer.Option(help="Tasks per configuration (default 60; 100 with --drift).")
    ] = None,
    seed: Annotated[
        list[int] | None, typer.Option(help="Seed of the task stream and the agents; repeat for several (medians).")
    ] = None,
    groups: Annotated[int, typer.Option(help="Task groups in the learning curve.")] = 4,
    plot: Annotated[Path | None, typer.Option(help="Write the learning curves to this PNG.")] = None,
    drift: Annotated[bool, typer.Option("--drift", help="Change the world's hidden rules part way through.")] = False,
    drift_at: Annotated[
        int | None, typer.Option(help="With --drift: the episode the rules change at (default half).")
    ] = None,
    window: Annotated[int | None, typer.Option(help="With --drift: episodes in the window after the change.")] = None,
    drifts: Annotated[
        list[str] | None,
        typer.Option("--change", help="With --drift: which rules change (heater, tap, homes); repeat."),
    ] = None,
    holdout: Annotated[
        float | None,
        typer.Option(
            help="Withhold memory from this share of tasks (MEMP_HOLDOUT) and compare the uplift `stats --uplift` "
            "reports with the one measured directly (default 1000 tasks)."
        ),
    ] = None,
    as_json: JsonFiguresOption = False,
) -> None:
    """Scripted agents in a simulated world, with and without memory, through `memp-mcp serve`."""
    count = episodes or (100 if drift else 1000 if holdout is not None else 60)
    if not 6 <= count <= 10_000 or not 1 <= groups <= count:
        fail("--episodes must be 6..10000 and --groups 1..episodes")
    seeds = seed or [0]
    if holdout is not None:
        if drift or not 0 < holdout < 1:
            fail("--holdout takes a share between 0 and 1 (e.g. 0.2), without --drift")
        _run_holdout(count, seeds, holdout, as_json)
        return
    if not drift:
        if len(seeds) > 1:
            fail("several seeds are for --drift runs; run the learning curves once per seed")
        _run_lifelong(count, seeds[0], groups, plot, as_json)
        return
    from memp_mcp.bench.world import DRIFTS

    unknown = sorted(set(drifts or []) - set(DRIFTS))
    if unknown:
        fail(f"unknown --change {unknown}: choose from {sorted(DRIFTS)}")
    _run_drift(count, seeds, drift_at, window, tuple(drifts or ()), plot, as_json, transfer=False)


def _run_holdout(episodes: int, seeds: list[int], holdout: float, as_json: bool) -> None:
    from memp_mcp.bench.lifelong import holdout_table, run_holdout

    env = _bench_env()
    with _progress_bars() as report_progress:
        reports = [run_holdout(episodes, s, holdout, env, progress=report_progress) for s in seeds]
    console.print(holdout_table(reports))
    if as_json:
        print(json.dumps(reports))


def _run_drift(
    episodes: int,
    seeds: list[int],
    at: int | None,
    window: int | None,
    drifts: tuple[str, ...],
    plot: Path | None,
    as_json: bool,
    transfer: bool,
) -> dict[str, Any]:
    from memp_mcp.bench.lifelong import DEFAULT_DRIFTS, drift_table, run_drift_seeds, transfer_table, write_drift_plot

    options: dict[str, Any] = {"episodes": episodes, "at": at, "window": window, "drifts": drifts or DEFAULT_DRIFTS}
    try:
        with _progress_bars() as report_progress:
            report = run_drift_seeds(
                seeds, base_env=_bench_env(), progress=report_progress, transfer=transfer, **options
            )
    except ValueError as exc:
        fail(str(exc))
    console.print(drift_table(report, "success"))
    console.print(drift_table(report, "steps"))
    if "transfer" in report:
        console.print(transfer_table(report))
    _finish_report(report, plot, write_drift_plot, "plot", as_json)
    return report


def _finish_report(
    report: dict[str, Any], plot: Path | None, write: Callable[[dict[str, Any], Path], None], what: str, as_json: bool
) -> None:
    """After a benchmark's tables: its plot when asked for (matplotlib is optional), then its JSON line."""
    if plot is not None:
        try:
            write(report, plot)
            console.print(f"{what} written to {plot}")
        except RuntimeError as exc:
            errors.print(f"no plot: {exc}")
    if as_json:
        print(json.dumps(report))


def _bench_env() -> dict[str, str]:
    settings = settings_with()
    env = {"MEMP_MODEL_CACHE_DIR": str(settings.model_cache_dir)}
    if settings.model_dir:
        env["MEMP_MODEL_DIR"] = str(settings.model_dir)
    if not settings.embeddings:
        env["MEMP_EMBEDDINGS"] = "0"
    return env


def demo(
    plot: Annotated[Path, typer.Option(help="Where to write the plot (PNG).")] = Path("memp-demo.png"),
) -> None:
    """The story in about a minute: agents with and without memory, the world changing under them, recovery,
    and a weak agent helped by a strong agent's memory. Prints tables and writes a plot."""
    from memp_mcp.bench.lifelong import drift_headline

    report = _run_drift(60, [0], 30, 15, (), plot, False, transfer=True)
    console.print(
        "Configurations: 'no memory' runs without memp-mcp; vanilla, validation and adjustment are memory "
        "under the paper's update strategies (keep everything; keep what succeeded; also revise what failed).",
        highlight=False,
    )
    console.print(Text(drift_headline(report), style="bold"), highlight=False)
    console.print(
        "Next: give Claude Code this memory with `memp-mcp install claude-code` (README, Quickstart); "
        "the full benchmarks are in docs/benchmarks.md.",
        highlight=False,
    )
