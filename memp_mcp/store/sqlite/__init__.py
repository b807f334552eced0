"""The SQLite store: rows, a sqlite-vec vector table and an FTS5 table, kept in step, in one file.

One class, `SQLiteStore`: the shared SQL (store/sql_store.py: procedures and history, spelt by
`dialect`) over this backend's parts, each a mixin over the connection core
(`connection.SQLiteConnection`: opening, migrations, transactions, statements):

- `vectors` (with `binary_codes`, the in-memory coarse index): keys, their vectors and their search;
- `fulltext`: the FTS5 table and keyword search.

Beside the store, on the file rather than through it: `health` (a damaged file marked and said, and
processes writing a deleted WAL found), `backups` (checked copies kept beside the file) and
`recovery` (`repair` and `restore`), which open the file through the same driver.

Mixins rather than composed helpers: every part runs its statements on the one connection, under
the one lock and inside the one transaction the core owns, and the engine calls ~60 methods of the
store directly; helpers would each need the core passed in and the store would forward every call
to them. Each mixin subclasses the core, so mypy checks what every part calls; what the shared SQL
needs of a backend's indexes is declared, abstract, in store/database.py.
"""

from __future__ import annotations

from pathlib import Path

from memp_mcp.store.migrations import LATEST_VERSION, MIGRATIONS
from memp_mcp.store.sql_store import SQLStore
from memp_mcp.store.sqlite.fulltext import FullTextIndex
from memp_mcp.store.sqlite.vectors import KeyVectors

# The schema this release migrates files to (LATEST_VERSION is its last number).
__all__ = ["LATEST_VERSION", "MIGRATIONS", "SQLiteStore"]


class SQLiteStore(SQLStore, KeyVectors, FullTextIndex):
    """Procedures, trajectories and recall events in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        # Read here, when a store opens, so that a test can give it another schema to migrate to.
        super().__init__(path, MIGRATIONS)

    def integrity_problems(self) -> list[str]:
        """Disagreements between rows and indexes, plus SQLite's own integrity check. Empty when sound."""
        problems = [str(r[0]) for r in self._execute("PRAGMA integrity_check").fetchall() if r[0] != "ok"]
        fts_ids = {int(r[0]) for r in self._execute("SELECT rowid FROM procedure_fts").fetchall()}
        row_ids = {int(r[0]) for r in self._execute("SELECT id FROM procedures").fetchall()}
        if fts_ids != row_ids:
            problems.append(f"full-text index covers {len(fts_ids)} procedures, table has {len(row_ids)}")
        if self.has_vector_table():
            vector_keys = {int(r[0]) for r in self._execute("SELECT key_id FROM key_vectors").fetchall()}
            flagged = {
                int(r[0]) for r in self._execute("SELECT id FROM procedure_keys WHERE has_vector = 1").fetchall()
            }
            if vector_keys != flagged:
                problems.append(f"vector index holds {len(vector_keys)} keys, {len(flagged)} are marked embedded")
        return problems
