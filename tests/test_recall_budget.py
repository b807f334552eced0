"""A recall's size is bounded: filled best-first within a character budget, saying what it left out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from memp_mcp.bench.coding_corpus import CORPUS, long_procedure
from memp_mcp.config import DEFAULT_RECALL_BUDGET, MIN_RECALL_BUDGET, load_settings
from memp_mcp.engine.budget import fit
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.results import ExemplarStep, RecalledProcedure
from memp_mcp.server.app import build_server
from memp_mcp.server.render import recall_cost
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder
from tests.test_memory import CLEAN_SOAP

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def connect(tmp_path: Path, budget: int = DEFAULT_RECALL_BUDGET) -> AsyncIterator[Client]:
    settings = load_settings({"db_path": tmp_path / "server.db", "recall_budget": budget}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), FakeEmbedder())
    async with Client(build_server(settings, memory=memory), raise_exceptions=True) as connected:
        yield connected


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async for connected in connect(tmp_path):
        yield connected


def size(result: CallToolResult) -> int:
    """What the client receives: the text rendering and the structured content, together."""
    text = result.content[0]
    assert isinstance(text, TextContent)
    return len(text.text) + len(json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False))


def text_of(result: CallToolResult) -> str:
    text = result.content[0]
    assert isinstance(text, TextContent)
    return text.text


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result


async def test_one_enormous_procedure_cannot_bloat_every_recall(client: Client) -> None:
    draft = long_procedure("billing")
    await call(
        client,
        "record_trajectory",
        {
            "task": "profile the billing service under load",
            "outcome": "success",
            "steps": ["hey -n 1000 http://localhost:8000/bill"],
            "procedure": draft,
        },
    )
    recalled = await call(client, "recall_procedure", {"task": "profile the billing service under load", "k": 3})
    assert size(recalled) <= DEFAULT_RECALL_BUDGET
    procedure = recalled.structured_content["procedures"][0]
    assert procedure["abridged"] is True
    assert len(procedure["steps"]) == 60 or "left out" in recalled.structured_content["left_out"]
    assert "get_procedure" in recalled.structured_content["left_out"]
    assert f"get_procedure({procedure['id']})" in text_of(recalled)
    full = await call(client, "get_procedure", {"procedure_id": procedure["id"]})
    assert full.structured_content["procedure"]["steps"] == draft["steps"]


async def test_a_k3_recall_of_coding_procedures_stays_within_the_budget(client: Client) -> None:
    for case in CORPUS:
        await call(client, "record_trajectory", {"task": case.task, "steps": case.steps, "outcome": "success"})
    for topic in ("billing", "search"):
        await call(
            client,
            "record_trajectory",
            {
                "task": f"profile the {topic} service under load",
                "outcome": "success",
                "steps": ["hey -n 10 http://localhost/"],
                "procedure": long_procedure(topic),
            },
        )
    for case in CORPUS:
        recalled = await call(client, "recall_procedure", {"task": case.task, "k": 3})
        assert recalled.structured_content["procedures"]
        assert size(recalled) <= DEFAULT_RECALL_BUDGET, case.name


async def test_a_worked_example_that_repeats_the_steps_is_not_sent(client: Client) -> None:
    case = CORPUS[0]
    await call(client, "record_trajectory", {"task": case.task, "steps": case.steps, "outcome": "success"})
    procedure = (await call(client, "recall_procedure", {"task": case.task, "k": 1})).structured_content["procedures"][
        0
    ]
    # A field at its default is left out of the answer.
    assert "exemplar" not in procedure and procedure["exemplar_task"] == case.task
    assert procedure["steps"] == case.expected_steps


async def test_the_text_does_not_repeat_the_worked_examples_observations(client: Client) -> None:
    await call(
        client,
        "record_trajectory",
        {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success"},
    )
    recalled = await call(client, "recall_procedure", {"task": "put a clean soapbar in cabinet", "k": 1})
    exemplar = recalled.structured_content["procedures"][0]["exemplar"]
    assert exemplar and exemplar[1]["observation"] == "You pick up the soapbar 1."
    assert "> take soapbar 1 from countertop 1" in text_of(recalled)
    assert "You pick up the soapbar 1." not in text_of(recalled)


async def test_worked_examples_go_before_any_procedure_does(tmp_path: Path) -> None:
    tasks = ["put a clean soapbar in cabinet", "put a clean soapbar in drawer", "put a clean soapbar in shelf"]
    async for client in connect(tmp_path, budget=6_500):
        for task in tasks:
            await call(client, "record_trajectory", {"task": task, "steps": CLEAN_SOAP, "outcome": "success"})
        recalled = await call(client, "recall_procedure", {"task": "put a clean soapbar in a cabinet", "k": 3})
        procedures = recalled.structured_content["procedures"]
        assert len(procedures) == 3 and size(recalled) <= 6_500
        with_example = [p.get("exemplar") is not None for p in procedures]
        # Best first: an example is given only where every better procedure has one too.
        assert with_example == sorted(with_example, reverse=True) and not all(with_example)
        left_out = recalled.structured_content["left_out"]
        dropped = [f"#{p['id']}" for p in procedures if p.get("exemplar") is None]
        assert f"worked examples of {', '.join(dropped)} left out" in left_out
        assert "Left out:" in text_of(recalled)
        # Only what was returned can be credited.
        reported = await call(
            client,
            "report_outcome",
            {
                "recall_id": recalled.structured_content["recall_id"],
                "success": True,
                "procedure_id": procedures[2]["id"],
            },
        )
        assert reported.structured_content["credited_procedure_ids"] == [procedures[2]["id"]]


async def test_a_procedure_that_does_not_fit_is_left_out_and_named(tmp_path: Path) -> None:
    async for client in connect(tmp_path, budget=3_000):
        ids = []
        for topic in ("billing", "billing service", "billing api"):
            recorded = await call(
                client,
                "record_trajectory",
                {
                    "task": f"profile the {topic} under load",
                    "outcome": "success",
                    "steps": ["hey -n 10 http://x/"],
                    "procedure": {"title": f"Profile {topic}", "steps": [f"step {i} " + "x" * 300 for i in range(8)]},
                },
            )
            ids.append(recorded.structured_content["procedure_id"])
        recalled = await call(client, "recall_procedure", {"task": "profile the billing service under load", "k": 3})
        returned = [p["id"] for p in recalled.structured_content["procedures"]]
        assert size(recalled) <= 3_000 and 1 <= len(returned) < 3
        missing = [i for i in ids if i not in returned]
        assert f"procedures {', '.join(f'#{i}' for i in missing)} left out" in recalled.structured_content["left_out"]
        refused = await client.call_tool(
            "report_outcome",
            {"recall_id": recalled.structured_content["recall_id"], "success": False, "procedure_id": missing[0]},
        )
        assert refused.is_error


def test_the_budget_is_a_setting_with_a_floor() -> None:
    assert load_settings(environ={"MEMP_RECALL_BUDGET": "12000"}).recall_budget == 12_000
    with pytest.raises(Exception, match="MEMP_RECALL_BUDGET"):
        load_settings(environ={"MEMP_RECALL_BUDGET": "10"})


async def test_at_the_smallest_budget_the_best_procedure_still_comes_back(tmp_path: Path) -> None:
    draft = {**long_procedure("billing"), "when_to_use": "when profiling " * 130}
    async for client in connect(tmp_path, budget=MIN_RECALL_BUDGET):
        await call(
            client,
            "record_trajectory",
            {
                "task": "profile the billing service under load",
                "outcome": "success",
                "steps": ["hey -n 10 http://x/"],
                "procedure": draft,
            },
        )
        recalled = await call(client, "recall_procedure", {"task": "profile the billing service under load"})
        assert size(recalled) <= MIN_RECALL_BUDGET
        procedure = recalled.structured_content["procedures"][0]
        assert procedure["abridged"] and procedure["steps"][-1].endswith("more steps: get_procedure has them)")


def _unproven(pid: int, **fields: Any) -> RecalledProcedure:
    """A recalled procedure of version 1 with no record yet, ranked by its id (1 is the best)."""
    return RecalledProcedure.model_validate(
        {"id": pid, "relevance": 0.9 - pid / 100, "retrieved_count": 0, "success_count": 0, "failure_count": 0}
        | {"success_rate": None, "version": 1, **fields}
    )


def test_worked_examples_are_read_only_for_the_procedures_that_fit() -> None:
    procedures = [
        _unproven(
            pid,
            title=f"Deploy service {pid}",
            when_to_use="When a service must be deployed",
            steps=[f"step {n} of deploying service {pid}: " + "run the deploy script " * 4 for n in range(12)],
            pitfalls=["the deploy script needs the VPN"],
            source="agent",
            author="tester",
            source_trajectory_ids=[pid],
            exemplar_task=f"deploy service {pid}",
        )
        for pid in range(1, 11)
    ]
    read: list[int] = []

    def with_exemplar(procedure: RecalledProcedure) -> RecalledProcedure:
        read.append(procedure.id)
        return procedure.model_copy(update={"exemplar": [ExemplarStep(action="./deploy.sh", observation="done")]})

    placed = {}
    for budget in (6_500, DEFAULT_RECALL_BUDGET, 100_000):
        read.clear()
        lazy = fit(procedures, budget, recall_cost, 400, with_exemplar=with_exemplar)
        assert read == [p.id for p in lazy.procedures]
        eager = fit([with_exemplar(p) for p in procedures], budget, recall_cost, 400)
        assert lazy == eager, budget
        placed[budget] = [p.exemplar is not None for p in lazy.procedures]
    assert len(placed[6_500]) < 10 and not any(placed[6_500])
    assert placed[100_000] == [True] * 10


def test_a_long_first_procedure_leaves_room_for_the_next_two_to_be_seen() -> None:
    """Imported skills have dozens of long steps: under the default budget the first three still show,
    the best with a step to follow and the others at least as title, when-to-use and id, so an agent
    can choose among them."""
    procedures = [
        _unproven(
            pid,
            title=f"Profile billing service {pid}",
            when_to_use="Profiling the billing service under load. " + "Measure first. " * 8,
            steps=[f"step {n}: " + "run the profiler and read the flame graph " * 40 for n in range(40)],
            pitfalls=[],
            source="skill",
            author="skill:profile-billing",
            source_trajectory_ids=[],
        )
        for pid in (1, 2, 3)
    ]
    fitted = fit(procedures, DEFAULT_RECALL_BUDGET, recall_cost, 600)
    assert [p.id for p in fitted.procedures] == [1, 2, 3]
    assert sum(recall_cost(p) for p in fitted.procedures) <= DEFAULT_RECALL_BUDGET - 600
    best, *others = fitted.procedures
    assert best.steps[0].startswith("step 0: run the profiler"), "the best one keeps a step to follow"
    for other in others:
        assert other.when_to_use.startswith("Profiling the billing") and other.steps == [
            f"(40 steps: get_procedure({other.id}) has them)"
        ]
