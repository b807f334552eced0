"""Outcome attribution: only the procedure that was followed is judged, and each version on its own record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from memp_mcp.config import load_settings
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.strategies import Strategies
from memp_mcp.errors import InvalidInputError
from memp_mcp.models import ProcedureDraft, ProcedureStatus
from memp_mcp.server.app import build_server
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder
from tests.test_memory import CLEAN_SOAP

pytestmark = pytest.mark.anyio

TASKS = ("put a clean soapbar in cabinet", "put a clean soapbar in drawer", "put a clean soapbar in shelf")
QUERY = "put a clean soapbar in the cabinet, drawer or shelf"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def memory(store: SQLiteStore) -> Memory:
    return Memory(store, FakeEmbedder(), strategies=Strategies())


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    settings = load_settings({"db_path": tmp_path / "server.db"}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), FakeEmbedder())
    async with Client(build_server(settings, memory=memory), raise_exceptions=True) as connected:
        yield connected


def three_procedures(memory: Memory) -> list[int]:
    ids = [memory.record(task, CLEAN_SOAP, "success").procedure_id for task in TASKS]
    assert None not in ids
    return [pid for pid in ids if pid is not None]


def counts(memory: Memory, procedure_id: int) -> tuple[int, int, int]:
    procedure = memory.store.get_procedure(procedure_id)
    return procedure.success_count, procedure.failure_count, procedure.version


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_only_the_procedure_named_by_the_agent_is_blamed_and_revised(client: Client) -> None:
    ids = [
        (await call(client, "record_trajectory", {"task": t, "steps": CLEAN_SOAP, "outcome": "success"}))[
            "procedure_id"
        ]
        for t in TASKS
    ]
    recalled = await call(client, "recall_procedure", {"task": QUERY, "k": 3})
    returned = [p["id"] for p in recalled["procedures"]]
    assert sorted(returned) == sorted(ids)
    followed = returned[-1]  # not the top one: the old rule would have revised returned[0]
    reported = await call(
        client,
        "report_outcome",
        {
            "recall_id": recalled["recall_id"],
            "success": False,
            "procedure_id": followed,
            "notes": "the drawer was locked",
            "correction": "unlock the {target} before opening it",
        },
    )
    assert reported["credited_procedure_ids"] == [followed]
    assert reported["adjusted_procedure_ids"] == [followed]
    assert reported["attribution"] == "the procedure_id given"
    for pid in returned:
        detail = await call(client, "get_procedure", {"procedure_id": pid})
        procedure = detail["procedure"]
        if pid == followed:
            assert procedure["version"] == 2 and procedure["failure_count"] == 1
            assert "unlock the {target} before opening it" in procedure["pitfalls"]
        else:
            assert procedure["version"] == 1 and procedure["failure_count"] == 0 and procedure["success_count"] == 0


async def test_a_procedure_id_the_recall_did_not_return_is_refused_and_nothing_is_counted(client: Client) -> None:
    await call(client, "record_trajectory", {"task": TASKS[0], "steps": CLEAN_SOAP, "outcome": "success"})
    recalled = await call(client, "recall_procedure", {"task": TASKS[0], "k": 1})
    refused = await client.call_tool(
        "report_outcome", {"recall_id": recalled["recall_id"], "success": True, "procedure_id": 999}
    )
    assert refused.is_error
    assert "procedure 999 was not returned by recall" in str(refused.content[0])
    # The recall can still be reported, correctly this time.
    reported = await call(client, "report_outcome", {"recall_id": recalled["recall_id"], "success": True})
    assert reported["attribution"] == "the only procedure this recall returned"


def test_without_procedure_id_only_the_top_ranked_procedure_is_judged_and_the_result_says_so(memory: Memory) -> None:
    three_procedures(memory)
    recalled = memory.recall(QUERY, k=3)
    returned = [p.id for p in recalled.procedures]
    assert len(returned) == 3
    outcome = memory.report_outcome(recalled.recall_id or "", True)
    assert outcome.credited_procedure_ids == [returned[0]]
    assert "top-ranked" in outcome.attribution and "procedure_id" in outcome.message
    assert counts(memory, returned[0])[0] == 1
    assert [counts(memory, pid)[0] for pid in returned[1:]] == [0, 0]


def test_three_failures_of_one_procedure_do_not_retire_the_others_recalled_with_it(memory: Memory) -> None:
    ids = three_procedures(memory)
    for _ in range(3):
        recalled = memory.recall(QUERY, k=3)
        assert {p.id for p in recalled.procedures} == set(ids)
        outcome = memory.report_outcome(recalled.recall_id or "", False, procedure_id=ids[1])
    assert outcome.deprecated_procedure_ids == [ids[1]]
    statuses = [memory.store.get_procedure(pid).status for pid in ids]
    assert statuses == [ProcedureStatus.ACTIVE, ProcedureStatus.DEPRECATED, ProcedureStatus.ACTIVE]


def test_a_correction_starts_a_fresh_record_and_is_not_retired_before_it_is_tried(memory: Memory) -> None:
    pid = three_procedures(memory)[0]

    def fail(**report: Any) -> list[int]:
        recalled = memory.recall(TASKS[0], k=1)
        assert [p.id for p in recalled.procedures] == [pid]
        return memory.report_outcome(
            recalled.recall_id or "", False, procedure_id=pid, **report
        ).deprecated_procedure_ids

    assert fail(notes="nothing in the cabinet") == []
    assert fail(notes="still nothing") == []
    fix = ProcedureDraft(
        title="Clean and store",
        steps=["take {object}", "clean {object} at the sink", "open {target}", "put {object} in {target}"],
    )
    # The third failure would retire the old steps; it brings a correction, which must get its chance.
    assert fail(correction=fix) == []
    procedure = memory.store.get_procedure(pid)
    assert procedure.status == ProcedureStatus.ACTIVE and procedure.steps == fix.steps
    assert (procedure.version_success_count, procedure.version_failure_count) == (0, 0)
    assert (procedure.success_count, procedure.failure_count) == (0, 3)
    assert procedure.success_rate is None
    history = memory.get_procedure(pid).history
    assert [(v.version, v.failure_count) for v in history] == [(1, 1), (2, 2), (3, 3)]

    recalled = memory.recall(TASKS[0], k=1)
    memory.report_outcome(recalled.recall_id or "", True, procedure_id=pid)
    assert memory.store.get_procedure(pid).success_rate == 1.0
    # The corrected version is then judged on its own record: retired once it fails more than it works.
    assert fail() == []
    assert fail() == [pid]


def test_pitfalls_the_server_adds_do_not_restart_the_record(memory: Memory) -> None:
    pid = three_procedures(memory)[0]
    for _ in range(2):
        recalled = memory.recall(TASKS[0], k=1)
        memory.report_outcome(recalled.recall_id or "", False, procedure_id=pid, notes="the cabinet was closed")
    procedure = memory.store.get_procedure(pid)
    assert procedure.version == 3 and procedure.version_failure_count == 2


def test_a_procedure_id_must_be_an_integer(memory: Memory) -> None:
    three_procedures(memory)
    recalled = memory.recall(TASKS[0], k=1)
    with pytest.raises(InvalidInputError, match="positive integer"):
        memory.report_outcome(recalled.recall_id or "", True, procedure_id="1")  # type: ignore[arg-type]


def test_a_database_from_before_per_version_records_keeps_its_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import memp_mcp.store.sqlite as sqlite_module
    from memp_mcp.store import migrations, rows

    path = tmp_path / "old.db"
    version_records = next(m[0] for m in migrations.MIGRATIONS if m[1] == "version_records")
    before = [m for m in migrations.MIGRATIONS if m[0] < version_records]
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", before)
    monkeypatch.setattr(sqlite_module, "LATEST_VERSION", before[-1][0])
    monkeypatch.setattr(rows, "PROCEDURE_COLUMNS", rows.PROCEDURE_COLUMNS.split(", version_success")[0])
    old = sqlite_module.SQLiteStore(path)
    with old.transaction():
        old._execute("INSERT INTO namespaces VALUES ('default', '2026-01-01T00:00:00')")
        old._execute(
            "INSERT INTO procedures (namespace, title, when_to_use, steps_json, pitfalls_json, source, success_count, "
            "failure_count, created_at, updated_at) VALUES ('default', 't', 'w', '[\"a\"]', '[]', 'agent', 4, 1, "
            "'2026-01-01T00:00:00', '2026-01-01T00:00:00')"
        )
    old.close()
    monkeypatch.undo()
    with SQLiteStore(path) as upgraded:
        procedure = upgraded.get_procedure(1)
        assert (procedure.version_success_count, procedure.version_failure_count) == (4, 1)
        assert procedure.success_rate == 0.8


async def test_a_recall_that_found_nothing_is_reported_by_recording_the_work_and_the_error_says_so(
    client: Client,
) -> None:
    recalled = await call(client, "recall_procedure", {"task": "rotate the TLS certificate of the staging proxy"})
    assert recalled["procedures"] == [] and recalled["recall_id"] is None
    steps = ["openssl req -new -key proxy.key -out proxy.csr", "systemctl reload nginx"]
    for recall_id in (recalled["recall_id"], "null", "f" * 16):
        refused = await client.call_tool(
            "report_outcome", {"recall_id": recall_id, "success": True, "trajectory": steps}
        )
        assert refused.is_error
        message = refused.content[0].text  # type: ignore[union-attr]
        assert "record_trajectory" in message and "Traceback" not in message, message
    # What the error points to keeps the work: the next agent's recall finds it.
    recorded = await call(
        client,
        "record_trajectory",
        {"task": "rotate the TLS certificate of the staging proxy", "steps": steps, "outcome": "success"},
    )
    assert recorded["procedure_id"] is not None
    again = await call(client, "recall_procedure", {"task": "rotate the TLS certificate of the staging proxy"})
    assert [p["id"] for p in again["procedures"]] == [recorded["procedure_id"]]
