"""Freshness: a procedure's citations checked against the project as it is now."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from memp_mcp.engine import freshness
from memp_mcp.engine.freshness import check, citations
from memp_mcp.engine.memory import Memory
from memp_mcp.project import project_namespace
from memp_mcp.store import SQLiteStore
from tests.claude_code_session import Transcript
from tests.conftest import FakeEmbedder
from tests.test_hooks import FIRST_PROMPT, REWORDED_PROMPT, event, fix_the_bug, hook, memp_cli

EDIT = "Edit: src/cachelib/store.py: replace 'if item.deadline < now:' with 'if item.deadline <= now:'"
STORE = (
    "class Store:\n    def expire(self, now):\n        for item in self.items:\n            if item.deadline < now:\n"
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MEMP_DB_PATH": str(tmp_path / "data" / "memory.db"), "MEMP_HOOK_SERVER": "0"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "cachelib"
    (root / ".git").mkdir(parents=True)
    (root / "src" / "cachelib").mkdir(parents=True)
    (root / "src" / "cachelib" / "store.py").write_text(STORE)
    (root / "tests").mkdir()
    (root / "tests" / "test_cache.py").write_text("def test_expires_at_deadline(): ...\n")
    return root


def test_steps_cite_the_files_commands_and_edits_they_touch() -> None:
    (edit,) = citations(EDIT)
    assert (edit.path, edit.verb, edit.old, edit.new) == (
        "src/cachelib/store.py",
        "edits",
        "if item.deadline < now:",
        "if item.deadline <= now:",
    )
    assert [c.path for c in citations("Bash: cd src && python -m pytest cachelib/t.py -q")] == ["src/cachelib/t.py"]
    assert [c.path for c in citations("Bash: cp a.py b.py && touch c.py && curl https://h.io/d.py > e.txt")] == ["a.py"]
    assert [c.path for c in citations("Bash: git push origin/main")] == []
    assert [c.path for c in citations("Run the linter on `docs/index.md`, then commit.")] == ["docs/index.md"]


def test_a_step_is_stale_when_its_file_is_gone_or_its_edit_no_longer_applies(project: Path) -> None:
    steps = [
        "Bash: python -m pytest tests/test_cache.py -q",
        "Read: src/cachelib/store.py",
        EDIT,
        "Write: src/cachelib/new.py",
        "Bash: python src/cachelib/new.py",
        "Check that the cache expires entries",
    ]
    fresh = check(steps, project)
    assert fresh.stale == [] and fresh.citing_steps == 3
    store = project / "src" / "cachelib" / "store.py"
    store.write_text(STORE.replace("<", "<="))
    applied = check(steps, project)
    assert applied.reasons() == [
        "step 3 edits store.py's `if item.deadline < now:`, but `if item.deadline <= now:` is already there"
    ]
    store.write_text(STORE.replace("if item.deadline < now:", "if item.expired(now):"))
    assert check(steps, project).reasons() == [
        "step 3 edits store.py's `if item.deadline < now:`, which is no longer there"
    ]
    store.rename(project / "src" / "cachelib" / "storage.py")
    gone = check(steps, project)
    assert [s.step for s in gone.stale] == [2, 3] and not gone.stale_throughout
    assert gone.stale[0].reason == "step 2 reads src/cachelib/store.py, which no longer exists"
    (project / "tests" / "test_cache.py").unlink()
    assert check(steps, project).stale_throughout  # step 5 runs what step 4 writes: not stale
    # A bare file name in a command or in prose may live in any folder: never taken as gone.
    assert check(["Bash: pytest test_missing.py", "Update notes.md"], project).stale == []


def test_indentation_and_clipped_text_still_match_and_nothing_outside_the_project_is_read(
    project: Path, tmp_path: Path
) -> None:
    long_old = "for item in self.items:\n            if item.deadline < now:"
    step = f"Edit: {project}/src/cachelib/store.py: replace {long_old[:30] + '...'!r} with 'pass'"
    assert check([" ".join(step.split())], project).stale == []
    # An old text inside its new one: gone when changed otherwise, made when the new text is there.
    rate = project / "rate.py"
    rate.write_text("RATE = 0.2\n")
    grow = ["Edit: rate.py: replace 'RATE = 0.2' with 'RATE = 0.25'"]
    assert check(grow, project).stale == []
    rate.write_text("RATE = 0.25\n")
    assert "is already there" in check(grow, project).reasons()[0]
    rate.write_text("RATE = 0.3\n")
    assert "no longer there" in check(grow, project).reasons()[0]
    # A short new text found elsewhere in the file does not make an edit that still applies stale.
    assert check(["Edit: src/cachelib/store.py: replace 'deadline < now' with 'e'"], project).stale == []
    # Recorded in another checkout of the same project: placed by the project's folder name.
    assert check(["Read: /home/someone/cachelib/src/cachelib/store.py"], project).stale == []
    (tmp_path / "secret.txt").write_text("if item.deadline < now:")
    assert check(["Edit: ../secret.txt: replace 'a' with 'b'", "Read: /etc/passwd"], project).citing_steps == 0


def test_the_check_reads_a_bounded_number_of_bytes(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freshness, "READ_BYTES_PER_FILE", 64)
    monkeypatch.setattr(freshness, "READ_BYTES_PER_CHECK", 100)
    big = project / "big.py"
    big.write_text("x = 1\n" * 1000 + "needle = 2\n")
    # Past the bytes it may read, text it cannot see is not taken as gone.
    assert check(["Edit: big.py: replace 'needle = 2' with 'needle = 3'"], project).stale == []
    reads: list[int] = []
    original = Path.open

    def counting_open(self: Path, *args: object, **kwargs: object) -> object:
        handle = original(self, *args, **kwargs)  # type: ignore[call-overload]
        read = handle.read
        handle.read = lambda n=-1: (reads.append(n), read(n))[1]  # type: ignore[method-assign]
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    check([f"Edit: big.py: replace 'needle {i}' with 'y'" for i in range(3)] + [EDIT], project)
    assert reads and all(0 <= n <= 64 for n in reads) and sum(reads) <= 100


def test_a_stale_procedure_ranks_below_a_fresh_one_and_one_stale_throughout_is_not_given(
    project: Path, tmp_path: Path
) -> None:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), FakeEmbedder())
    stale = memory.record(
        "fix the expiry at the deadline in the store",
        ["Read: src/cachelib/gone.py", EDIT.replace("store", "gone"), "Bash: python -m pytest tests/test_cache.py"],
        "success",
    ).procedure_id
    fresh = memory.record(
        "fix the expiry at the deadline in the cache store",
        ["Read: src/cachelib/store.py", EDIT, "Bash: python -m pytest tests/test_cache.py"],
        "success",
    ).procedure_id
    task = "fix the expiry at the deadline in the store"
    unchecked = memory.recall(task, 2)
    checked = memory.recall(task, 2, project_root=project)
    assert {p.id for p in unchecked.procedures} == {stale, fresh}
    assert [p.id for p in checked.procedures] == [fresh, stale]
    assert checked.procedures[1].stale[0] == "step 1 reads src/cachelib/gone.py, which no longer exists"
    (project / "tests" / "test_cache.py").unlink()
    assert [p.id for p in memory.recall(task, 2, project_root=project).procedures] == [fresh]
    logged = memory.events(last=1)[0]
    assert f"left out as stale throughout [{stale}]" in logged.summary
    with pytest.raises(Exception, match="not a folder"):
        memory.recall(task, 2, project_root=project / "nowhere")


def test_the_hooks_flag_stale_steps_and_inject_nothing_stale_throughout(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    first = Transcript(tmp_path / "s1.jsonl", "s1", project)
    first.prompt(FIRST_PROMPT)
    fix_the_bug(first)
    hook(event("Stop", "s1", first.path, project), env)

    def injected() -> str:
        second = Transcript(tmp_path / "s2.jsonl", "s2", project)
        second.prompt(REWORDED_PROMPT)
        reply = hook(event("UserPromptSubmit", "s2", second.path, project, prompt=REWORDED_PROMPT), env).stdout
        return str(json.loads(reply)["hookSpecificOutput"]["additionalContext"]) if reply else ""

    assert "<procedure" in injected() and "Stale:" not in injected()
    (project / "src" / "cachelib" / "store.py").write_text(STORE.replace("<", "<="))
    context = injected()
    assert "Stale: step" in context and "is already there" in context
    (project / "src" / "cachelib" / "store.py").unlink()
    (project / "tests" / "test_cache.py").unlink()
    assert injected() == ""
    log = memp_cli(env, "log", "--last", "1", "--json")
    assert "left out as stale throughout" in json.loads(log)["summary"]
    namespace = project_namespace(project)
    shown = memp_cli(env, "show", "1", "--namespace", namespace, "--project", str(project))
    assert "## Stale steps" in shown and "which no longer exists" in shown
    listed = json.loads(memp_cli(env, "list", "--json", "--namespace", namespace, "--project", str(project)))
    assert listed["stale"] and all("no longer exists" in reason for reason in listed["stale"])


def test_the_churn_benchmark_flags_what_the_churn_made_stale_and_nothing_else() -> None:
    from memp_mcp.bench.freshness import run_freshness

    results = run_freshness(modules=12, seed=3, repeats=1)
    assert results["flagged_before_churn"] == 0 and results["stale_steps"] > 0
    assert results["stale_flagged_share"] >= 0.9 and results["fresh_flagged"] == 0
    assert set(results["p95_ms"]) == {"with", "without", "check", "check_cpu"}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_recall_procedure_checks_the_project_root_it_is_given_unless_the_client_is_remote(
    project: Path, tmp_path: Path, anyio_backend: str
) -> None:
    from mcp import Client

    from memp_mcp.config import load_settings
    from memp_mcp.server.app import build_server

    settings = load_settings({"db_path": tmp_path / "s.db"}, environ={})
    memory = Memory(SQLiteStore(settings.db_path), FakeEmbedder())
    # The file the work read and changed is gone; the test file it ran is still there.
    steps = ["Read: src/cachelib/gone.py", EDIT.replace("store", "gone"), "Bash: python -m pytest tests/test_cache.py"]
    memory.record("fix the expiry at the deadline", steps, "success")
    arguments = {"task": "fix the expiry at the deadline", "project_root": str(project)}
    gone = [
        "step 1 reads src/cachelib/gone.py, which no longer exists",
        "step 2 edits src/cachelib/gone.py, which no longer exists",
    ]
    for remote, expected in ((False, gone), (True, None)):
        async with Client(build_server(settings, memory=memory, remote=remote), raise_exceptions=True) as client:
            result = await client.call_tool("recall_procedure", arguments)
        assert result.structured_content is not None
        (procedure,) = result.structured_content["procedures"]
        assert procedure.get("stale") == expected
        assert ("Stale: step 1 reads" in result.content[0].text) == (not remote)  # type: ignore[union-attr]
