"""When a SQLite memory is damaged: `repair` it, or `restore --backup` one of its automatic backups, and the
lines `doctor` and every other command print about it.

The work is memp_mcp.store.sqlite.recovery's; this module stops the hooks' warm servers that hold the
file first (a server writing a WAL that was deleted under it is killed, so that it cannot checkpoint
stale pages over the repaired file) and says what was done.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from memp_mcp.cli.common import console, errors, fail, holds_no_memory, settings_with
from memp_mcp.cli.options import DbOption
from memp_mcp.errors import MempError

WARM_SERVER_MODULE = "memp_mcp.hooks.warm_server"
STOP_WAIT_SECONDS = 10.0


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def stop_warm_servers(db: Path) -> list[int]:
    """Stop the hooks' warm servers that have `db` open; returns their pids. One writing a deleted WAL is
    killed outright: a normal exit would checkpoint that WAL's stale pages into the file."""
    from memp_mcp.store.sqlite import health

    split = health.deleted_wal_holders(db)
    stopped = []
    for pid in health.holders(db):
        if WARM_SERVER_MODULE not in _command_line(pid):
            continue
        try:
            os.kill(pid, signal.SIGKILL if pid in split else signal.SIGTERM)
        except OSError:
            continue
        stopped.append(pid)
    give_up = time.monotonic() + STOP_WAIT_SECONDS
    while any(Path(f"/proc/{pid}").exists() for pid in stopped) and time.monotonic() < give_up:
        time.sleep(0.05)
    return stopped


def _stop_warm_servers_saying_so(path: Path) -> None:
    stopped = stop_warm_servers(path)
    if stopped:
        pids = ", ".join(map(str, stopped))
        errors.print(f"stopped the hooks' warm server (pid {pids})", highlight=False, soft_wrap=True)


def _sqlite_memory(db: Path | None, *, existing: bool = True) -> Path:
    """The SQLite file the settings name; `existing`: it must be there (a restore may bring back a lost one)."""
    settings = settings_with(db_path=db)
    if settings.database_url is not None:
        fail("repair and restore --backup work on a SQLite memory; PostgreSQL keeps its own backups")
    if existing and holds_no_memory(settings):
        fail(f"no memory at {settings.db_path}; check --db or MEMP_DB_PATH")
    return settings.db_path


def repair(db: DbOption = None) -> None:
    """Repair a damaged SQLite memory in place: rebuild its indexes, else copy every readable row into a
    new file; the damaged file is kept beside it first."""
    from memp_mcp.store.sqlite import recovery

    path = _sqlite_memory(db)
    before = recovery.counts(path)
    try:
        kept = recovery.keep_aside(path, "repair")  # while a deleted WAL can still be read from its writer
    except OSError as exc:
        fail(f"cannot keep a copy of {path} before repairing it: {exc.strerror}")
    _stop_warm_servers_saying_so(path)
    try:
        done = recovery.repair(path, kept)
    except MempError as exc:
        fail(str(exc))
    console.print(f"repaired {path}: {done.how}", highlight=False, soft_wrap=True)
    _say_counts(before, done.counts, done.kept_in)


def restore_backup(name: str, db: Path | None) -> None:
    """Put one of the memory's automatic backups in its place (the current file is kept aside first)."""
    from memp_mcp.store.sqlite import backups, recovery

    path = _sqlite_memory(db, existing=False)
    try:
        backup = backups.find_backup(path, name)
    except MempError as exc:
        fail(str(exc))
    before = recovery.counts(path) if path.exists() else None
    _stop_warm_servers_saying_so(path)
    try:
        done = recovery.restore(path, backup)
    except MempError as exc:
        fail(str(exc))
    console.print(
        f"{done.how} (taken {backup.taken_at:%Y-%m-%d %H:%M} UTC) into {path}", highlight=False, soft_wrap=True
    )
    _say_counts(before, done.counts, done.kept_in)


def list_backups(db: Path | None) -> None:
    """The memory's backups, newest first, and how to restore one."""
    from memp_mcp.store.sqlite import backups, recovery

    path = _sqlite_memory(db, existing=False)
    found = backups.list_backups(path)
    if not found:
        console.print(
            f"no backup of {path} yet (the hooks keep {backups.BACKUP_GENERATIONS} in {backups.backup_folder(path)})"
        )
        return
    for backup in found:
        held = recovery.counts(backup.path)
        console.print(
            f"{backup.name}\t{backup.taken_at:%Y-%m-%d %H:%M} UTC\t"
            f"{held.get('procedures', '?')} procedures, {held.get('trajectories', '?')} trajectories",
            highlight=False,
            soft_wrap=True,
        )
    console.print("restore one with: memp-mcp restore --backup NAME (or latest)", highlight=False, soft_wrap=True)


def _say_counts(before: dict[str, int] | None, after: dict[str, int], kept: Path | None) -> None:
    def held(found: dict[str, int] | None) -> str:
        if found is None:
            return "no file"
        if not found:
            return "unreadable"
        return f"{found['procedures']} procedures, {found['trajectories']} trajectories"

    console.print(f"before: {held(before)}; now: {held(after)}", highlight=False, soft_wrap=True)
    if kept is not None:
        console.print(f"the file as it was is kept in {kept}", highlight=False, soft_wrap=True)


def check_health(db: Path, sound: bool, report: Callable[[bool, str, str], None]) -> None:
    """`doctor`'s lines on a SQLite memory's health: processes writing a deleted WAL, the damage mark (cleared
    when the file checks `sound` again and nothing is split), and the backups."""
    from memp_mcp.store.sqlite import backups, health

    split = health.deleted_wal_holders(db)
    for pid in split:
        report(
            False,
            f"process {pid} ({_command_line(pid).strip() or 'unknown'}) writes a WAL of this memory that was deleted: "
            "no other process sees its writes, and closing normally it would write stale pages over newer ones",
            "run `memp-mcp repair` (it stops that process without letting it write, keeping its WAL aside)",
        )
    found = health.damage(db)
    if found is not None and sound and not split:
        health.clear_damage(db)
        report(True, f"marked damaged since {found.since} ({found.problem}); it checks sound now: mark cleared", "")
    elif found is not None:
        report(
            False,
            f"memory marked damaged since {found.since}: {found.problem}",
            "run `memp-mcp repair` (it keeps the damaged file first), or `memp-mcp restore --backup latest`",
        )
    kept = backups.list_backups(db)
    if kept:
        age = (datetime.now(UTC) - kept[0].taken_at).total_seconds()
        report(True, f"backups: {len(kept)} in {backups.backup_folder(db)}, the newest {_age(age)} old", "")
    else:
        report(True, "backups: none yet (the hooks take one after a turn that changed the memory)", "")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
