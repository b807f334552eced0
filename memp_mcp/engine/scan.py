"""Secrets already stored: found in every sent text a namespace keeps (history included) and redacted
in place (`memp-mcp scan`), counted (`doctor`), and refused by export, which would publish them.

What a scan finds is what recording would have redacted (memp_mcp.redact); personal data is not
searched for here, as it is kept out of titles and when-to-use as they are written.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from memp_mcp.errors import InvalidInputError
from memp_mcp.models import Procedure, SkillDocument, Trajectory
from memp_mcp.redact import redact
from memp_mcp.store import Store
from memp_mcp.store.base import StoredRow


@dataclass(frozen=True)
class Found:
    """Secrets in one stored row: where (table, row key, column) and of what kinds."""

    table: str
    key: tuple[Any, ...]
    column: str
    kinds: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.table} {'/'.join(str(k) for k in self.key)} {self.column}"


@dataclass
class ScanReport:
    rows: int = 0
    found: list[Found] = field(default_factory=list)
    fixed: bool = False

    @property
    def secrets(self) -> int:
        return sum(len(f.kinds) for f in self.found)


def _redacted(value: Any, kinds: list[str]) -> Any:
    """`value` (a text, or JSON of texts) with every string redacted; the kinds found go to `kinds`."""
    if isinstance(value, str):
        result = redact(value)
        kinds += result.kinds
        return result.text
    if isinstance(value, list):
        return [_redacted(item, kinds) for item in value]
    if isinstance(value, dict):
        return {name: _redacted(item, kinds) for name, item in value.items()}
    return value


def scan(store: Store, namespace: str | None, *, fix: bool) -> ScanReport:
    """Find the secrets stored in `namespace` (None: all of them); with `fix`, redact them in place, in
    one transaction, history (versions, trajectories, recall events, search keys) included."""
    report = ScanReport(fixed=fix)
    changes: list[tuple[StoredRow, dict[str, Any]]] = []
    for row in store.stored_rows(namespace):
        report.rows += 1
        changed: dict[str, Any] = {}
        for column, value in row.values.items():
            kinds: list[str] = []
            new = _redacted(value, kinds)
            kinds = [k for k in kinds if k != "private"] + (["private"] if "private" in kinds else [])
            if kinds:
                report.found.append(Found(row.table, row.key, column, tuple(kinds)))
                changed[column] = new
        if changed:
            changes.append((row, changed))
    if fix and changes:
        with store.transaction():
            for row, changed in changes:
                store.rewrite_row(row, changed)
        store.purge_freed()  # the old values would stay readable in the file's freed pages
    return report


def refuse_secrets(
    procedure: Procedure,
    keys: Iterable[str],
    trajectories: Iterable[Trajectory],
    skill: SkillDocument | None = None,
) -> None:
    """InvalidInputError naming the procedure when what an export would write of it holds a secret
    (the skill it came from included: its body, frontmatter and text files)."""
    texts: list[tuple[str, Any]] = [
        ("title", procedure.title),
        ("when_to_use", procedure.when_to_use),
        ("steps", procedure.steps),
        ("pitfalls", procedure.pitfalls),
        ("keys", list(keys)),
    ]
    for trajectory in trajectories:
        texts += [
            (f"trajectory {trajectory.id}", trajectory.task),
            (f"trajectory {trajectory.id}", [s.model_dump(exclude_none=True) for s in trajectory.steps]),
        ]
    if skill is not None:
        texts += [("skill's SKILL.md", skill.body), ("skill's frontmatter", skill.frontmatter)]
        for path, encoded in skill.files.items():
            try:
                texts.append((f"skill's {path}", base64.b64decode(encoded, validate=True).decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                continue  # a binary file: nothing to read as text
    for where, value in texts:
        kinds: list[str] = []
        _redacted(value, kinds)
        if kinds:
            raise InvalidInputError(
                f"procedure {procedure.id} ('{procedure.title[:80]}') holds a secret ({kinds[0]} in its {where}); "
                "nothing was exported: run `memp-mcp scan --fix` to redact it, then export again"
            )
