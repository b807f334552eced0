"""Reading and correcting the stored procedures: recall, stats, list, show, edit, forget, restore.

memp_mcp.cli.root registers these commands.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from memp_mcp.cli.common import (
    console,
    elsewhere_hint,
    errors,
    fail,
    memory_at,
    namespace_counts,
    nothing_recorded_yet,
    owner_hint,
    redaction_line,
)
from memp_mcp.cli.options import DatabaseUrlOption, DbOption, NamespaceOption
from memp_mcp.errors import MempError, NotFoundError
from memp_mcp.text import one_line

if TYPE_CHECKING:
    from memp_mcp.engine.memory import Memory
    from memp_mcp.models import Procedure


def recall(
    task: Annotated[str, typer.Argument(help="What you are about to do.")],
    k: Annotated[int, typer.Option(help="How many procedures.")] = 3,
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    namespace: NamespaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the procedures memory would give an agent for TASK."""
    memory = memory_at(db, namespace, database_url=database_url)
    try:
        result = memory.recall(task, k, wait_for_model=60.0, log=False)
    except MempError as exc:
        fail(str(exc))
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    if not result.procedures:
        console.print(Text(f"No procedure fits this task (namespace {result.namespace}, {result.retrieval})."))
        if not memory.store.count_procedures(result.namespace):
            errors.print(
                f"namespace {result.namespace} holds no procedure; {elsewhere_hint(memory, result.namespace)}",
                soft_wrap=True,
            )
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


def stats(
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    namespace: NamespaceOption = None,
    uplift: Annotated[
        bool,
        typer.Option(
            "--uplift",
            help="Success, tool calls and turns with memory and without (MEMP_HOLDOUT), per namespace "
            "(every one unless -n).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --uplift: JSON lines.")] = False,
) -> None:
    """Counts of trajectories, procedures and recalls in a namespace; with --uplift, what memory brings."""
    if nothing_recorded_yet(db, database_url):
        return
    if uplift:
        from memp_mcp.cli.why import print_uplift

        print_uplift(namespace, db, database_url, as_json)
        return
    memory = memory_at(db, namespace, need_model=False, database_url=database_url)
    figures = memory.stats()
    console.print_json(figures.model_dump_json())
    if not memory.store.count_procedures(memory.default_namespace) and not memory.store.count_trajectories(
        memory.default_namespace
    ):
        errors.print(
            f"namespace {memory.default_namespace} is empty; {elsewhere_hint(memory, memory.default_namespace)}"
        )


ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project",
        help="Check the steps' citations against this project (default: the current folder's, for its own namespace).",
    ),
]


def _stale_steps(memory: Memory, procedures: list[Procedure], project: Path | None) -> dict[int, list[str]]:
    """Each procedure's stale steps, named, against `project`, or else the current folder's project when
    the procedures are that project's own (its namespace): checked against another project's files,
    every step would look stale."""
    from memp_mcp.project import project_namespace, project_root

    if project is not None and not project.is_dir():
        fail(f"--project {project} is not a folder")
    root = project_root(project or Path.cwd())
    if project is None and not all(p.namespace == project_namespace(root) for p in procedures):
        return {}
    return {pid: f.reasons() for pid, f in memory.freshness(procedures, root).items() if f.stale}


def list_command(
    status: Annotated[str | None, typer.Option(help="active or deprecated.")] = None,
    text: Annotated[str | None, typer.Option(help="Only procedures whose title or when-to-use contains this.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    namespace: NamespaceOption = None,
    project: ProjectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List procedures, one line each; `stale` counts the steps whose cited files or text no longer match the
    project. Titles are clipped to the terminal's width (the author's column goes first when it is narrow):
    `show ID` and `--json` have them whole."""
    if nothing_recorded_yet(db, database_url):
        return
    memory = memory_at(db, namespace, need_model=False, database_url=database_url)
    try:
        procedures = memory.list_procedures(memory.default_namespace, status, text, limit)
    except MempError as exc:
        fail(str(exc))
    stale = _stale_steps(memory, procedures, project)
    if as_json:
        for procedure in procedures:
            print(json.dumps({**procedure.model_dump(mode="json"), "stale": stale.get(procedure.id, [])}))
        return
    if not procedures:
        errors.print(
            f"no procedure in namespace {memory.default_namespace}; {elsewhere_hint(memory, memory.default_namespace)}",
            soft_wrap=True,
        )
        return
    console.print(procedure_table(procedures, stale, memory.default_namespace, console.width))


# The title takes what the counts leave; the author's column is left out rather than leave the title
# fewer cells than this, or have fewer itself.
_MIN_TITLE_CELLS = 30
_MIN_AUTHOR_CELLS = 8
_MAX_AUTHOR_CELLS = 40
_MIN_NARROW_TITLE_CELLS = 16


def procedure_table(procedures: list[Procedure], stale: dict[int, list[str]], namespace: str, width: int) -> Table:
    """The procedures as a table that fits `width` terminal cells with one line per procedure: the id
    and the counts whole, the title and the author clipped with "…" (`show ID` has them whole), the
    author's column left out where it would leave the title too little."""
    from rich import box
    from rich.cells import cell_len

    # The stale column appears when a procedure has stale steps: `show` names them.
    counts = ("steps", *(("stale",) if stale else ()), "status", "v", "used", "ok", "failed")
    cells = [
        {
            "id": str(p.id),
            "steps": str(len(p.steps)),
            "stale": str(len(stale.get(p.id, []))),
            "status": p.status.value,
            "v": str(p.version),
            "used": str(p.retrieved_count),
            "ok": str(p.success_count),
            "failed": str(p.failure_count),
        }
        for p in procedures
    ]
    widths = {name: max(len(name), *(len(row[name]) for row in cells)) for name in ("id", *counts)}
    # Without edges, columns are three cells apart (a space on each side of a blank rule); what the id
    # and the counts leave is the title's, and the author's beside it. On a very narrow terminal the
    # version and the use count make room first, so that Rich never has to squeeze the id away.
    left = width - sum(widths.values()) - 3 * len(widths)
    for optional in ("used", "v"):
        if left < _MIN_NARROW_TITLE_CELLS:
            left += widths.pop(optional) + 3
    counts = tuple(name for name in counts if name in widths)
    titles = [Text(one_line(p.title)) for p in procedures]
    authors = [Text(one_line(p.author or p.source)) for p in procedures]
    # The author gets a third at most of what both share, less where the titles leave more.
    title_cells = max(cell_len(title.plain) for title in titles)
    shared = left - 3
    author_cells = min(max(cell_len(author.plain) for author in authors), _MAX_AUTHOR_CELLS)
    author_cells = min(author_cells, max(shared // 3, shared - title_cells))
    show_author = author_cells >= _MIN_AUTHOR_CELLS and shared - author_cells >= min(title_cells, _MIN_TITLE_CELLS)
    title_cells = max(min(title_cells, shared - author_cells if show_author else left), len("title"))
    table = Table(
        title=f"Procedures in {namespace}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        expand=False,
    )
    table.add_column("id", justify="right", no_wrap=True, width=widths["id"])
    table.add_column("title", no_wrap=True, overflow="ellipsis", width=title_cells)
    for name in counts:
        table.add_column(name, justify="left" if name == "status" else "right", no_wrap=True, width=widths[name])
    if show_author:
        table.add_column("by", no_wrap=True, overflow="ellipsis", width=author_cells)
    for p, row, title, author in zip(procedures, cells, titles, authors, strict=True):
        values: list[str | Text] = [row["id"], title]
        for name in counts:
            marked = name == "stale" and p.id in stale
            values.append(Text(row[name], style="yellow") if marked else row[name])
        table.add_row(*values, *([author] if show_author else []))
    return table


def show(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id.")],
    db: DbOption = None,
    namespace: NamespaceOption = None,
    database_url: DatabaseUrlOption = None,
    project: ProjectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, with the version history.")] = False,
    worked_example: Annotated[
        bool, typer.Option("--worked-example", help="Add the run it was built from: its whole change and every step.")
    ] = False,
) -> None:
    """Show one procedure as Markdown, its stale steps named after it."""
    from memp_mcp.engine.markdown import render_procedure
    from memp_mcp.server.render import render_worked_example

    memory = memory_at(db, namespace, need_model=False, database_url=database_url)
    try:
        detail = memory.get_procedure(procedure_id, with_worked_example=worked_example)
    except NotFoundError as exc:
        fail(str(exc) + owner_hint(memory, procedure_id, memory.default_namespace))
    except MempError as exc:
        fail(str(exc))
    stale = _stale_steps(memory, [detail.procedure], project).get(detail.procedure.id, [])
    if as_json:
        print(json.dumps({**detail.model_dump(mode="json"), "stale": stale}, indent=2))
        return
    print(render_procedure(detail.procedure), end="")
    if stale:
        print("\n## Stale steps\n" + "".join(f"- {one_line(reason)}\n" for reason in stale), end="")
    if detail.worked_example:
        print(render_worked_example(detail.worked_example), end="")


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

    # No model: the edited keys are stored without vectors, which a server embeds at its next
    # write, and nothing loads in the background while the editor is open.
    memory = memory_at(db, namespace, need_model=False, database_url=database_url)
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
    except NotFoundError as exc:
        fail(str(exc) + owner_hint(memory, procedure_id, memory.default_namespace))
    except MempError as exc:
        fail(str(exc))
    console.print(f"procedure {revised.id} is now version {revised.version}")
    if found := _redactions(fields):
        console.print(redaction_line(found), highlight=False)


def _redactions(fields: dict[str, Any]) -> list[str]:
    """What the edit's texts held that the memory redacted (it stores them without)."""
    from memp_mcp.engine.scrub import Scrubber

    scrub = Scrubber()
    for name, value in fields.items():
        if isinstance(value, str):
            scrub.shared(name, value)
        elif isinstance(value, list):
            scrub.texts(name, value)
    return scrub.found


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
            fail(f"cannot start the editor {command!r}: {exc.strerror}; set EDITOR, or pass --title/--step/...")
        if status != 0:
            fail(f"the editor exited with status {status}; nothing changed")
        edited = path.read_text(encoding="utf-8")
    return None if edited == text else edited


def forget(
    procedure_id: Annotated[int, typer.Argument(help="Procedure id.")],
    db: DbOption = None,
    namespace: NamespaceOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Deprecate a procedure: recall stops returning it. Nothing is deleted; `restore` undoes it."""
    _change_status(procedure_id, lambda memory: memory.forget(procedure_id), db, namespace, database_url)


def restore(
    procedure_id: Annotated[int | None, typer.Argument(help="Procedure id (a deprecated procedure).")] = None,
    backup: Annotated[
        str | None,
        typer.Option(
            "--backup",
            help="Restore the whole memory from one of its automatic backups instead: latest, a backup's name, "
            "or list to see them.",
        ),
    ] = None,
    db: DbOption = None,
    namespace: NamespaceOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Make a deprecated procedure active again; with --backup, put a backup of the whole memory in its place."""
    from memp_mcp.cli import recovery

    if backup is not None:
        if procedure_id is not None:
            fail("give a procedure id or --backup, not both")
        if backup == "list":
            recovery.list_backups(db)
        else:
            recovery.restore_backup(backup, db)
        return
    if procedure_id is None:
        fail("give the id of a deprecated procedure, or --backup latest to restore the memory from a backup")
    _change_status(procedure_id, lambda memory: memory.restore(procedure_id), db, namespace, database_url)


def _change_status(
    procedure_id: int,
    change: Callable[[Memory], Procedure],
    db: Path | None,
    namespace: str | None,
    database_url: str | None,
) -> None:
    """Forget or restore a procedure, then say the status it has now."""
    memory = memory_at(db, namespace, need_model=False, database_url=database_url)
    try:
        procedure = change(memory)
    except NotFoundError as exc:
        fail(str(exc) + owner_hint(memory, procedure_id, memory.default_namespace))
    except MempError as exc:
        fail(str(exc))
    console.print(f"procedure {procedure.id} is {procedure.status.value}")


def namespaces(
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List every namespace with its procedures and trajectories; `*` marks the one commands here use."""
    from memp_mcp.cli.common import chosen_namespace, settings_with

    if nothing_recorded_yet(db, database_url):
        return
    settings = settings_with(db_path=db, database_url=database_url)
    memory = memory_at(db, None, need_model=False, database_url=database_url, announce=False)
    here, why = chosen_namespace(settings, None)
    rows = namespace_counts(memory)
    if as_json:
        for name, procedures, trajectories in rows:
            print(json.dumps({"namespace": name, "procedures": procedures, "trajectories": trajectories}))
        return
    table = Table(title="Namespaces (* the one commands run here use)")
    for column in ("", "namespace", "procedures", "trajectories"):
        table.add_column(column)
    for name, procedures, trajectories in rows:
        table.add_row("*" if name == here else "", Text(name), str(procedures), str(trajectories))
    console.print(table)
    if here not in {row[0] for row in rows}:
        console.print(Text(f"Commands run here use {here} ({why}), which holds nothing yet."))
