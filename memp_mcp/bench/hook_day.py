"""A user's day through the hooks (`memp-mcp bench day`): real sessions, the warm server stopped and
started between them, then the memory checked as `doctor` checks it.

Each session goes through `memp-mcp hook` as Claude Code runs it (a new process per event: SessionStart,
UserPromptSubmit with its instruction, Stop with its transcript), in one git repository's namespace,
variants interleaved by family so that later ones find their family's procedure. Prompts go to the
warm server; every `restart_every` sessions it is stopped as its idle exit would, and the next
prompt starts another. On a Python that opens SQLite through sqlean.py (MEMP_SQLITE_DRIVER=sqlean
by default here) this is the run that lost rows and corrupted the file when the prompt hook also
read it with the stdlib sqlite3.

Figures: sessions and warm servers; the file's integrity (SQLite's check and the indexes against
the rows), a damage mark, processes writing a deleted WAL; procedures and trajectories; prompts
given a procedure, and of those whose turn had a clear outcome, how many were credited; tracebacks
and "not reported" lines in hooks.log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memp_mcp.bench.sessions import load_sessions

Progress = Callable[[str, int, int], None]
_SERVER_STARTED = re.compile(r"warm server for .* \(pid (\d+)\)")


def _git_project(folder: Path) -> Path:
    """A repository with one commit: its namespace is keyed on that commit, as a real project's is."""
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("work\n", encoding="utf-8")
    git = ["git", "-C", str(folder), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    for command in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "start"]):
        subprocess.run([*git, *command], check=True, capture_output=True)
    return folder


def _servers(log: Path) -> list[int]:
    try:
        return sorted({int(pid) for pid in _SERVER_STARTED.findall(log.read_text(encoding="utf-8"))})
    except OSError:
        return []


def _stop_servers(log: Path) -> None:
    """Stop every warm server this run started (SIGTERM, as when it is idle; SIGKILL if it hangs)."""
    alive = []
    for pid in _servers(log):
        try:
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
        except ProcessLookupError:
            continue
    give_up = time.monotonic() + 20
    while alive and time.monotonic() < give_up:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists()]
        time.sleep(0.05)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_hook_day(
    folder: Path, scratch: Path, *, restart_every: int = 5, driver: str = "sqlean", progress: Progress | None = None
) -> dict[str, Any]:
    """Play the sessions under `folder` (as `bench sessions` reads them) through the hooks; the figures."""
    import gzip

    sessions = load_sessions(folder)
    if not sessions:
        raise ValueError(f"{folder} holds no <family>/<variant>/ with instruction.md and transcript.jsonl.gz")
    families: dict[str, list[Any]] = {}
    for session in sessions:
        families.setdefault(session.family, []).append(session)
    longest = max(len(variants) for variants in families.values())
    order = [variants[i] for i in range(longest) for variants in families.values() if i < len(variants)]
    project = _git_project(scratch / "project")
    db = scratch / "data" / "memory.db"
    log = db.parent / "hooks.log"
    env = {
        **os.environ,
        "MEMP_DB_PATH": str(db),
        "MEMP_SQLITE_DRIVER": driver,
        "MEMP_HOOKS": "1",
        "MEMP_HOOK_SERVER": "1",
        "MEMP_LOG_LEVEL": "INFO",
    }
    for variable in ("MEMP_NAMESPACE", "MEMP_HOOK_NAMESPACE", "MEMP_DATABASE_URL"):
        env.pop(variable, None)

    def hook(payload: dict[str, Any]) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "memp_mcp.entry", "hook"],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=project,
        )
        return done.stdout

    started = time.perf_counter()
    given = 0
    try:
        for number, session in enumerate(order):
            transcript = scratch / "transcripts" / f"{number}.jsonl"
            transcript.parent.mkdir(parents=True, exist_ok=True)
            transcript.write_bytes(gzip.decompress(session.transcript.read_bytes()))
            common = {"session_id": f"day-{number}", "transcript_path": str(transcript), "cwd": str(project)}
            hook({**common, "hook_event_name": "SessionStart", "source": "startup"})
            given += "<procedure id=" in hook(
                {**common, "hook_event_name": "UserPromptSubmit", "prompt": session.instruction}
            )
            hook({**common, "hook_event_name": "Stop", "stop_hook_active": False})
            if (number + 1) % restart_every == 0:
                _stop_servers(log)
            if progress:
                progress("sessions", number + 1, len(order))
    finally:
        _stop_servers(log)
    seconds = time.perf_counter() - started
    return {"sessions": len(order), "seconds": round(seconds, 1), "given": given, **_checked(db, log)}


def _checked(db: Path, log: Path) -> dict[str, Any]:
    """What `doctor` would find, what is stored, and whether every given procedure was credited."""
    from memp_mcp.errors import MempError
    from memp_mcp.store import SQLiteStore
    from memp_mcp.store.sqlite import health

    text = log.read_text(encoding="utf-8") if log.exists() else ""
    figures: dict[str, Any] = {
        "warm_servers": len(_servers(log)),
        "tracebacks": text.count("Traceback"),
        "not_reported": text.count("not reported"),
        "damage_mark": None if (found := health.damage(db)) is None else found.problem,
        "deleted_wal_holders": len(health.deleted_wal_holders(db)),
    }
    try:
        store = SQLiteStore(db)
    except MempError as exc:
        return {**figures, "integrity": [str(exc)], "procedures": None, "trajectories": None}
    try:
        figures["integrity"] = store.integrity_problems()
        figures["procedures"] = store.count_procedures()
        figures["trajectories"] = store.count_trajectories()
        events = [row for batch in store.read_rows("events", "kind, recall_id, summary", "id") for row in batch]
    finally:
        store.close()
    injected = {recall for kind, recall, _ in events if kind == "inject" and recall}
    credited = {recall for kind, recall, _ in events if kind == "outcome" and recall}
    # A turn the transcript does not decide (no command run) is recorded, not reported: nothing to credit.
    undecided = {recall for kind, recall, summary in events if kind == "stop" and "verdict unknown" in str(summary)}
    figures["injected"] = len(injected)
    figures["injected_with_an_outcome"] = len(injected - undecided)
    figures["credited"] = len(injected & credited)
    return figures
