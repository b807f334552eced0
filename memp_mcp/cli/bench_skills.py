"""`memp-mcp bench skills`: real Agent Skills imported whole, round-tripped, and routed to their tasks.

Registered on `bench` beside the others (memp_mcp.cli.bench is long enough); memp_mcp.bench.skills does
the work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from memp_mcp.cli.bench import JsonFiguresOption, bench_app
from memp_mcp.cli.common import console, fail, settings_with
from memp_mcp.errors import MempError


@bench_app.command("skills")
def bench_skills(
    dataset: Annotated[
        Path,
        typer.Option(help="A folder with <family>/<variant>/instruction.md and skills/<source>/<family>/<name>/."),
    ],
    as_json: JsonFiguresOption = False,
) -> None:
    """Real Agent Skills kept whole: each imported as its own procedure (or refused, saying why), an
    export -> import -> export round trip compared byte for byte, and how often a task gets a skill of its
    own family first, among the first three, and among what the default answer budget shows."""
    from memp_mcp.bench.skills import run_skills_bench
    from memp_mcp.embedding import resolve_embedder

    if not (dataset / "skills").is_dir():
        fail(f"{dataset} has no skills/ folder (expected skills/<source>/<family>/<name>/SKILL.md)")
    settings = settings_with()
    try:
        report = run_skills_bench(dataset, resolve_embedder(settings), budget=settings.recall_budget)
    except MempError as exc:
        fail(str(exc))
    table = Table(title="First procedure recalled for each task (k=3)")
    for column in ("task", "family", "first recalled", "title"):
        table.add_column(column)
    for task, family, first, title in report.per_task:
        table.add_row(task, family, first or "(nothing)", title, style=None if first == family else "red")
    console.print(table)
    figures = report.as_dict()
    for refusal in report.refused:
        console.print(f"refused: {refusal}", highlight=False, soft_wrap=True)

    def share(count: int) -> str:
        return f"{count} of {report.tasks} ({count / report.tasks:.0%})" if report.tasks else "no tasks"

    console.print(
        f"skills found: {report.skills}, imported as procedures of their own: {report.procedures}, "
        f"refused: {len(report.refused)}\n"
        f"round trip (export -> import -> export), body and files byte-identical: "
        f"{report.round_trip_identical} of {report.skills}\n"
        f"tasks whose first procedure is a skill of their own family: {share(report.own_family_first)}\n"
        f"tasks with a skill of their own family in the first three: {share(report.own_family_in_three)}\n"
        f"... in the first three a recall shows within the {report.budget:,}-character answer budget: "
        f"{share(report.own_family_in_three_shown)}; procedures shown {report.shown} of {report.found} found\n"
        f"nothing recalled for {report.nothing_recalled}",
        highlight=False,
    )
    if as_json:
        print(json.dumps(figures))
