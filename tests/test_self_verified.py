"""A procedure whose own run ended on a passing test run says so, and ranks above one nothing checked,
without passing for proven: only an outcome reported after a recall proves it (docs/trust.md)."""

from __future__ import annotations

from pathlib import Path

from memp_mcp.engine.memory import Memory
from memp_mcp.server.render import render_injection, render_recall
from memp_mcp.store import SQLiteStore
from tests.test_retrieve import TableEmbedder

TASK = "fix the expiry of cache entries at their deadline"
FIX = {"action": "Edit: src/cachelib/store.py", "observation": "The file src/cachelib/store.py has been updated."}
PASSING = {
    "action": "Bash: python -m pytest tests/test_cache.py -q",
    "observation": "4 passed in 0.03s",
    "exit_code": 0,
}
FAILING = {
    "action": "Bash: python -m pytest tests/test_cache.py -q",
    "observation": "1 failed, 3 passed",
    "exit_code": 1,
}
LISTING = {"action": "Bash: ls src/cachelib", "observation": "store.py", "exit_code": 0}


def recalled(tmp_path: Path, steps: list[dict[str, object]], outcome: str) -> tuple[Memory, str]:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), TableEmbedder())
    memory.record(TASK, steps, outcome)
    result = memory.recall(TASK)
    return memory, render_injection(result.procedures, result.recall_id, "default")


def test_a_procedure_whose_run_passed_its_own_tests_says_verified_not_proven(tmp_path: Path) -> None:
    memory, injected = recalled(tmp_path, [FAILING, FIX, PASSING], "success")
    assert 'record="0 succeeded, 0 failed, verified by its own test run, no reported success yet"' in injected
    assert "not yet proven" not in injected
    found = memory.recall(TASK)
    assert found.procedures[0].verified_by_test_run and found.procedures[0].provisional
    assert "verified by its own test run" in render_recall(found) and "PROVISIONAL" in render_recall(found)


def test_runs_no_test_checked_stay_not_yet_proven(tmp_path: Path) -> None:
    for name, steps, outcome in (
        ("unknown", [FIX, PASSING], "unknown"),  # the agent did not say it worked
        ("no-tests", [FIX, LISTING], "success"),  # it worked, but no test said so
    ):
        memory, injected = recalled(tmp_path / name, steps, outcome)
        assert 'record="0 succeeded, 0 failed, provisional: not yet proven"' in injected, name
        assert not memory.recall(TASK).procedures[0].verified_by_test_run, name


def test_a_reported_failure_or_success_replaces_what_its_own_run_said(tmp_path: Path) -> None:
    memory, _ = recalled(tmp_path / "failed", [FAILING, FIX, PASSING], "success")
    first = memory.recall(TASK)
    memory.report_outcome(str(first.recall_id), False, procedure_id=first.procedures[0].id)
    again = memory.recall(TASK)
    assert again.procedures and not again.procedures[0].verified_by_test_run
    assert "verified by its own test run" not in render_injection(again.procedures, again.recall_id, "default")

    memory, _ = recalled(tmp_path / "proven", [FAILING, FIX, PASSING], "success")
    first = memory.recall(TASK)
    memory.report_outcome(str(first.recall_id), True, procedure_id=first.procedures[0].id)
    proven = memory.recall(TASK).procedures[0]
    assert not proven.provisional and not proven.verified_by_test_run


def test_a_run_verified_by_its_tests_ranks_above_an_equal_one_nothing_checked(tmp_path: Path) -> None:
    request = "entries do not expire at their deadline"  # its words are in both tasks: the two fit as well
    checked, unchecked = "make cache entries expire at the deadline", "make stored entries expire at the deadline"
    memory = Memory(SQLiteStore(tmp_path / "m.db"), TableEmbedder({request: {checked: 0.6, unchecked: 0.6}}))
    memory.record(unchecked, [FIX, PASSING], "unknown")
    memory.record(checked, [FAILING, FIX, PASSING], "success")
    found = memory.recall(request, k=2).procedures
    assert [p.exemplar_task for p in found] == [checked, unchecked]
    assert [p.verified_by_test_run for p in found] == [True, False]
