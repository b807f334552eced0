"""What happened: trajectories as agents recorded them, and recall events awaiting their outcome."""

from __future__ import annotations

from collections.abc import Sequence

from memp_mcp.errors import NotFoundError
from memp_mcp.models import Outcome, RecallEvent, Step, Trajectory
from memp_mcp.store import rows as mapping
from memp_mcp.store.postgres.connection import PostgresConnection, clean, jsonb, now


class History(PostgresConnection):
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
        conn = self._write()
        self.ensure_namespace(namespace)
        row = conn.execute(
            "INSERT INTO trajectories (namespace, task, steps_json, outcome, score, agent, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                namespace,
                clean(task),
                jsonb([s.model_dump(exclude_none=True) for s in steps]),
                outcome.value,
                score,
                clean(agent),
                now(),
            ),
        ).fetchone()
        assert row is not None  # INSERT ... RETURNING returns the row it inserted
        return int(row[0])

    def get_trajectory(self, trajectory_id: int) -> Trajectory:
        row = self._one(f"SELECT {mapping.TRAJECTORY_COLUMNS} FROM trajectories WHERE id = %s", (trajectory_id,))
        if row is None:
            raise NotFoundError(f"no trajectory with id {trajectory_id}")
        return mapping.trajectory(row)

    def count_trajectories(self, namespace: str | None = None) -> int:
        if namespace is None:
            return self._count("SELECT COUNT(*) FROM trajectories")
        return self._count("SELECT COUNT(*) FROM trajectories WHERE namespace = %s", (namespace,))

    def trajectory_tasks(self, trajectory_ids: Sequence[int]) -> dict[int, str]:
        if not trajectory_ids:
            return {}
        found = self._rows("SELECT id, task FROM trajectories WHERE id = ANY(%s)", (list(trajectory_ids),))
        return {int(r[0]): str(r[1]) for r in found}

    def add_recall_event(
        self, event_id: str, namespace: str, task: str, procedure_ids: Sequence[int], strategy: str
    ) -> None:
        self._modify(
            "WITH event AS (INSERT INTO recall_events (id, namespace, task, procedure_ids_json, strategy, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)) "
            "UPDATE procedures SET retrieved_count = retrieved_count + 1 WHERE id = ANY(%s)",
            (event_id, namespace, task, jsonb(list(procedure_ids)), strategy, now(), list(procedure_ids)),
        )

    def get_recall_event(self, event_id: str) -> RecallEvent:
        row = self._one(f"SELECT {mapping.RECALL_EVENT_COLUMNS} FROM recall_events WHERE id = %s", (event_id,))
        if row is None:
            raise NotFoundError(f"no recall with id {event_id!r}; pass the recall_id that recall_procedure returned")
        return mapping.recall_event(row)

    def mark_recall_reported(self, event_id: str, success: bool) -> bool:
        """Mark a recall reported; False when it already was (another report came first)."""
        changed = self._modify(
            "UPDATE recall_events SET reported = TRUE, success = %s WHERE id = %s AND NOT reported", (success, event_id)
        )
        return changed == 1
