"""Putting a damaged SQLite memory right: `repair` it in place, or `restore` a backup over it.

Both first keep what is there (the file, its WAL and shared memory, and any deleted WAL a process
still holds, copied out of /proc) in a folder beside it, and refuse while another process has the
file open (its connection would go on writing the file being replaced). The result is checked as
`doctor` checks (SQLite's integrity check and the indexes against the rows) before it takes the
file's place, and the WAL and shared-memory files of the old file are removed with it: left beside
the new file, SQLite would apply the old WAL to it.

Repair tries, in order: rebuilding every index (REINDEX, the full-text index, the vector flags), which
fixes what the split of issue "two SQLite libraries" left ("wrong # of entries in index"); then a
fresh copy of every readable row (VACUUM INTO) rebuilt the same way. What neither fixes is left to a
backup, and the error says which one and what it holds.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from memp_mcp.errors import StoreError
from memp_mcp.store import driver
from memp_mcp.store.sqlite import backups, health

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovered:
    """What a repair or restore did: how, what the memory holds now, and where the old file was kept."""

    how: str
    counts: dict[str, int]
    kept_in: Path | None


def counts(db: Path) -> dict[str, int]:
    """Procedures and trajectories a memory file holds ({} when it cannot be read), counted from the tables
    themselves: a damaged index would count what it lost as missing."""
    try:
        connection = driver.connect(db, read_only=True)
    except driver.database_errors():
        return {}
    try:
        return {
            table: int(connection.execute(f"SELECT COUNT(*) FROM {table} NOT INDEXED").fetchone()[0])
            for table in ("procedures", "trajectories")
        }
    except driver.database_errors():
        return {}
    finally:
        connection.close()


def refuse_while_open(db: Path) -> None:
    """Raise StoreError when another process has `db` open."""
    pids = health.holders(db)
    if pids:
        raise StoreError(
            f"{db} is open in process {', '.join(map(str, pids))}; stop it first (an MCP client's memp-mcp server: "
            "quit the client; the hooks' warm server: memp-mcp repair stops it)"
        )


def keep_aside(db: Path, why: str) -> Path:
    """Copy the file, its WAL and shared memory, and any deleted WAL still held open, into a new folder."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = db.with_name(f"{db.name}.before-{why}-{stamp}")
    number = 1
    while folder.exists():
        folder = db.with_name(f"{db.name}.before-{why}-{stamp}-{number}")
        number += 1
    folder.mkdir(mode=0o700)
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            shutil.copy2(source, folder / f"{db.name}{suffix}")
    for pid, descriptor in health.deleted_wal_holders(db).items():
        try:
            shutil.copyfile(descriptor, folder / f"{db.name}-wal.deleted-held-by-{pid}")
        except OSError as exc:
            logger.warning("cannot keep the deleted WAL process %d holds: %s", pid, exc.strerror)
    return folder


def _problems(path: Path) -> list[str]:
    """What `doctor` would find wrong with the file at `path`."""
    from memp_mcp.store.sqlite import SQLiteStore

    try:
        store = SQLiteStore(path)
    except StoreError as exc:
        return [str(exc)]
    try:
        return store.integrity_problems()
    except driver.database_errors() as exc:
        return [str(exc)]
    finally:
        store.close()


def _rebuild_indexes(path: Path) -> None:
    """Every index rebuilt from its table's rows: b-tree indexes, full-text, and which keys have vectors."""
    connection = driver.connect(path)
    try:
        connection.execute("REINDEX")
        connection.execute("INSERT INTO procedure_fts (procedure_fts) VALUES ('rebuild')")
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if "key_vectors" in tables:
            # A key whose vector is gone is embedded again (the warm server backfills keys without one).
            connection.execute(
                "UPDATE procedure_keys SET has_vector = 0 WHERE has_vector = 1 "
                "AND id NOT IN (SELECT key_id FROM key_vectors)"
            )
            connection.execute("DELETE FROM key_vectors WHERE key_id NOT IN (SELECT id FROM procedure_keys)")
    finally:
        connection.close()


def _copy_with_wal(db: Path, target: Path) -> None:
    _remove_with_journal(target)
    shutil.copyfile(db, target)
    if Path(f"{db}-wal").exists():
        shutil.copyfile(f"{db}-wal", f"{target}-wal")  # replayed into the copy when it is opened


def _remove_with_journal(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", health.MARKER_SUFFIX):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _install(source: Path, db: Path) -> None:
    """`source` takes the place of `db`, without the old file's WAL and shared memory."""
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    os.replace(source, db)
    backups.fsync_folder(db.parent)


def repair(db: Path, kept: Path | None = None) -> Recovered:
    """Rebuild a damaged memory in place (see module docstring); raises StoreError when it cannot.

    `kept`: where keep_aside already put the file as it was (taken before its holders were stopped, while
    a deleted WAL could still be copied out of the process writing it); else it is kept here first.
    """
    if not db.is_file():
        raise StoreError(f"no memory at {db} to repair")
    refuse_while_open(db)
    kept = kept or keep_aside(db, "repair")
    work = db.with_name(f"{db.name}.repairing")
    fresh = db.with_name(f"{db.name}.rebuilt")
    errors = driver.database_errors()
    found: list[str] = []
    try:
        _copy_with_wal(db, work)
        try:
            _rebuild_indexes(work)
            found = _problems(work)
        except errors as exc:
            found = [str(exc)]
        how = "rebuilt its indexes"
        if found:
            logger.info("rebuilding the indexes left %s; copying the readable rows", found[0])
            _remove_with_journal(fresh)
            try:
                connection = driver.connect(work)
                try:
                    connection.execute("VACUUM INTO ?", (str(fresh),))
                finally:
                    connection.close()
                _rebuild_indexes(fresh)
                found = _problems(fresh)
            except errors as exc:
                found = [str(exc)]
            work, how = fresh, "copied every row into a new file and rebuilt its indexes"
        if found:
            raise StoreError(f"cannot repair {db}: {found[0]}. {_backup_hint(db)}; the damaged file is kept in {kept}")
        _install(work, db)
    finally:
        for leftover in (db.with_name(f"{db.name}.repairing"), fresh):
            _remove_with_journal(leftover)
    health.clear_damage(db)
    return Recovered(how, counts(db), kept)


def restore(db: Path, backup: backups.Backup) -> Recovered:
    """Put `backup` in the place of the memory (kept aside first); raises StoreError when it cannot."""
    refuse_while_open(db)
    kept = keep_aside(db, "restore") if db.exists() else None
    work = db.with_name(f"{db.name}.restoring")
    try:
        _remove_with_journal(work)
        shutil.copyfile(backup.path, work)
        found = _problems(work)
        if found:
            raise StoreError(f"backup {backup.name} is not sound ({found[0]}); choose another")
        _install(work, db)
    finally:
        _remove_with_journal(work)
    health.clear_damage(db)
    return Recovered(f"restored {backup.name}", counts(db), kept)


def _backup_hint(db: Path) -> str:
    found = backups.list_backups(db)
    if not found:
        return "There is no backup to restore"
    newest = found[0]
    held = counts(newest.path)
    what = f" ({held.get('procedures', 0)} procedures, {held.get('trajectories', 0)} trajectories)" if held else ""
    taken = newest.taken_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"Restore the newest backup, taken {taken}{what}: memp-mcp restore --backup latest"
