"""Where memp-mcp keeps its files by default (imported by the settings and by the hook's fast path)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import platformdirs

APP_NAME = "memp-mcp"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def default_db_path() -> Path:
    return default_data_dir() / "memory.db"


# What memp-mcp writes beside its database holds recorded work (prompts, commands, outputs): other
# local users may not read it. Files are made 0600 and the folders memp-mcp makes 0700; a folder that
# already exists keeps the mode its owner gave it (a home directory, a shared team folder).
PRIVATE_FILE_MODE = 0o600
PRIVATE_FOLDER_MODE = 0o700


def private_folder(folder: Path) -> None:
    """Make `folder`, and every folder missing above it, 0700."""
    missing: list[Path] = []
    current = folder
    while not current.exists() and current.parent != current:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            path.mkdir(mode=PRIVATE_FOLDER_MODE)


def create_private_file(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists: what then opens it (SQLite, a log handler) writes
    into a file only its owner may read, and SQLite gives its -wal and -shm files the same mode."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def write_private_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (through a temporary file beside it), 0600."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(descriptor, PRIVATE_FILE_MODE)  # a left-over partial file keeps its old mode otherwise
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)
