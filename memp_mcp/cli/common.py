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
    """The settings (MEMP_* variables) with these flags on top; a value that cannot be used fails the command."""
    try:
        return load_settings(overrides)
    except MempError as exc:
        fail(str(exc))


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
) -> Any:
    """The memory on the configured database; commands that never embed skip loading the model.

    `existing`: the SQLite file must be there already. A command that reads or changes what is stored
    fails on a path that holds nothing (a typo in --db) instead of creating an empty memory there.
    """
    from memp_mcp.embedding import BackgroundEmbedder
    from memp_mcp.engine.memory import open_memory

    settings = settings_with(db_path=db, namespace=namespace, database_url=database_url)
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
