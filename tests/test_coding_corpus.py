"""Procedures built from coding-agent trajectories, recorded and read back through the MCP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from memp_mcp.bench.coding_corpus import CORPUS, FIX_FAILING_TEST, CodingCase
from memp_mcp.config import load_settings
from memp_mcp.embedding import FastEmbedEmbedder
from memp_mcp.engine.build import placeholders_in_literal_text
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.verdict import Verdict, verdict
from memp_mcp.models import Step
from memp_mcp.server.app import build_server
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    settings = load_settings({"db_path": tmp_path / "server.db"}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), FakeEmbedder())
    async with Client(build_server(settings, memory=memory), raise_exceptions=True) as connected:
        yield connected


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def record(client: Client, case: CodingCase) -> dict[str, Any]:
    recorded = await call(client, "record_trajectory", {"task": case.task, "steps": case.steps, "outcome": "success"})
    assert recorded["action"] == "created", recorded["message"]
    return (await call(client, "get_procedure", {"procedure_id": recorded["procedure_id"]}))["procedure"]


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
async def test_a_coding_trajectory_becomes_the_procedure_a_careful_engineer_would_write(
    client: Client, case: CodingCase
) -> None:
    procedure = await record(client, case)
    assert procedure["steps"] == case.expected_steps
    # The title is the opening of the task in its own words, short: nothing in coding work is lifted
    # into a placeholder.
    assert case.task.lower().startswith(procedure["title"].lower())
    assert len(procedure["title"]) <= 80 and "{" not in procedure["title"]
    for text in [procedure["title"], procedure["when_to_use"], *procedure["steps"], *procedure["pitfalls"]]:
        assert not placeholders_in_literal_text(text), text


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
async def test_each_failed_action_becomes_a_pitfall_saying_what_worked_instead(
    client: Client, case: CodingCase
) -> None:
    procedure = await record(client, case)
    pitfalls = procedure["pitfalls"]
    assert len(pitfalls) == len(case.pitfall_actions)
    for action, instead in case.pitfall_actions.items():
        about = [p for p in pitfalls if p.startswith(f'"{action}" did not work (')]
        assert len(about) == 1, (action, pitfalls)
        if instead is not None:
            assert f'"{instead}"' in about[0]
        else:
            assert "instead" not in about[0] and "worked after" not in about[0]


async def test_reproducing_the_bug_is_a_step_not_a_pitfall(client: Client) -> None:
    procedure = await record(client, FIX_FAILING_TEST)
    assert procedure["steps"][0].startswith("pytest tests/test_cache.py -q")
    assert procedure["steps"][-1] == "pytest tests/test_cache.py -q"
    assert not any("pytest" in p for p in procedure["pitfalls"])


async def test_the_same_check_failing_after_the_agents_own_edit_is_a_mistake_not_a_reproduction(client: Client) -> None:
    steps = [
        {"action": "edit app/settings.py: set TIMEOUT = '30'", "observation": "Edited app/settings.py."},
        {"action": "pytest -q tests/test_settings.py", "observation": "E   TypeError: '<' not supported\n1 failed"},
        {"action": "edit app/settings.py: set TIMEOUT = 30", "observation": "Edited app/settings.py."},
        {"action": "pytest -q tests/test_settings.py", "observation": "3 passed in 0.02s"},
    ]
    recorded = await call(
        client,
        "record_trajectory",
        {"task": "make the request timeout 30 seconds", "steps": steps, "outcome": "success"},
    )
    procedure = (await call(client, "get_procedure", {"procedure_id": recorded["procedure_id"]}))["procedure"]
    assert procedure["steps"] == [s["action"] for s in steps if s["action"] != "pytest -q tests/test_settings.py"] + [
        "pytest -q tests/test_settings.py"
    ]
    assert procedure["pitfalls"] == [
        '"pytest -q tests/test_settings.py" did not work (1 failed); it worked after "edit app/settings.py: set '
        'TIMEOUT = 30"'
    ]


async def test_retries_of_the_same_command_collapse_into_the_one_that_worked(client: Client) -> None:
    steps = [
        {"action": "npm ci", "observation": "npm ERR! network ETIMEDOUT", "exit_code": 1},
        {"action": "npm ci", "observation": "npm ERR! network ETIMEDOUT", "exit_code": 1},
        {"action": "npm ci", "observation": "added 312 packages in 9s", "exit_code": 0},
        {"action": "npm test", "observation": "Tests: 41 passed, 41 total", "exit_code": 0},
    ]
    recorded = await call(
        client,
        "record_trajectory",
        {"task": "install the frontend dependencies and run its tests", "steps": steps, "outcome": "success"},
    )
    procedure = (await call(client, "get_procedure", {"procedure_id": recorded["procedure_id"]}))["procedure"]
    assert procedure["steps"] == ["npm ci", "npm test"]
    assert procedure["pitfalls"] == []


@pytest.mark.parametrize(
    ("steps", "why"),
    [
        ([], "has no steps"),
        (
            [
                {"action": "pyest -q", "observation": "bash: pyest: command not found"},
                {"action": "cat tests/test_x.py", "observation": "cat: tests/test_x.py: No such file or directory"},
            ],
            "none of its actions worked",
        ),
    ],
)
async def test_an_empty_or_all_failed_success_is_stored_without_a_procedure(
    client: Client, steps: list[dict[str, str]], why: str
) -> None:
    recorded = await call(client, "record_trajectory", {"task": "run the tests", "steps": steps, "outcome": "success"})
    assert recorded["action"] == "stored_only" and recorded["procedure_id"] is None
    assert why in recorded["message"]
    assert (await call(client, "memory_stats", {}))["stats"]["procedures_active"] == 0


async def test_an_agent_draft_is_stored_even_when_its_steps_all_failed(client: Client) -> None:
    draft = {"title": "Run the test suite", "steps": ["pytest -q"], "pitfalls": ["the command is pytest, not pyest"]}
    recorded = await call(
        client,
        "record_trajectory",
        {
            "task": "run the tests",
            "outcome": "success",
            "procedure": draft,
            "steps": [{"action": "pyest -q", "observation": "bash: pyest: command not found"}],
        },
    )
    assert recorded["action"] == "created"


async def test_the_tool_descriptions_ask_for_the_agents_own_draft_and_accept_plain_strings(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    record_tool = tools["record_trajectory"]
    assert "your own" in (record_tool.description or "") and "procedure" in (record_tool.description or "")
    properties = record_tool.input_schema["properties"]
    assert "Recommended" in properties["procedure"]["description"]
    step_schemas = properties["steps"]["items"]["anyOf"]
    assert {"type": "string"} in step_schemas
    report = tools["report_outcome"].input_schema["properties"]
    assert "procedure_id" in report


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (Step(action="make build", observation="make: *** [build] Error 2", exit_code=2), Verdict.CHECK_FAILED),
        (Step(action="grep -rn ERROR logs/", observation="logs/a.log:3: ERROR: disk full"), Verdict.WORKED),
        (
            Step(action="tail -n 5 app.log", observation="Traceback (most recent call last):\nKeyError: 'x'"),
            Verdict.WORKED,
        ),
        (Step(action="cat nope.txt", observation="cat: nope.txt: No such file or directory"), Verdict.ACTION_ERROR),
        (
            Step(action="curl -i https://api.example.com/v2/items", observation="HTTP/1.1 404 Not Found"),
            Verdict.CHECK_FAILED,
        ),
        (
            Step(action="Edit src/a.py", observation="<tool_use_error>String to replace not found in file."),
            Verdict.ACTION_ERROR,
        ),
        (Step(action="go test ./...", observation="--- FAIL: TestParse (0.00s)\nFAIL"), Verdict.CHECK_FAILED),
        (Step(action="cargo test", observation="test result: FAILED. 3 passed; 1 failed"), Verdict.CHECK_FAILED),
        (Step(action="deploy.sh", observation="all good", ok=False), Verdict.CHECK_FAILED),
        (Step(action="grep -c TODO src/a.py", observation="0", exit_code=1, ok=True), Verdict.WORKED),
        (Step(action="go to desk 1", observation="Nothing happens."), Verdict.ACTION_ERROR),
    ],
)
def test_failure_is_read_from_what_agents_actually_see(step: Step, expected: Verdict) -> None:
    assert verdict(step) == expected


@pytest.mark.real_model
async def test_a_reworded_request_finds_the_coding_procedure(tmp_path: Path, real_embedder: FastEmbedEmbedder) -> None:
    settings = load_settings({"db_path": tmp_path / "real.db"}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), real_embedder)
    async with Client(build_server(settings, memory=memory), raise_exceptions=True) as client:
        ids = {}
        for case in CORPUS:
            arguments = {"task": case.task, "steps": case.steps, "outcome": "success"}
            ids[case.name] = (await call(client, "record_trajectory", arguments))["procedure_id"]
        for case in CORPUS:
            recalled = await call(client, "recall_procedure", {"task": case.reworded, "k": 3})
            assert recalled["procedures"], case.reworded
            assert recalled["procedures"][0]["id"] == ids[case.name], case.reworded


async def test_the_coding_benchmark_reports_what_the_builder_kept_and_what_recalls_cost() -> None:
    from memp_mcp.bench.coding import run_coding_benchmark

    results = await run_coding_benchmark(FakeEmbedder())
    assert [c["case"] for c in results["cases"]] == [c.name for c in CORPUS]
    assert all(c["matches_expected"] and c["placeholders_in_code"] == 0 for c in results["cases"])
    assert all(c["failed_kept_otherwise"] == 0 for c in results["cases"])
    assert results["largest_recall_chars"] <= results["budget"]
    # The agent-written procedures at the size limits come back together, abridged.
    long_recalls = [r for r in results["recalls"] if r["query"].startswith("long ")]
    assert all(r["procedures"] == 3 and "abridged" in r["left_out"] for r in long_recalls)


def test_the_peer_benchmark_lays_out_the_local_model_where_fastembed_looks(tmp_path: Path) -> None:
    from memp_mcp.bench.peer import PEER_HF_REPO, peer_model_cache

    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.onnx", "tokenizer.json", "config.json"):
        (model / name).write_text(name)
    cache = peer_model_cache(model, tmp_path / "cache")
    snapshot = cache / PEER_HF_REPO / "snapshots" / ("0" * 40)
    assert (cache / PEER_HF_REPO / "refs" / "main").read_text() == "0" * 40
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.onnx", "tokenizer.json"]
    assert (snapshot / "model.onnx").read_text() == "model.onnx"
    assert peer_model_cache(model, tmp_path / "cache") == cache  # a second call reuses the layout
