"""A memory moved as a whole: exported and imported (JSON Lines libraries, Agent Skills folders),
or migrated from SQLite into PostgreSQL.

memp_mcp.cli.root registers these commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from memp_mcp.cli.common import console, errors, fail, memory_at, redaction_line, settings_with
from memp_mcp.cli.options import DatabaseUrlOption, DbOption, NamespaceOption
from memp_mcp.errors import MempError
from memp_mcp.text import counted, one_line


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
        fail(f"--format must be jsonl or skills, not {export_format!r}")
    if export_format == "skills":
        if destination is None or output is not None:
            fail("--format skills writes a folder; give it as the argument: `memp-mcp export --format skills DIR`")
        _export_skills(destination, db, namespace, database_url)
        return
    from memp_mcp.engine.library import export_library

    output = output or destination
    memory = memory_at(db, namespace, need_model=False, database_url=database_url)
    lines = export_library(memory, memory.default_namespace)
    try:
        # The first line comes once every procedure was checked for secrets.
        first = next(lines)
    except MempError as exc:
        fail(str(exc))
    if output is None:
        print(first)
        for line in lines:
            print(line)
        return
    temporary = output.with_name(output.name + ".partial")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(first + "\n")
            count = 1 + sum(1 for line in lines if handle.write(line + "\n"))
        temporary.replace(output)
    except OSError as exc:
        if temporary.parent.is_dir():
            temporary.unlink(missing_ok=True)
        fail(f"cannot write {output}: {exc.strerror or exc}; check that its folder exists and is writable")
    errors.print(f"exported {count - 1} procedures to {output}")


def _export_skills(directory: Path, db: Path | None, namespace: str | None, database_url: str | None) -> None:
    from memp_mcp.engine.skills import export_skills

    if directory.exists() and not directory.is_dir():
        fail(f"{directory} exists and is not a folder")
    memory = memory_at(db, namespace, need_model=False, database_url=database_url)
    try:
        written = export_skills(memory, memory.default_namespace, directory)
    except MempError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write skills into {directory}: {exc.strerror or exc}")
    errors.print(f"exported {len(written)} active procedures as skills into {directory}")


def import_command(
    source: Annotated[
        Path, typer.Argument(help="A file written by `memp-mcp export`, or a folder of Agent Skills (SKILL.md).")
    ],
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Namespace to import into (default: the one the library file names, else this repository's, "
            "else MEMP_NAMESPACE).",
        ),
    ] = None,
) -> None:
    """Import a library or a folder of skills: everything is validated before anything is written. A
    skill that cannot be imported is refused with its reason (exit code 1) and the others come in."""
    from memp_mcp.engine.library import import_library
    from memp_mcp.engine.skills import import_skills

    if not source.exists():
        fail(f"{source} does not exist; give a library file (from `memp-mcp export`) or a folder of skills")
    if not source.is_file() and not source.is_dir():
        fail(f"{source} is neither a library file nor a folder of skills")
    # The namespace: --namespace, else the one the file names, else the one commands use here.
    memory = memory_at(db, None, database_url=database_url, existing=False, announce=False)
    try:
        if source.is_dir():
            report = import_skills(memory, source, namespace)
        else:
            with source.open(encoding="utf-8", errors="strict") as handle:
                report = import_library(memory, handle, namespace)
    except UnicodeDecodeError:
        fail(f"{source} is not UTF-8 text")
    except MempError as exc:
        fail(f"nothing imported: {exc}")
    console.print(
        f"imported {counted(report.created, 'new procedure')}, {report.unchanged} already present, "
        f"merged {report.merged}, updated {report.updated}, "
        f"with {report.trajectories} trajectories, into namespace {report.namespace} of {_where(memory)}",
        soft_wrap=True,
        highlight=False,
    )
    for change in report.changes:
        console.print(Text.assemble(("changed:", "cyan"), f" {one_line(change)}"), highlight=False, soft_wrap=True)
    for conflict in report.conflicts:
        console.print(Text.assemble(("conflict:", "yellow"), f" {one_line(conflict)}"), highlight=False)
    if report.redacted:
        console.print(redaction_line(report.redacted), highlight=False)

    for note in report.notes:
        errors.print(Text.assemble(("note:", "cyan"), f" {one_line(note)}"), highlight=False, soft_wrap=True)
    for refusal in report.refused:
        errors.print(Text.assemble(("refused:", "red"), f" {one_line(refusal)}"), highlight=False, soft_wrap=True)
    if report.refused:
        # The others are imported; a script still learns that not everything came in.
        raise typer.Exit(1)


def migrate(
    to: Annotated[
        str, typer.Option("--to", help="The empty PostgreSQL database to move the memory into (postgresql://...).")
    ],
    db: DbOption = None,
) -> None:
    """Copy the SQLite memory into PostgreSQL: every row with its id, history, statistics and vectors."""
    from memp_mcp.engine.scan import scan
    from memp_mcp.store import SQLiteStore, open_store
    from memp_mcp.store.postgres import PostgresStore
    from memp_mcp.store.transfer import copy_sqlite_to_postgres

    settings = settings_with(db_path=db, database_url=to)
    if not settings.db_path.is_file():
        fail(f"no SQLite memory at {settings.db_path}; pass --db with the file to move")
    assert settings.database_url is not None
    try:
        source = SQLiteStore(settings.db_path)
        try:
            # The copy takes rows as they are, around the engine's redaction: a team store must not
            # receive secrets an older memory kept.
            if stored := scan(source, None, fix=False).found:
                fail(
                    f"nothing migrated: {settings.db_path} holds secrets ({stored[0].where} and "
                    f"{len(stored) - 1} more texts); run `memp-mcp scan --all --fix --db {settings.db_path}` first"
                )
            target = open_store(settings.db_path, settings.database_url)
            assert isinstance(target, PostgresStore)
            try:
                report = copy_sqlite_to_postgres(source, target)
            finally:
                target.close()
        finally:
            source.close()
    except MempError as exc:
        fail(f"nothing migrated: {exc}")
    for table, count in report.copied.items():
        console.print(f"{table}: {count}")
    console.print(f"moved {settings.db_path} into {target.location}; point the servers at it with MEMP_DATABASE_URL")


def _where(memory: Any) -> str:
    """The database a command wrote to, as a user would name it."""
    return str(getattr(memory.store, "path", None) or "the PostgreSQL database")
