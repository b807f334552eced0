"""Concurrent writers and readers: no lost update, no double count, no row from a rolled-back write."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from memp_mcp.engine.memory import Memory
from memp_mcp.errors import InvalidInputError
from memp_mcp.models import Outcome, RecallEvent, Step
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder
from tests.test_memory import CLEAN_SOAP

WAIT = 10.0


class BothReadTheRecallFirst(SQLiteStore):
    """A store on which two reports of one recall each read the recall before either writes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.both_read = threading.Barrier(2, timeout=WAIT)

    def get_recall_event(self, event_id: str) -> RecallEvent:
        event = super().get_recall_event(event_id)
        self.both_read.wait()
        return event


def test_two_reports_of_one_recall_count_once(tmp_path: Path) -> None:
    store = BothReadTheRecallFirst(tmp_path / "m.db")
    memory = Memory(store, FakeEmbedder())
    created = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    recall_id = memory.recall("put a clean soapbar in cabinet").recall_id or ""
    outcomes: list[object] = []

    def report() -> None:
        try:
            outcomes.append(memory.report_outcome(recall_id, True))
        except InvalidInputError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=report) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    refused = [o for o in outcomes if isinstance(o, InvalidInputError)]
    assert len(outcomes) == 2 and len(refused) == 1
    assert "already has a reported outcome" in str(refused[0])
    assert store.get_procedure(created.procedure_id or 0).success_count == 1


class _PausingCursor:
    """Runs `pause` between a SELECT's first row and the rest, as a thread switch would."""

    def __init__(self, cursor: Any, pause: Any) -> None:
        self._cursor, self._pause = cursor, pause
        self.lastrowid, self.rowcount = cursor.lastrowid, cursor.rowcount

    def fetchall(self) -> list[Any]:
        self._pause()
        return list(self._cursor.fetchall())


class _PausingConnection:
    def __init__(self, conn: Any, pause: Any) -> None:
        self._conn, self._pause = conn, pause

    def execute(self, sql: str, params: Any = ()) -> Any:
        cursor = self._conn.execute(sql, params)
        return _PausingCursor(cursor, self._pause) if sql.startswith("SELECT name FROM namespaces") else cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_a_reader_never_sees_rows_of_a_transaction_that_is_rolled_back(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    with store.transaction():
        store.add_trajectory("a", "t", [Step(action="x")], Outcome.SUCCESS)
    written, release = threading.Event(), threading.Event()

    def write_then_roll_back() -> None:
        try:
            with store.transaction():
                store.add_trajectory("b", "t", [Step(action="x")], Outcome.SUCCESS)
                written.set()
                release.wait(WAIT)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass

    writer = threading.Thread(target=write_then_roll_back)

    def pause() -> None:
        if writer.is_alive() or written.is_set():
            return
        writer.start()
        # With reads finished under the store's lock the writer cannot start its transaction yet.
        written.wait(0.5)

    store._conn = _PausingConnection(store._conn, pause)
    try:
        seen = store.namespaces()
    finally:
        release.set()
        writer.join(WAIT)
    assert seen == ["a"]
    assert store.namespaces() == ["a"]
