"""What memory did and what it brings: `memp-mcp log` and `memp-mcp stats --uplift`.

memp_mcp.cli.root registers these commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from memp_mcp.cli.common import console, fail, memory_at, nothing_recorded_yet
from memp_mcp.cli.options import DatabaseUrlOption, DbOption
from memp_mcp.errors import MempError
from memp_mcp.text import one_line

if TYPE_CHECKING:
    from memp_mcp.engine.uplift import ArmFigures, Uplift

AllNamespacesOption = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Only this namespace (default: every namespace).")
]


def log_command(
    namespace: AllNamespacesOption = None,
    last: Annotated[int, typer.Option("--last", help="How many of the most recent events.")] = 30,
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Recent events and why: recalls and injections (what was given, scores, words matched, the floor,
    budget cuts), what each Stop recorded or why it recorded nothing, and each task's holdout arm."""
    if nothing_recorded_yet(db, database_url):
        return
    memory = memory_at(db, None, need_model=False, database_url=database_url)
    try:
        events = memory.events(namespace, last)
    except MempError as exc:
        fail(str(exc))
    if as_json:
        for event in events:
            print(event.model_dump_json())
        return
    if not events:
        console.print("No events logged yet" + (f" in namespace {namespace}." if namespace else "."))
        return
    for event in events:
        when = event.created_at.strftime("%Y-%m-%d %H:%M:%S")
        arm = f" [{event.arm}]" if event.arm else ""
        via = event.detail.get("via") or event.detail.get("event") or ""
        head = Text.assemble(
            (when, "dim"), " ", (f"{event.kind:<8}", "bold"), f" {event.namespace}{arm}", (f"  {via}", "dim")
        )
        console.print(head, highlight=False)
        if event.task:
            console.print(Text(f"    task: {one_line(event.task)[:160]}"), highlight=False)
        console.print(Text(f"    {one_line(event.summary)}"), highlight=False)


def print_uplift(namespace: str | None, db: Path | None, database_url: str | None, as_json: bool) -> None:
    memory = memory_at(db, None, need_model=False, database_url=database_url)
    try:
        reports = memory.uplift(namespace)
    except MempError as exc:
        fail(str(exc))
    if as_json:
        for report in reports:
            print(report.model_dump_json())
        return
    if not reports:
        console.print(
            "No task has been drawn yet: recalls (the prompt hook, recall_procedure) draw each task's arm. "
            "Set MEMP_HOLDOUT (e.g. 0.2) to withhold memory from that share of tasks."
        )
        return
    for report in reports:
        console.print(uplift_table(report))
        console.print(Text(report.conclusion), highlight=False)


def uplift_table(report: Uplift) -> Table:
    table = Table(title=f"Uplift in {report.namespace}", title_justify="left")
    for column in ("memory", "tasks", "judged", "succeeded", "success", "tool calls", "turns"):
        table.add_column(column, justify="left" if column == "memory" else "right", no_wrap=True)
    for name, arm in (("given", report.with_memory), ("held out", report.without_memory)):
        table.add_row(name, *_cells(arm))
    if report.difference is not None and report.interval is not None:
        low, high = report.interval
        table.caption = (
            f"uplift {100 * report.difference:+.1f} points, 95% interval {100 * low:+.1f} to {100 * high:+.1f} "
            "(Newcombe)"
        )
        table.caption_justify = "left"
    return table


def _cells(arm: ArmFigures) -> list[str]:
    def number(value: float | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    return [
        str(arm.tasks),
        str(arm.judged),
        str(arm.successes),
        number(arm.success_rate, ".0%"),
        number(arm.mean_tool_calls, ".1f"),
        number(arm.mean_turns, ".2f"),
    ]
