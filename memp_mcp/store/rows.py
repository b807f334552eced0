"""Rows to models, written once for every store.

Both stores select the same columns in the same order (the constants below). They differ only in
how values come back: SQLite gives JSON and times as text, PostgreSQL gives decoded JSON (jsonb),
datetimes and booleans; the helpers accept either.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memp_mcp.errors import InvalidInputError
from memp_mcp.models import Outcome, Procedure, ProcedureStatus, ProcedureVersion, RecallEvent, Step, Trajectory

PROCEDURE_COLUMNS = (
    "id, namespace, title, when_to_use, steps_json, pitfalls_json, status, version, source, author, "
    "exemplar_trajectory_id, retrieved_count, success_count, failure_count, support_count, "
    "created_at, updated_at, version_success_count, version_failure_count, candidate_of, principal"
)
TRAJECTORY_COLUMNS = "id, namespace, task, steps_json, outcome, score, agent, created_at"
RECALL_EVENT_COLUMNS = (
    "id, namespace, task, procedure_ids_json, strategy, created_at, reported, success, procedure_versions_json"
)
SKILL_DOCUMENT_COLUMNS = "procedure_id, name, folder, digest, frontmatter, body, files"
VERSION_COLUMNS = (
    "version, title, when_to_use, steps_json, pitfalls_json, reason, changed_by, created_at, success_count, "
    "failure_count"
)


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# A trajectory's steps (commands and what they printed) are most of a SQLite file and are read one
# trajectory at a time, so SQLite keeps long ones zlib-compressed: a blob, where JSON is text.
# PostgreSQL compresses large values itself (TOAST).
PACKED_FROM_CHARS = 512
_ZLIB_HEADER = 0x78


def to_packed_json(value: Any) -> str | bytes:
    text = to_json(value)
    return zlib.compress(text.encode(), 6) if len(text) >= PACKED_FROM_CHARS else text


def from_json(value: Any) -> Any:
    """A JSON column's value: parsed from text (SQLite), from a compressed blob (to_packed_json), or as
    the driver decoded it (jsonb)."""
    if isinstance(value, bytes) and value[:1] == bytes([_ZLIB_HEADER]):
        value = zlib.decompress(value)
    return json.loads(value) if isinstance(value, str | bytes) else value


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def time_of(value: Any) -> datetime:
    """A time column's value, as text (SQLite) or as the driver decoded it."""
    return _time(value)


def placeholders(count: int) -> str:
    """`?, ?, ?` for `count` values (an `IN (...)`, a row of VALUES)."""
    return ", ".join(["?"] * count)


def plain_word(word: str) -> str:
    """`word` when it is plain letters and digits (safe inside a LIKE pattern as it is); else an error."""
    if not word or not word.isascii() or not word.isalnum():
        raise InvalidInputError(f"a step word must be plain letters and digits; got {word!r}")
    return word


def procedure_filter(
    namespace: str | None, status: ProcedureStatus | None, *extra: tuple[str, Sequence[Any]]
) -> tuple[str, list[Any]]:
    """`WHERE ...` over procedures by namespace and status (each when given) and `extra` (clause, its
    parameters), with the parameters in order; empty when nothing filters. Parameters marked `?`."""
    clauses: list[str] = []
    params: list[Any] = []
    if namespace is not None:
        clauses.append("namespace = ?")
        params.append(namespace)
    if status is not None:
        clauses.append("status = ?")
        params.append(status.value)
    for clause, values in extra:
        clauses.append(clause)
        params += values
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def procedure(row: Sequence[Any], sources: list[int]) -> Procedure:
    return Procedure(
        id=int(row[0]),
        namespace=row[1],
        title=row[2],
        when_to_use=row[3],
        steps=from_json(row[4]),
        pitfalls=from_json(row[5]),
        status=ProcedureStatus(row[6]),
        version=row[7],
        source=row[8],
        author=row[9],
        exemplar_trajectory_id=row[10],
        retrieved_count=row[11],
        success_count=row[12],
        failure_count=row[13],
        support_count=row[14],
        source_trajectory_ids=sources,
        created_at=_time(row[15]),
        updated_at=_time(row[16]),
        version_success_count=row[17],
        version_failure_count=row[18],
        candidate_of=row[19],
        principal=row[20],
    )


def trajectory(row: Sequence[Any]) -> Trajectory:
    return Trajectory(
        id=int(row[0]),
        namespace=row[1],
        task=row[2],
        steps=[Step(**s) for s in from_json(row[3])],
        outcome=Outcome(row[4]),
        score=row[5],
        agent=row[6],
        created_at=_time(row[7]),
    )


def recall_event(row: Sequence[Any]) -> RecallEvent:
    return RecallEvent(
        id=row[0],
        namespace=row[1],
        task=row[2],
        procedure_ids=from_json(row[3]),
        strategy=row[4],
        created_at=_time(row[5]),
        reported=bool(row[6]),
        success=None if row[7] is None else bool(row[7]),
        procedure_versions=None if row[8] is None else from_json(row[8]),
    )


def version(row: Sequence[Any]) -> ProcedureVersion:
    return ProcedureVersion(
        version=row[0],
        title=row[1],
        when_to_use=row[2],
        steps=from_json(row[3]),
        pitfalls=from_json(row[4]),
        reason=row[5],
        changed_by=row[6],
        created_at=_time(row[7]),
        success_count=row[8],
        failure_count=row[9],
    )


def grouped(rows: Sequence[Sequence[Any]]) -> dict[int, list[Any]]:
    """(owner id, value) rows as {owner id: [values in row order]}."""
    result: dict[int, list[Any]] = {}
    for owner, value in rows:
        result.setdefault(int(owner), []).append(value)
    return result
