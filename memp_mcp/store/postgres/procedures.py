"""Procedures: their rows, sources, keys, versions, status and counters, with the search text and the
keys' namespace and status kept in step in the caller's transaction."""

from __future__ import annotations

import random
from collections.abc import Sequence

from memp_mcp.errors import NotFoundError
from memp_mcp.models import Procedure, ProcedureStatus, ProcedureVersion
from memp_mcp.store import rows as mapping
from memp_mcp.store.base import Vector
from memp_mcp.store.postgres.connection import clean, jsonb, now
from memp_mcp.store.postgres.fulltext import FullTextSearch
from memp_mcp.store.postgres.vectors import KeyVectors, as_vector
from memp_mcp.text import fts_document


class Procedures(KeyVectors, FullTextSearch):
    """Procedures with their keys, written so both searches see them as they change."""

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
        conn = self._write()
        self.ensure_namespace(namespace)
        created = now()
        title, when_to_use = clean(title), clean(when_to_use)
        # Its search text is known before it is stored: what _refresh_search_text would read back (the
        # keys' texts in order, each once, as the unique constraint keeps them).
        texts = list(dict.fromkeys(clean(text) for text, _ in keys))
        row = conn.execute(
            "INSERT INTO procedures (namespace, title, when_to_use, steps_json, pitfalls_json, source, author, "
            "exemplar_trajectory_id, support_count, created_at, updated_at, candidate_of, search_text) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                namespace,
                title,
                when_to_use,
                jsonb(list(steps)),
                jsonb(list(pitfalls)),
                source,
                clean(author),
                exemplar_trajectory_id,
                max(1, len(source_trajectory_ids)),
                created,
                created,
                candidate_of,
                fts_document(title, when_to_use, *texts),
            ),
        ).fetchone()
        assert row is not None
        procedure_id = int(row[0])
        self._link_sources(procedure_id, source_trajectory_ids)
        # A new procedure is active (the column's default) and in `namespace`: nothing to read back.
        self._insert_keys(procedure_id, namespace, True, keys)
        return procedure_id

    def _link_sources(self, procedure_id: int, trajectory_ids: Sequence[int]) -> int:
        """Link trajectories as a procedure's sources; returns how many were new."""
        if not trajectory_ids:
            return 0
        return self._modify(
            "INSERT INTO procedure_sources (procedure_id, trajectory_id) SELECT %s, t FROM unnest(%s::bigint[]) t "
            "ON CONFLICT DO NOTHING",
            (procedure_id, list(dict.fromkeys(trajectory_ids))),
        )

    def add_keys(self, procedure_id: int, keys: Sequence[tuple[str, Vector | None]]) -> int:
        """Add search keys (text, optional vector) to a procedure; returns how many were new."""
        self._write()
        owner = self._one("SELECT namespace, status FROM procedures WHERE id = %s", (procedure_id,))
        if owner is None or not keys:
            return 0
        added = self._insert_keys(procedure_id, owner[0], owner[1] == ProcedureStatus.ACTIVE, keys)
        if added:
            self._refresh_search_text(procedure_id)
        return added

    def _insert_keys(
        self, procedure_id: int, namespace: str, active: bool, keys: Sequence[tuple[str, Vector | None]]
    ) -> int:
        """Insert keys that are new to the procedure, in one round trip; returns how many were new."""
        conn = self._write()
        if not keys:
            return 0
        bound = self.embedding_model() if any(vector is not None for _, vector in keys) else None
        values = [
            (
                procedure_id,
                namespace,
                active,
                clean(text),
                as_vector(vector, bound[1]) if vector is not None and bound is not None else None,
            )
            for text, vector in keys
        ]
        with conn.cursor() as cursor:
            # Sent in one pipeline; rowcount sums the inserts (a key it already has inserts nothing).
            cursor.executemany(
                "INSERT INTO procedure_keys (procedure_id, namespace, active, text, embedding) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (procedure_id, text) DO NOTHING",
                values,
            )
            return cursor.rowcount

    def keys(self, procedure_id: int) -> list[str]:
        found = self._rows("SELECT text FROM procedure_keys WHERE procedure_id = %s ORDER BY id", (procedure_id,))
        return [str(r[0]) for r in found]

    def add_sources(self, procedure_id: int, trajectory_ids: Sequence[int]) -> None:
        """Credit more trajectories as evidence for a procedure (a merge)."""
        added = self._link_sources(procedure_id, trajectory_ids)
        if added:
            self._modify(
                "UPDATE procedures SET support_count = support_count + %s, updated_at = %s WHERE id = %s",
                (added, now(), procedure_id),
            )

    def _refresh_search_text(self, procedure_id: int) -> None:
        # The same text as SQLite's full-text index: what the procedure is for, not its steps.
        row = self._one(
            "SELECT title, when_to_use, ARRAY(SELECT text FROM procedure_keys WHERE procedure_id = procedures.id "
            "ORDER BY id) FROM procedures WHERE id = %s",
            (procedure_id,),
        )
        if row is None:
            return
        body = fts_document(row[0], row[1], *row[2])
        self._modify("UPDATE procedures SET search_text = %s WHERE id = %s", (body, procedure_id))

    def get_procedure(self, procedure_id: int) -> Procedure:
        found = self.get_procedures([procedure_id])
        if not found:
            raise NotFoundError(f"no procedure with id {procedure_id}")
        return found[0]

    def candidates_of(self, procedure_id: int) -> list[Procedure]:
        """The candidates proposed to replace a procedure's steps, oldest first."""
        found = self._rows("SELECT id FROM procedures WHERE candidate_of = %s ORDER BY id", (procedure_id,))
        return self.get_procedures([int(r[0]) for r in found])

    def get_procedures(self, procedure_ids: Sequence[int]) -> list[Procedure]:
        """Procedures in the order of `procedure_ids`; unknown ids are skipped."""
        if not procedure_ids:
            return []
        wanted = [i for i in procedure_ids if 0 < i < 2**63]
        # With each procedure's sources in the same round trip.
        found = self._rows(
            f"SELECT {mapping.PROCEDURE_COLUMNS}, ARRAY(SELECT s.trajectory_id FROM procedure_sources s "
            "WHERE s.procedure_id = procedures.id ORDER BY s.trajectory_id) FROM procedures WHERE id = ANY(%s)",
            (wanted,),
        )
        by_id = {int(r[0]): r for r in found}
        return [mapping.procedure(by_id[i][:-1], [int(t) for t in by_id[i][-1]]) for i in procedure_ids if i in by_id]

    def outcome_counts(self, procedure_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(successes, failures) of each known procedure's current version."""
        if not procedure_ids:
            return {}
        found = self._rows(
            "SELECT id, version_success_count, version_failure_count FROM procedures WHERE id = ANY(%s)",
            (list(procedure_ids),),
        )
        return {int(r[0]): (int(r[1]), int(r[2])) for r in found}

    def list_procedures(
        self,
        namespace: str | None = None,
        status: ProcedureStatus | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Procedure]:
        # A plain substring filter (strpos), never pattern or search syntax.
        matching = [("(strpos(title, %s) > 0 OR strpos(when_to_use, %s) > 0)", [text, text])] if text else []
        where, params = mapping.procedure_filter(namespace, status, "%s", *matching)
        found = self._rows(
            f"SELECT id FROM procedures {where} ORDER BY id LIMIT %s OFFSET %s", (*params, limit, offset)
        )
        return self.get_procedures([int(r[0]) for r in found])

    def count_procedures(self, namespace: str | None = None, status: ProcedureStatus | None = None) -> int:
        where, params = mapping.procedure_filter(namespace, status, "%s")
        return self._count(f"SELECT COUNT(*) FROM procedures {where}", params)

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
        """Change a procedure's content, keeping the previous content (and its outcome record) as a version."""
        self._write()
        current = self.get_procedure(procedure_id)
        self._modify(
            "INSERT INTO procedure_versions (procedure_id, version, title, when_to_use, steps_json, pitfalls_json, "
            "reason, changed_by, created_at, success_count, failure_count) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                procedure_id,
                current.version,
                current.title,
                current.when_to_use,
                jsonb(current.steps),
                jsonb(current.pitfalls),
                reason,
                changed_by,
                now(),
                current.version_success_count,
                current.version_failure_count,
            ),
        )
        self._modify(
            "UPDATE procedures SET title = %s, when_to_use = %s, steps_json = %s, pitfalls_json = %s, source = %s, "
            "version = version + 1, updated_at = %s, "
            "version_success_count = CASE WHEN %s THEN 0 ELSE version_success_count END, "
            "version_failure_count = CASE WHEN %s THEN 0 ELSE version_failure_count END WHERE id = %s",
            (
                current.title if title is None else title,
                current.when_to_use if when_to_use is None else when_to_use,
                jsonb(list(current.steps if steps is None else steps)),
                jsonb(list(current.pitfalls if pitfalls is None else pitfalls)),
                current.source if source is None else source,
                now(),
                fresh_record,
                fresh_record,
                procedure_id,
            ),
        )
        self._refresh_search_text(procedure_id)
        return self.get_procedure(procedure_id)

    def versions(self, procedure_id: int) -> list[ProcedureVersion]:
        found = self._rows(
            f"SELECT {mapping.VERSION_COLUMNS} FROM procedure_versions WHERE procedure_id = %s ORDER BY version",
            (procedure_id,),
        )
        return [mapping.version(r) for r in found]

    def set_status(self, procedure_id: int, status: ProcedureStatus) -> None:
        self._write()
        self.get_procedure(procedure_id)
        self._modify(
            "UPDATE procedures SET status = %s, updated_at = %s WHERE id = %s", (status.value, now(), procedure_id)
        )
        self._modify(
            "UPDATE procedure_keys SET active = %s WHERE procedure_id = %s",
            (status == ProcedureStatus.ACTIVE, procedure_id),
        )

    def bump_stats(self, procedure_id: int, *, retrieved: int = 0, succeeded: int = 0, failed: int = 0) -> None:
        self._modify(
            "UPDATE procedures SET retrieved_count = retrieved_count + %s, success_count = success_count + %s, "
            "failure_count = failure_count + %s, version_success_count = version_success_count + %s, "
            "version_failure_count = version_failure_count + %s WHERE id = %s",
            (retrieved, succeeded, failed, succeeded, failed, procedure_id),
        )

    def procedures_with_key(self, namespace: str, text: str, *, include_deprecated: bool = False) -> list[int]:
        """Active (or all) procedures that have exactly this key text (the merge check without vectors)."""
        status = "" if include_deprecated else "AND active "
        found = self._rows(
            f"SELECT DISTINCT procedure_id FROM procedure_keys WHERE text = %s AND namespace = %s {status}"
            "ORDER BY procedure_id",
            (text, namespace),
        )
        return [int(r[0]) for r in found]

    def procedures_with_step_words(self, namespace: str, word: str, others: Sequence[str]) -> list[int]:
        words = [mapping.plain_word(w) for w in (word, *others)]
        clause = "steps_json::text ILIKE %s" + (
            " AND (" + " OR ".join("steps_json::text ILIKE %s" for _ in others) + ")" if others else ""
        )
        found = self._rows(
            f"SELECT id FROM procedures WHERE namespace = %s AND status = 'active' AND {clause} ORDER BY id",
            (namespace, *(f"%{w}%" for w in words)),
        )
        return [int(r[0]) for r in found]

    def random_procedures(self, namespace: str, k: int, rng: random.Random) -> list[int]:
        ids = [
            int(r[0])
            for r in self._rows(
                "SELECT id FROM procedures WHERE namespace = %s AND status = 'active' ORDER BY id", (namespace,)
            )
        ]
        return rng.sample(ids, min(k, len(ids)))
