"""A memory's own export imported back: each procedure is recognised as the one it came from."""

from __future__ import annotations

from pathlib import Path

from memp_mcp.engine.library import export_library, import_library
from memp_mcp.engine.memory import Memory
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder
from tests.test_memory import CLEAN_SOAP, HEAT_EGG

SOAP_TASK = "put a clean soapbar in cabinet"
EGG_TASK = "heat some egg and put it in garbagecan"


def recorded_memory(path: Path, namespace: str = "kitchen") -> Memory:
    memory = Memory(SQLiteStore(path), FakeEmbedder(), namespace=namespace)
    memory.record(SOAP_TASK, CLEAN_SOAP, "success")
    memory.record(EGG_TASK, HEAT_EGG, "success")
    return memory


def proven(memory: Memory, task: str) -> int:
    """The id of `task`'s procedure after one reported success for its current steps."""
    recalled = memory.recall(task)
    memory.report_outcome(recalled.recall_id, True)
    return recalled.procedures[0].id


def test_a_library_file_imported_back_into_its_namespace_is_already_present(tmp_path: Path) -> None:
    memory = recorded_memory(tmp_path / "memp.db")
    proven(memory, SOAP_TASK)
    before = [(p.id, p.success_count, p.support_count, p.version) for p in memory.list_procedures("kitchen")]
    report = import_library(memory, list(export_library(memory, "kitchen")))
    assert (report.created, report.merged, report.unchanged) == (0, 0, 2)
    assert [(p.id, p.success_count, p.support_count, p.version) for p in memory.list_procedures("kitchen")] == before
