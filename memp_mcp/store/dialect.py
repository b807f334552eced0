"""What SQL the two databases write differently, so that the store's SQL is written once.

The shared SQL (store/database.py, procedures.py, history.py, schema.py) marks parameters with `?`
and asks a `Dialect` for the rest: how a statement's marks are spelt, how JSON, times and lists of
ids are passed, the few expressions the databases spell apart. Each backend has one
(store/sqlite/dialect.py, store/postgres/dialect.py). What differs in kind rather than in spelling
(vectors, full-text search, connections and locks) stays in the backend's own modules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any


class Dialect(ABC):
    """One database's spelling of the shared SQL."""

    # The type of the time a migration was applied (schema_migrations.applied_at).
    time_type: str
    # A join that the database must walk in the order written (the first table outermost).
    ordered_join: str
    # A LIKE that ignores the case of ASCII letters.
    like_ignoring_case: str

    @abstractmethod
    def native(self, sql: str) -> str:
        """`sql` with its `?` marks spelt as the driver reads them (the shared SQL holds no other `?`)."""

    @abstractmethod
    def now(self) -> Any:
        """The current time as a parameter of a time column."""

    @abstractmethod
    def json(self, value: Any) -> Any:
        """`value` as a parameter of a JSON column."""

    def packed_json(self, value: Any) -> Any:
        """`value` as a parameter of a JSON column read whole and seldom (a trajectory's steps): as
        `json`, unless the database would not compress it by itself."""
        return self.json(value)

    @abstractmethod
    def text(self, value: str) -> str:
        """`value` as the database stores text (for a value computed from parameters before it is stored)."""

    @abstractmethod
    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition that `column` is one of `values` (at least one), with its parameters."""

    @abstractmethod
    def ids_of(self, column: str, source: str) -> str:
        """An expression holding, as one value, the ids in `column` of the rows of `source` (a FROM
        clause with its conditions), in no promised order."""

    @abstractmethod
    def read_ids(self, value: Any) -> list[int]:
        """The ids of a value `ids_of` selected."""

    @abstractmethod
    def json_as_text(self, column: str) -> str:
        """A JSON column as text that LIKE can match."""

    @abstractmethod
    def contains(self, columns: Sequence[str], text: str) -> tuple[str, list[Any]]:
        """A condition that any of `columns` holds `text` as a plain substring (never a pattern), with
        its parameters."""

    @abstractmethod
    def run_script(self, conn: Any, sql: str) -> None:
        """Run a migration's SQL script on the driver's connection `conn`."""
