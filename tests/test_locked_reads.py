"""Reading while another process writes: WAL lets readers go on, so opening a current database to read
must not queue for the write lock (it did: every open began a migration transaction, and `memp-mcp list`
waited out the 15 s busy timeout behind a long write, then failed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from memp_mcp.engine.memory import Memory
from memp_mcp.errors import StoreError
from memp_mcp.store import SQLiteStore, driver
from tests.conftest import FakeEmbedder

# Holds the write lock, as a long write of another memp-mcp process would, until its stdin closes.
HOLDER = """
import sys
from memp_mcp.store import driver
conn = driver.connect(sys.argv[1])
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE procedures SET title = title")
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "memory.db"
    memory = Memory(SQLiteStore(path), FakeEmbedder())
    steps = ["take soapbar", "clean soapbar", "put soapbar in cabinet"]
    memory.record("put a clean soapbar in cabinet", steps, "success")
    memory.store.close()
    return path


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another process holds `path`'s write lock (an open BEGIN IMMEDIATE with a write in it) meanwhile."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()


def test_opening_a_current_database_to_read_never_asks_for_the_write_lock(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no busy timeout at all, any wait for the lock fails at once: opening and reading must need none.
    monkeypatch.setattr(driver, "BUSY_TIMEOUT_SECONDS", 0.0)
    with write_lock_held(db):
        store = SQLiteStore(db)
        try:
            assert [p.title for p in store.list_procedures("default")] == ["Put a clean soapbar in cabinet"]
            # Writers still take the lock, and are refused (here at once) while another process has it.
            with pytest.raises(StoreError, match="locked by another process"), store.transaction():
                store.add_event("default", "note", "task", "summary", {})
        finally:
            store.close()


def test_list_answers_while_another_process_holds_the_write_lock(db: Path) -> None:
    env = {**os.environ, "MEMP_DB_PATH": str(db), "MEMP_EMBEDDINGS": "0", "COLUMNS": "120"}
    env.pop("MEMP_NAMESPACE", None)
    with write_lock_held(db):
        # The lock is held for the whole run: an answer means the command never waited for it.
        done = subprocess.run(
            [sys.executable, "-m", "memp_mcp.cli", "list"],
            env=env,
            cwd=db.parent,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert "Put a clean soapbar in cabinet" in done.stdout
