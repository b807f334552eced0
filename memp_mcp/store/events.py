"""Why memory did what it did: logged events, and the arm (memory given or withheld) of each task with
its outcome. One SQL for every backend (see store/dialect.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memp_mcp.models import LoggedEvent, TaskArm
from memp_mcp.store import rows as mapping
from memp_mcp.store.database import Database

EVENT_COLUMNS = "id, namespace, kind, task, recall_id, arm, summary, detail_json, created_at"
TASK_ARM_COLUMNS = "id, namespace, task_key, arm, recall_id, success, tool_calls, turns, last_attempt, created_at"
MAX_EVENTS_READ = 10_000


class Events(Database):
    """The event log and the task arms."""

    def add_event(
        self,
        namespace: str,
        kind: str,
        task: str,
        summary: str,
        detail: Mapping[str, Any],
        *,
        recall_id: str | None = None,
        arm: str | None = None,
    ) -> int:
        self._write()
        return self._insert(
            "INSERT INTO events (namespace, kind, task, recall_id, arm, summary, detail_json, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (namespace, kind, task, recall_id, arm, summary, self.dialect.json(dict(detail)), self.dialect.now()),
        )

    def events(self, namespace: str | None, last: int) -> list[LoggedEvent]:
        """The `last` most recent events (of one namespace, or all), oldest first."""
        last = max(1, min(last, MAX_EVENTS_READ))
        where, params = ("WHERE namespace = ?", (namespace,)) if namespace is not None else ("", ())
        rows = self._select(f"SELECT {EVENT_COLUMNS} FROM events {where} ORDER BY id DESC LIMIT {last}", params)
        return [
            LoggedEvent(
                id=int(r[0]),
                namespace=r[1],
                kind=r[2],
                task=r[3],
                recall_id=r[4],
                arm=r[5],
                summary=r[6],
                detail=mapping.from_json(r[7]) or {},
                created_at=mapping.time_of(r[8]),
            )
            for r in reversed(rows)
        ]

    def open_task_arm(self, namespace: str, task_key: str) -> tuple[int, str] | None:
        """The latest draw for this task that no outcome has judged yet: (its id, its arm)."""
        row = self._select_one(
            "SELECT id, arm FROM task_arms WHERE namespace = ? AND task_key = ? AND success IS NULL AND turns = 0 "
            "ORDER BY id DESC LIMIT 1",
            (namespace, task_key),
        )
        return (int(row[0]), str(row[1])) if row else None

    def add_task_arm(self, namespace: str, task_key: str, arm: str, recall_id: str | None) -> int:
        self._write()
        return self._insert(
            "INSERT INTO task_arms (namespace, task_key, arm, recall_id, created_at) VALUES (?, ?, ?, ?, ?)",
            (namespace, task_key, arm, recall_id, self.dialect.now()),
        )

    def set_task_arm_recall(self, arm_id: int, recall_id: str) -> None:
        self._write()
        self._change("UPDATE task_arms SET recall_id = ? WHERE id = ?", (recall_id, arm_id))

    def task_arm_for(self, namespace: str, task_key: str, recall_id: str | None) -> tuple[int, str] | None:
        """The task an outcome belongs to: the draw of its recall, else the latest draw of the same task."""
        if recall_id is not None:
            row = self._select_one("SELECT id, arm FROM task_arms WHERE recall_id = ?", (recall_id,))
            if row is not None:
                return int(row[0]), str(row[1])
        row = self._select_one(
            "SELECT id, arm FROM task_arms WHERE namespace = ? AND task_key = ? ORDER BY id DESC LIMIT 1",
            (namespace, task_key),
        )
        return (int(row[0]), str(row[1])) if row else None

    def judge_task_arm(self, arm_id: int, success: bool | None, tool_calls: int, kind: str) -> None:
        """Count an attempt at the task (`kind`: how it was reported); a known outcome replaces the one
        before it. A report and a record of the same attempt (the same steps, or one of them without
        steps) count once: agents often send both for one task."""
        self._write()
        row = self._select_one("SELECT last_attempt FROM task_arms WHERE id = ?", (arm_id,))
        previous = str(row[0]).split(":") if row and row[0] else None
        if previous is not None and previous[0] not in (kind, "both"):
            before = int(previous[1])
            if tool_calls in (before, 0) or before == 0:
                self._change(
                    "UPDATE task_arms SET success = COALESCE(?, success), tool_calls = tool_calls + ?, "
                    "last_attempt = 'both:0' WHERE id = ?",
                    (success, tool_calls if before == 0 else 0, arm_id),
                )
                return
        self._change(
            "UPDATE task_arms SET success = COALESCE(?, success), tool_calls = tool_calls + ?, turns = turns + 1, "
            "last_attempt = ? WHERE id = ?",
            (success, tool_calls, f"{kind}:{tool_calls}", arm_id),
        )

    def task_arms(self, namespace: str | None) -> list[TaskArm]:
        where, params = ("WHERE namespace = ?", (namespace,)) if namespace is not None else ("", ())
        rows = self._select(f"SELECT namespace, arm, success, tool_calls, turns FROM task_arms {where}", params)
        return [
            TaskArm(
                namespace=r[0],
                arm=r[1],
                success=None if r[2] is None else bool(r[2]),
                tool_calls=int(r[3]),
                turns=int(r[4]),
            )
            for r in rows
        ]
