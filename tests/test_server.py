"""The MCP server through the SDK's Client: in memory, over a real stdio process, and over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.types import INVALID_PARAMS, TextContent, TextResourceContents

from memp_mcp.config import load_settings
from memp_mcp.embedding import FastEmbedEmbedder
from memp_mcp.engine.memory import Memory
from memp_mcp.server.app import build_server
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder
from tests.test_memory import CLEAN_SOAP, HEAT_EGG

pytestmark = pytest.mark.anyio
MAIN_TOOLS = {"recall_procedure", "record_trajectory", "report_outcome"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    settings = load_settings({"db_path": tmp_path / "server.db", "agent_edits": True}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), FakeEmbedder(), read_only_namespaces=frozenset({"library"}))
    async with Client(build_server(settings, memory=memory), raise_exceptions=True) as connected:
        yield connected


def text_of(result: Any) -> str:
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


async def test_tools_are_listed_with_descriptions_and_schemas(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert MAIN_TOOLS | {
        "get_procedure",
        "list_procedures",
        "edit_procedure",
        "forget_procedure",
        "restore_procedure",
        "memory_stats",
    } <= set(tools)
    for name in MAIN_TOOLS:
        assert tools[name].description and len(tools[name].description) > 80
        assert tools[name].output_schema is not None
    assert set(tools["record_trajectory"].input_schema["required"]) == {"task", "steps", "outcome"}
    assert set(tools["recall_procedure"].output_schema["properties"]) >= {"recall_id", "procedures", "retrieval"}
    k = tools["recall_procedure"].input_schema["properties"]["k"]
    assert (k["minimum"], k["maximum"]) == (1, 20)


async def test_the_recall_schema_states_its_fields_as_type_lists_and_still_checks_them(client: Client) -> None:
    from jsonschema import Draft202012Validator

    schema = next(t for t in (await client.list_tools()).tools if t.name == "recall_procedure").output_schema
    assert schema is not None and "anyOf" not in str(schema)
    await client.call_tool(
        "record_trajectory", {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success"}
    )
    recalled = await client.call_tool("recall_procedure", {"task": "put a clean soapbar in cabinet"})
    answer = recalled.structured_content
    assert answer is not None and answer["procedures"][0]["success_rate"] is None
    validator = Draft202012Validator(schema)
    assert not list(validator.iter_errors(answer))
    # The published schema is the top level only (the tool list is read by every session); the server
    # still checks every result against the full model before sending it.
    wrong = {**answer, "recall_id": 7, "procedures": {}}
    problems = {tuple(e.absolute_path) for e in validator.iter_errors(wrong)}
    assert problems == {("recall_id",), ("procedures",)}


async def test_the_tool_list_stays_under_8000_characters(tmp_path: Path) -> None:
    """Every agent session carries tools/list in its context: its size is paid on every turn."""
    import json

    settings = load_settings({"db_path": tmp_path / "server.db"}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), FakeEmbedder())
    async with Client(build_server(settings, memory=memory)) as connected:
        tools = (await connected.list_tools()).tools
    listed = json.dumps([tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools])
    print(f"tools/list: {len(listed)} characters for {len(tools)} tools")
    assert len(listed) <= 8000


async def test_a_call_is_still_checked_against_the_full_model_behind_the_short_schema(client: Client) -> None:
    refused = await client.call_tool("recall_procedure", {"task": "x" * 5000})
    assert refused.is_error and "2,000" in text_of(refused).replace("2000", "2,000"), text_of(refused)
    result = await client.call_tool(
        "record_trajectory", {"task": "t", "steps": [{"observation": "no action"}], "outcome": "success"}
    )
    assert result.is_error


async def test_record_recall_report_round_trip(client: Client) -> None:
    recorded = await client.call_tool(
        "record_trajectory",
        {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success", "agent": "tester"},
    )
    assert not recorded.is_error, text_of(recorded)
    assert recorded.structured_content["action"] == "created"
    await client.call_tool(
        "record_trajectory", {"task": "heat some egg and put it in garbagecan", "steps": HEAT_EGG, "outcome": "success"}
    )

    recalled = await client.call_tool("recall_procedure", {"task": "put a clean soapbar in the cabinet", "k": 2})
    assert not recalled.is_error
    data = recalled.structured_content
    best = data["procedures"][0]
    assert best["id"] == recorded.structured_content["procedure_id"]
    assert best["author"] == "tester" and best["source_trajectory_ids"] == [
        recorded.structured_content["trajectory_id"]
    ]
    assert {"steps", "pitfalls", "relevance", "success_rate", "exemplar", "when_to_use"} <= set(best)
    assert data["recall_id"] in text_of(recalled) and "1. go to countertop 1" in text_of(recalled)

    reported = await client.call_tool(
        "report_outcome",
        {
            "recall_id": data["recall_id"],
            "success": False,
            "notes": "the cabinet was locked",
            "correction": "unlock the cabinet before putting anything in it",
        },
    )
    assert not reported.is_error
    assert reported.structured_content["adjusted_procedure_ids"] == [best["id"]]
    detail = await client.call_tool("get_procedure", {"procedure_id": best["id"]})
    procedure = detail.structured_content["procedure"]
    assert procedure["version"] == 2 and "unlock the cabinet before putting anything in it" in procedure["pitfalls"]
    assert [v["version"] for v in detail.structured_content["history"]] == [1]
    assert detail.structured_content.get("worked_example") is None
    # On request, the run it was built from, over the wire: every step, and the text says so.
    example = await client.call_tool("get_procedure", {"procedure_id": best["id"], "worked_example": True})
    run = example.structured_content["worked_example"]
    assert run["trajectory_id"] == recorded.structured_content["trajectory_id"] and run["outcome"] == "success"
    assert [s["action"] for s in run["steps"]] == [s["action"] for s in CLEAN_SOAP]
    assert "## Worked example (trajectory #" in text_of(example)


async def test_management_tools(client: Client) -> None:
    await client.call_tool(
        "record_trajectory", {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success"}
    )
    listed = await client.call_tool("list_procedures", {})
    assert [p["id"] for p in listed.structured_content["procedures"]] == [1]
    edited = await client.call_tool("edit_procedure", {"procedure_id": 1, "version": 1, "steps": ["do a", "do b"]})
    assert edited.structured_content["steps"] == ["do a", "do b"]
    forgotten = await client.call_tool("forget_procedure", {"procedure_id": 1})
    assert forgotten.structured_content["status"] == "deprecated"
    recalled = await client.call_tool("recall_procedure", {"task": "put a clean soapbar in cabinet"})
    assert recalled.structured_content["procedures"] == []
    restored = await client.call_tool("restore_procedure", {"procedure_id": 1})
    assert restored.structured_content["status"] == "active"
    stats = await client.call_tool("memory_stats", {})
    assert stats.structured_content["stats"]["procedures_active"] == 1
    assert stats.structured_content["model"].startswith("ready")


async def test_resources_and_prompt(client: Client) -> None:
    await client.call_tool(
        "record_trajectory", {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success"}
    )
    read = await client.read_resource("memp://procedures/1")
    (contents,) = read.contents
    assert isinstance(contents, TextResourceContents)
    assert contents.text.startswith("# Put a clean {object} in {target}") and "## Steps" in contents.text
    for missing in ("memp://procedures/999", "memp://procedures/abc"):
        with pytest.raises(MCPError, match="no procedure with id") as raised:
            await client.read_resource(missing)
        assert raised.value.code == INVALID_PARAMS
    stats = (await client.read_resource("memp://stats")).contents[0]
    assert isinstance(stats, TextResourceContents) and '"procedures_active": 1' in stats.text
    prompt = await client.get_prompt("use_procedural_memory", {"task": "tidy the desk"})
    message = prompt.messages[0].content
    assert isinstance(message, TextContent)
    assert "recall_procedure" in message.text and "report_outcome" in message.text and "tidy the desk" in message.text


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("record_trajectory", {"task": "", "steps": CLEAN_SOAP, "outcome": "success"}, "task must be a non-empty"),
        ("record_trajectory", {"task": "t", "steps": [{"action": "a"}] * 10_000, "outcome": "success"}, "at most 500"),
        (
            "record_trajectory",
            {"task": "t", "steps": [{"action": "a", "observation": "o" * 5_000_000}], "outcome": "success"},
            "at most 20000 characters",
        ),
        ("record_trajectory", {"task": "t", "steps": CLEAN_SOAP, "outcome": "maybe"}, "outcome"),
        ("record_trajectory", {"task": "t", "steps": "not a list", "outcome": "success"}, "steps"),
        (
            "record_trajectory",
            {"task": "t", "steps": CLEAN_SOAP, "outcome": "success", "namespace": "library"},
            "read-only",
        ),
        ("recall_procedure", {"task": "x", "k": 0}, "k must be an integer from 1 to 20"),
        ("recall_procedure", {"task": "x", "k": 10**6}, "k must be an integer from 1 to 20"),
        ("recall_procedure", {"task": "   "}, "task must be a non-empty"),
        ("recall_procedure", {"task": "x", "namespace": "no spaces allowed"}, "namespace"),
        ("report_outcome", {"recall_id": "not-a-recall", "success": True}, "no recall with id"),
        ("get_procedure", {"procedure_id": 12345}, "no procedure with id 12345"),
    ],
)
async def test_bad_input_is_an_error_result_and_the_server_keeps_serving(
    client: Client, tool: str, arguments: dict[str, Any], message: str
) -> None:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    assert message in text_of(result)
    after = await client.call_tool("memory_stats", {})
    assert not after.is_error and after.structured_content["stats"]["trajectories"] == 0


async def test_full_text_syntax_is_searched_as_text(client: Client) -> None:
    await client.call_tool(
        "record_trajectory", {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success"}
    )
    for task in ['"AND (', "NEAR(soapbar cabinet, 2)", "soap* cabinet", "cabinet:soapbar OR )"]:
        result = await client.call_tool("recall_procedure", {"task": task})
        assert not result.is_error, text_of(result)
    found = await client.call_tool("recall_procedure", {"task": 'clean "soapbar" AND (cabinet'})
    assert found.structured_content["procedures"][0]["id"] == 1


async def test_unknown_namespace_returns_an_empty_list(client: Client) -> None:
    result = await client.call_tool("recall_procedure", {"task": "anything", "namespace": "elsewhere"})
    assert not result.is_error and result.structured_content["procedures"] == []


@pytest.mark.real_model
async def test_real_model_recalls_a_paraphrase_and_nothing_for_an_unrelated_task(
    tmp_path: Path, real_embedder: FastEmbedEmbedder
) -> None:
    settings = load_settings({"db_path": tmp_path / "real.db"}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), real_embedder)
    async with Client(build_server(settings, memory=memory)) as client:
        for task, steps in (
            ("put a clean soapbar in cabinet", CLEAN_SOAP),
            ("heat some egg and put it in garbagecan", HEAT_EGG),
        ):
            await client.call_tool("record_trajectory", {"task": task, "steps": steps, "outcome": "success"})
        found = await client.call_tool("recall_procedure", {"task": "warm an egg up and throw it in the trash"})
        assert found.structured_content["procedures"][0]["title"].startswith("Heat some {object}")
        none = await client.call_tool("recall_procedure", {"task": "book a flight to Lisbon for the conference"})
        assert none.structured_content["procedures"] == []


# -- real transports ---------------------------------------------------------------------


def keyword_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "MEMP_DB_PATH": str(tmp_path / "t.db"),
        "MEMP_EMBEDDINGS": "0",
        "MEMP_LOG_LEVEL": "WARNING",
        **extra,
    }


async def round_trip(client: Client) -> None:
    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools >= MAIN_TOOLS
    recorded = await client.call_tool(
        "record_trajectory", {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success"}
    )
    assert not recorded.is_error, text_of(recorded)
    recalled = await client.call_tool("recall_procedure", {"task": "clean the soapbar and put it in the cabinet"})
    assert recalled.structured_content["retrieval"].startswith("keyword only")
    assert recalled.structured_content["procedures"][0]["id"] == recorded.structured_content["procedure_id"]
    reported = await client.call_tool(
        "report_outcome", {"recall_id": recalled.structured_content["recall_id"], "success": True}
    )
    assert not reported.is_error
    bad = await client.call_tool("recall_procedure", {"task": "x", "k": 0})
    assert bad.is_error


async def test_stdio_subprocess_round_trip(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "memp_mcp.cli", "serve"], env=keyword_env(tmp_path)
    )
    with anyio.fail_after(60):
        async with Client(params) as client:
            await round_trip(client)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "memp_mcp.cli", "serve", "--transport", "streamable-http", "--port", str(port)],
            env=keyword_env(tmp_path, MEMP_HTTP_TOKEN="s3cret"),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)


def post(url: str, headers: dict[str, str]) -> int:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_http_requires_the_bearer_token_and_checks_the_host(http_server: str) -> None:
    assert post(http_server, {}) == 401
    assert post(http_server, {"Authorization": "Bearer wrong"}) == 401
    assert post(http_server, {"Authorization": "Bearer s3cret", "Host": "evil.example.com"}) in (403, 421)


async def test_http_round_trip_with_the_token(http_server: str) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}, timeout=30) as http:
        with anyio.fail_after(60):
            async with Client(streamable_http_client(http_server, http_client=http)) as client:
                await round_trip(client)


async def test_sampling_distills_the_procedure_when_the_client_offers_it(tmp_path: Path) -> None:
    from mcp.types import CreateMessageResult

    prompts: list[str] = []
    replies = iter(
        [
            'Here it is: {"title": "Clean and store soap", "when_to_use": "soap goes in a cupboard",'
            ' "steps": ["take {object}", "rinse {object} at the sink", "put {object} in {target}"],'
            ' "pitfalls": ["the bathtub does not clean"]}',
            "I cannot help with that.",
        ]
    )

    async def sample(context: Any, params: Any) -> CreateMessageResult:
        prompts.append(params.messages[0].content.text)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=next(replies)), model="m")

    settings = load_settings({"db_path": tmp_path / "s.db"}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), FakeEmbedder())
    async with Client(build_server(settings, memory=memory), sampling_callback=sample) as client:
        first = await client.call_tool(
            "record_trajectory", {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success"}
        )
        procedure = memory.store.get_procedure(first.structured_content["procedure_id"])
        assert procedure.source == "sampling" and procedure.steps[1] == "rinse {object} at the sink"
        assert "put a clean soapbar in cabinet" in prompts[0] and "clean soapbar 1 with sinkbasin 1" in prompts[0]
        # A reply that is not a procedure: the extractive builder takes over.
        second = await client.call_tool(
            "record_trajectory",
            {"task": "heat some egg and put it in garbagecan", "steps": HEAT_EGG, "outcome": "success"},
        )
        assert memory.store.get_procedure(second.structured_content["procedure_id"]).source == "extractive"
        # The caller's own draft is never replaced by sampling, and failures are not distilled.
        draft = {"title": "mine", "steps": ["a", "b"]}
        third = await client.call_tool(
            "record_trajectory",
            {"task": "water the plants", "steps": CLEAN_SOAP, "outcome": "success", "procedure": draft},
        )
        assert memory.store.get_procedure(third.structured_content["procedure_id"]).source == "agent"
        await client.call_tool("record_trajectory", {"task": "t", "steps": CLEAN_SOAP, "outcome": "failure"})
    assert len(prompts) == 2
