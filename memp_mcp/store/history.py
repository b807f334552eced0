"""What happened: trajectories as agents recorded them, and recall events awaiting their outcome. One
SQL for every backend (see store/dialect.py)."""

from __future__ import annotations

from collections.abc import Sequence

from memp_mcp.errors import NotFoundError
from memp_mcp.models import Outcome, RecallEvent, Step, Trajectory
from memp_mcp.store import rows as mapping
from memp_mcp.store.database import Database


class History(Database):
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
        return self._insert(
            "INSERT INTO trajectories (namespace, task, steps_json, outcome, score, agent, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                namespace,
                task,
                self.dialect.packed_json([s.model_dump(exclude_none=True) for s in steps]),
                outcome.value,
                score,
                agent,
                self.dialect.now(),
            ),
        )

    def get_trajectory(self, trajectory_id: int) -> Trajectory:
        row = self._select_one(f"SELECT {mapping.TRAJECTORY_COLUMNS} FROM trajectories WHERE id = ?", (trajectory_id,))
        if row is None:
            raise NotFoundError(f"no trajectory with id {trajectory_id}")
        return mapping.trajectory(row)

    def count_trajectories(self, namespace: str | None = None) -> int:
        if namespace is None:
            return self._select_count("SELECT COUNT(*) FROM trajectories")
        return self._select_count("SELECT COUNT(*) FROM trajectories WHERE namespace = ?", (namespace,))

    def trajectory_tasks(self, trajectory_ids: Sequence[int]) -> dict[int, str]:
        if not trajectory_ids:
            return {}
        clause, params = self.dialect.any_of("id", trajectory_ids)
        return {int(r[0]): str(r[1]) for r in self._select(f"SELECT id, task FROM trajectories WHERE {clause}", params)}

    def add_recall_event(
        self,
        event_id: str,
        namespace: str,
        task: str,
        procedure_ids: Sequence[int],
        strategy: str,
        procedure_versions: Sequence[int] | None = None,
    ) -> None:
        self._write()
        json = self.dialect.json
        versions = None if procedure_versions is None else json(list(procedure_versions))
        self._change(
            "INSERT INTO recall_events (id, namespace, task, procedure_ids_json, strategy, created_at, "
            "procedure_versions_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, namespace, task, json(list(procedure_ids)), strategy, self.dialect.now(), versions),
        )
        if procedure_ids:
            clause, params = self.dialect.any_of("id", procedure_ids)
            self._change(f"UPDATE procedures SET retrieved_count = retrieved_count + 1 WHERE {clause}", params)

    def get_recall_event(self, event_id: str) -> RecallEvent:
        row = self._select_one(f"SELECT {mapping.RECALL_EVENT_COLUMNS} FROM recall_events WHERE id = ?", (event_id,))
        if row is None:
            raise NotFoundError(f"no recall with id {event_id!r}; pass the recall_id that recall_procedure returned")
        return mapping.recall_event(row)

    def mark_recall_reported(self, event_id: str, success: bool) -> bool:
        """Mark a recall reported; False when it already was (another report came first)."""
        changed = self._change(
            "UPDATE recall_events SET reported = ?, success = ? WHERE id = ? AND reported = ?",
            (True, success, event_id, False),
        )
        return changed == 1

    def _count_recalls(self, namespace: str) -> int:
        return self._select_count("SELECT COUNT(*) FROM recall_events WHERE namespace = ?", (namespace,))
