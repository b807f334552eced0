"""A running server and the database's embedding model: another process re-embeds, or stores keys
without vectors, and the server notices without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from memp_mcp.config import load_settings
from memp_mcp.embedding import BackgroundEmbedder
from memp_mcp.engine.memory import Memory
from memp_mcp.server.app import build_server
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder
from tests.test_memory import CLEAN_SOAP, HEAT_EGG

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def serving(memory: Memory) -> Client:
    settings = load_settings({"db_path": memory.store.path}, environ={})
    return Client(build_server(settings, memory=memory), raise_exceptions=True)


async def test_a_server_stops_using_its_model_when_another_process_re_embeds_with_another(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    memory = Memory(SQLiteStore(path), FakeEmbedder(identity="model-a"))
    async with serving(memory) as client:
        await client.call_tool(
            "record_trajectory", {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success"}
        )
        # Another process re-embeds everything with a model of the same size.
        other = SQLiteStore(path)
        other.reindex("model-b", 64, FakeEmbedder(identity="model-b").embed)
        recalled = await client.call_tool("recall_procedure", {"task": "put a clean soapbar in cabinet"})
        assert recalled.structured_content["retrieval"].startswith("keyword only")
        assert "model-b" in recalled.structured_content["retrieval"]
        await client.call_tool(
            "record_trajectory",
            {"task": "heat some egg and put it in garbagecan", "steps": HEAT_EGG, "outcome": "success"},
        )
        stats = await client.call_tool("memory_stats", {})
        assert "reindex" in stats.structured_content["model"]
    # Nothing model-a made went in after the switch: the new keys wait for a model-b process.
    assert {text for _, text in other.keys_without_vectors()} >= {"heat some egg and put it in garbagecan"}
    b_process = Memory(other, FakeEmbedder(identity="model-b"))
    assert b_process.recall("heat some egg and put it in garbagecan").retrieval == "vector+keyword"
    assert other.keys_without_vectors() == [] and other.integrity_problems() == []


async def test_keys_stored_without_vectors_elsewhere_are_embedded_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    memory = Memory(SQLiteStore(path), FakeEmbedder())
    async with serving(memory) as client:
        await client.call_tool(
            "record_trajectory", {"task": "put a clean soapbar in cabinet", "steps": CLEAN_SOAP, "outcome": "success"}
        )
        # A process without a model (MEMP_EMBEDDINGS=0, or its model still loading) records a task.
        elsewhere = SQLiteStore(path)
        Memory(elsewhere, BackgroundEmbedder(None)).record(
            "heat some egg and put it in garbagecan", HEAT_EGG, "success"
        )
        assert elsewhere.keys_without_vectors()
        recalled = await client.call_tool("recall_procedure", {"task": "heat some egg and put it in garbagecan"})
        assert recalled.structured_content["retrieval"] == "vector+keyword"
    assert elsewhere.keys_without_vectors() == [] and elsewhere.integrity_problems() == []
