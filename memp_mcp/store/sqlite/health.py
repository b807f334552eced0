"""Whether a SQLite memory is damaged, said where every command and hook will see it.

A damaged file is found where it shows: a statement SQLite reports as corrupt, a backup whose copy
fails its integrity check, a warm server whose WAL was deleted under it, `doctor`. Each leaves a
marker beside the file (`memory.db.damaged`, a small JSON object: when and what) that the prompt hook
and every CLI command read with one `stat`, so the damage is said until `doctor` finds the file
sound again, or `repair` or `restore` replaces it.

Processes holding a deleted WAL are found through /proc (Linux): such a process writes pages no other
process sees, and when it closes normally it checkpoints them over newer ones.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

MARKER_SUFFIX = ".damaged"
# SQLite's primary result codes for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB).
_CORRUPTION_CODES = frozenset({11, 26})
_CORRUPTION_WORDS = ("malformed", "corrupt")


@dataclass(frozen=True)
class Damage:
    """What was found wrong with a memory file, and when."""

    since: str
    problem: str


def marker_path(db: Path) -> Path:
    return db.with_name(db.name + MARKER_SUFFIX)


def is_corruption(exc: BaseException) -> bool:
    """Whether a driver error says the file itself is damaged (not locked, full or read-only)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _CORRUPTION_CODES and "not a database" not in str(exc):
        return True
    return any(word in str(exc).lower() for word in _CORRUPTION_WORDS)


def mark_damaged(db: Path, problem: str) -> None:
    """Leave the marker (the first problem found is kept: later ones are most often its consequences)."""
    if str(db) == ":memory:" or damage(db) is not None:
        return
    logger.error("memory %s is damaged: %s", db, problem)
    marker = marker_path(db)
    temporary = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        temporary.write_text(json.dumps({"since": since, "problem": problem[:500]}), encoding="utf-8")
        temporary.replace(marker)
    except OSError as exc:
        logger.error("cannot mark %s damaged: %s", db, exc.strerror)


def damage(db: Path) -> Damage | None:
    """The damage recorded for `db`, if any (a marker that cannot be read still counts)."""
    try:
        raw = marker_path(db).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Damage("", f"its damage marker cannot be read ({exc.strerror})")
    try:
        found = json.loads(raw)
        return Damage(str(found.get("since", "")), str(found.get("problem", "")))
    except (ValueError, AttributeError):
        return Damage("", "its damage marker is unreadable")


def clear_damage(db: Path) -> None:
    marker_path(db).unlink(missing_ok=True)


def advice(db: Path, found: Damage) -> str:
    """One line saying that memory is damaged and what to do, for a prompt's context and the CLI."""
    since = f" since {found.since}" if found.since else ""
    return (
        f"memp-mcp memory {db} is damaged{since}: {found.problem}. Nothing new is recorded until it is "
        "fixed: run `memp-mcp doctor`, then `memp-mcp repair` (or `memp-mcp restore --backup latest`)."
    )


def _descriptors(pid: str) -> list[tuple[str, str]]:
    """(descriptor, target) for each open file of process `pid` this user may see."""
    folder = Path("/proc") / pid / "fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        try:
            found.append((name, os.readlink(folder / name)))
        except OSError:
            continue
    return found


def deleted_wal_holders(db: Path) -> dict[int, str]:
    """pid -> descriptor path, for every process (this user may see) writing a WAL of `db` that was deleted."""
    return _deleted_wal_holders_among(db, _pids())


def _pids() -> list[str]:
    try:
        return [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []  # not Linux: nothing to look through


def holders(db: Path) -> list[int]:
    """The processes (this user may see) other than this one with `db` or its WAL open."""
    target = str(db.resolve())
    return [
        int(pid)
        for pid in _pids()
        if int(pid) != os.getpid() and any(path in (target, f"{target}-wal") for _, path in _descriptors(pid))
    ]


def own_wal_deleted(db: Path) -> bool:
    """Whether this process holds a WAL of `db` that another process deleted (Linux; False elsewhere)."""
    return bool(_deleted_wal_holders_among(db, [str(os.getpid())]))


def _deleted_wal_holders_among(db: Path, pids: list[str]) -> dict[int, str]:
    wal = f"{db.resolve()}-wal (deleted)"
    return {
        int(pid): f"/proc/{pid}/fd/{descriptor}"
        for pid in pids
        for descriptor, target in _descriptors(pid)
        if target == wal
    }
