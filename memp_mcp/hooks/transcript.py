"""Claude Code session transcripts (JSONL): the last turn's prompt and tool calls, as steps.

Each line of a transcript is one JSON object. Those this reader uses:
- `{"type": "user", "message": {"content": "the prompt" | [{"type": "text", "text"}, ...]}}`: a prompt;
- `{"type": "assistant", "message": {"model", "content": [{"type": "tool_use", "id", "name", "input"}, ...]}}`;
- `{"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id", "content", "is_error"?}]}}`.
Lines flagged `isMeta`, `isSidechain` (a subagent's own work) or `isCompactSummary`, and lines that
are not JSON, are skipped: the file is written by another program, and a hook must not fail on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memp_mcp.engine.verdict import TEST_COMMAND
from memp_mcp.models import MAX_ACTION_CHARS, MAX_STEPS, MAX_TASK_CHARS, Step

# A transcript can grow to hundreds of megabytes; the last turn is near its end.
TAIL_BYTES = 32 * 1024 * 1024
OBSERVATION_CHARS = 1_500
# Tools whose calls are bookkeeping, not work on the task.
SKIPPED_TOOLS = frozenset({"TodoWrite", "ExitPlanMode", "AskUserQuestion"})
# How Claude Code's Bash tool reports a command that exited non-zero (the result is marked is_error).
EXIT_CODE = re.compile(r"\AExit code (\d+)[ \t]*(?:\n|\Z)")
FAILURE_TEXT = re.compile(
    r"\b[1-9]\d* (failed|errors?)\b|^FAILED\b|^FAIL\b|Traceback \(most recent call last\)|^error(\[\w+\])?:",
    re.MULTILINE,
)


@dataclass
class ToolCall:
    """One tool call of the turn and what came back."""

    name: str
    input: dict[str, Any]
    result: str = ""
    is_error: bool = False
    answered: bool = False

    @property
    def command(self) -> str:
        value = self.input.get("command")
        return value if self.name == "Bash" and isinstance(value, str) else ""

    @property
    def is_test_run(self) -> bool:
        return bool(TEST_COMMAND.search(self.command))

    @property
    def failed(self) -> bool:
        return self.is_error or (self.is_test_run and bool(FAILURE_TEXT.search(self.result)))


@dataclass
class Turn:
    """The last prompt of a session and the tool calls made for it."""

    prompt: str
    prompt_id: str
    calls: list[ToolCall] = field(default_factory=list)
    model: str | None = None
    cwd: str | None = None


def read_last_turn(path: Path) -> Turn | None:
    """The transcript's last prompt with its tool calls; None when it has no prompt.

    Raises OSError when the file cannot be read.
    """
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - TAIL_BYTES))
        if size > TAIL_BYTES:
            handle.readline()  # the first line read is a partial one
        raw_lines = handle.read().splitlines()
    turn: Turn | None = None
    calls: dict[str, ToolCall] = {}
    for raw in raw_lines:
        entry = _json(raw)
        if entry is None or entry.get("isMeta") or entry.get("isSidechain") or entry.get("isCompactSummary"):
            continue
        message = entry.get("message")
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if entry.get("type") == "user":
            prompt = _prompt_text(content)
            if prompt is not None:
                turn = Turn(prompt, str(entry.get("uuid") or ""), cwd=_str(entry.get("cwd")))
                calls = {}
            elif turn is not None and isinstance(content, list):
                for block in content:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        call = calls.get(str(block.get("tool_use_id")))
                        if call is not None:
                            call.result = _result_text(block.get("content"))
                            call.is_error = block.get("is_error") is True
                            call.answered = True
        elif entry.get("type") == "assistant" and turn is not None and isinstance(content, list):
            turn.model = _str(message.get("model")) or turn.model
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                    call = ToolCall(block["name"], block["input"] if isinstance(block.get("input"), dict) else {})
                    calls[str(block.get("id"))] = call
                    turn.calls.append(call)
    return turn


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # a line nested too deep is skipped, not the turn
        return None
    return value if isinstance(value, dict) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _prompt_text(content: Any) -> str | None:
    """The text a person typed, or None for tool results and the client's own insertions."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list) and content and all(isinstance(b, dict) for b in content):
        if any(b.get("type") == "tool_result" for b in content):
            return None
        text = "\n".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    else:
        return None
    text = text.strip()
    # Slash-command records and interruption notices are written as tagged or bracketed text.
    if not text or text.startswith(("<command-", "<local-command-", "[Request interrupted")):
        return None
    return text


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def describe_action(call: ToolCall) -> str:
    """The call as one readable action: the tool and what it was pointed at."""
    data = call.input
    if call.command:
        detail = call.command
    elif call.name in ("Edit", "MultiEdit") and "file_path" in data:
        old, new = _clip(str(data.get("old_string", "")), 300), _clip(str(data.get("new_string", "")), 300)
        detail = f"{data['file_path']}: replace {old!r} with {new!r}" if old or new else str(data["file_path"])
    elif "file_path" in data:
        detail = str(data["file_path"])
    elif "pattern" in data:
        detail = f"{data['pattern']!r}" + (f" in {data['path']}" if data.get("path") else "")
    elif "url" in data:
        detail = str(data["url"])
    elif "description" in data:
        detail = str(data["description"])
    else:
        detail = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return _clip(f"{call.name}: {' '.join(detail.split())}", MAX_ACTION_CHARS)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_result(call: ToolCall) -> str:
    """What the call returned, kept short: the head and the tail (where test summaries and errors are)."""
    text = call.result.strip()
    if len(text) > OBSERVATION_CHARS:
        half = OBSERVATION_CHARS // 2
        text = text[:half] + f"\n[... {len(text) - 2 * half} characters ...]\n" + text[-half:]
    if call.is_error and not call.command:
        # A tool that refused the call (an edit whose text was not found, a file that does not exist).
        return "Error: " + text if text else "Error"
    return text if call.answered or call.is_error else "(no result: the call was interrupted)"


def call_step(call: ToolCall) -> Step:
    """The call as a trajectory step. A shell command that exited non-zero carries its exit code, not
    an "Error:" label: a failing test run is a check that failed (perhaps on purpose, to reproduce a
    bug), which the builder tells apart from an action that was refused by what the output says."""
    exit_code = None
    observation = describe_result(call)
    if call.is_error and call.command and (found := EXIT_CODE.match(observation)):
        # The code goes in its field; the output that follows is what the command said.
        exit_code, observation = int(found.group(1)), observation[found.end() :]
    return Step(
        action=describe_action(call),
        observation=observation,
        ok=False if call.is_error and exit_code is None else None,
        exit_code=exit_code,
    )


def turn_steps(turn: Turn) -> list[Step]:
    """The turn's tool calls as trajectory steps (bookkeeping tools left out), at most MAX_STEPS, latest kept."""
    steps = [call_step(call) for call in turn.calls if call.name not in SKIPPED_TOOLS]
    return steps[-MAX_STEPS:]


def turn_task(turn: Turn) -> str:
    return _clip(" ".join(turn.prompt.split()), MAX_TASK_CHARS)


def infer_outcome(turn: Turn) -> tuple[bool | None, str]:
    """(True or False when the transcript shows it, else None; the evidence in words).

    - The last test run decides when there is one and nothing failed after it: passed -> True,
      failed -> False.
    - Without a test run, the last shell command and everything after it succeeding -> True.
    - Anything else (no commands, an error at the end, an interrupted call) -> None.
    """
    calls = [call for call in turn.calls if call.name not in SKIPPED_TOOLS]
    if not calls:
        return None, "no tool calls"
    if not all(call.answered for call in calls):
        return None, "a tool call was interrupted"
    tests = [i for i, call in enumerate(calls) if call.is_test_run]
    if tests:
        last = calls[tests[-1]]
        command = _clip(" ".join(last.command.split()), 120)
        if last.failed:
            return False, f"the last test run ({command}) failed"
        if any(call.failed for call in calls[tests[-1] + 1 :]):
            return None, f"the last test run ({command}) passed but a later call failed"
        return True, f"the last test run ({command}) passed"
    commands = [i for i, call in enumerate(calls) if call.command]
    if not commands:
        return None, "no shell command was run"
    if any(call.failed for call in calls[commands[-1] :]):
        return None, "the last shell command or a call after it failed"
    return True, "no tests were run; the last shell command and every call after it succeeded"
