"""What every command stands on: the consoles, the settings and the memory the flags select, and the
one way a command fails (one line, exit status 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from memp_mcp.config import Settings, load_settings
from memp_mcp.errors import MempError

# Messages name paths, tasks and advice such as `pip install 'memp-mcp[plot]'`: as Rich markup, any
# "[...]" in them would vanish (or crash the print). Styles are given as Text where one is wanted.
console = Console(markup=False)
errors = Console(stderr=True, markup=False)


def settings_with(**overrides: Any) -> Settings:
    """The settings (MEMP_* variables) with these flags on top; a value that cannot be used fails the command.

    Every command comes through here: a SQLite memory marked damaged is said on stderr, once a command.
    """
    try:
        settings = load_settings(overrides)
    except MempError as exc:
        fail(str(exc))
    if settings.database_url is None:
        warn_if_damaged(settings.db_path)
    return settings


_warned: set[Path] = set()


def warn_if_damaged(db: Path) -> None:
    from memp_mcp.hooks.client import marked_damaged

    # One stat on every command; the store (whose import costs ~150 ms) is imported only for a marked file.
    if not marked_damaged(db):
        return
    from memp_mcp.store.sqlite import health

    found = health.damage(db)
    if found is not None and db not in _warned:
        _warned.add(db)
        errors.print(Text.assemble(("warning:", "bold yellow"), " ", health.advice(db, found)), soft_wrap=True)


def fail(message: str) -> NoReturn:
    """One line on stderr (never wrapped; the message is text, not markup), then exit status 2."""
    errors.print(Text.assemble(("error:", "bold red"), " ", " ".join(message.split())), soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def holds_no_memory(settings: Settings) -> bool:
    """The settings name a SQLite file that does not exist (nothing recorded there, or a typo)."""
    return settings.database_url is None and not settings.db_path.exists()


def memory_at(
    db: Path | None,
    namespace: str | None,
    need_model: bool = True,
    database_url: str | None = None,
    *,
    existing: bool = True,
    announce: bool = True,
) -> Any:
    """The memory on the configured database; commands that never embed skip loading the model.

    The namespace is the one `chosen_namespace` picks, and `announce` says it on stderr (so that a
    command's own output, JSON included, stays clean).

    `existing`: the SQLite file must be there already. A command that reads or changes what is stored
    fails on a path that holds nothing (a typo in --db) instead of creating an empty memory there.
    """
    from memp_mcp.embedding import BackgroundEmbedder
    from memp_mcp.engine.memory import open_memory

    settings = settings_with(db_path=db, namespace=namespace, database_url=database_url)
    chosen, why = chosen_namespace(settings, namespace)
    if chosen != settings.namespace:
        settings = settings_with(db_path=db, namespace=chosen, database_url=database_url)
    if announce:
        errors.print(f"namespace {chosen} ({why})", highlight=False, soft_wrap=True)
    if existing and holds_no_memory(settings):
        fail(
            f"no memory at {settings.db_path}: nothing was ever recorded there; check --db or MEMP_DB_PATH "
            "(a server or `memp-mcp import` creates the file)"
        )
    try:
        return open_memory(settings, embedder=None if need_model else BackgroundEmbedder(None))
    except MempError as exc:
        fail(str(exc))


def redaction_line(redacted: list[str]) -> str:
    """What was redacted before storing, and where (never the value): `steps[0]: github-token; ...`."""
    return "redacted before storing: " + "; ".join(redacted)


def chosen_namespace(settings: Settings, flag: str | None) -> tuple[str, str]:
    """The namespace a command works in, and why: `--namespace`, else MEMP_NAMESPACE, else the
    namespace the Claude Code hooks use in the working directory's repository, else the default."""
    import os

    if flag:
        return flag, "--namespace"
    if os.environ.get("MEMP_NAMESPACE"):
        return settings.namespace, "MEMP_NAMESPACE"
    if settings.hook_namespace:
        return settings.hook_namespace, "MEMP_HOOK_NAMESPACE, as the hooks"
    from memp_mcp.project import in_repository

    if in_repository(Path.cwd()):
        from memp_mcp.hooks.handlers import namespace_for

        return namespace_for(settings, str(Path.cwd())), "this repository's, as the hooks; --namespace for another"
    return settings.namespace, "the default outside a repository; --namespace for another"


def namespace_counts(memory: Any) -> list[tuple[str, int, int]]:
    """(namespace, active procedures, trajectories) for every namespace of the database."""
    from memp_mcp.models import ProcedureStatus

    store = memory.store
    return [
        (name, store.count_procedures(name, ProcedureStatus.ACTIVE), store.count_trajectories(name))
        for name in store.namespaces()
    ]


def elsewhere_hint(memory: Any, namespace: str) -> str:
    """Where memory is, for an answer that found none in `namespace`."""
    held = [(name, p, t) for name, p, t in namespace_counts(memory) if name != namespace and (p or t)]
    if not held:
        return "no namespace of this database holds anything yet"
    held.sort(key=lambda row: (-row[1], -row[2], row[0]))
    from memp_mcp.text import counted

    listed = ", ".join(f"{name} ({counted(p, 'procedure')})" for name, p, _ in held[:5])
    more = f" and {len(held) - 5} more (`memp-mcp namespaces`)" if len(held) > 5 else ""
    return f"memory is in {listed}{more}: pass --namespace NAME"


def owner_hint(memory: Any, procedure_id: int, namespace: str) -> str:
    """For an id not found in `namespace`: the namespace that has it, if any."""
    found = memory.store.get_procedures([procedure_id])
    if found and found[0].namespace != namespace:
        return f"; procedure {procedure_id} is in namespace {found[0].namespace}: add --namespace {found[0].namespace}"
    return f"; {elsewhere_hint(memory, namespace)}"


def nothing_recorded_yet(db: Path | None, database_url: str | None) -> bool:
    """Say so when the default database does not exist yet (a first look, not an error; a --db that
    names no database is a typo, and memory_at refuses it)."""
    settings = settings_with(db_path=db, database_url=database_url)
    if db is not None or not holds_no_memory(settings):
        return False
    console.print(
        Text(
            f"No memory yet: {settings.db_path} does not exist. The Claude Code hooks create it when they "
            "record the first turn (`memp-mcp install claude-code`); an MCP server, when a client records."
        )
    )
    return True
