"""Where memp-mcp keeps its files by default (imported by the settings and by the hook's fast path)."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "memp-mcp"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def default_db_path() -> Path:
    return default_data_dir() / "memory.db"
