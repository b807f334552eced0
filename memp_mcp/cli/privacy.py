"""`scan`: secrets already stored, found and (with --fix) redacted in place, history included.

memp_mcp.cli.root registers it.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer

from memp_mcp.cli.common import console, fail, memory_at
from memp_mcp.cli.options import DatabaseUrlOption, DbOption
from memp_mcp.errors import MempError


def scan(
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Scan this namespace (default: MEMP_NAMESPACE).")
    ] = None,
    all_namespaces: Annotated[bool, typer.Option("--all", help="Scan every namespace.")] = False,
    fix: Annotated[bool, typer.Option("--fix", help="Redact what is found, in place, history included.")] = False,
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Find secrets stored before redaction existed (or imported around it); --fix redacts them in place.

    Searched: procedures and every old version of them, trajectories, search keys and logged recall
    tasks. Exits with status 1 when secrets were found and left in place.
    """
    from memp_mcp.engine.scan import scan as scan_store

    if all_namespaces and namespace is not None:
        fail("give --namespace NAME or --all, not both")
    memory = memory_at(db, namespace, need_model=False, database_url=database_url)
    scope = None if all_namespaces else memory.default_namespace
    try:
        report = scan_store(memory.store, scope, fix=fix)
    except MempError as exc:
        fail(str(exc))
    where = "every namespace" if scope is None else f"namespace {scope!r}"
    if not report.found:
        console.print(f"no secrets in {where} ({report.rows} stored rows scanned)")
        return
    kinds = Counter(kind for found in report.found for kind in found.kinds)
    summary = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
    for found in report.found:
        console.print(f"  {found.where}: {', '.join(found.kinds)}", highlight=False)
    if fix:
        console.print(f"redacted {report.secrets} secrets ({summary}) in {len(report.found)} stored texts of {where}")
        return
    console.print(
        f"{report.secrets} secrets ({summary}) in {len(report.found)} stored texts of {where}; "
        "run again with --fix to redact them"
    )
    raise typer.Exit(1)
