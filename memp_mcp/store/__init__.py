"""Persistence: one SQLite file with rows, a sqlite-vec vector table and an FTS5 table."""

from memp_mcp.store.sqlite import SQLiteStore, Vector

__all__ = ["SQLiteStore", "Vector"]
