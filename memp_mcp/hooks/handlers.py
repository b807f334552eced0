"""What each Claude Code hook event does: recall before a prompt, record after a turn.

Claude Code starts the command once per event with one JSON object on stdin: `session_id`,
`transcript_path`, `cwd`, `hook_event_name`, and per event `prompt` (UserPromptSubmit), `source`
(SessionStart: startup, resume, clear or compact), `stop_hook_active` (Stop), `reason`
(SessionEnd). On exit 0 it reads stdout as JSON; `{"hookSpecificOutput": {"hookEventName": ...,
"additionalContext": "..."}}` adds the text to the model's context (UserPromptSubmit, SessionStart).

- UserPromptSubmit: remember the prompt as the session's task (what the user typed is the task, not
  what a transcript line holds), recall for it in the project's namespace and inject the best procedure
  (steps, pitfalls, recall_id, and how to report) within INJECTION_CHARS; nothing when nothing fits.
  A hook process recalls by keywords (loading the model would cost about a second per prompt); the
  warm server, started at SessionStart, recalls with the model.
- Stop and SessionEnd: the tool calls made for the last prompt become a trajectory of the session's
  task in the project's namespace (the client's bookkeeping and memp's own calls left out; a turn in
  which the agent called record_trajectory itself is not recorded again). Where the transcript shows
  the outcome, it is reported against this session's recall for that prompt; else the trajectory is
  recorded, as unverified when nothing decided it. With MEMP_HOOK_DISTILL=agent, the first Stop of a
  session that did work asks the agent to record its own draft instead (DISTILL_REASON).
- SessionStart: start the warm server (hooks.command); after a compaction, inject again the procedure
  injected for the current prompt, since compaction drops it.

`run_hook` answers one event and raises on failure; the hook process (memp_mcp.hooks.command) and
the warm server (memp_mcp.hooks.warm_server) run it and keep failures from the session.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from memp_mcp.config import Settings
from memp_mcp.hooks.memories import FreshMemories, Memories
from memp_mcp.hooks.session import SessionState, forget_old_states, state_path
from memp_mcp.models import MAX_TASK_CHARS

logger = logging.getLogger(__name__)

# A prompt with fewer content words than this ("yes", "go on") is not a task to recall for.
MIN_PROMPT_KEYWORDS = 2
RECALL_K = 2
AGENT = "claude-code"
# Work worth asking the agent to distil: this many calls of the task, one of which changed something.
DISTILL_MIN_CALLS = 3
DISTILL_CHANGING_TOOLS = frozenset({"Bash", "Write", "Edit", "MultiEdit", "NotebookEdit"})
# The stop hook's reason, with the namespace the hooks record in (at most 64 characters): <= 600 in all.
# It asks for the shape the extractive builder makes (engine/change.py), with the agent's own words.
DISTILL_REASON = (
    "Before you stop: save what this work established. Call record_trajectory (procedural-memory "
    'server) once: namespace="{namespace}", task = the request in one line, outcome, the main steps, '
    "procedure = {{title: a short imperative summary; when_to_use: the kind of task, files, tools, formats; "
    "steps (<= 10): where to look, the failing reproduction, the change per file (short diff or kept "
    "script), the check that passed, as commands; pitfalls: what failed and why}}. No probes. If nothing "
    "is worth reusing, just stop. Asked once."
)


def _checked_folder(cwd: object) -> Path | None:
    """The session's folder, when it is in a git work tree: the injected procedures' citations are checked
    against that tree's top, the folder kept as context (engine/freshness.py). None outside one: a home or
    scratch folder is no project whose files a procedure's steps could be judged by."""
    from memp_mcp.project import in_repository

    if not (isinstance(cwd, str) and cwd and Path(cwd).is_dir() and in_repository(Path(cwd))):
        return None
    return Path(cwd)


def _recording_root(cwd: object) -> str | None:
    """The folder recorded paths are written relative to: the git work tree's top, the root the check
    reads them against, so a session started in `repo/backend` records `backend/app.py`. A folder not on
    this machine (a transcript from elsewhere) is kept as it is."""
    from memp_mcp.project import project_root

    if not (isinstance(cwd, str) and cwd):
        return None
    return str(project_root(Path(cwd))) if Path(cwd).is_dir() else cwd


def namespace_for(settings: Settings, cwd: object) -> str:
    """The hooks' namespace for a working directory: the repository's (see memp_mcp.project), or
    the folder-keyed namespace of earlier versions while only that one holds this project's memory."""
    from memp_mcp.project import carried_namespace

    if settings.hook_namespace:
        return settings.hook_namespace
    folder = Path(cwd) if isinstance(cwd, str) and cwd else Path.cwd()
    return carried_namespace(folder, lambda namespace: holds_memory(settings, namespace), aliases_path(settings))


def aliases_path(settings: Settings) -> Path:
    return settings.db_path.parent / "project-namespaces.json"


def holds_memory(settings: Settings, namespace: str) -> bool:
    """Whether the SQLite file holds a trajectory or a procedure in `namespace` (cheap enough for a
    prompt hook). Read through the store's own driver, never another copy of SQLite: in the warm
    server, which keeps the file open, a connection of a second SQLite library would drop that
    connection's locks when it closed (see memp_mcp.store.driver). Folder-keyed namespaces came
    before PostgreSQL hooks, so a PostgreSQL database carries nothing over."""
    from memp_mcp.store import driver

    if settings.database_url is not None or not settings.db_path.exists():
        return False
    try:
        connection = driver.connect(settings.db_path, read_only=True)
        try:
            row = connection.execute(
                "SELECT EXISTS (SELECT 1 FROM procedures WHERE namespace = ?) "
                "OR EXISTS (SELECT 1 FROM trajectories WHERE namespace = ?)",
                (namespace, namespace),
            ).fetchone()
        finally:
            connection.close()
    except driver.database_errors():
        return False
    return bool(row and row[0])


# -- the prompt ----------------------------------------------------------------------------


def prompt_task(prompt: str) -> str:
    """The prompt as this session's state keeps it (on disk): one line, without secrets or private spans."""
    from memp_mcp.redact import redact

    return " ".join(redact(prompt).text.split())[:MAX_TASK_CHARS]


def on_prompt(data: dict[str, Any], settings: Settings, memories: Memories) -> dict[str, Any] | None:
    from memp_mcp.text import keywords

    prompt = data.get("prompt")
    if not isinstance(prompt, str):
        return None
    task = prompt_task(prompt)
    if task.startswith("/") or len(keywords(task)) < MIN_PROMPT_KEYWORDS:
        return None  # a follow-up ("go on") continues the task the session remembers
    path = state_path(settings, data.get("session_id"))
    notice = damage_notice(settings)
    if notice is not None:
        return _tell_damage_once(path, notice)
    namespace = namespace_for(settings, data.get("cwd"))
    state = SessionState.load(path)
    state.namespace, state.task = namespace, task
    state.recall_id = state.procedure_id = state.injection = None
    if settings.database_url is None and not settings.db_path.exists():
        state.save(path)  # nothing recorded yet; the stop hook creates the database
        return None
    with memories.open(namespace) as memory:
        result = memory.recall(
            task,
            RECALL_K,
            namespace=namespace,
            wait_for_model=0.0,
            origin="prompt hook",
            project_root=_checked_folder(data.get("cwd")),
            words_under_floor=False,  # nobody asked: the right procedure or none
        )
        if result.procedures:
            state.recall_id = result.recall_id
            state.procedure_id = result.procedures[0].id
            from memp_mcp.server.render import render_injection

            state.injection = render_injection(result.procedures, result.recall_id, namespace)
            ids = [p.id for p in result.procedures if f'<procedure id="{p.id}"' in state.injection]
            _log(
                memory,
                namespace,
                "inject",
                task,
                f"injected {', '.join(f'#{i}' for i in ids)} ({len(state.injection)} characters)",
                {"procedures": ids, "chars": len(state.injection), "recalled": [p.id for p in result.procedures]},
                recall_id=result.recall_id,
            )
    state.save(path)
    logger.info("prompt in %s: %d procedures (%s)", namespace, len(result.procedures), result.retrieval)
    if not state.injection:
        return None
    return {"hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "additionalContext": state.injection}}


def damage_notice(settings: Settings) -> str | None:
    """What to say when the SQLite memory is marked damaged (memp_mcp.store.sqlite.health): the hooks then
    neither recall from it nor write to it, and say so, until `doctor`, `repair` or `restore` clears it."""
    from memp_mcp.hooks.client import marked_damaged

    # The marker's presence first, with one stat: reading it imports the store, which a SessionStart
    # hook process would otherwise not.
    if settings.database_url is not None or not settings.db_path.exists() or not marked_damaged(settings.db_path):
        return None
    from memp_mcp.store.sqlite import health

    found = health.damage(settings.db_path)
    return None if found is None else health.advice(settings.db_path, found)


def _tell_damage_once(path: Path, notice: str) -> dict[str, Any] | None:
    """The damage notice as the prompt's context, once per session (the model is asked to pass it on)."""
    state = SessionState.load(path)
    if state.damage_told:
        return None
    state.damage_told = True
    state.save(path)
    context = f"<memp-mcp-notice>{notice} Tell the user this once; it is not part of their task.</memp-mcp-notice>"
    return {"hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "additionalContext": context}}


def back_up_if_due(settings: Settings) -> None:
    """A checked copy of the SQLite memory when one is due (memp_mcp.store.sqlite.backups); never raises."""
    if settings.database_url is None:
        from memp_mcp.store.sqlite.backups import back_up_if_due as back_up

        back_up(settings.db_path)


# -- the end of a turn ---------------------------------------------------------------------


def on_turn_end(data: dict[str, Any], settings: Settings, memories: Memories) -> dict[str, Any] | None:
    from memp_mcp.errors import MempError
    from memp_mcp.hooks.transcript import infer_outcome, read_last_turn, turn_steps, turn_task
    from memp_mcp.models import Outcome

    hook = str(data.get("hook_event_name"))
    if (notice := damage_notice(settings)) is not None:
        logger.error("nothing recorded: %s", notice)
        return None
    transcript = data.get("transcript_path")
    if not isinstance(transcript, str) or not transcript:
        _log_nothing(settings, memories, data, hook, "", "nothing recorded: the event names no transcript")
        return None
    path = state_path(settings, data.get("session_id"))
    state = SessionState.load(path)
    if data.get("stop_hook_active") is True and not state.distill_asked:
        # Claude is already continuing because of another stop hook: this turn was handled
        _log_nothing(settings, memories, data, hook, "", "nothing recorded: Claude is continuing after a stop hook")
        return None
    try:
        turn = read_last_turn(Path(transcript))
    except OSError as exc:
        logger.info("no transcript to read (%s): %s", transcript, exc.strerror)
        _log_nothing(
            settings, memories, data, hook, "", f"nothing recorded: the transcript cannot be read ({exc.strerror})"
        )
        return None
    if turn is None:
        _log_nothing(settings, memories, data, hook, "", "nothing recorded: the transcript holds no prompt")
        return None
    if turn.prompt_id and state.recorded_prompt_id == turn.prompt_id:
        if hook != "SessionEnd":
            _log_nothing(
                settings, memories, data, hook, turn_task(turn), "nothing recorded: this turn was recorded already"
            )
        return None  # recorded at Stop; this is the SessionEnd after it
    if turn.recorded_by_the_agent:
        logger.info("the agent recorded this turn itself; the transcript is not recorded again")
        _log_nothing(
            settings, memories, data, hook, turn_task(turn), "nothing recorded: the agent recorded this turn itself"
        )
        state.recorded_prompt_id, state.recall_id = turn.prompt_id, None
        state.save(path)
        return None
    steps = turn_steps(turn)
    if not steps:
        _log_nothing(settings, memories, data, hook, turn_task(turn), "nothing recorded: the turn made no tool calls")
        return None
    namespace = state.namespace or namespace_for(settings, data.get("cwd") or turn.cwd)
    if _asks_to_distill(data, settings, state, turn):
        state.distill_asked = True
        state.save(path)
        return {"decision": "block", "reason": DISTILL_REASON.format(namespace=namespace)}
    # The prompt the prompt hook saw is the task; the transcript's own last prompt only when the hook
    # never saw one (installed mid-session, or a prompt it skipped).
    task = state.task or turn_task(turn)
    same_prompt = state.task is not None
    success, evidence = infer_outcome(turn)
    agent = f"{AGENT}/{turn.model}" if turn.model else AGENT
    with memories.open(namespace) as memory:
        reported = False
        if same_prompt and state.recall_id and _reported_by_the_agent(memory, state.recall_id):
            # The agent judged its own work through the MCP tool (with or without the trajectory):
            # its word stands, and recording the turn again would count it twice.
            logger.info("recall %s was reported by the agent; the turn is not recorded again", state.recall_id)
            reported = True
            said = f"not recorded again: the agent reported recall {state.recall_id} itself"
        elif same_prompt and state.recall_id and success is not None:
            try:
                result = memory.report_outcome(
                    state.recall_id,
                    success,
                    procedure_id=state.procedure_id,
                    notes=f"Reported by the Claude Code stop hook from the transcript: {evidence}.",
                    trajectory=steps,
                    agent=agent,
                    namespace=namespace,
                    origin=f"{hook} hook",
                )
                reported = True
                said = f"reported {'success' if success else 'failure'} for recall {state.recall_id}"
                logger.info("reported %s for recall %s: %s", success, state.recall_id, result.message)
            except MempError as exc:
                # Most often the agent reported it already through the MCP tool.
                logger.info("recall %s not reported: %s", state.recall_id, exc)
        if not reported:
            outcome = Outcome.UNKNOWN if success is None else Outcome.SUCCESS if success else Outcome.FAILURE
            recorded = memory.record(
                task,
                steps,
                outcome,
                namespace=namespace,
                agent=agent,
                root=_recording_root(data.get("cwd") or turn.cwd),
                origin=f"{hook} hook",
            )
            said = f"recorded trajectory {recorded.trajectory_id} as {outcome.value}: {recorded.action}"
            logger.info("recorded %s (%s: %s): %s", recorded.action, outcome.value, evidence, recorded.message)
        verdict = "unknown" if success is None else "success" if success else "failure"
        _log(
            memory,
            namespace,
            "stop",
            task,
            f"{said}; verdict {verdict} ({evidence})",
            {"event": hook, "verdict": verdict, "evidence": evidence, "tool_calls": len(steps)},
            recall_id=state.recall_id if same_prompt else None,
        )
    state.recorded_prompt_id = turn.prompt_id
    state.recall_id = None  # judged (or superseded by the record): never report it twice
    state.save(path)
    back_up_if_due(settings)
    return None


def _asks_to_distill(data: dict[str, Any], settings: Settings, state: SessionState, turn: Any) -> bool:
    """Whether this Stop asks the agent for its own draft: opted in, once per session, never while Claude
    is already continuing because of a stop hook, and only after work worth distilling."""
    if settings.hook_distill != "agent" or state.distill_asked or data.get("stop_hook_active") is True:
        return False
    calls = turn.work_calls
    return len(calls) >= DISTILL_MIN_CALLS and any(call.name in DISTILL_CHANGING_TOOLS for call in calls)


def _log(
    memory: Any,
    namespace: str,
    kind: str,
    task: str,
    summary: str,
    detail: dict[str, Any],
    recall_id: str | None = None,
) -> None:
    """An entry of `memp-mcp log`; a store that cannot be written loses it, never the hook's work."""
    from memp_mcp.errors import MempError

    try:
        with memory.store.transaction():
            memory.store.add_event(namespace, kind, task, summary, detail, recall_id=recall_id)
    except MempError as exc:
        logger.info("event not logged: %s", exc)


def _log_nothing(
    settings: Settings, memories: Memories, data: dict[str, Any], hook: str, task: str, summary: str
) -> None:
    """Why an end of turn recorded nothing, when there is a memory to say it in."""
    if settings.database_url is None and not settings.db_path.exists():
        return
    namespace = namespace_for(settings, data.get("cwd"))
    with memories.open(namespace) as memory:
        _log(memory, namespace, "stop", task, summary, {"event": hook})


def _reported_by_the_agent(memory: Any, recall_id: str) -> bool:
    from memp_mcp.errors import MempError

    try:
        return bool(memory.store.get_recall_event(recall_id).reported)
    except MempError:
        return False


# -- the start of a session ----------------------------------------------------------------


def on_session_start(data: dict[str, Any], settings: Settings, memories: Memories) -> dict[str, Any] | None:
    # The warm server is started by the hook process (hooks.command) for startup, resume and clear alike.
    forget_old_states(settings)
    if data.get("source") != "compact":
        return None
    state = SessionState.load(state_path(settings, data.get("session_id")))
    if not state.injection or not state.recall_id:
        return None
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": state.injection}}


# -- one event -----------------------------------------------------------------------------

HANDLERS = {
    "UserPromptSubmit": on_prompt,
    "Stop": on_turn_end,
    "SessionEnd": on_turn_end,
    "SessionStart": on_session_start,
}


def run_hook(raw: bytes, settings: Settings, memories: Memories | None = None) -> str | None:
    """The stdout reply to one hook event (None for no output). Raises on bad input and failures."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("hook input is not a JSON object")
    handler = HANDLERS.get(str(data.get("hook_event_name")))
    if handler is None:
        return None
    reply = handler(data, settings, memories or FreshMemories(settings))
    return json.dumps(reply) if reply else None
