"""A damaged SQLite memory is loud, repairable and restorable, and backups keep a good copy of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from memp_mcp.config import load_settings
from memp_mcp.engine.memory import memory_for
from memp_mcp.hooks.handlers import run_hook
from memp_mcp.hooks.memories import FreshMemories
from memp_mcp.store import SQLiteStore, driver
from memp_mcp.store.sqlite import backups, health, recovery
from tests.claude_code_session import Transcript

TASKS = [
    "deploy the billing service to staging with helm",
    "rotate the TLS certificates of the shop's nginx",
    "rebuild the search index after a schema change",
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("MEMP_DB_PATH", str(tmp_path / "data" / "memory.db"))
    monkeypatch.setenv("MEMP_EMBEDDINGS", "0")
    monkeypatch.setenv("MEMP_HOOK_SERVER", "0")
    monkeypatch.setenv("MEMP_NAMESPACE", "work")
    return dict(os.environ)


def recorded(db: Path, tasks: list[str]) -> None:
    store = SQLiteStore(db)
    memory = memory_for(load_settings(), store, None, namespace="work")
    for task in tasks:
        memory.record(task, ["look at the runbook", f"run the {task.split()[0]} script", "check it worked"], "success")
    store.close()


def procedure_titles(db: Path) -> set[str]:
    store = SQLiteStore(db)
    try:
        return {str(row[0]) for batch in store.read_rows("trajectories", "task", "id") for row in batch}
    finally:
        store.close()


def empty_the_index(db: Path, index: str = "procedures_by_namespace") -> None:
    """Damage the file as the split did: an index that lost its entries while the table kept its rows."""
    connection = driver.connect(db)
    try:
        page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
        root = int(connection.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()[0])
        # An empty leaf page of an index b-tree: type 0x0A, no cells, content area at the page's end.
        header = bytes([0x0A, 0, 0, 0, 0]) + (page_size % 65536).to_bytes(2, "big") + b"\0"
        connection.execute(
            "UPDATE sqlite_dbpage SET data = ? WHERE pgno = ?", (header + bytes(page_size - len(header)), root)
        )
    finally:
        connection.close()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memp_mcp.entry", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_a_damaged_memory_is_said_everywhere_then_repaired_with_nothing_lost(env: dict[str, str]) -> None:
    db = Path(env["MEMP_DB_PATH"])
    recorded(db, TASKS)
    empty_the_index(db)

    doctor = cli(env, "doctor")
    assert doctor.returncode == 1
    assert "wrong # of entries in index procedures_by_namespace" in doctor.stdout
    assert "memp-mcp repair" in doctor.stdout
    assert health.damage(db) is not None
    # Every later command says so on stderr, and still does its work.
    listing = cli(env, "list")
    assert "is damaged" in listing.stderr and "memp-mcp repair" in listing.stderr

    repaired = cli(env, "repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "rebuilt its indexes" in repaired.stdout
    assert "before: 3 procedures, 3 trajectories; now: 3 procedures, 3 trajectories" in repaired.stdout
    kept = [p for p in db.parent.iterdir() if p.name.startswith("memory.db.before-repair-")]
    assert len(kept) == 1 and (kept[0] / "memory.db").exists()  # the damaged file, as it was
    assert health.damage(db) is None
    assert procedure_titles(db) == set(TASKS)
    store = SQLiteStore(db)
    try:
        assert store.integrity_problems() == []
        assert store.count_procedures("work") == 3
    finally:
        store.close()
    assert "is damaged" not in cli(env, "list").stderr


def test_doctor_clears_a_mark_the_file_no_longer_deserves(env: dict[str, str]) -> None:
    db = Path(env["MEMP_DB_PATH"])
    recorded(db, TASKS[:1])
    health.mark_damaged(db, "database disk image is malformed")
    assert "is damaged" in cli(env, "namespaces").stderr
    doctor = cli(env, "doctor")
    assert "it checks sound now: mark cleared" in doctor.stdout
    assert health.damage(db) is None


def hook_event(name: str, session: str, transcript: Transcript, cwd: Path, **fields: Any) -> bytes:
    payload = {
        "session_id": session,
        "transcript_path": str(transcript.path),
        "cwd": str(cwd),
        "hook_event_name": name,
        **fields,
    }
    return json.dumps(payload).encode()


def a_turn(tmp_path: Path, session: str, prompt: str) -> Transcript:
    transcript = Transcript(tmp_path / f"{session}.jsonl", session, tmp_path)
    transcript.prompt(prompt)
    transcript.tool("Bash", {"command": "helm upgrade billing ./chart -n staging"}, "release upgraded")
    transcript.tool("Bash", {"command": "kubectl rollout status deploy/billing -n staging"}, "successfully rolled out")
    return transcript


def test_the_hooks_say_a_damaged_memory_once_a_session_and_write_nothing_to_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    db = Path(env["MEMP_DB_PATH"])
    recorded(db, TASKS)
    health.mark_damaged(db, "wrong # of entries in index procedures_by_namespace")
    settings = load_settings()
    memories = FreshMemories(settings)
    transcript = a_turn(tmp_path, "s1", TASKS[0])

    reply = run_hook(hook_event("UserPromptSubmit", "s1", transcript, tmp_path, prompt=TASKS[0]), settings, memories)
    assert reply is not None
    context = json.loads(reply)["hookSpecificOutput"]["additionalContext"]
    assert "is damaged" in context and "memp-mcp repair" in context and "<procedure" not in context
    # Said once a session; the turn's end records nothing into the damaged file.
    again = run_hook(hook_event("UserPromptSubmit", "s1", transcript, tmp_path, prompt=TASKS[1]), settings, memories)
    assert again is None
    before = db.stat().st_mtime_ns, Path(f"{db}-wal").stat().st_size if Path(f"{db}-wal").exists() else 0
    run_hook(hook_event("Stop", "s1", transcript, tmp_path), settings, memories)
    after = db.stat().st_mtime_ns, Path(f"{db}-wal").stat().st_size if Path(f"{db}-wal").exists() else 0
    assert after == before
    health.clear_damage(db)
    run_hook(hook_event("Stop", "s1", transcript, tmp_path), settings, memories)
    store = SQLiteStore(db)
    try:
        assert store.count_trajectories() == 4  # the hooks record in the folder's own namespace
    finally:
        store.close()


def test_the_stop_hook_keeps_a_few_checked_generations_and_restore_brings_one_back(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Path(env["MEMP_DB_PATH"])
    recorded(db, TASKS[:1])
    settings = load_settings()
    memories = FreshMemories(settings)

    def turn(number: int) -> None:
        transcript = a_turn(tmp_path, f"s{number}", f"{TASKS[0]}, attempt {number}")
        run_hook(hook_event("Stop", f"s{number}", transcript, tmp_path), settings, memories)

    turn(1)
    assert len(backups.list_backups(db)) == 1  # none yet: one taken
    turn(2)
    assert len(backups.list_backups(db)) == 1  # the newest is recent
    assert backups.backup_due(db, now=time.time() + backups.BACKUP_INTERVAL_SECONDS + 1)
    monkeypatch.setattr(backups, "BACKUP_INTERVAL_SECONDS", 0.0)
    for number in range(3, 8):
        turn(number)
    kept = backups.list_backups(db)
    assert len(kept) == backups.BACKUP_GENERATIONS
    assert all(os.stat(b.path).st_mode & 0o077 == 0 for b in kept)
    newest_holds = procedure_titles(kept[0].path)
    assert f"{TASKS[0]}, attempt 6" in newest_holds

    # Work after the newest backup is what a restore gives up; the file as it was is kept aside.
    recorded(db, ["a task recorded after the last backup"])
    restored = cli(env, "restore", "--backup", "latest")
    assert restored.returncode == 0, restored.stderr
    assert procedure_titles(db) == newest_holds
    aside = [p for p in db.parent.iterdir() if p.name.startswith("memory.db.before-restore-")]
    assert "a task recorded after the last backup" in procedure_titles(aside[0] / "memory.db")
    listing = cli(env, "restore", "--backup", "list")
    assert kept[0].name in listing.stdout
    assert "no backup named 'nope'" in cli(env, "restore", "--backup", "nope").stderr
    # A memory file lost altogether comes back from its backups too.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    again = cli(env, "restore", "--backup", "latest")
    assert again.returncode == 0, again.stderr
    assert "before: no file" in again.stdout
    assert procedure_titles(db) == newest_holds


def test_a_backup_of_a_damaged_memory_marks_it_and_keeps_the_good_generations(env: dict[str, str]) -> None:
    db = Path(env["MEMP_DB_PATH"])
    recorded(db, TASKS)
    good = backups.back_up(db)
    assert good is not None
    (backups.backup_folder(db) / f"{good.name}.partial").write_bytes(b"half a copy from a killed process")
    empty_the_index(db)
    with pytest.raises(Exception, match="integrity check"):
        backups.back_up(db)
    assert [b.name for b in backups.list_backups(db)] == [good.name]
    assert not list(backups.backup_folder(db).glob("*.partial*"))
    found = health.damage(db)
    assert found is not None and "wrong # of entries" in found.problem
    # A due backup is not taken of a memory marked damaged: the good ones stay.
    assert backups.back_up_if_due(db) is None


def test_redacting_stored_secrets_discards_the_backups_that_hold_them(env: dict[str, str]) -> None:
    from memp_mcp.engine.scan import scan

    db = Path(env["MEMP_DB_PATH"])
    store = SQLiteStore(db)
    memory = memory_for(load_settings(), store, None, namespace="work")
    memory.record(TASKS[0], ["helm upgrade billing", "kubectl rollout status"], "success")
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    with store.transaction():
        store._modify("UPDATE trajectories SET task = ? WHERE id = 1", (f"{TASKS[0]} with token {token}",))
    assert backups.back_up(db) is not None
    assert token.encode() in backups.list_backups(db)[0].path.read_bytes()
    kept = recovery.keep_aside(db, "repair")  # as repair keeps the file before it works
    report = scan(store, None, fix=True)
    store.close()
    assert report.secrets >= 1
    assert backups.list_backups(db) == []
    assert not kept.exists()
    assert not any(token.encode() in path.read_bytes() for path in db.parent.rglob("*") if path.is_file())


def test_a_process_writing_a_deleted_wal_is_found_and_repair_stops_it(env: dict[str, str], tmp_path: Path) -> None:
    """The split itself: a warm server whose WAL another process deleted. doctor names it; repair kills it
    (a normal exit would checkpoint its stale pages) and the memory checks sound afterwards."""
    db = Path(env["MEMP_DB_PATH"])
    recorded(db, TASKS)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from memp_mcp.store import SQLiteStore\n"
            "store = SQLiteStore(sys.argv[1])\n"
            "with store.transaction(): store.ensure_namespace('held')\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)\n",
            str(db),
            "memp_mcp.hooks.warm_server",  # named as the hooks' warm server is, so repair may stop it
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        Path(f"{db}-wal").unlink()  # what the other copy of SQLite did
        assert holder.pid in health.deleted_wal_holders(db)
        doctor = cli(env, "doctor")
        assert f"process {holder.pid}" in doctor.stdout and "was deleted" in doctor.stdout
        repaired = cli(env, "repair")
        assert repaired.returncode == 0, repaired.stderr
        assert f"stopped the hooks' warm server (pid {holder.pid})" in repaired.stderr
        assert holder.wait(10) == -signal.SIGKILL
        kept = next(p for p in db.parent.iterdir() if p.name.startswith("memory.db.before-repair-"))
        assert (kept / f"memory.db-wal.deleted-held-by-{holder.pid}").exists(), (os.listdir(kept), repaired.stderr)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(10)
        holder.stdout.close()
    assert procedure_titles(db) == set(TASKS)
    assert cli(env, "doctor").stdout.count("FAIL") <= 1  # at most the model, which these tests do not load


def test_repair_refuses_while_another_process_has_the_memory_open(env: dict[str, str]) -> None:
    db = Path(env["MEMP_DB_PATH"])
    recorded(db, TASKS[:1])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom memp_mcp.store import SQLiteStore\nstore = SQLiteStore(sys.argv[1])\n"
            "print('ready', flush=True)\ntime.sleep(120)\n",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        refused = cli(env, "repair")
        assert refused.returncode == 2
        assert f"is open in process {holder.pid}" in refused.stderr
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()


def test_the_hook_client_and_the_store_agree_on_the_damage_marker(tmp_path: Path) -> None:
    from memp_mcp.hooks.client import DAMAGE_MARKER_SUFFIX, marked_damaged

    assert DAMAGE_MARKER_SUFFIX == health.MARKER_SUFFIX
    db = tmp_path / "memory.db"
    db.touch()
    assert not marked_damaged(db)
    health.mark_damaged(db, "database disk image is malformed")
    assert marked_damaged(db)


def test_a_warm_server_whose_wal_was_deleted_leaves_without_writing_and_the_prompt_says_why(
    env: dict[str, str], tmp_path: Path
) -> None:
    from memp_mcp.hooks.client import server_pid

    db = Path(env["MEMP_DB_PATH"])
    recorded(db, TASKS)
    env = {**env, "MEMP_HOOK_SERVER": "1"}
    transcript = a_turn(tmp_path, "s1", TASKS[0])

    def prompt(session: str) -> str:
        payload = hook_event("UserPromptSubmit", session, transcript, tmp_path, prompt=TASKS[0])
        done = subprocess.run(
            [sys.executable, "-m", "memp_mcp.entry", "hook"], input=payload, capture_output=True, timeout=120, env=env
        )
        assert done.returncode == 0 and done.stderr == b""
        return done.stdout.decode()

    prompt("s1")  # starts the warm server, which then holds the file open
    pid = server_pid(db, env)
    assert pid is not None
    try:
        Path(f"{db}-wal").unlink()  # what another copy of SQLite did
        reply = prompt("s2")
        give_up = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists() and time.monotonic() < give_up:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists()
        found = health.damage(db)
        assert found is not None and "WAL it wrote deleted" in found.problem
        assert "is damaged" in json.loads(reply)["hookSpecificOutput"]["additionalContext"]
        # The hook that answered instead started no other server for a memory it will not read.
        assert server_pid(db, env) is None
    finally:
        for found in {pid, server_pid(db, env)} - {None}:
            if Path(f"/proc/{found}").exists():
                os.kill(found, signal.SIGKILL)
