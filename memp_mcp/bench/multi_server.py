"""Several servers on one PostgreSQL database, with clients spread across them.

Starts `servers` processes of `memp-mcp serve --transport streamable-http`, all on the same
database, then runs `clients` MCP clients at once, client i talking to server i % servers. Each
client records `writes` trajectories of tasks of its own and recalls each right after recording
it. Then every server is asked for what every other server wrote: the memory's counts, each
recorded procedure by id, and a recall of a task recorded through another server.

Figures: servers, clients, writes, recalls, tool errors, trajectories missing on any server,
procedures not found through a server other than the one that wrote them, and wall time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

STARTUP_SECONDS = 60.0


@dataclass
class Written:
    client: int
    server: int
    task: str
    procedure_id: int | None


@dataclass
class MultiServerFigures:
    servers: int
    clients: int
    writes: int = 0
    recalls: int = 0
    errors: list[str] = field(default_factory=list)
    missing_trajectories: int = 0
    unseen_procedures: int = 0
    cross_server_recalls: int = 0
    cross_server_recalls_found: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "servers": self.servers,
            "clients": self.clients,
            "writes": self.writes,
            "recalls": self.recalls,
            "errors": len(self.errors),
            "missing_trajectories": self.missing_trajectories,
            "unseen_procedures": self.unseen_procedures,
            "cross_server_recalls": self.cross_server_recalls,
            "cross_server_recalls_found": self.cross_server_recalls_found,
            "seconds": round(self.seconds, 2),
            "first_errors": self.errors[:5],
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_servers(count: int, env: dict[str, str]) -> Iterator[list[str]]:
    """`count` HTTP servers started with `env` (which names the shared database); their MCP URLs."""
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    with tempfile.TemporaryDirectory(prefix="memp-servers-") as tmp:
        try:
            for index in range(count):
                port = _free_port()
                log = (Path(tmp) / f"server-{index}.log").open("wb")
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "memp_mcp.cli",
                            "serve",
                            "--transport",
                            "streamable-http",
                            "--port",
                            str(port),
                        ],
                        env={**os.environ, **env},
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                    )
                )
                log.close()
                urls.append(f"http://127.0.0.1:{port}/mcp")
            for index, (process, url) in enumerate(zip(processes, urls, strict=True)):
                _wait_for_port(process, int(url.split(":")[2].split("/")[0]), Path(tmp) / f"server-{index}.log")
            yield urls
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def _wait_for_port(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"a server exited at start: {log.read_text(errors='replace')[-2000:]}") from None
            time.sleep(0.1)
    raise RuntimeError(f"a server did not listen on port {port} within {STARTUP_SECONDS:.0f} s")


def _name(number: int) -> str:
    """A made-up word for a number (letters only, so keyword search indexes it whole)."""
    letters = ""
    while True:
        number, digit = divmod(number, 26)
        letters = "bcdfghjklmnpqrstvwxzaeiouy"[digit] + letters
        if number == 0:
            return "mod" + letters


def task_of(client: int, n: int) -> tuple[str, list[dict[str, str]]]:
    """A coding task unique to (client, n), and the steps that solved it."""
    module = _name(client * 10_000 + n)
    return (
        f"fix the failing parser test in module {module}",
        [
            {"action": f"run pytest tests/test_{module}.py", "observation": "1 failed: ValueError in parse_header"},
            {"action": f"open src/{module}/parser.py", "observation": "parse_header splits on ':' only once"},
            {"action": f"edit src/{module}/parser.py: split on the first ':' only", "observation": "saved"},
            {"action": f"run pytest tests/test_{module}.py", "observation": "4 passed"},
        ],
    )


def _structured(result: Any) -> dict[str, Any]:
    return dict(result.structured_content or {})


def run_multi_server(
    env: dict[str, str], *, servers: int = 3, clients: int = 6, writes: int = 10, token: str | None = None
) -> MultiServerFigures:
    """Start the servers with `env` (MEMP_DATABASE_URL and the rest), run the clients, check every
    server sees every write. The database should start empty."""
    figures = MultiServerFigures(servers, clients)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    run_env = {**env, **({"MEMP_HTTP_TOKEN": token} if token else {})}
    with running_servers(servers, run_env) as urls:
        started = time.perf_counter()
        written = anyio.run(_clients, urls, clients, writes, headers, figures)
        figures.seconds = time.perf_counter() - started
        anyio.run(_check, urls, written, headers, figures)
    return figures


async def _session(url: str, headers: dict[str, str]) -> Any:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers=headers, timeout=120)
    return http, Client(streamable_http_client(url, http_client=http))


async def _clients(
    urls: list[str], clients: int, writes: int, headers: dict[str, str], figures: MultiServerFigures
) -> list[Written]:
    written: list[Written] = []

    async def one_client(client: int) -> None:
        server = client % len(urls)
        http, session = await _session(urls[server], headers)
        async with http, session as mcp:
            for n in range(writes):
                task, steps = task_of(client, n)
                result = await mcp.call_tool("record_trajectory", {"task": task, "steps": steps, "outcome": "success"})
                figures.writes += 1
                if result.is_error:
                    figures.errors.append(f"record on server {server}: {result.content}")
                    continue
                written.append(Written(client, server, task, _structured(result).get("procedure_id")))
                recalled = await mcp.call_tool("recall_procedure", {"task": task, "k": 3})
                figures.recalls += 1
                if recalled.is_error:
                    figures.errors.append(f"recall on server {server}: {recalled.content}")

    async with anyio.create_task_group() as group:
        for client in range(clients):
            group.start_soon(one_client, client)
    return written


async def _check(urls: list[str], written: list[Written], headers: dict[str, str], figures: MultiServerFigures) -> None:
    for server, url in enumerate(urls):
        http, session = await _session(url, headers)
        async with http, session as mcp:
            stats = await mcp.call_tool("memory_stats", {})
            if stats.is_error:
                figures.errors.append(f"memory_stats on server {server}: {stats.content}")
                continue
            held = int(_structured(stats).get("stats", {}).get("trajectories", 0))
            figures.missing_trajectories += max(0, len(written) - held)
            others = [w for w in written if w.server != server]
            for item in others:
                if item.procedure_id is None:
                    continue
                found = await mcp.call_tool("get_procedure", {"procedure_id": item.procedure_id})
                if found.is_error:
                    figures.unseen_procedures += 1
            for item in others[:: max(1, len(others) // 5)]:
                recalled = await mcp.call_tool("recall_procedure", {"task": item.task, "k": 3})
                figures.cross_server_recalls += 1
                if recalled.is_error:
                    figures.errors.append(f"recall on server {server}: {recalled.content}")
                    continue
                ids = [p.get("id") for p in _structured(recalled).get("procedures", [])]
                figures.cross_server_recalls_found += item.procedure_id in ids
