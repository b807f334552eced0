"""Automatic copies of a SQLite memory: a few checked generations beside it, for `restore`.

The Stop hook and the warm server call `back_up_if_due` after their work: when the memory changed
since the newest copy and that copy is older than BACKUP_INTERVAL_SECONDS (or there is none), SQLite's
backup API copies it, as one consistent snapshot, into `backups/` beside the file. The copy is checked
(integrity and schema) before it replaces anything: a copy that fails marks the memory damaged
(memp_mcp.store.sqlite.health) and the older, good generations stay. A copy is written under a
temporary name and renamed, so a process killed mid-copy leaves no half a backup. One process copies
at a time (a lock file in the folder); the others skip.

Backups hold what the memory holds: `scan --fix` (purge_freed) discards them, and the copies `repair`
and `restore` kept, since a copy taken before it would keep the secrets it redacted.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from memp_mcp.errors import StoreError
from memp_mcp.store import driver
from memp_mcp.store.sqlite import health

logger = logging.getLogger(__name__)

BACKUP_GENERATIONS = 3
BACKUP_INTERVAL_SECONDS = 15 * 60.0
_STAMP = "%Y%m%dT%H%M%SZ"
_PARTIAL = ".partial"


@dataclass(frozen=True)
class Backup:
    """One checked copy of a memory."""

    path: Path
    taken_at: datetime
    size: int
    # Copies taken within the same second are numbered 1, 2... after the first (0).
    number: int = 0

    @property
    def name(self) -> str:
        return self.path.name


def backup_folder(db: Path) -> Path:
    return db.parent / "backups"


def _pattern(db: Path) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(db.stem)}-(\d{{8}}T\d{{6}}Z)(?:-(\d+))?\.db$")


def list_backups(db: Path) -> list[Backup]:
    """The memory's backups, newest first."""
    pattern = _pattern(db)
    found = []
    try:
        entries = list(backup_folder(db).iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        try:
            size = entry.stat().st_size
        except OSError:
            continue
        taken = datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)
        found.append(Backup(entry, taken, size, int(match.group(2) or 0)))
    return sorted(found, key=lambda backup: (backup.taken_at, backup.number), reverse=True)


def find_backup(db: Path, name: str) -> Backup:
    """The backup `name` names: "latest", or one of list_backups' file names."""
    backups = list_backups(db)
    if not backups:
        raise StoreError(f"no backup of {db} yet (they are kept in {backup_folder(db)})")
    if name == "latest":
        return backups[0]
    for backup in backups:
        if name in (backup.name, str(backup.path)):
            return backup
    listed = ", ".join(backup.name for backup in backups)
    raise StoreError(f"no backup named {name!r} of {db}; there are: {listed} (or say latest)")


def _last_change(db: Path) -> float:
    """When the memory last changed on disk: the file or its WAL, whichever is newer."""
    times = []
    for path in (db, Path(f"{db}-wal")):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            continue
    return max(times, default=0.0)


def backup_due(db: Path, now: float | None = None) -> bool:
    """Whether the memory changed since its newest backup and that one is old enough to renew."""
    if str(db) == ":memory:" or not db.is_file():
        return False
    backups = list_backups(db)
    if not backups:
        return True
    newest = backups[0].path.stat().st_mtime if backups[0].path.exists() else 0.0
    current = time.time() if now is None else now
    return _last_change(db) > newest and current - newest >= BACKUP_INTERVAL_SECONDS


def back_up_if_due(db: Path) -> Backup | None:
    """A new backup when one is due (see module docstring); None when none was due or taken.

    Never raises: a hook or the warm server calls it after its own work, which must not fail for it.
    """
    try:
        if health.damage(db) is not None or not backup_due(db):
            return None
        return back_up(db)
    except (OSError, StoreError) as exc:
        logger.warning("no backup of %s: %s", db, exc)
        return None


@contextmanager
def _one_at_a_time(folder: Path) -> Iterator[bool]:
    """True while this process holds the folder's backup lock; False when another process does."""
    descriptor = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


def back_up(db: Path) -> Backup | None:
    """Copy `db` now (see module docstring). None when another process is copying it; raises
    StoreError when the copy fails its check (the memory is then marked damaged)."""
    folder = backup_folder(db)
    folder.mkdir(mode=0o700, exist_ok=True)
    with _one_at_a_time(folder) as ours:
        if not ours:
            return None
        _remove_partials(folder)
        taken = datetime.now(UTC)
        target = _free_name(folder, f"{db.stem}-{taken.strftime(_STAMP)}")
        partial = target.with_name(target.name + _PARTIAL)
        errors = driver.database_errors()
        try:
            _copy(db, partial)
            problems = _problems(partial)
        except errors as exc:
            partial.unlink(missing_ok=True)
            if health.is_corruption(exc):
                health.mark_damaged(db, f"its backup copy could not be read ({exc})")
            raise StoreError(f"cannot back up {db}: {exc}") from None
        if problems:
            partial.unlink(missing_ok=True)
            health.mark_damaged(db, f"a backup's integrity check failed: {problems[0]}")
            raise StoreError(f"{db} failed the integrity check of its backup: {problems[0]}")
        os.chmod(partial, 0o600)
        os.replace(partial, target)
        fsync_folder(folder)
        for old in list_backups(db)[BACKUP_GENERATIONS:]:
            old.path.unlink(missing_ok=True)
    logger.info("backed up %s to %s", db, target)
    return Backup(target, taken, target.stat().st_size)


def _copy(db: Path, target: Path) -> None:
    """SQLite's backup API: one consistent snapshot of the file and its WAL, whatever others write meanwhile."""
    source = driver.connect(db, read_only=True)
    try:
        copy = driver.connect(target)
        try:
            source.backup(copy)
            # One self-contained file (no WAL beside it) that can be copied, checked and restored as it is.
            copy.execute("PRAGMA journal_mode = DELETE")
        finally:
            copy.close()
    finally:
        source.close()


def _problems(copy: Path) -> list[str]:
    """What SQLite's integrity check finds wrong with a copy, and whether it is a memp-mcp memory."""
    connection = driver.connect(copy)
    try:
        problems = [str(row[0]) for row in connection.execute("PRAGMA integrity_check").fetchall() if row[0] != "ok"]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        connection.close()
    if "schema_migrations" not in tables:
        problems.append("the copy is not a memp-mcp memory")
    return problems


def _free_name(folder: Path, stem: str) -> Path:
    """`stem`.db in `folder`, numbered after every copy of the same second (so that it sorts newest)."""
    taken = [folder / f"{stem}.db", *sorted(folder.glob(f"{stem}-*.db"))]
    numbers = [int(p.stem.rsplit("-", 1)[1]) if p.stem != stem else 0 for p in taken if p.exists()]
    if not numbers:
        return folder / f"{stem}.db"
    return folder / f"{stem}-{max(numbers) + 1}.db"


def _remove_partials(folder: Path) -> None:
    """Copies left by a process killed mid-copy (none is being written: the caller holds the lock)."""
    for entry in folder.glob(f"*{_PARTIAL}*"):
        entry.unlink(missing_ok=True)


def fsync_folder(folder: Path) -> None:
    """Make a rename into `folder` durable (where the system allows a folder to be synced)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def discard_backups(db: Path) -> int:
    """Delete every copy of `db` kept beside it (after a redaction they would undo): the backups, and the
    folders `repair` and `restore` keep the file in as it was. Returns how many there were."""
    import shutil

    found = list_backups(db)
    for backup in found:
        backup.path.unlink(missing_ok=True)
    kept = [entry for entry in db.parent.glob(f"{db.name}.before-*") if entry.is_dir()]
    for folder in kept:
        shutil.rmtree(folder, ignore_errors=True)
    if found or kept:
        logger.info("deleted %d backups and %d kept copies of %s", len(found), len(kept), db)
    return len(found) + len(kept)
