"""What the prompt hook adds to a prompt: `memp-mcp hook` timed as Claude Code runs it, one process per prompt.

Warm: the files it reads are in the page cache (every prompt after the first few). Cold: before each
run the page cache is told to drop the interpreter's standard library, the installed packages and
the database (posix_fadvise DONTNEED, file by file, so other programs' caches are left alone), as
after a reboot. Prompts are rewordings of stored tasks and unrelated requests, in a memory of
synthetic procedures in one project's namespace.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from memp_mcp.bench.latency import percentile
from memp_mcp.bench.synthetic import build_database, paraphrase
from memp_mcp.project import project_namespace
from memp_mcp.store import SQLiteStore

UNRELATED = [
    "what does this error mean",
    "explain the difference between a process and a thread in this codebase",
    "write a haiku about compilers",
    "summarise the last meeting notes",
]


def _evict(roots: list[Path]) -> int:
    """Drop the files under `roots` from the page cache; returns how many files were told."""
    count = 0
    for root in roots:
        files = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
        for path in files:
            try:
                descriptor = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            finally:
                os.close(descriptor)
    return count


def _cache_roots(db: Path) -> list[Path]:
    paths = sysconfig.get_paths()
    roots = {Path(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.add(Path(__file__).resolve().parent.parent)  # memp_mcp itself, when installed editable
    return [*sorted(roots), db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


def _time_one(command: list[str], prompt: str, project: Path, env: dict[str, str]) -> tuple[float, int | None]:
    payload = json.dumps(
        {
            "session_id": "bench",
            "transcript_path": str(project / "transcript.jsonl"),
            "cwd": str(project),
            "hook_event_name": "UserPromptSubmit",
            "prompt": prompt,
        }
    )
    started = time.perf_counter()
    done = subprocess.run(command, input=payload, capture_output=True, text=True, env=env, timeout=60, check=False)
    elapsed = 1000 * (time.perf_counter() - started)
    if done.returncode != 0:
        raise RuntimeError(f"the hook exited {done.returncode}: {done.stderr[-500:]}")
    if not done.stdout:
        return elapsed, None
    return elapsed, len(json.loads(done.stdout)["hookSpecificOutput"]["additionalContext"])


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5), 1),
        "p95": round(percentile(values, 0.95), 1),
        "max": round(max(values), 1),
        "n": len(values),
    }


def run_hook_bench(
    command: list[str], sizes: list[int], workdir: Path, *, runs: int = 40, cold_runs: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Warm and cold latency of the prompt hook per memory size, the interpreter's start-up, and injection sizes."""
    rng = random.Random(seed)
    project = workdir / "project"
    (project / ".git").mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"command": command, "sizes": {}}
    bare = [sys.executable, "-c", "pass"]
    startup = []
    for _ in range(10):
        started = time.perf_counter()
        subprocess.run(bare, check=True)
        startup.append(1000 * (time.perf_counter() - started))
    results["python_startup_ms"] = _summary(startup)
    for size in sizes:
        db = workdir / f"hook-{size}.db"
        if not db.exists():
            with SQLiteStore(db) as store:
                tasks = build_database(store, None, size, seed, namespace=project_namespace(project))
            (workdir / f"hook-{size}.tasks.json").write_text(json.dumps(tasks))
        tasks = json.loads((workdir / f"hook-{size}.tasks.json").read_text())
        env = {**os.environ, "MEMP_DB_PATH": str(db), "MEMP_LOG_LEVEL": "WARNING"}

        def prompt(tasks: list[str] = tasks) -> str:
            return rng.choice(UNRELATED) if rng.random() < 0.25 else paraphrase(rng, rng.choice(tasks))

        for _ in range(3):
            _time_one(command, prompt(), project, env)
        warm, injected = [], []
        for _ in range(runs):
            elapsed, chars = _time_one(command, prompt(), project, env)
            warm.append(elapsed)
            if chars is not None:
                injected.append(chars)
        cold = []
        for _ in range(cold_runs):
            _evict(_cache_roots(db))
            cold.append(_time_one(command, prompt(), project, env)[0])
        results["sizes"][str(size)] = {
            "warm_ms": _summary(warm),
            "cold_ms": _summary(cold),
            "injected": len(injected),
            "injection_chars": {
                "mean": round(sum(injected) / len(injected)) if injected else 0,
                "max": max(injected, default=0),
            },
        }
    return results
