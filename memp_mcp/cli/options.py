"""The options several commands share: which database, and which namespace in it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
