"""Hostile and malformed tool arguments, generated and hand-picked: every one is an error result or a
clean answer, the server keeps serving, and nothing is written half-way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from memp_mcp.config import load_settings
from memp_mcp.engine.memory import Memory
from memp_mcp.server.app import build_server
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder

TOOLS = [
    "recall_procedure",
    "record_trajectory",
    "report_outcome",
    "get_procedure",
    "list_procedures",
    "edit_procedure",
    "forget_procedure",
    "restore_procedure",
    "memory_stats",
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=200),
    st.sampled_from(
        [
            '"AND (',
            "NEAR(a b)",
            "*",
            "'; DROP TABLE procedures; --",
            "\x00\x01\x1b[2J",
            "\ud800",
            "a" * 30_000,
            "SELECT * FROM meta",
            "{object}",
            "../../etc/passwd",
        ]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
arguments = st.dictionaries(
    st.sampled_from(
        [
            "task",
            "steps",
            "outcome",
            "k",
            "namespace",
            "procedure",
            "agent",
            "recall_id",
            "success",
            "notes",
            "correction",
            "trajectory",
            "procedure_id",
            "status",
            "text",
            "limit",
            "title",
            "pitfalls",
            "when_to_use",
            "junk",
        ]
    ),
    json_values,
    max_size=6,
)


def deeply_nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"action": value}
    return value


HAND_PICKED: list[tuple[str, dict[str, Any]]] = [
    ("record_trajectory", {"task": 12, "steps": [], "outcome": "success"}),
    ("record_trajectory", {"task": "t", "steps": [deeply_nested(200)], "outcome": "success"}),
    ("record_trajectory", {"task": "t", "steps": [{"action": "a" * 3_000_000}], "outcome": "success"}),
    ("record_trajectory", {"task": "t" * 10_000, "steps": [{"action": "a"}], "outcome": "success"}),
    (
        "record_trajectory",
        {
            "task": "t",
            "steps": [{"action": "a"}],
            "outcome": "success",
            "procedure": {"title": "x", "steps": ["s"] * 1000},
        },
    ),
    ("record_trajectory", {"task": "t", "steps": [{"action": "a"}], "outcome": "success", "namespace": "../x"}),
    ("recall_procedure", {"task": "x", "k": -5}),
    ("recall_procedure", {"task": "x", "k": 1.5}),
    ("recall_procedure", {"task": "x", "k": "3; DROP TABLE"}),
    ("recall_procedure", {"task": None}),
    ("report_outcome", {"recall_id": "x" * 100_000, "success": True}),
    ("report_outcome", {"recall_id": "abc", "success": "maybe"}),
    ("get_procedure", {"procedure_id": -1}),
    ("get_procedure", {"procedure_id": 10**30}),
    ("list_procedures", {"limit": 10**9}),
    ("edit_procedure", {"procedure_id": 1, "steps": []}),
]


async def exercise(client: Client, tool: str, args: dict[str, Any]) -> None:
    result = await client.call_tool(tool, args)
    if result.is_error:
        text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
        assert text.startswith(f"Error executing tool {tool}"), text
        # An actionable message, not the SDK's bare "Error executing tool X" that hides a crash.
        assert len(text) > len(f"Error executing tool {tool}") + 5, f"no message for {tool}({args!r:.200})"
    alive = await client.call_tool("memory_stats", {})
    assert not alive.is_error


def check_database(path: Path) -> None:
    with SQLiteStore(path) as store:
        assert store.integrity_problems() == []
        # Every procedure has its sources and is indexed (nothing half-written).
        for procedure in store.list_procedures(limit=500):
            assert procedure.source_trajectory_ids


@pytest.mark.slow
def test_generated_arguments_never_crash_the_server(tmp_path: Path) -> None:
    db = tmp_path / "fuzz.db"
    memory = Memory(SQLiteStore(db), FakeEmbedder())
    server = build_server(load_settings({"db_path": db, "agent_edits": True}, environ={}), memory=memory)
    tried = 0

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(tool=st.sampled_from(TOOLS), args=arguments)
    def run(tool: str, args: dict[str, Any]) -> None:
        nonlocal tried
        tried += 1

        async def go() -> None:
            async with Client(server) as client:
                await exercise(client, tool, json.loads(json.dumps(args, default=str)) if _jsonable(args) else {})

        anyio.run(go)

    run()
    check_database(db)
    assert tried >= 150


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (ValueError, TypeError):
        return False


@pytest.mark.parametrize(("tool", "args"), HAND_PICKED, ids=[f"{t}-{i}" for i, (t, _) in enumerate(HAND_PICKED)])
def test_hand_picked_hostile_arguments(tmp_path: Path, tool: str, args: dict[str, Any]) -> None:
    db = tmp_path / "hostile.db"
    memory = Memory(SQLiteStore(db), FakeEmbedder())
    server = build_server(load_settings({"db_path": db, "agent_edits": True}, environ={}), memory=memory)

    async def go() -> None:
        async with Client(server) as client:
            await exercise(client, tool, args)
            before = memory.store.count_trajectories()
            result = await client.call_tool(tool, args)
            if result.is_error:
                assert memory.store.count_trajectories() == before

    anyio.run(go)
    check_database(db)
