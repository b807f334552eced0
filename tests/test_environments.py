"""Bad environments: a full disk, a database from a newer memp-mcp, a broken model directory, an
oversized HTTP request, and load on the HTTP transport from another process."""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from memp_mcp.config import load_settings
from memp_mcp.embedding import BackgroundEmbedder
from memp_mcp.engine.memory import Memory
from memp_mcp.errors import StoreError
from memp_mcp.server.app import build_server
from memp_mcp.server.streamable_http import MAX_HTTP_BODY_BYTES
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder
from tests.test_memory import CLEAN_SOAP, HEAT_EGG
from tests.test_server import http_server  # noqa: F401 - a fixture

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_full_disk_is_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "full.db")
    memory = Memory(store, FakeEmbedder())
    first = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    # Cap the file at its current size: the next page SQLite needs cannot be had, as on a full disk.
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    # Words in no order (steps are stored compressed: a run of one letter would take a few bytes).
    rng = random.Random(0)
    words = [f"w{n}q" for n in range(4096)]
    huge = [{"action": f"step {i}", "observation": " ".join(rng.choices(words, k=2_500))} for i in range(200)]
    with pytest.raises(StoreError, match="cannot write"):
        memory.record("a task whose trajectory does not fit", huge, "success")
    assert store.count_trajectories() == 1
    assert store.get_procedure(first.procedure_id or 0).title
    store.close()
    with SQLiteStore(tmp_path / "full.db") as reopened:
        assert reopened.integrity_problems() == [] and reopened.count_trajectories() == 1


def test_serve_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    SQLiteStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'later')")
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.cli", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MEMP_DB_PATH": str(db), "MEMP_EMBEDDINGS": "0"},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "newer than this memp-mcp understands" in done.stderr and "Traceback" not in done.stderr


async def test_a_broken_model_directory_degrades_to_keywords_and_says_so(tmp_path: Path) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not a model")
    settings = load_settings({"db_path": tmp_path / "m.db", "model_dir": broken}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), BackgroundEmbedder(settings))
    async with Client(build_server(settings, memory=memory)) as client:
        await client.call_tool(
            "record_trajectory", {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success"}
        )
        recalled = await client.call_tool("recall_procedure", {"task": "put a clean soapbar in cabinet"})
        assert not recalled.is_error
        assert recalled.structured_content["retrieval"].startswith("keyword only")
        assert recalled.structured_content["procedures"]
        stats = await client.call_tool("memory_stats", {})
        assert stats.structured_content["model"].startswith("unavailable")


def test_http_refuses_an_oversized_request(http_server: str) -> None:  # noqa: F811
    # Announce a body over the limit and see the answer before sending it (the server need not read it).
    url = urllib.parse.urlsplit(http_server)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer s3cret\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"Content-Length: {MAX_HTTP_BODY_BYTES + 10}\r\n\r\n".encode()
        )
        sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "pad": "' + b"x" * 65536)
        status_line = sock.recv(200).split(b"\r\n")[0]
    assert status_line.split()[1] == b"413", status_line


LOAD_CLIENT = """
import anyio, json, sys, time
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

async def main(url, seconds):
    done = errors = 0
    async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            deadline = time.monotonic() + seconds
            started = time.monotonic()
            while time.monotonic() < deadline:
                result = await client.call_tool("recall_procedure", {"task": f"put soap number {done} in the cabinet"})
                errors += bool(result.is_error)
                done += 1
            print(json.dumps({"requests": done, "errors": errors, "seconds": time.monotonic() - started}))

anyio.run(main, sys.argv[1], float(sys.argv[2]))
"""


@pytest.mark.slow
def test_http_load_from_other_processes(http_server: str) -> None:  # noqa: F811
    clients = [
        subprocess.Popen([sys.executable, "-c", LOAD_CLIENT, http_server, "5"], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    reports = []
    for process in clients:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        reports.append(json.loads(out.strip().splitlines()[-1]))
    total = sum(r["requests"] for r in reports)
    assert sum(r["errors"] for r in reports) == 0
    assert total >= 10
    print(f"HTTP load: {total} recalls from 2 processes in 5 s, {total / 5:.0f} requests/s, 0 errors")


@pytest.fixture
def read_only_database(tmp_path: Path) -> Iterator[Path]:
    """A memp-mcp database file nobody may write: chmod for users, the immutable flag for root."""
    import shutil
    import subprocess as sp

    db = tmp_path / "locked.db"
    with SQLiteStore(db) as store:
        Memory(store, FakeEmbedder()).record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    if os.geteuid() != 0:
        db.chmod(0o444)
        yield db
        db.chmod(0o644)
        return
    if shutil.which("chattr") is None or sp.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("running as root without a working chattr: cannot make a file read-only")
    try:
        yield db
    finally:
        sp.run(["chattr", "-i", str(db)], check=False)


async def test_a_read_only_database_file_still_answers_recalls_and_refuses_writes_clearly(
    read_only_database: Path,
) -> None:
    before = read_only_database.read_bytes()
    settings = load_settings({"db_path": read_only_database}, environ={})
    memory = Memory(SQLiteStore(read_only_database), FakeEmbedder())
    async with Client(build_server(settings, memory=memory)) as client:
        recalled = await client.call_tool("recall_procedure", {"task": "put a clean soapbar in cabinet"})
        assert not recalled.is_error
        recorded = await client.call_tool("record_trajectory", {"task": "t", "steps": CLEAN_SOAP, "outcome": "success"})
        assert recorded.is_error
        assert "read" in recorded.content[0].text.lower()  # type: ignore[union-attr]
        assert str(read_only_database) in recorded.content[0].text  # type: ignore[union-attr]
    assert read_only_database.read_bytes() == before


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A memp-mcp database in a folder nobody may write (a read-only mount): chmod, or chattr for root."""
    import shutil
    import subprocess as sp

    folder = tmp_path / "library"
    folder.mkdir()
    db = folder / "locked.db"
    with SQLiteStore(db) as store:
        Memory(store, FakeEmbedder()).record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    if os.geteuid() != 0:
        db.chmod(0o444)
        folder.chmod(0o555)
        yield db
        folder.chmod(0o755)
        db.chmod(0o644)
        return
    if shutil.which("chattr") is None or sp.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("running as root without a working chattr: cannot make a file read-only")
    sp.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield db
    finally:
        sp.run(["chattr", "-i", str(folder)], check=False)
        sp.run(["chattr", "-i", str(db)], check=False)


async def test_a_read_only_database_in_a_read_only_folder_still_answers_recalls(read_only_folder: Path) -> None:
    before = read_only_folder.read_bytes()
    settings = load_settings({"db_path": read_only_folder}, environ={})
    memory = Memory(SQLiteStore(read_only_folder), FakeEmbedder())
    async with Client(build_server(settings, memory=memory)) as client:
        recalled = await client.call_tool("recall_procedure", {"task": "put a clean soapbar in cabinet"})
        assert not recalled.is_error
        assert [p["title"] for p in recalled.structured_content["procedures"]] == ["Put a clean {object} in {target}"]
        assert "not logged" in recalled.structured_content["retrieval"]
        recorded = await client.call_tool("record_trajectory", {"task": "t", "steps": CLEAN_SOAP, "outcome": "success"})
        assert recorded.is_error and "read" in recorded.content[0].text.lower()  # type: ignore[union-attr]
    assert read_only_folder.read_bytes() == before
    assert sorted(p.name for p in read_only_folder.parent.iterdir()) == ["locked.db"]


class FolderLock:
    """Makes a folder and its database files unwritable for this process and back, as when another
    account owns them: chmod for users, the immutable flag for root."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if os.geteuid() == 0 and not self._chattr("+i", folder):
            pytest.skip("running as root without a working chattr: cannot make a folder read-only")
        self.unlock()

    @staticmethod
    def _chattr(flag: str, path: Path) -> bool:
        return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0

    def _databases(self) -> list[Path]:
        return sorted(self.folder.glob("*.db"))

    def lock(self) -> None:
        for path in [*self._databases(), self.folder]:
            if os.geteuid() == 0:
                self._chattr("+i", path)
            else:
                path.chmod(0o555 if path.is_dir() else 0o444)

    def unlock(self) -> None:
        for path in [self.folder, *self._databases()]:
            if os.geteuid() == 0:
                self._chattr("-i", path)
            else:
                path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture
def folder_lock(tmp_path: Path) -> Iterator[FolderLock]:
    folder = tmp_path / "library"
    folder.mkdir()
    lock = FolderLock(folder)
    try:
        yield lock
    finally:
        lock.unlock()


def _titles(memory: Memory) -> list[str]:
    return sorted(procedure.title for procedure in memory.list_procedures())


def test_a_reader_in_a_read_only_folder_sees_what_another_account_is_writing(folder_lock: FolderLock) -> None:
    db = folder_lock.folder / "shared.db"
    with SQLiteStore(db) as store:
        Memory(store, FakeEmbedder()).record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    # The other account keeps the file open: what it records sits in the WAL beside the file.
    with SQLiteStore(db) as writer_store:
        writer = Memory(writer_store, FakeEmbedder())
        writer.record("heat some egg and put it in garbagecan", HEAT_EGG, "success")
        folder_lock.lock()
        with SQLiteStore(db) as reader_store:
            reader = Memory(reader_store, FakeEmbedder())
            assert len(_titles(writer)) == 2
            assert _titles(reader) == _titles(writer)
        folder_lock.unlock()


def test_a_reader_that_opened_an_idle_file_follows_a_writer_who_comes_later(folder_lock: FolderLock) -> None:
    db = folder_lock.folder / "shared.db"
    with SQLiteStore(db) as store:
        Memory(store, FakeEmbedder()).record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    folder_lock.lock()
    with SQLiteStore(db) as reader_store:
        reader = Memory(reader_store, FakeEmbedder())
        before = _titles(reader)
        assert len(before) == 1
        folder_lock.unlock()
        with SQLiteStore(db) as writer_store:
            writer = Memory(writer_store, FakeEmbedder())
            writer.record("heat some egg and put it in garbagecan", HEAT_EGG, "success")
            folder_lock.lock()
            assert len(_titles(writer)) == 2
            assert _titles(reader) == _titles(writer)
            folder_lock.unlock()
