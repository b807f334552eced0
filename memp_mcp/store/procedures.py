"""Procedures: their rows, sources, keys, versions, status and counters, with both searches kept in
step in the caller's transaction. One SQL for every backend (see store/dialect.py); the keys' vectors
and the keyword-search text are written through the backend's index upkeep (store/database.py)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

from memp_mcp.errors import NotFoundError
from memp_mcp.models import Procedure, ProcedureStatus, ProcedureVersion, SkillDocument
from memp_mcp.store import rows as mapping
from memp_mcp.store.base import Vector
from memp_mcp.store.database import Database
from memp_mcp.store.rows import SKILL_DOCUMENT_COLUMNS
from memp_mcp.text import fts_document

# The largest id a row can have (both databases' ids are signed 64-bit): a larger one names no procedure.
_MAX_ID = 2**63 - 1


class Procedures(Database):
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
        principal: str | None = None,
    ) -> int:
        """Insert a procedure with its sources and search keys; returns its id.

        `candidate_of`: the procedure whose steps this one proposes to replace (see Memory.record).
        `principal`: who recorded it, as authenticated (memp_mcp.principals).
        """
        self._write()
        self.ensure_namespace(namespace)
        created = self.dialect.now()
        procedure_id = self._insert(
            "INSERT INTO procedures (namespace, title, when_to_use, steps_json, pitfalls_json, source, author, "
            "exemplar_trajectory_id, support_count, created_at, updated_at, candidate_of, principal) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                namespace,
                title,
                when_to_use,
                self.dialect.json(list(steps)),
                self.dialect.json(list(pitfalls)),
                source,
                author,
                exemplar_trajectory_id,
                max(1, len(source_trajectory_ids)),
                created,
                created,
                candidate_of,
                principal,
            ),
        )
        self._link_sources(procedure_id, source_trajectory_ids)
        # A new procedure is active (the column's default) and in `namespace`: nothing to read back.
        self._insert_keys(procedure_id, namespace, True, keys)
        # Its search text is known without reading it back: the keys' texts in order, each once (as
        # the unique constraint keeps them), as the database stores them.
        texts = dict.fromkeys(self.dialect.text(text) for text, _ in keys)
        self._index_document(
            procedure_id, fts_document(self.dialect.text(title), self.dialect.text(when_to_use), *texts)
        )
        return procedure_id

    def _link_sources(self, procedure_id: int, trajectory_ids: Sequence[int]) -> int:
        """Link trajectories as a procedure's sources; returns how many were new."""
        return self._change_many(
            "INSERT INTO procedure_sources (procedure_id, trajectory_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(procedure_id, trajectory_id) for trajectory_id in dict.fromkeys(trajectory_ids)],
        )

    def add_keys(self, procedure_id: int, keys: Sequence[tuple[str, Vector | None]]) -> int:
        """Add search keys (text, optional vector) to a procedure; returns how many were new (none when
        there is no such procedure).

        A new key is inserted with its vector (not given one later), so that it reaches processes
        holding codes in memory as a new key id, not as a change to every vector.
        """
        self._write()
        owner = self._select_one("SELECT namespace, status FROM procedures WHERE id = ?", (procedure_id,))
        if owner is None or not keys:
            return 0
        added = self._insert_keys(procedure_id, str(owner[0]), owner[1] == ProcedureStatus.ACTIVE, keys)
        if added:
            self._refresh_search_text(procedure_id)
        return added

    def keys(self, procedure_id: int) -> list[str]:
        found = self._select("SELECT text FROM procedure_keys WHERE procedure_id = ? ORDER BY id", (procedure_id,))
        return [str(r[0]) for r in found]

    def add_sources(self, procedure_id: int, trajectory_ids: Sequence[int]) -> None:
        """Credit more trajectories as evidence for a procedure (a merge)."""
        self._write()
        added = self._link_sources(procedure_id, trajectory_ids)
        if added:
            self._change(
                "UPDATE procedures SET support_count = support_count + ?, updated_at = ? WHERE id = ?",
                (added, self.dialect.now(), procedure_id),
            )

    def _refresh_search_text(self, procedure_id: int) -> None:
        # Indexed: what the procedure is for (title, when-to-use, the tasks it served), not its
        # steps: step text (commands, "go to", "take") is shared by unrelated procedures and only
        # lengthens every posting list a query walks.
        row = self._select_one("SELECT title, when_to_use FROM procedures WHERE id = ?", (procedure_id,))
        if row is not None:
            self._index_document(procedure_id, fts_document(row[0], row[1], *self.keys(procedure_id)))

    def get_procedure(self, procedure_id: int) -> Procedure:
        found = self.get_procedures([procedure_id])
        if not found:
            raise NotFoundError(f"no procedure with id {procedure_id}")
        return found[0]

    def save_skill(self, procedure_id: int, skill: SkillDocument) -> None:
        """Keep an imported skill whole beside the procedure derived from it."""
        self._write()
        self._change("DELETE FROM skill_documents WHERE procedure_id = ?", (procedure_id,))
        self._change(
            f"INSERT INTO skill_documents ({SKILL_DOCUMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                procedure_id,
                skill.name,
                skill.folder,
                skill.digest(),
                json.dumps(skill.frontmatter, default=str),
                skill.body,
                json.dumps(skill.files),
            ),
        )

    def skill_of(self, procedure_id: int) -> SkillDocument | None:
        """The skill a procedure was imported from, kept whole; None for any other procedure."""
        row = self._select_one(
            "SELECT name, folder, frontmatter, body, files FROM skill_documents WHERE procedure_id = ?",
            (procedure_id,),
        )
        if row is None:
            return None
        return SkillDocument(
            name=str(row[0]),
            folder=str(row[1]),
            frontmatter=json.loads(row[2]),
            body=str(row[3]),
            files=json.loads(row[4]),
        )

    def procedures_with_skill(self, namespace: str, name: str, digest: str) -> list[int]:
        """The procedures of `namespace` imported from this very skill (same name, same content)."""
        found = self._select(
            "SELECT s.procedure_id FROM skill_documents s JOIN procedures p ON p.id = s.procedure_id "
            "WHERE s.name = ? AND s.digest = ? AND p.namespace = ? ORDER BY s.procedure_id",
            (name, digest, namespace),
        )
        return [int(r[0]) for r in found]

    def candidates_of(self, procedure_id: int) -> list[Procedure]:
        """The candidates proposed to replace a procedure's steps, oldest first."""
        found = self._select("SELECT id FROM procedures WHERE candidate_of = ? ORDER BY id", (procedure_id,))
        return self.get_procedures([int(r[0]) for r in found])

    def get_procedures(self, procedure_ids: Sequence[int]) -> list[Procedure]:
        """Procedures in the order of `procedure_ids`; unknown ids are skipped."""
        wanted = [i for i in procedure_ids if 0 < i <= _MAX_ID]
        if not wanted:
            return []
        clause, params = self.dialect.any_of("id", wanted)
        # With each procedure's sources in the same round trip.
        sources = self.dialect.ids_of("s.trajectory_id", "procedure_sources s WHERE s.procedure_id = procedures.id")
        found = self._select(f"SELECT {mapping.PROCEDURE_COLUMNS}, {sources} FROM procedures WHERE {clause}", params)
        by_id = {int(r[0]): r for r in found}
        return [
            mapping.procedure(by_id[i][:-1], sorted(self.dialect.read_ids(by_id[i][-1])))
            for i in procedure_ids
            if i in by_id
        ]

    def outcome_counts(self, procedure_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(successes, failures) of each known procedure's current version, for scoring before loading it
        in full."""
        if not procedure_ids:
            return {}
        clause, params = self.dialect.any_of("id", procedure_ids)
        found = self._select(
            f"SELECT id, version_success_count, version_failure_count FROM procedures WHERE {clause}", params
        )
        return {int(r[0]): (int(r[1]), int(r[2])) for r in found}

    def unverified(self, procedure_ids: Sequence[int]) -> set[int]:
        if not procedure_ids:
            return set()
        clause, params = self.dialect.any_of("id", procedure_ids)
        found = self._select(
            f"SELECT id FROM procedures WHERE {clause} AND version_success_count = 0 AND NOT EXISTS ("
            "SELECT 1 FROM procedure_sources s JOIN trajectories t ON t.id = s.trajectory_id "
            "WHERE s.procedure_id = procedures.id AND t.outcome <> 'unknown')",
            params,
        )
        return {int(r[0]) for r in found}

    def list_procedures(
        self,
        namespace: str | None = None,
        status: ProcedureStatus | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Procedure]:
        matching = [self.dialect.contains(("title", "when_to_use"), text)] if text else []
        where, params = mapping.procedure_filter(namespace, status, *matching)
        found = self._select(
            f"SELECT id FROM procedures {where} ORDER BY id LIMIT ? OFFSET ?", (*params, limit, offset)
        )
        return self.get_procedures([int(r[0]) for r in found])

    def count_procedures(self, namespace: str | None = None, status: ProcedureStatus | None = None) -> int:
        where, params = mapping.procedure_filter(namespace, status)
        return self._select_count(f"SELECT COUNT(*) FROM procedures {where}", params)

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
        json = self.dialect.json
        self._change(
            "INSERT INTO procedure_versions (procedure_id, version, title, when_to_use, steps_json, pitfalls_json, "
            "reason, changed_by, created_at, success_count, failure_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                procedure_id,
                current.version,
                current.title,
                current.when_to_use,
                json(current.steps),
                json(current.pitfalls),
                reason,
                changed_by,
                self.dialect.now(),
                current.version_success_count,
                current.version_failure_count,
            ),
        )
        self._change(
            "UPDATE procedures SET title = ?, when_to_use = ?, steps_json = ?, pitfalls_json = ?, source = ?, "
            "version = version + 1, updated_at = ?, "
            "version_success_count = CASE WHEN ? THEN 0 ELSE version_success_count END, "
            "version_failure_count = CASE WHEN ? THEN 0 ELSE version_failure_count END WHERE id = ?",
            (
                current.title if title is None else title,
                current.when_to_use if when_to_use is None else when_to_use,
                json(list(current.steps if steps is None else steps)),
                json(list(current.pitfalls if pitfalls is None else pitfalls)),
                current.source if source is None else source,
                self.dialect.now(),
                fresh_record,
                fresh_record,
                procedure_id,
            ),
        )
        self._refresh_search_text(procedure_id)
        return self.get_procedure(procedure_id)

    def versions(self, procedure_id: int) -> list[ProcedureVersion]:
        found = self._select(
            f"SELECT {mapping.VERSION_COLUMNS} FROM procedure_versions WHERE procedure_id = ? ORDER BY version",
            (procedure_id,),
        )
        return [mapping.version(r) for r in found]

    def set_status(self, procedure_id: int, status: ProcedureStatus) -> None:
        self._write()
        self.get_procedure(procedure_id)
        self._change(
            "UPDATE procedures SET status = ?, updated_at = ? WHERE id = ?",
            (status.value, self.dialect.now(), procedure_id),
        )
        self._set_keys_active(procedure_id, status == ProcedureStatus.ACTIVE)

    def bump_stats(
        self, procedure_id: int, *, retrieved: int = 0, succeeded: int = 0, failed: int = 0, this_version: bool = True
    ) -> None:
        judged = (succeeded, failed) if this_version else (0, 0)
        self._change(
            "UPDATE procedures SET retrieved_count = retrieved_count + ?, success_count = success_count + ?, "
            "failure_count = failure_count + ?, version_success_count = version_success_count + ?, "
            "version_failure_count = version_failure_count + ? WHERE id = ?",
            (retrieved, succeeded, failed, *judged, procedure_id),
        )

    def credit_past_version(self, procedure_id: int, version: int, *, succeeded: int = 0, failed: int = 0) -> None:
        self._change(
            "UPDATE procedures SET success_count = success_count + ?, failure_count = failure_count + ? WHERE id = ?",
            (succeeded, failed, procedure_id),
        )
        self._change(
            "UPDATE procedure_versions SET success_count = COALESCE(success_count, 0) + ?, "
            "failure_count = COALESCE(failure_count, 0) + ? WHERE procedure_id = ? AND version = ?",
            (succeeded, failed, procedure_id, version),
        )

    def procedures_with_key(self, namespace: str, text: str, *, include_deprecated: bool = False) -> list[int]:
        """Active (or all) procedures that have exactly this key text (the merge check without vectors)."""
        status = "" if include_deprecated else "AND p.status = 'active' "
        found = self._select(
            # Joined in this order: start from the key's text index, not from every procedure of the namespace.
            f"SELECT p.id FROM procedure_keys k {self.dialect.ordered_join} procedures p ON p.id = k.procedure_id "
            f"WHERE k.text = ? AND p.namespace = ? {status}ORDER BY p.id",
            (text, namespace),
        )
        return [int(r[0]) for r in found]

    def procedures_with_step_words(self, namespace: str, word: str, others: Sequence[str]) -> list[int]:
        words = [mapping.plain_word(w) for w in (word, *others)]
        steps_match = f"{self.dialect.json_as_text('steps_json')} {self.dialect.like_ignoring_case} ?"
        clause = steps_match + (" AND (" + " OR ".join(steps_match for _ in others) + ")" if others else "")
        found = self._select(
            f"SELECT id FROM procedures WHERE namespace = ? AND status = 'active' AND {clause} ORDER BY id",
            (namespace, *(f"%{w}%" for w in words)),
        )
        return [int(r[0]) for r in found]

    def random_procedures(self, namespace: str, k: int, rng: random.Random) -> list[int]:
        found = self._select(
            "SELECT id FROM procedures WHERE namespace = ? AND status = 'active' ORDER BY id", (namespace,)
        )
        ids = [int(r[0]) for r in found]
        return rng.sample(ids, min(k, len(ids)))
