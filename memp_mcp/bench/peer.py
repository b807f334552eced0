"""Side by side with a plain vector-search MCP server (mcp-server-qdrant) over stdio.

Both servers get the same documents (synthetic procedures with their tasks) and the same
queries (paraphrased tasks), use the same model (all-MiniLM-L6-v2 from the same files: the peer's
fastembed is pointed at a cache laid out from the locally assembled model, since its hub may be
unreachable), and are asked for k results. Measured as the MCP client sees each call: latency
p50/p95 and the characters of the answer (text plus structured content). The peer is not a
dependency of memp-mcp: pass the command that starts it (e.g. from a venv of its own).
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from memp_mcp.bench.coding import answer_size
from memp_mcp.bench.latency import percentile
from memp_mcp.bench.synthetic import build_database, paraphrase
from memp_mcp.embedding import Embedder
from memp_mcp.store import SQLiteStore

PEER_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PEER_HF_REPO = "models--qdrant--all-MiniLM-L6-v2-onnx"


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


async def _timed_calls(
    params: Any, tool: str, queries: list[dict[str, Any]], warmup: int
) -> tuple[list[float], list[int]]:
    from mcp import Client

    latencies: list[float] = []
    sizes: list[int] = []
    async with Client(params) as client:
        for arguments in queries[:warmup]:
            await client.call_tool(tool, arguments)
        for arguments in queries[warmup:]:
            started = time.perf_counter()
            result = await client.call_tool(tool, arguments)
            latencies.append(1000 * (time.perf_counter() - started))
            if result.is_error:
                raise RuntimeError(f"{tool} failed: {result.content}")
            sizes.append(answer_size(result))
    return latencies, sizes


async def _fill_peer(params: Any, documents: list[str]) -> None:
    from mcp import Client

    async with Client(params) as client:
        for document in documents:
            result = await client.call_tool("qdrant-store", {"information": document})
            if result.is_error:
                raise RuntimeError(f"qdrant-store failed: {result.content}")


def _figures(latencies: list[float], sizes: list[int]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "chars_p50": percentile([float(s) for s in sizes], 0.5),
    }


async def run_peer_comparison(
    peer_command: list[str],
    embedder: Embedder,
    model_dir: Path,
    sizes: tuple[int, ...] = (336, 5000),
    queries: int = 100,
    k: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """memp-mcp's recall_procedure and the peer's qdrant-find, each over stdio, at each size."""
    import sys

    from mcp import StdioServerParameters

    results: dict[str, Any] = {"k": k, "queries": queries, "model": embedder.identity, "sizes": {}}
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        cache = peer_model_cache(model_dir, folder / "fastembed")
        for size in sizes:
            db = folder / f"memp-{size}.db"
            with SQLiteStore(db) as store:
                store.bind_embedding_model(embedder.identity, embedder.dim)
                tasks = build_database(store, embedder.embed, size, seed)
            documents = tasks
            rng = random.Random(seed)
            asked = [paraphrase(rng, rng.choice(tasks)) for _ in range(queries + 5)]
            memp = StdioServerParameters(
                command=sys.executable,
                args=["-m", "memp_mcp.cli", "serve"],
                env={
                    **os.environ,
                    "MEMP_DB_PATH": str(db),
                    "MEMP_MODEL_DIR": str(model_dir),
                    "MEMP_LOG_LEVEL": "WARNING",
                },
            )
            peer_env = {
                **os.environ,
                "QDRANT_LOCAL_PATH": str(folder / f"qdrant-{size}"),
                "COLLECTION_NAME": "bench",
                "EMBEDDING_MODEL": PEER_MODEL,
                "QDRANT_SEARCH_LIMIT": str(k),
                "FASTEMBED_CACHE_PATH": str(cache),
                "HF_HUB_OFFLINE": "1",
            }
            peer = StdioServerParameters(command=peer_command[0], args=peer_command[1:], env=peer_env)
            await _fill_peer(peer, documents)
            load_before = os.getloadavg()[0]
            memp_latency, memp_sizes = await _timed_calls(
                memp, "recall_procedure", [{"task": q, "k": k} for q in asked], warmup=5
            )
            peer_latency, peer_sizes = await _timed_calls(peer, "qdrant-find", [{"query": q} for q in asked], warmup=5)
            results["sizes"][str(size)] = {
                "memp": _figures(memp_latency, memp_sizes),
                "peer": _figures(peer_latency, peer_sizes),
                # The machine's 1-minute load average as the timing began and ended: the times mean
                # little without it on a shared machine.
                "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
    return results
