"""`memp-mcp hook` driven as Claude Code drives it: one process per event, JSON on stdin."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memp_mcp.engine.memory import Memory
from memp_mcp.engine.results import RecalledProcedure
from memp_mcp.hooks.client import ensure_runtime_dir, server_pid, socket_path
from memp_mcp.hooks.transcript import ToolCall, Turn, infer_outcome, read_last_turn, turn_steps
from memp_mcp.project import project_namespace
from memp_mcp.server.render import INJECTION_CHARS, render_injection
from memp_mcp.store import SQLiteStore
from memp_mcp.store.driver import connect
from tests.claude_code_session import Transcript

FIRST_PROMPT = "Fix the failing TTL expiry test in cachelib: entries whose deadline equals now are not expired"
REWORDED_PROMPT = "cachelib's TTL store does not expire an entry at exactly its deadline; please fix the expiry"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project the sessions work on, with the files their steps cite (the prompt hook checks them)."""
    root = tmp_path / "cachelib"
    (root / ".git").mkdir(parents=True)
    (root / "src" / "cachelib").mkdir(parents=True)
    (root / "src" / "cachelib" / "store.py").write_text("def expire(self, now):\n    if item.deadline < now:\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_cache.py").write_text("def test_expires_at_deadline(): ...\n")
    return root


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # No warm server here (it would outlive the test); test_a_warm_server_answers_later_prompts starts one.
    return {
        **os.environ,
        "MEMP_DB_PATH": str(tmp_path / "data" / "memory.db"),
        "MEMP_LOG_LEVEL": "DEBUG",
        "MEMP_HOOK_SERVER": "0",
    }


def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    """Poll `condition` until it holds; fail after `seconds` (a bound on a wait, not a timing assertion)."""
    give_up = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > give_up:
            raise TimeoutError(f"still waiting after {seconds} s")
        time.sleep(0.1)


def hook(payload: dict[str, Any] | bytes, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.entry", "hook"],
        input=raw.decode("utf-8", "replace"),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done


def event(name: str, session: str, transcript: Path, cwd: Path, **fields: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "transcript_path": str(transcript),
        "cwd": str(cwd),
        "permission_mode": "default",
        "hook_event_name": name,
        **fields,
    }


def fix_the_bug(transcript: Transcript) -> None:
    """The tool calls of a real bug fix: a failing run, reading, a rejected edit, the fix, a passing run."""
    transcript.tool("TodoWrite", {"todos": [{"content": "fix expiry", "status": "in_progress"}]}, "Todos updated")
    transcript.tool(
        "Bash",
        {"command": "python -m pytest tests/test_cache.py -q", "description": "Run the cache tests"},
        # Claude Code's Bash tool marks a non-zero exit as an error and says the code first.
        "Exit code 1\n..F.\n=== FAILURES ===\n___ test_expires_at_deadline ___\n>       assert cache.get('k') is None\n"
        "E       AssertionError: assert 'v' is None\ntests/test_cache.py:31: AssertionError\n"
        "1 failed, 3 passed in 0.04s",
        is_error=True,
    )
    transcript.tool("Grep", {"pattern": "deadline", "path": "src"}, "src/cachelib/store.py:42: if item.deadline < now:")
    transcript.tool(
        "Read", {"file_path": "src/cachelib/store.py"}, "40 def expire(self, now):\n42     if item.deadline < now:"
    )
    transcript.tool(
        "Edit",
        {
            "file_path": "src/cachelib/stor.py",
            "old_string": "if item.deadline < now:",
            "new_string": "if item.deadline <= now:",
        },
        "<tool_use_error>File does not exist.</tool_use_error>",
        is_error=True,
    )
    transcript.tool(
        "Edit",
        {
            "file_path": "src/cachelib/store.py",
            "old_string": "if item.deadline < now:",
            "new_string": "if item.deadline <= now:",
        },
        "The file src/cachelib/store.py has been updated.",
    )
    transcript.tool("Bash", {"command": "python -m pytest tests/test_cache.py -q"}, "....\n4 passed in 0.03s")
    transcript.say("Fixed: entries now expire at their deadline (`<=`), and the four cache tests pass.")


def test_a_coding_session_is_recorded_and_the_next_session_gets_its_procedure(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    first = Transcript(tmp_path / "t" / "s1.jsonl", "s1", project)
    path = first.path
    assert hook(event("SessionStart", "s1", path, project, source="startup"), env).stdout == ""
    first.noise()
    first.prompt(FIRST_PROMPT)
    # Nothing is known yet: the prompt goes through untouched.
    assert hook(event("UserPromptSubmit", "s1", path, project, prompt=FIRST_PROMPT), env).stdout == ""
    fix_the_bug(first)
    assert hook(event("Stop", "s1", path, project, stop_hook_active=False), env).stdout == ""
    assert hook(event("SessionEnd", "s1", path, project, reason="prompt_input_exit"), env).stdout == ""

    namespace = project_namespace(project)
    store = SQLiteStore(Path(env["MEMP_DB_PATH"]))
    assert store.count_trajectories(namespace) == 1, "Stop recorded the turn; SessionEnd did not record it again"
    trajectory = store.get_trajectory(1)
    assert trajectory.task == FIRST_PROMPT and trajectory.outcome.value == "success"
    assert trajectory.agent == "claude-code/claude-sonnet-4-5"
    actions = [step.action for step in trajectory.steps]
    assert actions[0] == "Bash: python -m pytest tests/test_cache.py -q" and not any("TodoWrite" in a for a in actions)
    assert trajectory.steps[0].exit_code == 1 and trajectory.steps[0].observation is not None
    assert "1 failed, 3 passed" in trajectory.steps[0].observation
    procedures = store.list_procedures(namespace, None, None, 10, 0)
    assert len(procedures) == 1
    # The failing first run reproduced the bug: a step of the procedure, not a pitfall or a lesson;
    # the edit the tool refused is the pitfall.
    built = store.get_procedure(procedures[0].id)
    assert built.steps[1].startswith(
        "Reproduce first: `python -m pytest tests/test_cache.py -q` (fails before the change)"
    )
    assert not any("pytest" in pitfall.split(" did not work")[0] for pitfall in built.pitfalls), built.pitfalls
    assert any("stor.py" in pitfall for pitfall in built.pitfalls), built.pitfalls

    second = Transcript(tmp_path / "t" / "s2.jsonl", "s2", project)
    hook(event("SessionStart", "s2", second.path, project, source="startup"), env)
    second.prompt(REWORDED_PROMPT)
    reply = hook(event("UserPromptSubmit", "s2", second.path, project, prompt=REWORDED_PROMPT), env).stdout
    output = json.loads(reply)["hookSpecificOutput"]
    assert output["hookEventName"] == "UserPromptSubmit"
    context = output["additionalContext"]
    assert len(context) <= INJECTION_CHARS
    assert f'<procedure id="{procedures[0].id}"' in context and "report_outcome(recall_id=" in context
    assert f'namespace="{namespace}"' in context
    # The first session ended on its passing test run: verified by it, not yet proven by an outcome.
    assert 'record="0 succeeded, 0 failed, verified by its own test run, no reported success yet"' in context
    # The steps of the fix (their wording is the builder's business), not just a title.
    assert "Change src/" in context and "python -m pytest tests/test_cache.py -q" in context
    # Another project's prompt hook sees nothing of this one.
    elsewhere = tmp_path / "other-project"
    (elsewhere / ".git").mkdir(parents=True)
    assert hook(event("UserPromptSubmit", "s3", second.path, elsewhere, prompt=REWORDED_PROMPT), env).stdout == ""

    fix_the_bug(second)
    hook(event("Stop", "s2", second.path, project, stop_hook_active=False), env)
    credited = SQLiteStore(Path(env["MEMP_DB_PATH"])).get_procedure(procedures[0].id)
    assert (credited.success_count, credited.failure_count) == (1, 0)
    assert SQLiteStore(Path(env["MEMP_DB_PATH"])).count_trajectories(namespace) == 2


def test_after_a_compaction_the_procedure_comes_back(project: Path, env: dict[str, str], tmp_path: Path) -> None:
    first = Transcript(tmp_path / "s1.jsonl", "s1", project)
    first.prompt(FIRST_PROMPT)
    fix_the_bug(first)
    hook(event("Stop", "s1", first.path, project), env)
    hook(event("UserPromptSubmit", "s2", first.path, project, prompt=REWORDED_PROMPT), env)
    assert hook(event("SessionStart", "s2", first.path, project, source="resume"), env).stdout == ""
    again = json.loads(hook(event("SessionStart", "s2", first.path, project, source="compact"), env).stdout)
    assert again["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert "report_outcome" in again["hookSpecificOutput"]["additionalContext"]


def test_a_failing_last_test_run_reports_a_failure_and_revises_the_procedure(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    first = Transcript(tmp_path / "s1.jsonl", "s1", project)
    first.prompt(FIRST_PROMPT)
    fix_the_bug(first)
    hook(event("Stop", "s1", first.path, project), env)
    second = Transcript(tmp_path / "s2.jsonl", "s2", project)
    second.prompt(REWORDED_PROMPT)
    hook(event("UserPromptSubmit", "s2", second.path, project, prompt=REWORDED_PROMPT), env)
    second.tool(
        "Bash",
        {"command": "pytest -q"},
        "F\nFAILED tests/test_cache.py::test_expires - assert 1\n1 failed",
        is_error=True,
    )
    hook(event("Stop", "s2", second.path, project), env)
    procedure = SQLiteStore(Path(env["MEMP_DB_PATH"])).list_procedures(None, None, None, 5, 0)[0]
    assert procedure.failure_count == 1 and procedure.version == 2


def test_a_transcript_line_nested_too_deep_is_skipped_and_the_turn_still_recorded(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    transcript = Transcript(tmp_path / "t" / "deep.jsonl", "deep", project)
    transcript.prompt(FIRST_PROMPT)
    with transcript.path.open("a", encoding="utf-8") as handle:
        handle.write('{"type": "user", "message": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    fix_the_bug(transcript)
    hook(event("Stop", "deep", transcript.path, project, stop_hook_active=False), env)
    store = SQLiteStore(Path(env["MEMP_DB_PATH"]))
    assert store.count_trajectories(project_namespace(project)) == 1


def test_a_turn_the_agent_reported_itself_is_not_recorded_again(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    first = Transcript(tmp_path / "s1.jsonl", "s1", project)
    first.prompt(FIRST_PROMPT)
    fix_the_bug(first)
    hook(event("Stop", "s1", first.path, project), env)
    second = Transcript(tmp_path / "s2.jsonl", "s2", project)
    second.prompt(REWORDED_PROMPT)
    reply = hook(event("UserPromptSubmit", "s2", second.path, project, prompt=REWORDED_PROMPT), env).stdout
    context = json.loads(reply)["hookSpecificOutput"]["additionalContext"]
    recall_id = re.findall(r'recall_id="(\w+)"', context)[0]
    fix_the_bug(second)
    # The agent follows the injected line and reports through the MCP tool before it stops.
    db = Path(env["MEMP_DB_PATH"])
    Memory(SQLiteStore(db), None, namespace=project_namespace(project)).report_outcome(recall_id, True, procedure_id=1)
    hook(event("Stop", "s2", second.path, project), env)
    store = SQLiteStore(db)
    assert store.count_trajectories(project_namespace(project)) == 1
    assert (store.get_procedure(1).success_count, store.count_procedures()) == (1, 1)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"hook_event_name": "UserPromptSubmit"}',
        b'{"hook_event_name": "UserPromptSubmit", "prompt": 7, "cwd": 3}',
        b'{"hook_event_name": "Stop", "transcript_path": 5}',
        b'{"hook_event_name": "Stop", "transcript_path": "/"}',
        b'{"hook_event_name": "PreToolUse", "tool_name": "Bash"}',
        b'{"hook_event_name": "SessionStart", "source": "compact", "session_id": "../../etc/passwd"}',
        b"\xff\xfe\x00garbage",
        b"{" * 2_000_000,
    ],
)
def test_malformed_input_exits_0_without_output(payload: bytes, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.entry", "hook"], input=payload, capture_output=True, timeout=60, env=env
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_a_missing_transcript_exits_0_without_output_and_records_nothing(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    done = hook(event("Stop", "s1", tmp_path / "gone.jsonl", project), env)
    assert done.stdout == "" and not Path(env["MEMP_DB_PATH"]).exists()


def test_stop_hook_active_records_nothing(project: Path, env: dict[str, str], tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "s1.jsonl", "s1", project)
    transcript.prompt(FIRST_PROMPT)
    fix_the_bug(transcript)
    assert hook(event("Stop", "s1", transcript.path, project, stop_hook_active=True), env).stdout == ""
    assert not Path(env["MEMP_DB_PATH"]).exists()


def test_a_locked_database_exits_0_without_output(project: Path, env: dict[str, str], tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "s1.jsonl", "s1", project)
    transcript.prompt(FIRST_PROMPT)
    fix_the_bug(transcript)
    hook(event("Stop", "s1", transcript.path, project), env)
    locker = connect(Path(env["MEMP_DB_PATH"]))
    try:
        locker.execute("PRAGMA locking_mode = EXCLUSIVE")
        locker.execute("BEGIN EXCLUSIVE")
        locker.execute("CREATE TABLE hold_the_lock (x)")
        assert hook(event("UserPromptSubmit", "s2", transcript.path, project, prompt=REWORDED_PROMPT), env).stdout == ""
        assert hook(event("Stop", "s1b", transcript.path, project), env).stdout == ""
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    log = (Path(env["MEMP_DB_PATH"]).parent / "hooks.log").read_text()
    assert "locked" in log


def test_hooks_turned_off_do_nothing(project: Path, env: dict[str, str], tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "s1.jsonl", "s1", project)
    transcript.prompt(FIRST_PROMPT)
    fix_the_bug(transcript)
    hook(event("Stop", "s1", transcript.path, project), {**env, "MEMP_HOOKS": "0"})
    assert not Path(env["MEMP_DB_PATH"]).exists()


# What a fresh interpreter imports for `code`, beyond what it had loaded before it.
IMPORTED_BY = """
import json, sys
before = set(sys.modules)
{code}
print(json.dumps(sorted(set(sys.modules) - before)), file=sys.stderr)
"""
FAST_PATH_MODULES = {"memp_mcp", "memp_mcp.entry", "memp_mcp.hooks", "memp_mcp.hooks.client"}


def imported_by(code: str, env: dict[str, str], stdin: str = "") -> tuple[str, set[str]]:
    """(the stdout of `code` run in a fresh interpreter, the modules it imported)."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED_BY.format(code=code)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, set(json.loads(done.stderr.splitlines()[-1]))


def beyond_the_standard_library(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names and m not in FAST_PATH_MODULES}


def test_the_hook_client_imports_the_standard_library_alone(env: dict[str, str]) -> None:
    _, modules = imported_by("import memp_mcp.hooks.client", env)
    assert "memp_mcp.hooks.client" in modules
    assert not beyond_the_standard_library(modules)
    assert not modules & {"pydantic", "numpy", "mcp", "memp_mcp.config", "memp_mcp.hooks.handlers"}


def test_a_prompt_the_warm_server_answers_imports_the_standard_library_alone(
    env: dict[str, str], project: Path
) -> None:
    db = Path(env["MEMP_DB_PATH"])
    reply = json.dumps({"hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "additionalContext": "x"}})
    requests: list[bytes] = []
    # A stand-in for the warm server: the test is about what the client side imports.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        assert ensure_runtime_dir() is not None
        listener.bind(str(socket_path(db, env)))
        listener.listen(1)
        listener.settimeout(60)

        def answer_once() -> None:
            connection, _ = listener.accept()
            with connection:
                requests.append(connection.makefile("rb").read())
                connection.sendall(b"ok\n" + reply.encode())

        server = threading.Thread(target=answer_once, daemon=True)
        server.start()
        try:
            prompt = json.dumps(event("UserPromptSubmit", "s1", project / "t.jsonl", project, prompt=FIRST_PROMPT))
            stdout, modules = imported_by(
                "from memp_mcp.entry import _hook\nassert _hook() == 0",
                {**env, "MEMP_HOOK_SERVER": "1"},
                stdin=prompt,
            )
            server.join(10)
        finally:
            socket_path(db, env).unlink(missing_ok=True)
    assert requests == [prompt.encode()] and stdout == reply
    assert not beyond_the_standard_library(modules)
    assert not modules & {"pydantic", "numpy", "mcp", "memp_mcp.config", "memp_mcp.paths"}


def test_the_reader_keeps_the_last_prompt_and_skips_what_is_not_work(project: Path, tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "s.jsonl", "s", project)
    transcript.prompt("an earlier question about something else entirely")
    transcript.tool("Bash", {"command": "ls"}, "README.md")
    transcript.noise()
    transcript.prompt(FIRST_PROMPT)
    fix_the_bug(transcript)
    turn = read_last_turn(transcript.path)
    assert turn is not None and turn.prompt == FIRST_PROMPT and turn.cwd == str(project)
    steps = turn_steps(turn)
    assert len(steps) == 6 and steps[-1].action == "Bash: python -m pytest tests/test_cache.py -q"
    assert steps[3].action.startswith("Edit: src/cachelib/stor.py: replace 'if item.deadline < now:'")
    assert infer_outcome(turn) == (True, "the last test run (python -m pytest tests/test_cache.py -q) passed")


def calls(*specs: tuple[str, str, bool]) -> Turn:
    turn = Turn("do the thing", "p1")
    for name, command, failed in specs:
        turn.calls.append(ToolCall(name, {"command": command}, "boom" if failed else "ok", failed, answered=True))
    return turn


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        (calls(("Bash", "pytest -q", True), ("Bash", "pytest -q", False)), True),
        (calls(("Bash", "pytest -q", False), ("Bash", "npm test", True)), False),
        (calls(("Bash", "cargo test", False), ("Bash", "git push", True)), None),
        (calls(("Bash", "make build", True), ("Bash", "make build", False)), True),
        (calls(("Bash", "make build", False), ("Bash", "grep -r x .", True)), None),
        (calls(("Read", "", False)), None),
        (calls(), None),
    ],
)
def test_the_outcome_is_inferred_only_from_clear_evidence(turn: Turn, expected: bool | None) -> None:
    assert infer_outcome(turn)[0] is expected


def test_a_passing_exit_code_with_failures_in_the_output_is_a_failure() -> None:
    turn = Turn("t", "p")
    turn.calls.append(ToolCall("Bash", {"command": "python -m pytest"}, "=== 2 failed, 10 passed ===", answered=True))
    assert infer_outcome(turn)[0] is False


def test_a_failed_command_is_a_failed_check_and_a_refused_tool_call_an_action_error() -> None:
    from memp_mcp.engine.build import distill_steps
    from memp_mcp.engine.verdict import Verdict, verdict

    turn = Turn("t", "p")
    refused_edit = "<tool_use_error>String to replace not found</tool_use_error>"
    no_such_program = "Exit code 127\n/bin/bash: line 1: pyest: command not found"
    turn.calls += [
        ToolCall("Bash", {"command": "pytest -q"}, "Exit code 1\n1 failed, 4 passed", is_error=True, answered=True),
        ToolCall("Bash", {"command": "pyest -q"}, no_such_program, is_error=True, answered=True),
        ToolCall("Edit", {"file_path": "a.py"}, refused_edit, is_error=True, answered=True),
        ToolCall("Bash", {"command": "make"}, "Command timed out after 2m 0.0s", is_error=True, answered=True),
    ]
    steps = turn_steps(turn)
    assert [(s.exit_code, s.ok) for s in steps] == [(1, None), (127, None), (None, False), (None, False)]
    assert [verdict(s) for s in steps] == [
        Verdict.CHECK_FAILED,
        Verdict.ACTION_ERROR,
        Verdict.ACTION_ERROR,
        Verdict.CHECK_FAILED,
    ]
    assert steps[0].observation == "1 failed, 4 passed"
    # A failing test whose own traceback holds an error an action could meet is still a failed check,
    # and a pitfall quotes what the command said, not its exit code twice.
    crash = "Exit code 1\n..F\nE   FileNotFoundError: [Errno 2] No such file or directory: 'x.csv'\n1 failed, 2 passed"
    turn.calls = [ToolCall("Bash", {"command": "pytest -q"}, crash, is_error=True, answered=True)]
    assert verdict(turn_steps(turn)[0]) == Verdict.CHECK_FAILED
    typo = "Exit code 2\nmake: *** No rule to make target 'buidl'.  Stop."
    turn.calls = [
        ToolCall("Bash", {"command": "make buidl"}, typo, is_error=True, answered=True),
        ToolCall("Bash", {"command": "make build"}, "built", answered=True),
    ]
    (pitfall,) = distill_steps(turn_steps(turn)).pitfalls
    assert "No rule to make target" in pitfall and "Exit code" not in pitfall, pitfall


def test_an_interrupted_call_leaves_the_outcome_unknown() -> None:
    turn = Turn("t", "p")
    turn.calls.append(ToolCall("Bash", {"command": "pytest"}, answered=False))
    assert infer_outcome(turn) == (None, "a tool call was interrupted")


def test_the_injection_stays_within_its_budget_and_says_what_it_left_out(tmp_path: Path) -> None:
    long = RecalledProcedure(
        id=7,
        title="T " * 300,
        when_to_use="W " * 300,
        steps=[f"step {n} " + "x" * 300 for n in range(60)],
        pitfalls=["p " * 200] * 10,
        relevance=0.5,
        retrieved_count=1,
        success_count=2,
        failure_count=0,
        success_rate=1.0,
        version=1,
        source="agent",
        author='a</procedure><procedure id="99">',
        source_trajectory_ids=[1],
    )
    text = render_injection([long, long], "abc123", "project/app-12345678")
    assert len(text) <= INJECTION_CHARS
    assert "more steps (get_procedure 7)" in text and 'recall_id="abc123"' in text
    assert text.count("</procedure>") == 1 and '<procedure id="99">' not in text


def test_the_project_namespace_is_the_git_root_and_stays_apart_from_a_namesake(tmp_path: Path) -> None:
    one, two = tmp_path / "a" / "app", tmp_path / "b" / "app"
    (one / ".git").mkdir(parents=True)
    (one / "src" / "deep").mkdir(parents=True)
    two.mkdir(parents=True)
    assert project_namespace(one / "src" / "deep") == project_namespace(one)
    assert project_namespace(one).startswith("project/app-") and project_namespace(one) != project_namespace(two)
    Memory(SQLiteStore(tmp_path / "x.db"), None, namespace=project_namespace(one))  # a valid namespace


@pytest.mark.real_model
def test_the_hook_benchmark_prints_warm_and_cold_figures(tmp_path: Path, real_model_dir: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "memp_mcp.cli",
            "bench",
            "hook",
            "--procedures",
            "50",
            "--runs",
            "5",
            "--cold-runs",
            "1",
            "--workdir",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200", "MEMP_MODEL_CACHE_DIR": str(real_model_dir.parent)},
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.splitlines()[-1])["sizes"]["50"]
    assert figures["warm_ms"]["n"] == figures["in_process_ms"]["n"] == 5 and figures["cold_ms"]["n"] == 1
    assert 0 < figures["warm_ms"]["p50"] <= figures["warm_ms"]["max"] and figures["warm_with_model"]
    assert figures["injected"] >= 1 and 0 < figures["injection_chars"]["max"] <= INJECTION_CHARS
    db = tmp_path / "hook-50" / "memory.db"
    bench_env = {
        **os.environ,
        "MEMP_MODEL_CACHE_DIR": str(real_model_dir.parent),
        "MEMP_DB_PATH": str(db),
        "MEMP_LOG_LEVEL": "INFO",
    }
    assert server_pid(db, bench_env) is None, "the benchmark stops the server it started"


@pytest.mark.real_model
def test_a_warm_server_answers_later_prompts_with_the_model(
    project: Path, env: dict[str, str], tmp_path: Path, real_model_dir: Path
) -> None:
    first = Transcript(tmp_path / "s1.jsonl", "s1", project)
    first.prompt(FIRST_PROMPT)
    fix_the_bug(first)
    hook(event("Stop", "s1", first.path, project), env)
    warm_env = {**env, "MEMP_HOOK_SERVER": "1", "MEMP_MODEL_CACHE_DIR": str(real_model_dir.parent)}
    db = Path(env["MEMP_DB_PATH"])
    log = db.parent / "hooks.log"
    in_process = hook(event("UserPromptSubmit", "s2", first.path, project, prompt=REWORDED_PROMPT), warm_env).stdout
    server_pid = None
    try:
        wait_until(lambda: "warm server recalls with" in log.read_text(), 90)
        server_pid = int(re.findall(r"warm server for .* \(pid (\d+)\)", log.read_text())[-1])
        warm = hook(event("UserPromptSubmit", "s3", first.path, project, prompt=REWORDED_PROMPT), warm_env).stdout

        # The same procedure, steps and pitfalls; the relevance differs, now that vectors take part.
        def body(reply: str) -> str:
            context = json.loads(reply)["hookSpecificOutput"]["additionalContext"]
            return re.sub(r'relevance="[0-9.]+"', "", context.split("report_outcome")[0])

        assert body(warm) == body(in_process)
        assert re.search(
            rf"^.* {server_pid} INFO prompt in project/cachelib-\w+: 1 procedures \(vector\+keyword\)",
            log.read_text(),
            re.M,
        )
        # The session state written by the server is the one the stop hook reads.
        state = json.loads((db.parent / "hook-sessions" / "s3.json").read_text())
        assert state["recall_id"] and state["procedure_id"] == 1
        # A turn recorded by another process meanwhile is found by the running server.
        (project / "src" / "netlib").mkdir()
        (project / "src" / "netlib" / "http.py").write_text("def fetch(url):\n    return get(url)\n")
        (project / "tests" / "test_http.py").write_text("def test_fetch(): ...\n")
        other = Transcript(tmp_path / "s4.jsonl", "s4", project)
        other.prompt("Add retries with exponential backoff to the netlib HTTP client's GET requests")
        other.tool("Edit", {"file_path": "src/netlib/http.py", "old_string": "get(", "new_string": "retry(get)("}, "ok")
        other.tool("Bash", {"command": "pytest tests/test_http.py -q"}, "3 passed")
        hook(event("Stop", "s4", other.path, project), warm_env)
        later = "netlib HTTP client: retry GET requests with exponential backoff"
        reply = hook(event("UserPromptSubmit", "s5", other.path, project, prompt=later), warm_env).stdout
        assert '<procedure id="2"' in json.loads(reply)["hookSpecificOutput"]["additionalContext"]
        # The first prompt found no server: it started one and waited for it, so the server answered all three.
        assert len(re.findall(rf"^.* {server_pid} INFO prompt in ", log.read_text(), re.M)) == 3
    finally:
        if server_pid is not None:
            os.kill(server_pid, signal.SIGTERM)
            wait_until(lambda: not socket_path(db, warm_env).exists(), 10)


def test_warm_servers_are_one_per_database_and_settings_in_a_folder_only_this_user_may_enter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memp_mcp.hooks.client import ask, is_private, runtime_dir

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    db = tmp_path / "memory.db"
    project_a = {"MEMP_HOOK_NAMESPACE": "project-a", "MEMP_HOOKS": "1"}
    project_b = {"MEMP_HOOK_NAMESPACE": "project-b", "MEMP_HOOKS": "1"}
    assert socket_path(db, project_a) != socket_path(db, project_b)
    assert socket_path(db, project_a) == socket_path(db, {**project_a, "MEMP_HOOK_SERVER": "0"})
    assert socket_path(db, {"MEMP_DATABASE_URL": "postgresql://team"}) != socket_path(db, {})

    # Someone who made the folder first (a link to theirs, or a folder others may enter) is not trusted.
    elsewhere = tmp_path / "planted"
    elsewhere.mkdir(mode=0o777)
    elsewhere.chmod(0o777)
    runtime_dir().symlink_to(elsewhere)
    assert ensure_runtime_dir() is None and not is_private(runtime_dir())
    assert ask(socket_path(db, project_a), b"{}") is None
    runtime_dir().unlink()
    folder = ensure_runtime_dir()
    assert folder is not None and is_private(folder) and (folder.stat().st_mode & 0o777) == 0o700


def test_the_warm_servers_lock_file_is_not_followed_through_a_planted_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    from memp_mcp.hooks.client import lock_path

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = ensure_runtime_dir()
    assert folder is not None
    server_env = {**env, "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    lock_path(socket_path(Path(env["MEMP_DB_PATH"]), server_env)).symlink_to(victim)
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.hooks.warm_server"], env=server_env, capture_output=True, timeout=60
    )
    assert done.returncode == 0
    assert victim.read_text() == "precious"


def memp_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.entry", *args], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_log_explains_every_injection_and_every_stop(project: Path, env: dict[str, str], tmp_path: Path) -> None:
    first = Transcript(tmp_path / "s1.jsonl", "s1", project)
    first.prompt(FIRST_PROMPT)
    fix_the_bug(first)
    hook(event("Stop", "s1", first.path, project), env)
    hook(event("SessionEnd", "s1", first.path, project, reason="exit"), env)
    second = Transcript(tmp_path / "s2.jsonl", "s2", project)
    second.prompt(REWORDED_PROMPT)
    reply = hook(event("UserPromptSubmit", "s2", second.path, project, prompt=REWORDED_PROMPT), env).stdout
    injected = json.loads(reply)["hookSpecificOutput"]["additionalContext"]
    recall_id = re.findall(r'recall_id="(\w+)"', injected)[0]
    fix_the_bug(second)
    hook(event("Stop", "s2", second.path, project), env)
    hook(event("Stop", "s2", second.path, project, stop_hook_active=True), env)
    hook(event("Stop", "s2", second.path, project), env)
    unrelated = "Write the release notes for version two of the docs site"
    hook(event("UserPromptSubmit", "s3", second.path, project, prompt=unrelated), env)

    namespace = project_namespace(project)
    events = [json.loads(line) for line in memp_cli(env, "log", "--json", "--namespace", namespace).splitlines()]
    kinds = [e["kind"] for e in events]
    # Every Stop is explained, whether it recorded, reported, or did nothing (and why).
    stops = [e for e in events if e["kind"] == "stop"]
    assert len(stops) == 4, kinds
    assert stops[0]["summary"].startswith("recorded trajectory 1 as success: created")
    assert "the last test run" in stops[0]["summary"]
    assert stops[1]["summary"].startswith(f"reported success for recall {recall_id}")
    assert "continuing after a stop hook" in stops[2]["summary"]
    assert "recorded already" in stops[3]["summary"]
    # The injection: what was given, its score, the words it was found by, the floor.
    injection = next(e for e in events if e["kind"] == "inject")
    assert injection["recall_id"] == recall_id and injection["detail"]["procedures"] == [1]
    recall = next(e for e in events if e["kind"] == "recall" and e["recall_id"] == recall_id)
    given = recall["detail"]["given"][0]
    assert given["id"] == 1 and given["relevance"] > 0 and "ttl" in given["words"]
    assert recall["detail"]["via"] == "prompt hook" and "keywords" in recall["detail"]["floor"]
    assert recall["arm"] == "memory" and recall["summary"].startswith("gave #1 (relevance")
    # A prompt nothing fits is explained too.
    assert events[-1]["kind"] == "recall" and events[-1]["summary"].startswith("nothing fits")
    outcome = next(e for e in events if e["kind"] == "outcome")
    assert outcome["recall_id"] == recall_id and outcome["arm"] == "memory"
    text = memp_cli(env, "log", "--last", "3")
    assert "nothing fits" in text and "recorded already" in text


def test_held_out_prompts_get_nothing_and_both_arms_are_counted(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    first = Transcript(tmp_path / "s1.jsonl", "s1", project)
    first.prompt(FIRST_PROMPT)
    fix_the_bug(first)
    hook(event("Stop", "s1", first.path, project), env)
    held = {**env, "MEMP_HOLDOUT": "1"}
    second = Transcript(tmp_path / "s2.jsonl", "s2", project)
    second.prompt(REWORDED_PROMPT)
    # Withheld: the prompt goes through untouched, as when nothing fits.
    assert hook(event("UserPromptSubmit", "s2", second.path, project, prompt=REWORDED_PROMPT), held).stdout == ""
    fix_the_bug(second)
    hook(event("Stop", "s2", second.path, project), held)
    third = Transcript(tmp_path / "s3.jsonl", "s3", project)
    third.prompt(REWORDED_PROMPT)
    assert (
        "<procedure" in hook(event("UserPromptSubmit", "s3", third.path, project, prompt=REWORDED_PROMPT), env).stdout
    )
    third.tool("Bash", {"command": "pytest -q"}, "F\nFAILED tests/test_cache.py::test_expires\n1 failed", is_error=True)
    hook(event("Stop", "s3", third.path, project), env)

    namespace = project_namespace(project)
    events = [json.loads(line) for line in memp_cli(env, "log", "--json").splitlines()]
    withheld = next(e for e in events if e["kind"] == "withheld")
    assert withheld["arm"] == "holdout" and withheld["detail"]["would_have_given"][0]["id"] == 1
    report = json.loads(memp_cli(env, "stats", "--uplift", "--json", "--namespace", namespace))
    assert report["without_memory"] == {
        "tasks": 1,
        "judged": 1,
        "successes": 1,
        "success_rate": 1.0,
        "mean_tool_calls": 6.0,
        "mean_turns": 1.0,
    }
    assert report["with_memory"]["judged"] == 1 and report["with_memory"]["successes"] == 0
    assert report["difference"] == -1.0 and "Too few judged tasks" in report["conclusion"]
    assert "held out" in memp_cli(env, "stats", "--uplift")
