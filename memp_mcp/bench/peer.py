"""Side by side with a plain vector-search MCP server (mcp-server-qdrant) over stdio.

Both servers get the same documents (synthetic procedures with their tasks) and the same
queries (paraphrased tasks), use the same model (all-MiniLM-L6-v2 from the same files: the peer's
fastembed is pointed at a cache laid out from the locally assembled model, and kept offline, so it
can load nothing else), and are asked for k results. The peer is not a dependency of memp-mcp:
pass the command that starts it (e.g. from a venv of its own).

Each size's two stores are filled once (memp-mcp's in bulk, the peer's through its own qdrant-store)
and measured on disk. Each run then starts each server on a fresh copy of its filled store, the two
servers taking turns to go first run by run, and measures, as the client sees it: the time from
process start to the `initialize` answer and to the first answered query (model load included);
query latency over the timed queries and the server's CPU time over them (user + system, all
threads, from /proc); the answer's UTF-8 bytes (text plus structured content); the time to store one
new document through the server's own tool (memp-mcp: record_trajectory of a task with its steps;
the peer: qdrant-store of the task and its actions, see `peer_document`); and the server's peak
RSS. Figures are medians over the runs, each run with the machine's load average.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from memp_mcp.bench.latency import percentile
from memp_mcp.bench.process import MARKER_VARIABLE, cpu_seconds, peak_rss_mb, server_pid
from memp_mcp.bench.synthetic import SyntheticTask, build_database, paraphrase, synthetic_tasks
from memp_mcp.embedding import Embedder
from memp_mcp.store import SQLiteStore

PEER_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PEER_HF_REPO = "models--qdrant--all-MiniLM-L6-v2-onnx"
SERVERS = ("memp", "peer")
# The bound on the answer: memp-mcp's at most this many times the peer's.
ANSWER_RATIO_TARGET = 1.5
WARMUP = 5
# Both servers are spoken to as today's clients (Claude Code among them) do: the `initialize`
# handshake, protocol 2025-11-25. The peer's SDK knows no newer one, and asking it first would add
# a failed round trip to its start alone.
PROTOCOL_MODE: Final = "legacy"


def peer_model_cache(model_dir: Path, folder: Path) -> Path:
    """A fastembed cache holding `model_dir`'s files where fastembed looks for the peer's model."""
    snapshot = folder / PEER_HF_REPO / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / PEER_HF_REPO / "refs").mkdir(exist_ok=True)
    (folder / PEER_HF_REPO / "refs" / "main").write_text("0" * 40)
    for file in model_dir.iterdir():
        target = snapshot / file.name
        if not target.exists():
            target.symlink_to(file.resolve())
    return folder


def answer_bytes(result: Any) -> int:
    """UTF-8 bytes a tool result carries: its text blocks plus its structured content as compact JSON
    (none when there is none)."""
    text = sum(len(getattr(block, "text", "").encode()) for block in result.content)
    if result.structured_content is None:
        return text
    return text + len(json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False).encode())


def folder_mb(path: Path) -> float:
    """Bytes of all files under `path` (or of the SQLite file `path` with its -wal and -shm), in MiB."""
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
    else:
        files = [p for p in path.parent.glob(path.name + "*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / (1024 * 1024)


@dataclass(frozen=True)
class Target:
    """A row the issue sets a bound on: memp-mcp's figure at most `factor` times the peer's."""

    key: str
    factor: float

    def met(self, memp: float | None, peer: float | None) -> bool | None:
        if memp is None or peer is None:
            return None
        return memp <= self.factor * peer

    @property
    def rule(self) -> str:
        return "<= peer" if self.factor == 1 else f"<= {self.factor:g}x peer"


TARGETS = (
    Target("query_p50_ms", 1.0),
    Target("query_p95_ms", 1.0),
    Target("answer_bytes_p50", ANSWER_RATIO_TARGET),
    Target("peak_rss_mb", 1.0),
    Target("disk_mb", 1.0),
)


def judge(memp: dict[str, Any], peer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target's rule and whether memp-mcp's medians meet it (None when a figure is missing)."""
    return {t.key: {"rule": t.rule, "met": t.met(memp.get(t.key), peer.get(t.key))} for t in TARGETS}


@dataclass(frozen=True)
class _Side:
    """How to start one server on a store and ask it things."""

    command: str
    args: list[str]
    env: dict[str, str]
    find_tool: str
    find: Callable[[str], dict[str, Any]]
    store_tool: str
    store: Callable[[SyntheticTask], dict[str, Any]]


async def _one_run(side: _Side, queries: list[str], documents: list[SyntheticTask]) -> dict[str, Any]:
    """Start the server, time its start, WARMUP queries (the first one timed as the first answer), the
    timed queries with the server's CPU over them, then the stores; its peak RSS at the end."""
    from mcp import Client, StdioServerParameters

    marker = uuid.uuid4().hex
    params = StdioServerParameters(command=side.command, args=side.args, env={**side.env, MARKER_VARIABLE: marker})
    started = time.perf_counter()
    async with Client(params, mode=PROTOCOL_MODE) as client:
        initialize_s = time.perf_counter() - started
        _checked(side.find_tool, await client.call_tool(side.find_tool, side.find(queries[0])))
        first_query_s = time.perf_counter() - started
        for query in queries[1:WARMUP]:
            _checked(side.find_tool, await client.call_tool(side.find_tool, side.find(query)))
        pid = server_pid(marker)
        latencies: list[float] = []
        sizes: list[float] = []
        cpu_before = cpu_seconds(pid)
        for query in queries[WARMUP:]:
            t0 = time.perf_counter()
            result = await client.call_tool(side.find_tool, side.find(query))
            latencies.append(1000 * (time.perf_counter() - t0))
            sizes.append(answer_bytes(_checked(side.find_tool, result)))
        cpu_after = cpu_seconds(pid)
        store_ms: list[float] = []
        for document in documents:
            t0 = time.perf_counter()
            result = await client.call_tool(side.store_tool, side.store(document))
            store_ms.append(1000 * (time.perf_counter() - t0))
            _checked(side.store_tool, result)
        rss = peak_rss_mb(pid)
    cpu = None if cpu_before is None or cpu_after is None else 1000 * (cpu_after - cpu_before) / len(latencies)
    return {
        "initialize_s": round(initialize_s, 3),
        "first_query_s": round(first_query_s, 3),
        "query_p50_ms": round(percentile(latencies, 0.5), 2),
        "query_p95_ms": round(percentile(latencies, 0.95), 2),
        "cpu_per_query_ms": None if cpu is None else round(cpu, 2),
        "answer_bytes_p50": percentile(sizes, 0.5),
        "store_p50_ms": round(percentile(store_ms, 0.5), 2),
        "store_p95_ms": round(percentile(store_ms, 0.95), 2),
        "peak_rss_mb": None if rss is None else round(rss, 1),
    }


def _checked(tool: str, result: Any) -> Any:
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")
    return result


async def _fill_peer(side: _Side, documents: list[SyntheticTask], progress: Callable[[int], None]) -> None:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=side.command, args=side.args, env=side.env)
    async with Client(params, mode=PROTOCOL_MODE) as client:
        for done, document in enumerate(documents, 1):
            _checked(side.store_tool, await client.call_tool(side.store_tool, side.store(document)))
            if done % 50 == 0 or done == len(documents):
                progress(done)


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    medians: dict[str, Any] = {}
    for key in runs[0]:
        values = [run[key] for run in runs if run[key] is not None]
        medians[key] = round(statistics.median(values), 3) if values else None
    return medians


def _memp_side(env: dict[str, str], db: Path, k: int) -> _Side:
    return _Side(
        sys.executable,
        ["-m", "memp_mcp.cli", "serve"],
        {**env, "MEMP_DB_PATH": str(db)},
        "recall_procedure",
        lambda query: {"task": query, "k": k},
        "record_trajectory",
        _record_arguments,
    )


def _peer_side(command: list[str], env: dict[str, str], path: Path) -> _Side:
    return _Side(
        command[0],
        command[1:],
        {**env, "QDRANT_LOCAL_PATH": str(path)},
        "qdrant-find",
        lambda query: {"query": query},
        "qdrant-store",
        lambda item: {"information": peer_document(item)},
    )


def peer_document(item: SyntheticTask) -> str:
    """What an agent would keep in a plain vector memory to do the task again: the task and the actions
    that did it, one a line. The same content memp-mcp gets (it is sent the task with its steps), so both
    answers carry a way to do the task; the task alone made the peer's answer a list of task names."""
    return "\n".join([item.task, *(f"{n}. {step.action}" for n, step in enumerate(item.steps, 1))])


def _record_arguments(item: SyntheticTask) -> dict[str, Any]:
    steps = [step.model_dump(exclude_none=True) for step in item.steps]
    return {"task": item.task, "steps": steps, "outcome": "success"}


async def run_peer_comparison(
    peer_command: list[str],
    embedder: Embedder | None,
    model_dir: Path | None,
    sizes: tuple[int, ...] = (336, 5000),
    queries: int = 100,
    k: int = 10,
    runs: int = 3,
    stores: int = 50,
    seed: int = 0,
    on_progress: Callable[[str, int, int], None] | None = None,
    calm_load: float | None = None,
    calm_wait_s: float = 600.0,
) -> dict[str, Any]:
    """memp-mcp's recall_procedure and the peer's qdrant-find, each over stdio, at each size (see the
    module's docstring). Without an embedder memp-mcp runs on keyword retrieval and the peer is given
    no model cache: a check of the benchmark itself, not a comparison. With `calm_load`, each run
    waits (at most `calm_wait_s`) for the 1-minute load average to fall below it, and records the wait."""
    progress = on_progress or (lambda _name, _done, _total: None)
    results: dict[str, Any] = {
        "k": k,
        "queries": queries,
        "runs": runs,
        "stores": stores,
        "model": embedder.identity if embedder else "none (keyword retrieval)",
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="memp-peer-") as folder_name:
        folder = Path(folder_name)
        cache = peer_model_cache(model_dir, folder / "fastembed") if embedder and model_dir else None
        memp_env = {**os.environ, "MEMP_LOG_LEVEL": "WARNING"}
        if embedder and model_dir:
            memp_env["MEMP_MODEL_DIR"] = str(model_dir)
        else:
            memp_env["MEMP_EMBEDDINGS"] = "0"
        peer_env = {
            **os.environ,
            "COLLECTION_NAME": "bench",
            "EMBEDDING_MODEL": PEER_MODEL,
            "QDRANT_SEARCH_LIMIT": str(k),
            "HF_HUB_OFFLINE": "1",
        }
        if cache:
            peer_env["FASTEMBED_CACHE_PATH"] = str(cache)
        for size in sizes:
            items = list(synthetic_tasks(size + stores, seed))
            filled, fresh = items[:size], items[size:]
            memp_db = folder / f"memp-{size}.db"
            built = [0]

            def tick(count: int, size: int = size, built: list[int] = built) -> None:
                built[0] += count
                progress(f"filling memp-mcp's store ({size})", built[0], size)

            def filled_peer(done: int, size: int = size) -> None:
                progress(f"filling the peer's store ({size})", done, size)

            with SQLiteStore(memp_db) as store:
                if embedder:
                    store.bind_embedding_model(embedder.identity, embedder.dim)
                build_database(store, embedder.embed if embedder else None, size, seed, progress=tick)
            peer_path = folder / f"qdrant-{size}"
            await _fill_peer(
                _peer_side(peer_command, peer_env, peer_path),
                filled,
                filled_peer,
            )
            disk = {"memp": round(folder_mb(memp_db), 3), "peer": round(folder_mb(peer_path), 3)}
            rng = random.Random(seed)
            asked = [paraphrase(rng, rng.choice(filled).task) for _ in range(queries + WARMUP)]
            per_run: list[dict[str, Any]] = []
            for run in range(runs):
                progress(f"runs at {size} documents", run, runs)
                order = SERVERS if run % 2 == 0 else SERVERS[::-1]
                record: dict[str, Any] = {"order": list(order)}
                if calm_load is not None:
                    record["waited_s"] = await _wait_for_load(calm_load, calm_wait_s)
                load_before = os.getloadavg()[0]
                run_folder = folder / f"run-{size}-{run}"
                run_folder.mkdir()
                for name in order:
                    if name == "memp":
                        db = run_folder / memp_db.name
                        _copy_sqlite(memp_db, db)
                        record[name] = await _one_run(_memp_side(memp_env, db, k), asked, fresh)
                    else:
                        path = run_folder / peer_path.name
                        shutil.copytree(peer_path, path)
                        record[name] = await _one_run(_peer_side(peer_command, peer_env, path), asked, fresh)
                # The machine's 1-minute load average as the run began and ended.
                record["load"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                per_run.append(record)
                shutil.rmtree(run_folder)
            progress(f"runs at {size} documents", runs, runs)
            medians = {name: {**_medians([r[name] for r in per_run]), "disk_mb": disk[name]} for name in SERVERS}
            peer_bytes = medians["peer"]["answer_bytes_p50"]
            results["sizes"][str(size)] = {
                **medians,
                "answer_bytes_ratio": round(medians["memp"]["answer_bytes_p50"] / peer_bytes, 2)
                if peer_bytes
                else None,
                "targets": judge(medians["memp"], medians["peer"]),
                "runs": per_run,
            }
    return results


async def _wait_for_load(below: float, at_most_s: float) -> float:
    """Wait until the 1-minute load average is under `below`, or `at_most_s` has passed; the seconds waited."""
    import anyio

    started = time.perf_counter()
    while os.getloadavg()[0] >= below and time.perf_counter() - started < at_most_s:
        await anyio.sleep(5)
    return round(time.perf_counter() - started, 1)


def _copy_sqlite(source: Path, target: Path) -> None:
    """Copy a closed SQLite database with its write-ahead log, if one was left (it holds committed data)."""
    shutil.copyfile(source, target)
    wal = source.with_name(source.name + "-wal")
    if wal.is_file():
        shutil.copyfile(wal, target.with_name(target.name + "-wal"))
