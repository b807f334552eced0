"""One SQLite library per process: the memory survives a long-lived connection beside other processes.

Two copies of SQLite in one process (the stdlib `sqlite3` beside sqlean.py) do not see each other's
POSIX locks: a connection of one closing drops the other's locks, another process then deletes the
WAL the long-lived connection still writes, and its rows are lost or the file corrupted. These tests
play that scenario on each driver this Python can run (MEMP_SQLITE_DRIVER=sqlean forces the fallback
on a Python whose stdlib could load extensions), and check that no code path of the product opens a
memory file with a library other than the one the store chose.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memp_mcp.config import load_settings
from memp_mcp.engine.memory import memory_for
from memp_mcp.hooks.handlers import holds_memory, namespace_for
from memp_mcp.store import SQLiteStore, driver

pytestmark = pytest.mark.slow

DRIVERS = [
    "sqlean",
    pytest.param(
        "sqlite3",
        marks=pytest.mark.skipif(
            not driver.stdlib_can_load_extensions(),
            reason="this Python's sqlite3 cannot load extensions (sqlite-vec); only the sqlean.py path runs here",
        ),
    ),
]

# Another process of the product: opens the memory, records one trajectory, closes.
OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from memp_mcp.config import load_settings
    from memp_mcp.engine.memory import memory_for
    from memp_mcp.store import SQLiteStore

    settings = load_settings()
    store = SQLiteStore(settings.db_path)
    memory = memory_for(settings, store, None, namespace="work")
    memory.record(sys.argv[1], ["run the deploy script", "check the health endpoint"], "success")
    store.close()
    """
)


@pytest.fixture(params=DRIVERS)
def sqlite_driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process and the processes it starts use the driver named (chosen afresh for the test)."""
    monkeypatch.setenv("MEMP_SQLITE_DRIVER", request.param)
    monkeypatch.setattr(driver, "_chosen", None)
    yield request.param


def deleted_wals_held_here(db: Path) -> list[str]:
    """This process's open descriptors on a WAL of `db` that was deleted under it (Linux)."""
    found = []
    fds = Path("/proc/self/fd")
    for fd in os.listdir(fds) if fds.is_dir() else []:
        try:
            target = os.readlink(fds / fd)
        except OSError:
            continue
        if target.startswith(f"{db}-wal") and target.endswith("(deleted)"):
            found.append(target)
    return found


def recorded_tasks(store: SQLiteStore) -> set[str]:
    return {str(row[0]) for batch in store.read_rows("trajectories", "task", "id") for row in batch}


def test_a_long_lived_connection_beside_other_processes_loses_no_row(
    sqlite_driver: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "memory.db"
    monkeypatch.setenv("MEMP_DB_PATH", str(db))
    monkeypatch.setenv("MEMP_EMBEDDINGS", "0")
    settings = load_settings()
    # The warm server's part: one store kept open, written between the other processes' writes, and
    # the prompt hook's cheap read of the same file (holds_memory) on every prompt.
    kept = SQLiteStore(db)
    memory = memory_for(settings, kept, None, namespace="work")
    expected = set()
    for turn in range(6):
        task = f"rotate the staging certificates, turn {turn} kept"
        memory.record(task, ["renew with certbot", "reload nginx"], "success")
        expected.add(task)
        assert holds_memory(settings, "work")
        assert not holds_memory(settings, "elsewhere")
        other = f"deploy the web app to production, turn {turn} other"
        subprocess.run([sys.executable, "-c", OTHER_PROCESS, other], check=True, env=os.environ.copy(), timeout=120)
        expected.add(other)
    assert deleted_wals_held_here(db) == []
    # Seen by the kept connection too, before it closes (a split hides the other side's writes).
    assert recorded_tasks(kept) == expected
    kept.close()

    reopened = SQLiteStore(db)
    try:
        assert reopened.integrity_problems() == []
        assert recorded_tasks(reopened) == expected
    finally:
        reopened.close()


def test_no_code_path_opens_the_memory_with_the_other_sqlite_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With sqlean chosen, the hooks (hook process and warm server) and the read commands never call the
    stdlib's connect on the memory file."""
    from typer.testing import CliRunner

    from memp_mcp.cli import app
    from memp_mcp.hooks.handlers import run_hook
    from memp_mcp.hooks.memories import FreshMemories, KeptMemories
    from tests.claude_code_session import Transcript

    monkeypatch.setenv("MEMP_SQLITE_DRIVER", "sqlean")
    monkeypatch.setattr(driver, "_chosen", None)
    opened_by_stdlib: list[Any] = []
    real_connect = sqlite3.connect

    def watched_connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        opened_by_stdlib.append(database)
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", watched_connect)
    db = tmp_path / "data" / "memory.db"
    monkeypatch.setenv("MEMP_DB_PATH", str(db))
    monkeypatch.setenv("MEMP_EMBEDDINGS", "0")
    monkeypatch.setenv("MEMP_HOOK_SERVER", "0")
    project = tmp_path / "shop"
    project.mkdir()
    # A repository with history: its namespace is keyed on its first commit, so every prompt also asks
    # whether the older, folder-keyed namespace holds memory (the read that split the file).
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "start"], check=True)
    monkeypatch.chdir(project)
    settings = load_settings()
    assert driver.uses_fallback()

    prompt = "Rotate the staging TLS certificates of the shop's nginx"
    transcript = Transcript(tmp_path / "s1.jsonl", "s1", project)
    transcript.prompt(prompt)
    transcript.tool("Bash", {"command": "certbot renew --cert-name staging"}, "renewed 1 certificate")
    transcript.tool("Bash", {"command": "nginx -s reload && curl -sf https://staging/health"}, "ok")

    def event(name: str, session: str, **fields: Any) -> bytes:
        import json

        return json.dumps(
            {
                "session_id": session,
                "transcript_path": str(transcript.path),
                "cwd": str(project),
                "hook_event_name": name,
                **fields,
            }
        ).encode()

    fresh = FreshMemories(settings)
    run_hook(event("UserPromptSubmit", "s1", prompt=prompt), settings, fresh)
    run_hook(event("Stop", "s1"), settings, fresh)
    kept = KeptMemories(settings)
    assert run_hook(event("UserPromptSubmit", "s2", prompt=prompt), settings, kept)  # the warm server's path
    assert namespace_for(settings, str(project)).startswith("project/commit-")
    runner = CliRunner()
    for command in (["list"], ["namespaces"], ["stats"], ["log"], ["show", "1"], ["doctor"], ["recall", prompt]):
        done = runner.invoke(app, command)
        assert done.exit_code in (0, 1), (command, done.output)
    assert opened_by_stdlib == []


def test_a_day_of_sessions_through_the_hooks_and_a_warm_server_keeps_every_procedure_and_credit(
    tmp_path: Path,
) -> None:
    """The user's run: sessions through `memp-mcp hook` with the warm server answering prompts (and stopped
    and started again between them) while hook processes record each turn, on the sqlean path."""
    import json
    import re
    import signal
    import time

    from memp_mcp.hooks.client import server_pid, socket_path
    from tests.claude_code_session import Transcript

    project = tmp_path / "shop"
    (project / "deploy").mkdir(parents=True)
    (project / "deploy" / "release.sh").write_text("helm upgrade shop ./chart\n")
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "start"], check=True)
    db = tmp_path / "data" / "memory.db"
    env = {
        **os.environ,
        "MEMP_DB_PATH": str(db),
        "MEMP_SQLITE_DRIVER": "sqlean",
        "MEMP_EMBEDDINGS": "0",
        "MEMP_HOOK_SERVER": "1",
        "MEMP_LOG_LEVEL": "DEBUG",
    }
    tasks = [
        "Release the shop to staging with the helm chart and check the rollout",
        "Rotate the shop's staging TLS certificate and reload nginx",
        "Rebuild the shop's product search index after the schema change",
    ]

    def hook(payload: dict[str, Any]) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "memp_mcp.entry", "hook"],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        return done.stdout

    def stop_the_server() -> None:
        pid = server_pid(db, env)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            give_up = time.monotonic() + 20
            while socket_path(db, env).exists() and time.monotonic() < give_up:
                time.sleep(0.05)

    injected = 0
    try:
        for number in range(9):
            session = f"s{number}"
            task = tasks[number % len(tasks)]
            transcript = Transcript(tmp_path / f"{session}.jsonl", session, project)
            transcript.prompt(task)
            common = {"session_id": session, "transcript_path": str(transcript.path), "cwd": str(project)}
            hook({**common, "hook_event_name": "SessionStart", "source": "startup"})
            reply = hook({**common, "hook_event_name": "UserPromptSubmit", "prompt": task})
            injected += "<procedure id=" in reply
            transcript.tool("Read", {"file_path": "deploy/release.sh"}, "helm upgrade shop ./chart")
            transcript.tool("Bash", {"command": f"./deploy/release.sh --step {number % len(tasks)}"}, "done")
            transcript.tool("Bash", {"command": "python -m pytest tests -q"}, "12 passed in 0.40s")
            hook({**common, "hook_event_name": "Stop", "stop_hook_active": False})
            if number in (3, 6):
                stop_the_server()  # as its idle exit would; the next prompt starts another
    finally:
        stop_the_server()

    assert injected >= 6  # every repeat of a task got its procedure
    log = (db.parent / "hooks.log").read_text()
    assert len(set(re.findall(r" (\d+) INFO warm server for ", log))) >= 3  # started, stopped, started again
    assert "not reported" not in log and "Traceback" not in log
    assert len(re.findall(r"reported True for recall", log)) == injected  # every injection credited
    store = SQLiteStore(db)
    try:
        assert store.integrity_problems() == []
        assert store.count_trajectories() == 9
        procedures = store.list_procedures(None)
        assert len(procedures) == len(tasks)  # one procedure per recurring task, none lost
        assert sum(p.success_count for p in procedures) >= injected
    finally:
        store.close()
