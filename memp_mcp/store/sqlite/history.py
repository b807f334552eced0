"""What happened: trajectories as agents recorded them, and recall events awaiting their outcome."""

from __future__ import annotations

from collections.abc import Sequence

from memp_mcp.errors import NotFoundError
from memp_mcp.models import Outcome, RecallEvent, Step, Trajectory
from memp_mcp.store import rows as mapping
from memp_mcp.store.sqlite.connection import SQLiteConnection, now


class History(SQLiteConnection):
    """Trajectories and recall events."""

    def add_trajectory(
        self,
        namespace: str,
        task: str,
        steps: Sequence[Step],
        outcome: Outcome,
        agent: str | None = None,
        score: float | None = None,
    ) -> int:
        self._write()
        self.ensure_namespace(namespace)
        cursor = self._execute(
            "INSERT INTO trajectories (namespace, task, steps_json, outcome, score, agent, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                namespace,
                task,
                mapping.to_json([s.model_dump(exclude_none=True) for s in steps]),
                outcome.value,
                score,
                agent,
                now(),
            ),
        )
        return int(cursor.lastrowid)

    def get_trajectory(self, trajectory_id: int) -> Trajectory:
        row = self._execute(
            f"SELECT {mapping.TRAJECTORY_COLUMNS} FROM trajectories WHERE id = ?", (trajectory_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no trajectory with id {trajectory_id}")
        return mapping.trajectory(row)

    def count_trajectories(self, namespace: str | None = None) -> int:
        if namespace is None:
            return int(self._execute("SELECT COUNT(*) FROM trajectories").fetchone()[0])
        return int(self._execute("SELECT COUNT(*) FROM trajectories WHERE namespace = ?", (namespace,)).fetchone()[0])

    def trajectory_tasks(self, trajectory_ids: Sequence[int]) -> dict[int, str]:
        if not trajectory_ids:
            return {}
        marks = mapping.placeholders(len(trajectory_ids))
        rows = self._execute(
            f"SELECT id, task FROM trajectories WHERE id IN ({marks})", tuple(trajectory_ids)
        ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def add_recall_event(
        self, event_id: str, namespace: str, task: str, procedure_ids: Sequence[int], strategy: str
    ) -> None:
        self._write()
        self._execute(
            "INSERT INTO recall_events (id, namespace, task, procedure_ids_json, strategy, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, namespace, task, mapping.to_json(list(procedure_ids)), strategy, now()),
        )
        if procedure_ids:
            self._execute(
                f"UPDATE procedures SET retrieved_count = retrieved_count + 1 "
                f"WHERE id IN ({mapping.placeholders(len(procedure_ids))})",
                tuple(procedure_ids),
            )

    def get_recall_event(self, event_id: str) -> RecallEvent:
        row = self._execute(
            f"SELECT {mapping.RECALL_EVENT_COLUMNS} FROM recall_events WHERE id = ?", (event_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no recall with id {event_id!r}; pass the recall_id that recall_procedure returned")
        return mapping.recall_event(row)

    def mark_recall_reported(self, event_id: str, success: bool) -> bool:
        """Mark a recall reported; False when it already was (another report came first)."""
        self._write()
        cursor = self._execute(
            "UPDATE recall_events SET reported = 1, success = ? WHERE id = ? AND reported = 0", (int(success), event_id)
        )
        return int(cursor.rowcount) == 1
