"""`memp-mcp bench day`: a user's day through the hooks and the warm server, then the memory checked.

Registered on `bench` beside the others (memp_mcp.cli.bench is long enough); memp_mcp.bench.hook_day
does the work.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from memp_mcp.cli.bench import JsonFiguresOption, _progress_bars, bench_app
from memp_mcp.cli.common import console, fail


@bench_app.command("day")
def bench_day(
    folder: Annotated[Path, typer.Argument(help="<family>/<variant>/{instruction.md, transcript.jsonl.gz}")],
    restart_every: Annotated[
        int, typer.Option(min=1, help="Stop the warm server after this many sessions (the next prompt starts one).")
    ] = 5,
    driver: Annotated[
        str, typer.Option(help="MEMP_SQLITE_DRIVER for the hooks: sqlean (the fallback, by default), sqlite3, auto.")
    ] = "sqlean",
    as_json: JsonFiguresOption = False,
) -> None:
    """A user's day: real sessions through `memp-mcp hook`, the warm server stopped and started between them;
    then the file's integrity, what is stored, and whether every procedure given was credited."""
    from memp_mcp.bench.hook_day import run_hook_day

    if not folder.is_dir():
        fail(f"{folder}: not a folder")
    if driver not in ("sqlean", "sqlite3", "auto"):
        fail(f"--driver must be sqlean, sqlite3 or auto, not {driver!r}")
    with tempfile.TemporaryDirectory(prefix="memp-bench-day-") as scratch, _progress_bars() as progress:
        try:
            figures = run_hook_day(folder, Path(scratch), restart_every=restart_every, driver=driver, progress=progress)
        except ValueError as exc:
            fail(str(exc))
    table = Table(title=f"A day through the hooks ({figures['sessions']} sessions, driver {driver})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    integrity = figures["integrity"]
    table.add_row("warm servers started", str(figures["warm_servers"]), "")
    table.add_row("integrity problems", "; ".join(integrity)[:60] if integrity else "none", "none")
    table.add_row(
        "damage mark / processes on a deleted WAL",
        f"{figures['damage_mark'] or 'none'} / {figures['deleted_wal_holders']}",
        "none / 0",
    )
    table.add_row("procedures / trajectories", f"{figures['procedures']} / {figures['trajectories']}", "")
    table.add_row(
        "given a procedure: prompts / with an outcome / credited",
        f"{figures['given']} / {figures.get('injected_with_an_outcome')} / {figures.get('credited')}",
        "credited = with an outcome",
    )
    table.add_row(
        "hooks.log tracebacks / 'not reported'", f"{figures['tracebacks']} / {figures['not_reported']}", "0 / 0"
    )
    table.add_row("seconds", str(figures["seconds"]), "")
    console.print(table)
    if as_json:
        print(json.dumps(figures))
