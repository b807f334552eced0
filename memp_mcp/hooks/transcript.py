"""Claude Code session transcripts (JSONL): the last turn's prompt and tool calls, as steps.

Each line of a transcript is one JSON object. Those this reader uses:
- `{"type": "user", "message": {"content": "the prompt" | [{"type": "text", "text"}, ...]}}`: a prompt;
- `{"type": "assistant", "message": {"model", "content": [{"type": "tool_use", "id", "name", "input"}, ...]}}`;
- `{"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id", "content", "is_error"?}]}}`.
Lines flagged `isMeta` (what a skill or the client injects), `isSidechain` (a subagent's own work) or
`isCompactSummary`, the client's own insertions written as user text (command wrappers, task
notifications, interruption notices), a subagent's prompt written as a user line, and lines that are
not JSON, are skipped: the file is written by another program, and a hook must not fail on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memp_mcp.engine.verdict import TEST_COMMAND
from memp_mcp.models import MAX_ACTION_CHARS, MAX_RECORDED_ACTION_CHARS, MAX_STEPS, MAX_TASK_CHARS, Step
from memp_mcp.redact import redact

# A transcript can grow to hundreds of megabytes; the last turn is near its end.
TAIL_BYTES = 32 * 1024 * 1024
OBSERVATION_CHARS = 1_500
# How far beyond a cut a kept end of a long output is read for secrets: more than a 4096-bit RSA key
# block in PEM (about 3,300 characters).
CUT_MARGIN = 4_096
# The client's own tools: plans, to-do lists, finding tools, loading skills, asking the user. How the
# agent organises its work, not work on the task.
SKIPPED_TOOLS = frozenset(
    {
        "TodoWrite",
        "TodoRead",
        "TaskCreate",
        "TaskUpdate",
        "TaskList",
        "TaskGet",
        "ExitPlanMode",
        "EnterPlanMode",
        "AskUserQuestion",
        "ToolSearch",
        "Skill",
        "ListMcpResourcesTool",
        "ReadMcpResourceTool",
        "TaskOutput",
        "BashOutput",
        "KillShell",
    }
)
# memp's own MCP tools (Claude Code names them mcp__<server>__<tool>): remembering is not a step of the task.
MEMORY_TOOLS = frozenset(
    {
        "recall_procedure",
        "record_trajectory",
        "report_outcome",
        "get_procedure",
        "list_procedures",
        "memory_stats",
        "edit_procedure",
        "forget_procedure",
        "restore_procedure",
    }
)
MCP_TOOL = re.compile(r"\Amcp__.+__(\w+)\Z")
# Tools that start a subagent: their prompt comes back as a user line of the transcript.
SUBAGENT_TOOLS = frozenset({"Agent", "Task"})
# Text the client writes as the user's: slash-command records, shell-mode echoes, task notifications,
# reminders, interruption notices.
CLIENT_TEXT = re.compile(
    r"\A(?:<(?:command-|local-command-|bash-|task-notification|system-reminder|user-prompt-submit-hook)"
    r"|\[Request interrupted|Caveat: The messages below)"
)
# How Claude Code words a tool use the user rejected; the user's reason, when given, follows USER_SAID.
REJECTED = re.compile(r"\AThe user doesn't want to (?:proceed with this tool use|take this action)")
USER_SAID = re.compile(r"the user said:\s*", re.IGNORECASE)
# Calls the client refused before they ran: arguments that do not fit the tool's schema, or a call
# cancelled because another call sent with it failed. They teach nothing about the task.
NEVER_RAN = re.compile(r"\A<tool_use_error>(?:InputValidationError\b|Cancelled: parallel tool call)")
TOOL_USE_ERROR = re.compile(r"<tool_use_error>(.*?)(?:</tool_use_error>|\Z)", re.DOTALL)
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
    said: str = ""  # what the agent wrote just before the call (its plan for it), if anything

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

    @property
    def memory_tool(self) -> str | None:
        """The memp tool this call used (recall_procedure, record_trajectory ...), if it is one."""
        found = MCP_TOOL.match(self.name)
        return found.group(1) if found and found.group(1) in MEMORY_TOOLS else None

    @property
    def is_plumbing(self) -> bool:
        """The client's bookkeeping, a call to memp itself, or a call the client refused before it ran:
        not a step of the task."""
        return (
            self.name in SKIPPED_TOOLS
            or self.memory_tool is not None
            or (self.is_error and bool(NEVER_RAN.match(self.result.strip())))
        )


@dataclass
class Turn:
    """The last prompt of a session and the tool calls made for it."""

    prompt: str
    prompt_id: str
    calls: list[ToolCall] = field(default_factory=list)
    model: str | None = None
    cwd: str | None = None

    @property
    def recorded_by_the_agent(self) -> bool:
        """The agent recorded this turn itself (record_trajectory answered without an error)."""
        return any(c.memory_tool == "record_trajectory" and c.answered and not c.is_error for c in self.calls)

    @property
    def work_calls(self) -> list[ToolCall]:
        return [call for call in self.calls if not call.is_plumbing]


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
    subagent_prompts: set[str] = set()
    said = ""  # the agent's last text before its next tool call
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
            if prompt is not None and " ".join(prompt.split()) in subagent_prompts:
                continue  # a subagent's prompt, written as a user line: its work is the turn's
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
                if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                    said = block["text"]
                if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                    call = ToolCall(block["name"], block["input"] if isinstance(block.get("input"), dict) else {})
                    call.said, said = said, ""
                    calls[str(block.get("id"))] = call
                    turn.calls.append(call)
                    if call.name in SUBAGENT_TOOLS and isinstance(call.input.get("prompt"), str):
                        subagent_prompts.add(" ".join(call.input["prompt"].split()))
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
    if not text or CLIENT_TEXT.match(text):
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
    return _action_and_secrets(call)[0]


def _action_and_secrets(call: ToolCall) -> tuple[str, Mapping[str, str]]:
    """The action, redacted, and the secret values taken out of it (memory only)."""
    data = call.input
    if call.name == "Write" and "file_path" in data and isinstance(data.get("content"), str):
        # The file as written: a script the session wrote and kept is part of what it established.
        redacted = redact(f"{data['file_path']}\n{_clip(data['content'], MAX_WRITTEN_CHARS)}")
        return f"{call.name}: {redacted.text.rstrip()}", redacted.values
    if call.command:
        detail = call.command
    elif call.name in ("Edit", "MultiEdit") and "file_path" in data:
        listed = data.get("edits")
        edits: list[Any] = listed if isinstance(listed, list) else [data]
        # Each replacement whole (up to MAX_EDIT_CHARS a side), whitespace kept: the builder turns
        # them into the file's net change, and indentation is part of code.
        replaced = "; ".join(
            f"replace {_clip(str(e.get('old_string', '')), MAX_EDIT_CHARS)!r} "
            f"with {_clip(str(e.get('new_string', '')), MAX_EDIT_CHARS)!r}"
            for e in edits
            if isinstance(e, dict) and (e.get("old_string") or e.get("new_string"))
        )
        if replaced:
            redacted = redact(f"{data['file_path']}: {replaced}")
            return f"{call.name}: {redacted.text}", redacted.values
        detail = str(data["file_path"])
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
    redacted = redact(detail)
    if call.command and "\n" in redacted.text.strip():
        # A script (a heredoc, a loop over lines) keeps its lines: code stays code, and the builder
        # abridges a long one with a pointer to the stored run.
        lines = "\n".join(line.rstrip() for line in redacted.text.strip().split("\n"))
        return _clip(f"{call.name}: {lines}", MAX_RECORDED_ACTION_CHARS), redacted.values
    return _clip(f"{call.name}: {' '.join(redacted.text.split())}", MAX_ACTION_CHARS), redacted.values


# How much of a written file and of each side of an edit an action keeps (the stored run keeps
# them; the procedure abridges them with a pointer to it).
MAX_WRITTEN_CHARS = 40_000
# A turn's text in all, well inside what a record accepts (models.MAX_TRAJECTORY_CHARS).
MAX_TURN_CHARS = 2_000_000
MAX_SAID_CHARS = 600
MAX_EDIT_CHARS = 8_000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_result(call: ToolCall, known: Mapping[str, str] | None = None) -> str:
    """What the call returned, kept short: the head and the tail (where test summaries and errors are)."""
    return _result_and_secrets(call, known)[0]


def _result_and_secrets(call: ToolCall, known: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """describe_result's text, and the secret values taken out of it (memory only)."""
    text = call.result.strip()
    found: dict[str, str] = {}

    def redacted(part: str) -> str:
        result = redact(part, known)
        found.update(result.values)
        return result.text

    if call.is_error and (refusal := _refusal(text)):
        return redacted(refusal), found
    half = OBSERVATION_CHARS // 2
    if len(text) > OBSERVATION_CHARS + 2 * CUT_MARGIN:
        # Each kept end is redacted with a margin beyond the cut, so that a secret, a key block or a
        # <private> span across the cut is still recognised whole; the middle is never read.
        head = redacted(text[: half + CUT_MARGIN])[:half]
        tail = redacted(text[-(half + CUT_MARGIN) :])[-half:]
        text = head + f"\n[... {len(text) - 2 * half} characters ...]\n" + tail
    else:
        text = redacted(text)
        if len(text) > OBSERVATION_CHARS:
            text = text[:half] + f"\n[... {len(text) - 2 * half} characters ...]\n" + text[-half:]
    if call.is_error and not call.command:
        # A tool that refused the call (an edit whose text was not found, a file that does not exist).
        return ("Error: " + text if text else "Error"), found
    return (text if call.answered or call.is_error else "(no result: the call was interrupted)"), found


def _refusal(text: str) -> str | None:
    """A refused call as one line that leads with the reason: the user's own words when they rejected it,
    else what the client said inside its <tool_use_error> tags (the boilerplate around either left out)."""
    if REJECTED.match(text):
        said = USER_SAID.split(text, maxsplit=1)
        words = " ".join(said[1].split()) if len(said) == 2 else ""
        return f"Rejected by the user: {words}" if words else "Rejected by the user (no reason given)"
    if found := TOOL_USE_ERROR.search(text):
        reason = " ".join(found.group(1).split())
        return "Error: " + _clip(reason, 300) if reason else "Error"
    return None


def call_step(call: ToolCall) -> Step:
    return _step_and_secrets(call)[0]


def _step_and_secrets(call: ToolCall) -> tuple[Step, Mapping[str, str]]:
    """The call as a trajectory step. A shell command that exited non-zero carries its exit code, not
    an "Error:" label: a failing test run is a check that failed (perhaps on purpose, to reproduce a
    bug), which the builder tells apart from an action that was refused by what the output says."""
    exit_code = None
    # Secrets the call was given, taken out of its output too, where they may come back bare.
    action, given = _action_and_secrets(call)
    observation, shown = _result_and_secrets(call, given)
    if call.is_error and call.command and (found := EXIT_CODE.match(observation)):
        # The code goes in its field; the output that follows is what the command said.
        exit_code, observation = int(found.group(1)), observation[found.end() :]
    # The agent's words before the call say why it made it: the builder reads them for the approach.
    said = redact(_clip(" ".join(call.said.split()), MAX_SAID_CHARS), given) if call.said.strip() else None
    step = Step(
        action=action,
        observation=observation,
        thought=said.text if said else None,
        ok=False if call.is_error and exit_code is None else None,
        exit_code=exit_code,
    )
    return step, {**given, **shown, **(said.values if said else {})}


def turn_steps(turn: Turn) -> list[Step]:
    """The turn's tool calls as trajectory steps (the client's bookkeeping and memp's own calls left out), at
    most MAX_STEPS, latest kept."""
    made = [_step_and_secrets(call) for call in turn.work_calls][-MAX_STEPS:]
    # A secret recognised anywhere in the turn (a key in a command, in the prompt) is taken out of every
    # step, where it may come back bare (written into a file, quoted in an edit, said by the agent).
    known = {**redact(turn.prompt).values, **{v: k for _, found in made for v, k in found.items()}}
    steps = [_without(step, known) for step, _ in made] if known else [step for step, _ in made]
    steps = _within_turn_budget(steps)
    # The skills the agent loaded are know-how a later session can load too: one step names them (the
    # builder keeps them apart from the work; engine/change.py).
    skills = [
        name
        for call in turn.calls
        if call.name == "Skill"
        and isinstance(name := call.input.get("skill"), str)
        and re.fullmatch(r"[\w:.-]{1,80}", name)
    ]
    if skills:
        # First, and kept when the turn has more calls than a trajectory holds: the latest others make room.
        named = Step(action="Skill: " + ", ".join(dict.fromkeys(skills)), observation=None)
        steps = [named, *steps[-(MAX_STEPS - 1) :]]
    return steps


def _within_turn_budget(steps: list[Step]) -> list[Step]:
    """The steps, their longest actions clipped when the turn's text would pass MAX_TURN_CHARS (a session
    that wrote many large files): the turn is recorded, never refused for its size."""
    total = sum(len(s.action) + len(s.observation or "") + len(s.thought or "") for s in steps)
    if total <= MAX_TURN_CHARS:
        return steps
    rest = sum(len(s.observation or "") + len(s.thought or "") for s in steps)
    share = max(MAX_ACTION_CHARS, (MAX_TURN_CHARS - rest) // max(1, len(steps)))
    return [s.model_copy(update={"action": _clip(s.action, share)}) if len(s.action) > share else s for s in steps]


def _without(step: Step, known: Mapping[str, str]) -> Step:
    """The step with every secret value of `known` it holds replaced by its placeholder."""
    fields = {"action": step.action, "observation": step.observation, "thought": step.thought}
    changed = {
        name: redact(text, known).text
        for name, text in fields.items()
        if text and any(value in text for value in known)
    }
    return step.model_copy(update=changed) if changed else step


def turn_task(turn: Turn) -> str:
    return _clip(" ".join(redact(turn.prompt).text.split()), MAX_TASK_CHARS)


def infer_outcome(turn: Turn) -> tuple[bool | None, str]:
    """(True or False when the transcript shows it, else None; the evidence in words).

    - The last test run decides when there is one and nothing failed after it: passed -> True,
      failed -> False.
    - Without a test run, the last shell command and everything after it succeeding -> True.
    - Anything else (no commands, an error at the end, an interrupted call) -> None.
    """
    calls = turn.work_calls
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
