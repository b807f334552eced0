"""Real Claude Code sessions through the hooks: what the transcript reader takes as the user's words and
as steps, what the stop hook records, and `bench sessions`.

The fixtures in tests/data/claude_code are excerpts of the development sessions (see the README there).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memp_mcp.cli import app
from memp_mcp.config import Settings, load_settings
from memp_mcp.engine.memory import Memory
from memp_mcp.hooks.client import server_pid
from memp_mcp.hooks.handlers import DISTILL_REASON, run_hook
from memp_mcp.hooks.memories import FreshMemories
from memp_mcp.hooks.transcript import read_last_turn, turn_steps
from memp_mcp.hooks.warm_server import MODEL_WAIT_SECONDS
from memp_mcp.server.render import INJECTED_PITFALL_CHARS, clean_pitfall, render_injection
from memp_mcp.store import SQLiteStore
from tests.test_hooks import wait_until

FIXTURES = Path(__file__).parent / "data" / "claude_code"
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
SESSIONS = DATASETS / "claude_code_sessions"
NAMESPACE = "project/sessions"
USER_WORDS = "Don't put test fallbacks in src/config.ts; the tests load their env from .env.test"
# Claude Code's words for a tool use the user rejected, with what the user typed after them.
REJECTION = (
    "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file "
    "edit, the new_string was NOT written to the file). To tell you how to proceed, the user said:\n" + USER_WORDS
)


def fixture_lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()]


def write_transcript(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def first_prompt(lines: list[dict[str, Any]]) -> str:
    content = lines[0]["message"]["content"]
    return content if isinstance(content, str) else content[0]["text"]


def tool_lines(line: dict[str, Any], name: str, tool_input: dict[str, Any], result: str, *, error: bool) -> list[Any]:
    """A tool call and its result in the shape of `line`, a real assistant line of the session."""
    call, answer = json.loads(json.dumps(line)), json.loads(json.dumps(line))
    call_id = f"toolu_{name[-12:]}"
    call["message"]["content"] = [{"type": "tool_use", "id": call_id, "name": name, "input": tool_input}]
    answer["type"] = "user"
    answer["message"] = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call_id, "content": result}],
    }
    if error:
        answer["message"]["content"][0]["is_error"] = True
    return [call, answer]


def settings_for(tmp_path: Path, **extra: str) -> Settings:
    environ = {"MEMP_DB_PATH": str(tmp_path / "data" / "memory.db"), "MEMP_HOOK_NAMESPACE": "project", **extra}
    return load_settings(environ=environ)


def play(settings: Settings, session: str, transcript: Path, prompt: str, **stop: Any) -> str | None:
    """A session's prompt, then its Stop; the Stop's reply."""
    memories = FreshMemories(settings)
    base = {"session_id": session, "transcript_path": str(transcript), "cwd": str(transcript.parent)}
    run_hook(json.dumps({**base, "hook_event_name": "UserPromptSubmit", "prompt": prompt}).encode(), settings, memories)
    return run_hook(json.dumps({**base, "hook_event_name": "Stop", **stop}).encode(), settings, memories)


def trajectories(settings: Settings) -> list[tuple[str, list[str]]]:
    with SQLiteStore(settings.db_path) as store:
        count = store.count_trajectories()
        found = [store.get_trajectory(i) for i in range(1, count + 1)]
    return [(t.task, [s.action for s in t.steps]) for t in found]


# -- what the transcript says ----------------------------------------------------------------


def test_a_subagent_prompt_written_as_a_user_line_does_not_start_a_new_turn() -> None:
    turn = read_last_turn(FIXTURES / "subagent_prompts.jsonl")
    assert turn is not None
    assert turn.prompt.startswith("You need to organize more than 100 pdf papers")
    # The work done before the subagents were started is the turn's too.
    assert [call.name for call in turn.calls[:5]] == ["Skill", "Bash", "Bash", "Bash", "Bash"]


@pytest.mark.parametrize(
    "fixture", ["skills_and_tool_search.jsonl", "task_output_errors.jsonl", "subagent_prompts.jsonl"]
)
def test_the_clients_bookkeeping_is_no_step(fixture: str) -> None:
    turn = read_last_turn(FIXTURES / fixture)
    assert turn is not None
    assert {call.name for call in turn.calls} & {"ToolSearch", "Skill", "TodoWrite", "TaskOutput"}
    actions = [step.action for step in turn_steps(turn)]
    assert actions
    assert not [a for a in actions if re.match(r"(ToolSearch|TodoWrite|TaskOutput):", a)]
    # The skills loaded are named once, as know-how for the procedure, never a call per skill.
    loaded = [call.input["skill"] for call in turn.calls if call.name == "Skill"]
    named = [a for a in actions if a.startswith("Skill:")]
    assert named == (["Skill: " + ", ".join(dict.fromkeys(loaded))] if loaded else [])


@pytest.mark.parametrize("fixture", ["input_validation_errors.jsonl", "cancelled_parallel_calls.jsonl"])
def test_a_call_the_client_refused_before_it_ran_is_no_step(fixture: str) -> None:
    turn = read_last_turn(FIXTURES / fixture)
    assert turn is not None
    assert any("<tool_use_error>" in call.result for call in turn.calls)
    observations = " ".join(step.observation or "" for step in turn_steps(turn))
    assert "InputValidationError" not in observations and "Cancelled: parallel tool call" not in observations


def test_a_rejection_becomes_the_observation_in_the_users_own_words(tmp_path: Path) -> None:
    lines = fixture_lines("skills_and_tool_search.jsonl")
    assistant = next(line for line in lines if line["type"] == "assistant")
    edit = {"file_path": "/root/src/config.ts", "old_string": "const url = env.URL", "new_string": "const url = 'x'"}
    transcript = write_transcript(
        tmp_path / "t.jsonl", [*lines, *tool_lines(assistant, "Edit", edit, REJECTION, error=True)]
    )
    turn = read_last_turn(transcript)
    assert turn is not None
    rejected = turn_steps(turn)[-1]
    assert rejected.ok is False
    assert rejected.observation == f"Rejected by the user: {USER_WORDS}"
    # A <tool_use_error> keeps what the client said inside the tags.
    transcript = write_transcript(
        tmp_path / "u.jsonl",
        [
            *lines,
            *tool_lines(assistant, "Edit", edit, "<tool_use_error>File does not exist.</tool_use_error>", error=True),
        ],
    )
    turn = read_last_turn(transcript)
    assert turn is not None and turn_steps(turn)[-1].observation == "Error: File does not exist."


def test_the_pitfall_of_a_rejected_edit_keeps_the_users_reason_in_the_injection(fake_embedder: Any) -> None:
    memory = Memory(SQLiteStore(":memory:"), fake_embedder)
    long_edit = "Edit: src/config.ts: replace " + "'const url = process.env.API_URL ?? fallback' " * 6
    steps = [
        {"action": "Read: src/config.ts", "observation": "export const url = process.env.API_URL"},
        {"action": long_edit, "observation": f"Rejected by the user: {USER_WORDS}", "ok": False},
        {"action": "Write: .env.test", "observation": "File created successfully"},
        {"action": "npm test", "observation": "Tests: 12 passed, 12 total", "exit_code": 0},
    ]
    recorded = memory.record("make the config tests load their environment", steps, "success")
    procedure = memory.store.get_procedure(recorded.procedure_id)
    assert any(USER_WORDS in pitfall for pitfall in procedure.pitfalls)
    recalled = memory.recall("make the config tests load their environment", 1).procedures
    injected = render_injection(recalled, "r1", "default")
    assert f"did not work (Rejected by the user: {USER_WORDS})" in injected
    # However long the action, the clipped pitfall keeps the reason whole.
    clipped = clean_pitfall(f'"{long_edit * 3}" did not work (Rejected by the user: {USER_WORDS})', 200)
    assert len(clipped) <= 200 and clipped.endswith(f"(Rejected by the user: {USER_WORDS})")
    assert INJECTED_PITFALL_CHARS >= 200


# -- what the stop hook records ----------------------------------------------------------------


def test_the_task_is_the_prompt_the_prompt_hook_saw(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    transcript = write_transcript(tmp_path / "s.jsonl", fixture_lines("subagent_prompts.jsonl"))
    # The prompt as typed: the transcript's line holds the same words, cut in the excerpt.
    typed = first_prompt(fixture_lines("subagent_prompts.jsonl")) + " Keep the original file names."
    play(settings, "s1", transcript, typed)
    [(task, actions)] = trajectories(settings)
    assert task == " ".join(typed.split())
    assert not [a for a in actions if a.startswith("ToolSearch:")]
    assert [a for a in actions if a.startswith("Skill:")] == ["Skill: planning-with-files"]


def test_memps_own_calls_are_no_steps_and_a_turn_the_agent_recorded_is_not_recorded_again(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    lines = fixture_lines("skills_and_tool_search.jsonl")
    assistant = next(line for line in lines if line["type"] == "assistant")
    recall = tool_lines(
        assistant, "mcp__procedural-memory__recall_procedure", {"task": "audit"}, "No stored procedure", error=False
    )
    transcript = write_transcript(tmp_path / "a.jsonl", [*lines, *recall])
    play(settings, "a", transcript, first_prompt(lines))
    [(_, actions)] = trajectories(settings)
    assert actions and not [a for a in actions if "mcp__" in a or "recall_procedure" in a]

    record = tool_lines(
        assistant,
        "mcp__procedural-memory__record_trajectory",
        {"task": "audit a lockfile", "steps": ["trivy fs package-lock.json"], "outcome": "success"},
        '{"action": "created", "trajectory_id": 2, "procedure_id": 2}',
        error=False,
    )
    transcript = write_transcript(tmp_path / "b.jsonl", [*lines, *record])
    play(settings, "b", transcript, first_prompt(lines))
    assert len(trajectories(settings)) == 1, "the agent recorded the turn: the stop hook adds nothing"


def test_an_unverified_session_builds_a_provisional_procedure_ranked_below_a_verified_one(
    fake_embedder: Any,
) -> None:
    memory = Memory(SQLiteStore(":memory:"), fake_embedder)
    chart = [
        {"action": "Read: data/stock-descriptions.csv", "observation": "ticker,name,sector"},
        {"action": "Write: output/index.html", "observation": "File created successfully"},
    ]
    unverified = memory.record("draw a bubble chart of stock sectors with d3 from a csv file", chart, "unknown")
    assert unverified.action == "created" and unverified.procedure_id is not None
    assert memory.store.unverified([unverified.procedure_id]) == {unverified.procedure_id}
    checked = [*chart, {"action": "python -m http.server & curl -s localhost:8000", "observation": "<html>"}]
    verified = memory.record("draw a bubble chart of stock sectors with d3 from a json file", checked, "success")
    assert verified.procedure_id != unverified.procedure_id
    assert memory.store.unverified([verified.procedure_id]) == set()
    # As relevant as each other (the unverified one a little more): the verified one comes first.
    ranked = memory.recall("draw a bubble chart of stock sectors with d3", 2).procedures
    assert [p.id for p in ranked] == [verified.procedure_id, unverified.procedure_id]
    assert ranked[0].relevance <= ranked[1].relevance
    # A later unverified run backs the procedure but never rewrites its steps.
    before = memory.store.get_procedure(unverified.procedure_id).steps
    again = memory.record("draw a bubble chart of stock sectors with d3 from a csv file", chart[:1], "unknown")
    assert again.action == "merged" and again.procedure_id == unverified.procedure_id
    assert memory.store.get_procedure(unverified.procedure_id).steps == before
    # A failed run still builds nothing under the default strategy.
    assert memory.record("draw a pie chart", chart, "failure").action == "stored_only"


# -- the agent's own draft, opted in ---------------------------------------------------------


def test_distill_by_the_agent_asks_once_per_session_within_600_characters(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, MEMP_HOOK_DISTILL="agent")
    lines = fixture_lines("skills_and_tool_search.jsonl")
    transcript = write_transcript(tmp_path / "d.jsonl", lines)
    reply = play(settings, "d", transcript, first_prompt(lines))
    assert reply is not None
    asked = json.loads(reply)
    assert asked == {"decision": "block", "reason": DISTILL_REASON.format(namespace="project")}
    assert len(DISTILL_REASON.format(namespace="n" * 64)) <= 600
    # The agent is asked for the shape the extractive builder makes: what the work established.
    shape = ("title", "when_to_use", "where to look", "failing reproduction", "change per file", "check that passed")
    assert all(part in DISTILL_REASON for part in shape) and "pitfalls: what failed and why" in DISTILL_REASON
    assert trajectories(settings) == [], "the agent is asked first; nothing is recorded yet"
    # Claude continues because of the block; when it stops again without recording, the hook records.
    assert play(settings, "d", transcript, first_prompt(lines), stop_hook_active=True) is None
    assert len(trajectories(settings)) == 1
    # Never twice in a session, and never without the opt-in.
    assert play(settings, "d", transcript, first_prompt(lines)) is None
    assert play(settings_for(tmp_path / "off"), "e", transcript, first_prompt(lines)) is None


def test_distill_by_the_agent_counts_the_agents_own_record(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, MEMP_HOOK_DISTILL="agent")
    lines = fixture_lines("skills_and_tool_search.jsonl")
    transcript = write_transcript(tmp_path / "d.jsonl", lines)
    assert play(settings, "d", transcript, first_prompt(lines)) is not None
    assistant = next(line for line in lines if line["type"] == "assistant")
    record = tool_lines(
        assistant,
        "mcp__procedural-memory__record_trajectory",
        {"task": "audit", "steps": ["trivy fs ."], "outcome": "success", "procedure": {"title": "Audit"}},
        '{"action": "created"}',
        error=False,
    )
    write_transcript(transcript, [*lines, *record])
    assert play(settings, "d", transcript, first_prompt(lines), stop_hook_active=True) is None
    assert trajectories(settings) == [], "the agent's record_trajectory is the record"


# -- the warm server at SessionStart ---------------------------------------------------------


@pytest.mark.real_model
def test_session_start_starts_the_warm_server_and_a_prompt_waits_for_it(tmp_path: Path, real_model_dir: Path) -> None:
    db = tmp_path / "data" / "memory.db"
    env = {
        **os.environ,
        "MEMP_DB_PATH": str(db),
        "MEMP_HOOK_NAMESPACE": "project",
        "MEMP_LOG_LEVEL": "INFO",
        "MEMP_HOOK_SERVER": "1",
        "MEMP_MODEL_CACHE_DIR": str(real_model_dir.parent),
    }
    lines = fixture_lines("skills_and_tool_search.jsonl")
    transcript = write_transcript(tmp_path / "s.jsonl", lines)
    base = {"session_id": "s", "transcript_path": str(transcript), "cwd": str(tmp_path)}

    def hook(payload: dict[str, Any]) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "memp_mcp.entry", "hook"],
            input=json.dumps({**base, **payload}),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        return done.stdout

    settings = load_settings(environ={"MEMP_DB_PATH": str(db), "MEMP_HOOK_NAMESPACE": "project"})
    play(settings, "s0", transcript, first_prompt(lines))  # a memory to recall from
    try:
        hook({"hook_event_name": "SessionStart", "source": "startup"})
        reworded = "Audit the npm package-lock.json for HIGH and CRITICAL vulnerabilities offline and write a CSV"
        reply = hook({"hook_event_name": "UserPromptSubmit", "prompt": reworded})
        log = (db.parent / "hooks.log").read_text()
        pid = int(re.findall(r"warm server for .* \(pid (\d+)\)", log)[-1])
        # The server SessionStart started answered the prompt (no process answered it by keywords alone),
        # and with the model when the model was ready within the server's wait (a matter of the machine's
        # load, which `bench sessions` reports).
        answered = re.search(rf"^(\S+ \S+) {pid} INFO prompt in project: 1 procedures \((.*)\)$", log, re.M)
        assert answered is not None, log
        if answered.group(2) != "vector+keyword":
            # Keywords only when the model was not ready after the server's whole wait for it.
            started = re.search(rf"^(\S+ \S+) {pid} INFO warm server for ", log, re.M)
            assert started is not None
            waited = datetime.fromisoformat(answered.group(1)) - datetime.fromisoformat(started.group(1))
            assert waited.total_seconds() >= MODEL_WAIT_SECONDS, log
        assert '<procedure id="1"' in json.loads(reply)["hookSpecificOutput"]["additionalContext"]
        # The server gone (idle, a reboot) and no SessionStart: the prompt starts one and waits for it.
        os.kill(pid, signal.SIGTERM)
        # The server is keyed by the hooks' settings (their MEMP_ variables), not this process's.
        wait_until(lambda: server_pid(db, env) is None, 10)
        reply = hook({"hook_event_name": "UserPromptSubmit", "prompt": reworded})
        log = (db.parent / "hooks.log").read_text()
        again = int(re.findall(r"warm server for .* \(pid (\d+)\)", log)[-1])
        assert again != pid and re.search(rf"^.* {again} INFO prompt in project: 1 procedures", log, re.M), log
        assert '<procedure id="1"' in json.loads(reply)["hookSpecificOutput"]["additionalContext"]
    finally:
        if (found := server_pid(db, env)) is not None:
            os.kill(found, signal.SIGTERM)
            wait_until(lambda: server_pid(db, env) is None, 10)


# -- the benchmark ---------------------------------------------------------------------------


def sessions_folder(root: Path) -> Path:
    """Two families of two sessions each, from the fixtures."""
    families = {
        "audit": ["skills_and_tool_search.jsonl", "skills_and_tool_search.jsonl"],
        "papers": ["subagent_prompts.jsonl", "cancelled_parallel_calls.jsonl"],
    }
    for family, files in families.items():
        for number, name in enumerate(files, 1):
            folder = root / family / f"{family}-{number}"
            folder.mkdir(parents=True)
            raw = (FIXTURES / name).read_bytes()
            (folder / "transcript.jsonl.gz").write_bytes(gzip.compress(raw))
            (folder / "instruction.md").write_text(first_prompt(fixture_lines(name)), encoding="utf-8")
    return root


def test_bench_sessions_prints_every_figure(tmp_path: Path) -> None:
    folder = sessions_folder(tmp_path / "sessions")
    for later in ("audit/audit-2", "papers/papers-2"):
        entries = [{"reason": "r", "key_point": "Checked the exported inventory twice with inventory_check.py"}]
        (folder / later / "keypoints.json").write_text(json.dumps(entries), encoding="utf-8")
    done = CliRunner().invoke(app, ["bench", "sessions", str(folder), "--fake-embedder", "--json"])
    assert done.exit_code == 0, done.output
    figures = json.loads(done.output.strip().splitlines()[-1])
    assert figures["sessions"] == 4 and figures["families"] == 2
    assert figures["captured"] == 1.0 and figures["later_prompts"] == 2
    for key in ("right_first", "nothing_given_left_out", "plumbing_share_of_steps", "titles_first_words"):
        assert figures[key] is not None and 0.0 <= figures[key] <= 1.0
    assert 0 < figures["injected_chars"]["max"] <= 2_000
    key_points = figures["key_points"]
    assert key_points["variants"] == 2 and set(key_points["families"]) == {"audit", "papers"}
    assert key_points["overall"]["nothing"] == 0.0
    assert "Later variants' key points given" in done.output
    missing = CliRunner().invoke(app, ["bench", "sessions", str(tmp_path / "nowhere"), "--fake-embedder"])
    assert missing.exit_code != 0 and "not a folder" in missing.output


@pytest.mark.real_model
@pytest.mark.skipif(not SESSIONS.is_dir(), reason="the development sessions are not here (shared/datasets)")
def test_the_development_sessions_meet_the_targets(tmp_path: Path, real_embedder: Any) -> None:
    from memp_mcp.bench.keypoints import read_key_points
    from memp_mcp.bench.sessions import HELDOUT_PROMPTS, load_sessions, load_unrelated_prompts, run_sessions_bench

    figures = run_sessions_bench(
        SESSIONS,
        tmp_path,
        real_embedder,
        unrelated=load_unrelated_prompts(),
        heldout=load_unrelated_prompts(HELDOUT_PROMPTS),
        timing=False,
    )
    assert figures["captured"] >= 0.9
    assert figures["right_first"] >= 0.85
    assert figures["nothing_given_left_out"] >= 0.9
    # Long prompts of other kinds: the tuning set entirely (words in common with a procedure's steps are
    # no evidence for a long instruction), the held-out set as the target asks of a family with nothing.
    assert figures["nothing_given_unrelated"] == 1.0 and figures["nothing_given_heldout"] >= 0.9
    assert figures["injected_chars"]["max"] <= 2_000
    # The key points of every family with a later variant are scored; what memp injected is no more than
    # the first session said, and nothing injected covers nothing.
    key_points = figures["key_points"]
    sessions = load_sessions(SESSIONS)
    later = [s for s in sessions if s is not next(f for f in sessions if f.family == s.family)]
    assert set(key_points["families"]) == {s.family for s in later if read_key_points(s.transcript.parent)}
    for family, row in key_points["families"].items():
        assert row["nothing"] == 0.0 and row["memp"] <= row["transcript"], family
    shutil.rmtree(tmp_path / "transcripts", ignore_errors=True)


@pytest.mark.real_model
def test_the_model_reads_a_long_prompt_as_far_as_it_was_meant_to(real_embedder: Any) -> None:
    from memp_mcp.embedding import MINILM_MAX_TOKENS

    # A pasted instruction of thousands of characters: what lies past the model's reading length changes
    # nothing, and does not cost its embedding time.
    head = first_prompt(fixture_lines("task_output_errors.jsonl")) * 4
    [whole, longer] = real_embedder.embed([head, head + " tail words " * 300])
    assert MINILM_MAX_TOKENS == 256
    assert sum(a * b for a, b in zip(whole, longer, strict=True)) > 0.999


def test_a_script_the_agent_ran_keeps_its_lines_into_the_procedure() -> None:
    from memp_mcp.engine.memory import Memory
    from memp_mcp.hooks.transcript import ToolCall, call_step
    from memp_mcp.store import SQLiteStore
    from tests.conftest import FakeEmbedder

    # The shape of a real session's step (dependency-vulnerability-check): a heredoc Python script.
    script = (
        "python3 << 'EOF'\nimport json\nimport csv\n\ndef get_cvss_score(vuln):\n"
        "    cvss = vuln.get('CVSS', {})\n    return cvss.get('nvd', {}).get('V3Score')\n"
        + "".join(f"# row {n}: keep the columns in the order asked\n" for n in range(30))
        + "EOF"
    )
    step = call_step(ToolCall("Bash", {"command": script}, "wrote report.csv", answered=True))
    assert step.action.startswith("Bash: python3 << 'EOF'\nimport json\n")
    assert "\n    cvss = vuln.get('CVSS', {})\n" in step.action
    with SQLiteStore(":memory:") as store:
        memory = Memory(store, FakeEmbedder())
        built = memory.record("write the CVE report as CSV", [step], "success")
        stored = store.get_procedure(built.procedure_id or 0)
    assert any("\n    cvss = vuln.get('CVSS', {})" in s for s in stored.steps)


def test_what_the_agent_wrote_before_a_call_is_kept_with_that_call_only() -> None:
    turn = read_last_turn(FIXTURES / "skills_and_tool_search.jsonl")
    assert turn is not None
    said = [(call.name, call.said) for call in turn.calls if call.said]
    assert said == [
        ("ToolSearch", "Now I have all the guidance I need. Let me start the audit."),
        ("Bash", "Trivy and the offline DB are ready. Running the scan now."),
    ]
    steps = turn_steps(turn)
    assert [s.thought for s in steps if s.thought] == ["Trivy and the offline DB are ready. Running the scan now."]


def test_the_skills_step_is_kept_when_the_turn_has_more_calls_than_a_trajectory_holds(tmp_path: Path) -> None:
    from memp_mcp.models import MAX_STEPS
    from tests.claude_code_session import Transcript

    transcript = Transcript(tmp_path / "t.jsonl", "s1", tmp_path)
    transcript.prompt("run the long migration")
    transcript.tool("Skill", {"skill": "db-migrations"}, "Launching skill: db-migrations")
    for n in range(MAX_STEPS + 5):
        transcript.tool("Bash", {"command": f"./migrate.sh step {n}"}, "ok")
    turn = read_last_turn(transcript.path)
    assert turn is not None
    steps = turn_steps(turn)
    assert len(steps) == MAX_STEPS and steps[0].action == "Skill: db-migrations"
    assert steps[-1].action == f"Bash: ./migrate.sh step {MAX_STEPS + 4}"
