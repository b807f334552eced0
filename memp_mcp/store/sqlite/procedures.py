"""Procedures: their rows, sources, keys, versions, status and counters, kept in step with both
search indexes in the caller's transaction."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from memp_mcp.errors import NotFoundError
from memp_mcp.models import Procedure, ProcedureStatus, ProcedureVersion
from memp_mcp.store import rows as mapping
from memp_mcp.store.base import Vector
from memp_mcp.store.sqlite.connection import now
from memp_mcp.store.sqlite.fulltext import FullTextIndex
from memp_mcp.store.sqlite.vectors import KeyVectors, serialized
from memp_mcp.text import fts_document


class Procedures(KeyVectors, FullTextIndex):
    """Procedures with their keys, written to the vector and full-text indexes as they change."""

    def add_procedure(
        self,
        namespace: str,
        title: str,
        when_to_use: str,
        steps: Sequence[str],
        pitfalls: Sequence[str],
        source: str,
        author: str | None,
        source_trajectory_ids: Sequence[int],
        exemplar_trajectory_id: int | None,
        keys: Sequence[tuple[str, Vector | None]],
        *,
        candidate_of: int | None = None,
    ) -> int:
        """Insert a procedure with its sources and search keys; returns its id.

        `candidate_of`: the procedure whose steps this one proposes to replace (see Memory.record).
        """
        self._write()
        self.ensure_namespace(namespace)
        created = now()
        cursor = self._execute(
            "INSERT INTO procedures (namespace, title, when_to_use, steps_json, pitfalls_json, source, author, "
            "exemplar_trajectory_id, support_count, created_at, updated_at, candidate_of) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                namespace,
                title,
                when_to_use,
                mapping.to_json(list(steps)),
                mapping.to_json(list(pitfalls)),
                source,
                author,
                exemplar_trajectory_id,
                max(1, len(source_trajectory_ids)),
                created,
                created,
                candidate_of,
            ),
        )
        procedure_id = int(cursor.lastrowid)
        for trajectory_id in source_trajectory_ids:
            self._execute(
                "INSERT OR IGNORE INTO procedure_sources (procedure_id, trajectory_id) VALUES (?, ?)",
                (procedure_id, trajectory_id),
            )
        self.add_keys(procedure_id, keys)
        self._refresh_fts(procedure_id)
        return procedure_id

    def add_keys(self, procedure_id: int, keys: Sequence[tuple[str, Vector | None]]) -> int:
        """Add search keys (text, optional vector) to a procedure; returns how many were new.

        A new key is inserted with its vector (not given one later), so that it reaches processes
        holding codes in memory as a new key id, not as a change to every vector.
        """
        self._write()
        added = 0
        owner = self._execute("SELECT namespace, status FROM procedures WHERE id = ?", (procedure_id,)).fetchone()
        dim = self._bound_dim() if self.has_vector_table() and any(v is not None for _, v in keys) else None
        for text, vector in keys:
            exact = serialized(vector, dim) if vector is not None and dim is not None else None
            cursor = self._execute(
                "INSERT OR IGNORE INTO procedure_keys (procedure_id, text, has_vector, vector) VALUES (?, ?, ?, ?)",
                (procedure_id, text, int(exact is not None), exact),
            )
            if cursor.rowcount != 1:
                continue
            added += 1
            if exact is not None and owner is not None:
                active = owner[1] == ProcedureStatus.ACTIVE
                self._index_key_vector(int(cursor.lastrowid), procedure_id, str(owner[0]), active, exact)
        if added:
            self._refresh_fts(procedure_id)
        return added

    def keys(self, procedure_id: int) -> list[str]:
        rows = self._execute(
            "SELECT text FROM procedure_keys WHERE procedure_id = ? ORDER BY id", (procedure_id,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def add_sources(self, procedure_id: int, trajectory_ids: Sequence[int]) -> None:
        """Credit more trajectories as evidence for a procedure (a merge)."""
        self._write()
        for trajectory_id in trajectory_ids:
            cursor = self._execute(
                "INSERT OR IGNORE INTO procedure_sources (procedure_id, trajectory_id) VALUES (?, ?)",
                (procedure_id, trajectory_id),
            )
            if cursor.rowcount == 1:
                self._execute(
                    "UPDATE procedures SET support_count = support_count + 1, updated_at = ? WHERE id = ?",
                    (now(), procedure_id),
                )

    def _refresh_fts(self, procedure_id: int) -> None:
        # Indexed: what the procedure is for (title, when-to-use, the tasks it served), not its
        # steps: step text (commands, "go to", "take") is shared by unrelated procedures and only
        # lengthens every posting list a query walks.
        row = self._execute("SELECT title, when_to_use FROM procedures WHERE id = ?", (procedure_id,)).fetchone()
        self._index_document(
            procedure_id, None if row is None else fts_document(row[0], row[1], *self.keys(procedure_id))
        )

    def get_procedure(self, procedure_id: int) -> Procedure:
        row = self._execute(
            f"SELECT {mapping.PROCEDURE_COLUMNS} FROM procedures WHERE id = ?", (procedure_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no procedure with id {procedure_id}")
        return self._procedure(row)

    def candidates_of(self, procedure_id: int) -> list[Procedure]:
        """The candidates proposed to replace a procedure's steps, oldest first."""
        found = self._execute(
            "SELECT id FROM procedures WHERE candidate_of = ? ORDER BY id", (procedure_id,)
        ).fetchall()
        return self.get_procedures([int(r[0]) for r in found])

    def get_procedures(self, procedure_ids: Sequence[int]) -> list[Procedure]:
        """Procedures in the order of `procedure_ids`; unknown ids are skipped."""
        if not procedure_ids:
            return []
        marks = mapping.placeholders(len(procedure_ids))
        rows = self._execute(
            f"SELECT {mapping.PROCEDURE_COLUMNS} FROM procedures WHERE id IN ({marks})", tuple(procedure_ids)
        ).fetchall()
        by_id = {int(r[0]): r for r in rows}
        sources = self._sources_for([int(r[0]) for r in rows])
        return [self._procedure(by_id[i], sources.get(i, [])) for i in procedure_ids if i in by_id]

    def outcome_counts(self, procedure_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(successes, failures) of each known procedure's current version, for scoring before loading it
        in full."""
        if not procedure_ids:
            return {}
        marks = mapping.placeholders(len(procedure_ids))
        rows = self._execute(
            f"SELECT id, version_success_count, version_failure_count FROM procedures WHERE id IN ({marks})",
            tuple(procedure_ids),
        ).fetchall()
        return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def _sources_for(self, procedure_ids: Sequence[int]) -> dict[int, list[int]]:
        if not procedure_ids:
            return {}
        marks = mapping.placeholders(len(procedure_ids))
        return mapping.grouped(
            self._execute(
                "SELECT procedure_id, trajectory_id FROM procedure_sources "
                f"WHERE procedure_id IN ({marks}) ORDER BY procedure_id, trajectory_id",
                tuple(procedure_ids),
            ).fetchall()
        )

    def _procedure(self, row: Sequence[Any], sources: list[int] | None = None) -> Procedure:
        procedure_id = int(row[0])
        if sources is None:
            sources = self._sources_for([procedure_id]).get(procedure_id, [])
        return mapping.procedure(row, sources)

    def list_procedures(
        self,
        namespace: str | None = None,
        status: ProcedureStatus | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Procedure]:
        matching: list[tuple[str, Sequence[Any]]] = []
        if text:
            # A plain substring filter: LIKE with its wildcards escaped, never FTS syntax.
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clause = "(title LIKE ? ESCAPE '\\' OR when_to_use LIKE ? ESCAPE '\\')"
            matching.append((clause, [f"%{escaped}%", f"%{escaped}%"]))
        where, params = mapping.procedure_filter(namespace, status, "?", *matching)
        rows = self._execute(
            f"SELECT id FROM procedures {where} ORDER BY id LIMIT ? OFFSET ?", (*params, limit, offset)
        ).fetchall()
        return self.get_procedures([int(r[0]) for r in rows])

    def count_procedures(self, namespace: str | None = None, status: ProcedureStatus | None = None) -> int:
        where, params = mapping.procedure_filter(namespace, status)
        return int(self._execute(f"SELECT COUNT(*) FROM procedures {where}", params).fetchone()[0])

    def revise_procedure(
        self,
        procedure_id: int,
        *,
        reason: str,
        changed_by: str | None,
        title: str | None = None,
        when_to_use: str | None = None,
        steps: Sequence[str] | None = None,
        pitfalls: Sequence[str] | None = None,
        source: str | None = None,
        fresh_record: bool = False,
    ) -> Procedure:
        """Change a procedure's content, keeping the previous content (and its outcome record) as a version.

        With `fresh_record` the new version's success and failure counts start from zero; the
        procedure's totals over all versions are kept either way. Returns the new state.
        """
        self._write()
        current = self.get_procedure(procedure_id)
        self._execute(
            "INSERT INTO procedure_versions (procedure_id, version, title, when_to_use, steps_json, pitfalls_json, "
            "reason, changed_by, created_at, success_count, failure_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                procedure_id,
                current.version,
                current.title,
                current.when_to_use,
                mapping.to_json(current.steps),
                mapping.to_json(current.pitfalls),
                reason,
                changed_by,
                now(),
                current.version_success_count,
                current.version_failure_count,
            ),
        )
        if fresh_record:
            self._execute(
                "UPDATE procedures SET version_success_count = 0, version_failure_count = 0 WHERE id = ?",
                (procedure_id,),
            )
        self._execute(
            "UPDATE procedures SET title = ?, when_to_use = ?, steps_json = ?, pitfalls_json = ?, source = ?, "
            "version = version + 1, updated_at = ? WHERE id = ?",
            (
                current.title if title is None else title,
                current.when_to_use if when_to_use is None else when_to_use,
                mapping.to_json(list(current.steps if steps is None else steps)),
                mapping.to_json(list(current.pitfalls if pitfalls is None else pitfalls)),
                current.source if source is None else source,
                now(),
                procedure_id,
            ),
        )
        self._refresh_fts(procedure_id)
        return self.get_procedure(procedure_id)

    def versions(self, procedure_id: int) -> list[ProcedureVersion]:
        found = self._execute(
            f"SELECT {mapping.VERSION_COLUMNS} FROM procedure_versions WHERE procedure_id = ? ORDER BY version",
            (procedure_id,),
        ).fetchall()
        return [mapping.version(r) for r in found]

    def set_status(self, procedure_id: int, status: ProcedureStatus) -> None:
        self._write()
        self.get_procedure(procedure_id)
        self._execute(
            "UPDATE procedures SET status = ?, updated_at = ? WHERE id = ?", (status.value, now(), procedure_id)
        )
        if self.has_vector_table():
            # One key at a time: vec0 refuses an UPDATE whose WHERE holds a subquery
            # ("UPDATE on partition key columns are not supported yet").
            key_ids = self._execute(
                "SELECT id FROM procedure_keys WHERE procedure_id = ? AND has_vector = 1", (procedure_id,)
            ).fetchall()
            for (key_id,) in key_ids:
                self._execute(
                    "UPDATE key_vectors SET active = ? WHERE key_id = ?",
                    (int(status == ProcedureStatus.ACTIVE), key_id),
                )

    def bump_stats(self, procedure_id: int, *, retrieved: int = 0, succeeded: int = 0, failed: int = 0) -> None:
        self._write()
        self._execute(
            "UPDATE procedures SET retrieved_count = retrieved_count + ?, success_count = success_count + ?, "
            "failure_count = failure_count + ?, version_success_count = version_success_count + ?, "
            "version_failure_count = version_failure_count + ? WHERE id = ?",
            (retrieved, succeeded, failed, succeeded, failed, procedure_id),
        )

    def procedures_with_key(self, namespace: str, text: str, *, include_deprecated: bool = False) -> list[int]:
        """Active (or all) procedures that have exactly this key text (the merge check without vectors)."""
        status = "" if include_deprecated else "AND p.status = 'active' "
        rows = self._execute(
            # CROSS JOIN: start from the key's text index, not from every procedure of the namespace.
            "SELECT p.id FROM procedure_keys k CROSS JOIN procedures p ON p.id = k.procedure_id "
            f"WHERE k.text = ? AND p.namespace = ? {status}ORDER BY p.id",
            (text, namespace),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def procedures_with_step_words(self, namespace: str, word: str, others: Sequence[str]) -> list[int]:
        words = [mapping.plain_word(w) for w in (word, *others)]
        clause = "steps_json LIKE ?" + (
            " AND (" + " OR ".join("steps_json LIKE ?" for _ in others) + ")" if others else ""
        )
        rows = self._execute(
            f"SELECT id FROM procedures WHERE namespace = ? AND status = 'active' AND {clause} ORDER BY id",
            (namespace, *(f"%{w}%" for w in words)),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def random_procedures(self, namespace: str, k: int, rng: random.Random) -> list[int]:
        ids = [
            int(r[0])
            for r in self._execute(
                "SELECT id FROM procedures WHERE namespace = ? AND status = 'active' ORDER BY id", (namespace,)
            ).fetchall()
        ]
        return rng.sample(ids, min(k, len(ids)))
