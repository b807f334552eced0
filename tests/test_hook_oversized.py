"""A hook event over the input limit (a pasted file as a prompt) costs one log line, through either path.

It used to reach the warm server, which raised on it and logged a traceback; the client took the lack
of a reply for a server gone, started another and asked again every 50 ms while it was "starting":
about forty tracebacks in hooks.log for one prompt, then the hook process's own line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from memp_mcp.engine.memory import Memory
from memp_mcp.hooks.client import server_pid, socket_path
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder
from tests.test_hooks import wait_until


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    db = tmp_path / "data" / "memory.db"
    db.parent.mkdir()
    Memory(SQLiteStore(db), FakeEmbedder()).record("fix the cache expiry", ["pytest -q"], "success")
    # A namespace of its own and no model: the warm server answers at once, and on keywords.
    return {
        **os.environ,
        "MEMP_DB_PATH": str(db),
        "MEMP_LOG_LEVEL": "INFO",
        "MEMP_EMBEDDINGS": "0",
        "MEMP_HOOK_NAMESPACE": "default",
        "MEMP_HOOK_SERVER": "1",
    }


def prompt_event(prompt: str) -> bytes:
    fields = {"session_id": "s1", "transcript_path": "/nonexistent.jsonl", "cwd": "/", "permission_mode": "default"}
    return json.dumps({**fields, "hook_event_name": "UserPromptSubmit", "prompt": prompt}).encode()


OVERSIZED = prompt_event("fix the cache expiry " * 60_000)  # 1.2 MB


def hook(raw: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.entry", "hook"], input=raw, capture_output=True, timeout=60, env=env
    )
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    return done


def log_lines(env: dict[str, str]) -> list[str]:
    return (Path(env["MEMP_DB_PATH"]).parent / "hooks.log").read_text().splitlines()


def lines_since(env: dict[str, str], before: int) -> list[str]:
    """What the log gained since line `before`, but the warm server's backup after an earlier event (its
    own thread, whenever one is due), which is not the oversized event's doing."""
    return [line for line in log_lines(env)[before:] if " INFO backed up " not in line]


@pytest.fixture
def warm_server(env: dict[str, str]) -> Iterator[int]:
    """A warm server for `env`'s database, started as the first prompt starts it; stopped after the test."""
    db = Path(env["MEMP_DB_PATH"])
    try:
        hook(prompt_event("fix the cache expiry test"), env)
        wait_until(lambda: server_pid(db, env) is not None, 60)
        pid = server_pid(db, env)
        assert pid is not None
        yield pid
    finally:
        # Stopped however the test went: a server left behind would live for its 30 idle minutes.
        pid = server_pid(db, env)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not socket_path(db, env).exists(), 10)


def test_an_oversized_prompt_with_a_warm_server_logs_one_line(env: dict[str, str], warm_server: int) -> None:
    before = len(log_lines(env))
    assert hook(OVERSIZED, env).stdout == b""
    added = lines_since(env, before)
    assert len(added) == 1 and "larger than 1000000 bytes" in added[0] and "UserPromptSubmit" in added[0], added
    assert server_pid(Path(env["MEMP_DB_PATH"]), env) == warm_server  # no second server was started


def test_an_oversized_prompt_without_a_warm_server_logs_one_line(env: dict[str, str]) -> None:
    assert hook(OVERSIZED, {**env, "MEMP_HOOK_SERVER": "0"}).stdout == b""
    [line] = log_lines(env)
    assert "WARNING" in line and "larger than 1000000 bytes" in line and "UserPromptSubmit" in line


def test_the_warm_server_answers_an_oversized_request_with_nothing_and_one_line(
    env: dict[str, str], warm_server: int
) -> None:
    # A client that does not check the size first (an older memp-mcp, say) gets an empty answer, not a
    # closed connection that would send it asking again.
    before = len(log_lines(env))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(30)
        connection.connect(str(socket_path(Path(env["MEMP_DB_PATH"]), env)))
        connection.sendall(OVERSIZED)
        connection.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: connection.recv(65536), b""))
    assert reply == b"ok\n"
    added = lines_since(env, before)
    assert len(added) == 1 and "larger than 1000000 bytes" in added[0] and "Traceback" not in added[0], added
