"""`memp-mcp list` as a person reads it: one line per procedure at 80 columns, more of each text wider."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from memp_mcp.engine.memory import Memory
from memp_mcp.models import ProcedureDraft
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder

TITLES = [
    "Fix TTLStore.expire: entries whose deadline equals the current time are not expired",
    "Añadir la validación de fechas en el formulario de reservas 日本語の説明も付ける",
    "Rotate keys",
]
AUTHOR = "claude-code/claude-sonnet-4-5-20250929"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "list.db"
    memory = Memory(SQLiteStore(path), FakeEmbedder())
    for n, title in enumerate(TITLES):
        draft = ProcedureDraft(title=title, steps=[f"pytest tests/test_{n}.py -q", "pytest -q"])
        memory.record(f"task {n}: {title}", [{"action": "pytest -q"}], "success", draft=draft, agent=AUTHOR)
    memory.store.close()
    return path


def listed(db: Path, columns: int) -> list[str]:
    """The lines `memp-mcp list` prints at this terminal width (the namespace line goes to stderr)."""
    env = {**os.environ, "COLUMNS": str(columns), "MEMP_EMBEDDINGS": "0", "MEMP_DB_PATH": str(db)}
    env.pop("MEMP_NAMESPACE", None)
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.cli", "list"],
        env=env,
        cwd=db.parent,  # outside any repository: the default namespace
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def rows(lines: list[str]) -> list[str]:
    """The table's rows that begin with an id (a wrapped cell's continuation lines do not)."""
    unboxed = [line.replace("│", " ").strip() for line in lines]
    return [line for line in unboxed if line[:1].isdigit()]


def test_at_80_columns_each_procedure_is_one_line_with_its_id_title_and_record(db: Path) -> None:
    lines = listed(db, 80)
    assert all(cell_len(line) <= 80 for line in lines), lines
    header = next(line for line in lines if " title " in line)
    for column in ("id", "steps", "status", "ok", "failed"):
        assert f" {column}" in header or header.startswith(column), (column, header)
    found = rows(lines)
    # One line each (a wrapped title used to take up to seven), in order, the title's start readable.
    assert [row.split()[0] for row in found] == ["1", "2", "3"], lines
    assert "Fix TTLStore.expire: entries" in found[0] and "…" in found[0]
    assert "Añadir la validación" in found[1] and "Rotate keys" in found[2]
    assert all(" active " in row for row in found), found


def test_wider_the_titles_and_authors_are_whole(db: Path) -> None:
    lines = listed(db, 200)
    found = rows(lines)
    assert len(found) == 3 and all(cell_len(line) <= 200 for line in lines)
    for row, title in zip(found, TITLES, strict=True):
        assert title in row and AUTHOR in row
