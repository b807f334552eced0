"""Reliability: several server processes on one file, and a server killed mid-write.

These start real `memp-mcp serve` processes over stdio (keyword mode, so no model load) and
check the database afterwards with the store's own integrity checks.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from memp_mcp.store import SQLiteStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

STEPS = [
    {"action": "go to countertop 1", "observation": "On the countertop 1, you see a mug 1."},
    {"action": "take mug 1 from countertop 1", "observation": "You pick up the mug 1."},
    {"action": "go to shelf 1", "observation": "On the shelf 1, you see nothing."},
    {"action": "put mug 1 in/on shelf 1", "observation": "You put the mug 1 in/on the shelf 1."},
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def server(db: Path, marker: str) -> StdioServerParameters:
    env = {
        **os.environ,
        "MEMP_DB_PATH": str(db),
        "MEMP_EMBEDDINGS": "0",
        "MEMP_LOG_LEVEL": "WARNING",
        "MEMP_TEST_MARKER": marker,
    }
    return StdioServerParameters(command=sys.executable, args=["-m", "memp_mcp.cli", "serve"], env=env)


def server_pid(marker: str) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"MEMP_TEST_MARKER={marker}".encode() in (entry / "environ").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    raise LookupError(marker)


async def test_four_servers_share_one_database(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    acknowledged: list[int] = []
    errors: list[str] = []
    deadline = time.monotonic() + 8.0

    async def worker(number: int) -> None:
        async with Client(server(db, f"w{number}-{os.getpid()}")) as client:
            count = 0
            while time.monotonic() < deadline:
                task = f"put mug {number}-{count} on the shelf"
                result = await client.call_tool(
                    "record_trajectory", {"task": task, "steps": STEPS, "outcome": "success"}
                )
                if result.is_error:
                    errors.append(str(result.content))
                else:
                    acknowledged.append(int((result.structured_content or {})["trajectory_id"]))
                recalled = await client.call_tool("recall_procedure", {"task": f"put mug {number} on the shelf"})
                if recalled.is_error:
                    errors.append(str(recalled.content))
                count += 1

    async with anyio.create_task_group() as group:
        for number in range(4):
            group.start_soon(worker, number)

    assert errors == []
    assert len(acknowledged) >= 20, f"only {len(acknowledged)} writes in 8 s"
    with SQLiteStore(db) as store:
        assert store.integrity_problems() == []
        for trajectory_id in acknowledged:
            store.get_trajectory(trajectory_id)
        assert store.count_trajectories() == len(acknowledged)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the server process through /proc (Linux)")
async def test_sigkill_mid_writes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "killed.db"
    acknowledged: list[int] = []
    marker = f"kill-{os.getpid()}"
    survived_kills = 0
    for round_number in range(3):
        try:
            with anyio.fail_after(60):
                await _write_until_killed(db, f"{marker}-{round_number}", 15 + 10 * round_number, acknowledged)
        except Exception:  # the client sees its server die (an error, or a closed stream); that is the point
            survived_kills += 1
        with SQLiteStore(db) as store:
            assert store.integrity_problems() == []
            for trajectory_id in acknowledged:
                store.get_trajectory(trajectory_id)
    assert survived_kills == 3
    assert len(acknowledged) >= 15


async def _write_until_killed(db: Path, marker: str, kill_at: int, acknowledged: list[int]) -> None:
    async with Client(server(db, marker)) as client:
        pid = server_pid(marker)
        for count in range(10_000):
            if count == kill_at:
                os.kill(pid, signal.SIGKILL)
            result: Any = await client.call_tool(
                "record_trajectory",
                {"task": f"{marker} task {count}", "steps": STEPS * 3, "outcome": "success"},
            )
            if not result.is_error:
                acknowledged.append(int(result.structured_content["trajectory_id"]))
