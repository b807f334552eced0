"""What the prompt hook adds to a prompt: `memp-mcp hook` timed as Claude Code runs it, one process per prompt.

Cold runs drop the interpreter's standard library, the installed packages and the database from
the page cache first (posix_fadvise DONTNEED, file by file, so other programs' caches are left
alone), as after a reboot. Prompts are rewordings of stored tasks and unrelated requests, in a memory of
synthetic procedures in one project's namespace.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from memp_mcp.bench.latency import percentile
from memp_mcp.bench.synthetic import build_database, paraphrase
from memp_mcp.hooks.client import server_pid
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


def _stop_server(db: Path, env: dict[str, str]) -> None:
    pid = server_pid(db, env)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        _wait(lambda: server_pid(db, env) is None, 10)


def _says(log: Path, text: str) -> bool:
    return log.exists() and text in log.read_text()


def _wait(condition: Callable[[], bool], seconds: float) -> bool:
    give_up = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.1)
    return True


def run_hook_bench(
    command: list[str], sizes: list[int], workdir: Path, *, runs: int = 40, cold_runs: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Prompt-hook latency per memory size: cold, warm without a server, warm with one; and injection sizes.

    - cold: no warm server and the files dropped from the page cache (the first prompt after a
      reboot or an idle half hour): the hook answers itself and starts the server;
    - in-process: no server (MEMP_HOOK_SERVER=0), files cached;
    - warm: the warm server running with its model loaded (every later prompt).
    """
    rng = random.Random(seed)
    project = workdir / "project"
    (project / ".git").mkdir(parents=True, exist_ok=True)
    # The namespace comes from the origin in the repository's config, read on every prompt: measured too.
    (project / ".git" / "config").write_text('[remote "origin"]\n\turl = https://example.org/team/project.git\n')
    results: dict[str, Any] = {"command": command, "sizes": {}}
    startup = []
    for _ in range(10):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        startup.append(1000 * (time.perf_counter() - started))
    results["python_startup_ms"] = _summary(startup)
    for size in sizes:
        folder = workdir / f"hook-{size}"
        db = folder / "memory.db"
        if not (folder / "tasks.json").exists():
            folder.mkdir(exist_ok=True)
            db.unlink(missing_ok=True)
            with SQLiteStore(db) as store:
                tasks = build_database(store, None, size, seed, namespace=project_namespace(project))
            (folder / "tasks.json").write_text(json.dumps(tasks))
        tasks = json.loads((folder / "tasks.json").read_text())
        log = folder / "hooks.log"
        log.unlink(missing_ok=True)
        env = {**os.environ, "MEMP_DB_PATH": str(db), "MEMP_LOG_LEVEL": "INFO", "MEMP_HOOK_SERVER": "1"}
        plain = {**env, "MEMP_HOOK_SERVER": "0"}

        def prompt(tasks: list[str] = tasks) -> str:
            return rng.choice(UNRELATED) if rng.random() < 0.25 else paraphrase(rng, rng.choice(tasks))

        try:
            _stop_server(db, env)
            in_process = [_time_one(command, prompt(), project, plain)[0] for _ in range(runs)]
            cold = []
            for _ in range(cold_runs):
                _stop_server(db, env)
                _evict(_cache_roots(db))
                cold.append(_time_one(command, prompt(), project, env)[0])
            ready = _wait(partial(_says, log, "warm server recalls with"), 600)
            warm, injected, unrelated_injected = [], [], 0
            for _ in range(runs):
                text = prompt()
                elapsed, chars = _time_one(command, text, project, env)
                warm.append(elapsed)
                if chars is not None:
                    injected.append(chars)
                    unrelated_injected += text in UNRELATED
        finally:
            _stop_server(db, env)
        results["sizes"][str(size)] = {
            "cold_ms": _summary(cold),
            "in_process_ms": _summary(in_process),
            "warm_ms": _summary(warm),
            "warm_with_model": ready,
            "injected": len(injected),
            "injected_for_unrelated_prompts": unrelated_injected,
            "injection_chars": {
                "mean": round(sum(injected) / len(injected)) if injected else 0,
                "max": max(injected, default=0),
            },
        }
    return results
