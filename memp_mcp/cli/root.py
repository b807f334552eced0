"""The `memp-mcp` command line: the root app, its --version, and every command in the order
`memp-mcp --help` lists them.

Every command reads the same settings (MEMP_* environment variables) with flags on top. Errors
the user can fix are printed as one line and exit with status 2 (memp_mcp.cli.common.fail);
nothing prints a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

# Imported for what they register on bench_app: `bench day`, `bench sessions` and `bench skills`.
import memp_mcp.cli.bench_day
import memp_mcp.cli.bench_sessions
import memp_mcp.cli.bench_skills  # noqa: F401
from memp_mcp import __version__
from memp_mcp.cli.bench import bench_app, demo
from memp_mcp.cli.common import console
from memp_mcp.cli.library import export_command, import_command, migrate
from memp_mcp.cli.privacy import scan
from memp_mcp.cli.procedures import edit, forget, list_command, namespaces, recall, restore, show, stats
from memp_mcp.cli.recovery import repair
from memp_mcp.cli.setup import doctor, hook, install_app, model_app, reindex, serve, smoke
from memp_mcp.cli.why import log_command

app = typer.Typer(
    name="memp-mcp",
    help="Procedural memory for agents over the Model Context Protocol.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


# Registered here rather than beside each command so that the help keeps its order across modules.
app.command()(serve)
app.command()(hook)
app.command()(recall)
app.command()(stats)
app.command("log")(log_command)
app.command()(smoke)
app.command()(reindex)
app.command("list")(list_command)
app.command()(namespaces)
app.command()(show)
app.command()(edit)
app.command()(forget)
app.command()(restore)
app.command("export")(export_command)
app.command("import")(import_command)
app.command()(migrate)
app.command()(doctor)
app.command()(repair)
app.command()(scan)
app.command()(demo)
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")
app.add_typer(install_app, name="install")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
