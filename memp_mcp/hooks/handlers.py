"""`memp-mcp hook`: Claude Code command hooks that recall before a prompt and record after a turn.

Claude Code starts the command once per event with one JSON object on stdin: `session_id`,
`transcript_path`, `cwd`, `hook_event_name`, and per event `prompt` (UserPromptSubmit), `source`
(SessionStart: startup, resume, clear or compact), `stop_hook_active` (Stop), `reason`
(SessionEnd). On exit 0 it reads stdout as JSON; `{"hookSpecificOutput": {"hookEventName": ...,
"additionalContext": "..."}}` adds the text to the model's context (UserPromptSubmit, SessionStart).

- UserPromptSubmit: recall for the prompt in the project's namespace and inject the best procedure
  (steps, pitfalls, recall_id, and how to report) within INJECTION_CHARS; nothing when nothing fits.
  Recall here is keyword-only: a hook is a new process per prompt and loading the embedding model
  would cost about a second each time (see `memp-mcp bench hook`).
- Stop and SessionEnd: the transcript's last prompt and the tool calls made for it become a
  trajectory in the project's namespace; where the transcript shows the outcome, it is reported
  against this session's recall for that prompt (else the trajectory is only recorded).
- SessionStart after a compaction: the procedure injected for the current prompt is injected again,
  since compaction drops it.

A hook must never break the session: every failure is logged to `hooks.log` beside the database and
the command exits 0 without output; the work runs under a deadline well inside Claude Code's timeout.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from memp_mcp.config import Settings, load_settings
from memp_mcp.models import MAX_TASK_CHARS

logger = logging.getLogger("memp_mcp.hooks.handlers")

PROMPT_DEADLINE_SECONDS = 3.0
RECORD_DEADLINE_SECONDS = 20.0
MAX_INPUT_BYTES = 1_000_000
# A prompt with fewer content words than this ("yes", "go on") is not a task to recall for.
MIN_PROMPT_KEYWORDS = 2
RECALL_K = 2
STATE_MAX_AGE_SECONDS = 14 * 24 * 3600
AGENT = "claude-code"


class Memories(Protocol):
    """Where an event's Memory comes from: fresh per event, or kept open by the warm server."""

    def open(self, namespace: str) -> AbstractContextManager[Any]: ...


@dataclass
class SessionState:
    """What this session's hooks remember between events (one small JSON file per session)."""

    namespace: str | None = None
    task: str | None = None
    recall_id: str | None = None
    procedure_id: int | None = None
    injection: str | None = None
    recorded_prompt_id: str | None = None

    @classmethod
    def load(cls, path: Path) -> SessionState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return cls()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(asdict(self)), encoding="utf-8")
        partial.replace(path)


def state_path(settings: Settings, session_id: object) -> Path:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(session_id or ""))[:100] or "unknown"
    return settings.db_path.parent / "hook-sessions" / f"{name}.json"


def namespace_for(settings: Settings, cwd: object) -> str:
    from memp_mcp.project import project_namespace

    if settings.hook_namespace:
        return settings.hook_namespace
    return project_namespace(Path(cwd) if isinstance(cwd, str) and cwd else Path.cwd())


class FreshMemories:
    """A Memory per event, closed after it: what a hook process uses (keyword recall, no model)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @contextmanager
    def open(self, namespace: str) -> Iterator[Any]:
        from memp_mcp.engine.memory import Memory
        from memp_mcp.store import open_store

        store = open_store(self.settings.db_path, self.settings.database_url)
        memory = Memory(store, None, **_memory_options(self.settings, namespace))
        try:
            yield memory
        finally:
            memory.store.close()


class KeptMemories:
    """One open store and, once loaded, the embedding model: what the warm server uses between events."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._store: Any = None
        self._model: Any = None

    def _opened_store(self) -> Any:
        from memp_mcp.store import open_store

        if self._store is None:
            self._store = open_store(self.settings.db_path, self.settings.database_url)
        return self._store

    def load_model(self) -> None:
        """Load the model, bind it and embed keys stored without vectors, then recall with it."""
        from memp_mcp.embedding import resolve_embedder
        from memp_mcp.engine.memory import Memory
        from memp_mcp.errors import MempError

        if not self.settings.embeddings:
            return
        try:
            model = resolve_embedder(self.settings, allow_download=False)
            with self._lock:
                store = self._opened_store()
            # Bound (and backfilled) off the lock, so prompts keep their keyword answers meanwhile.
            if Memory(store, model, **_memory_options(self.settings, "default")).embedder(0.0) is None:
                logger.warning("the model does not fit this database; the warm server stays on keywords")
                return
        except MempError as exc:
            logger.warning("the warm server stays on keyword recall: %s", exc)
            return
        with self._lock:
            self._model = model
        logger.info("warm server recalls with %s", model.identity)

    @contextmanager
    def open(self, namespace: str) -> Iterator[Any]:
        from memp_mcp.engine.memory import Memory

        with self._lock:
            # A new Memory per event: binding the model on first use embeds the keys that hook
            # processes recorded without vectors since the last event, so vector search sees them.
            yield Memory(self._opened_store(), self._model, **_memory_options(self.settings, namespace))


def _memory_options(settings: Settings, namespace: str) -> dict[str, Any]:
    from memp_mcp.engine.retrieve import tuning_for
    from memp_mcp.engine.strategies import Strategies

    return {
        "namespace": namespace,
        "strategies": Strategies(settings.build_strategy, settings.retrieve_strategy, settings.update_strategy),
        "read_only_namespaces": settings.read_only_namespaces,
        "tuning": tuning_for(settings),
    }


# -- the prompt ----------------------------------------------------------------------------


def on_prompt(data: dict[str, Any], settings: Settings, memories: Memories) -> dict[str, Any] | None:
    from memp_mcp.text import keywords

    prompt = data.get("prompt")
    if not isinstance(prompt, str):
        return None
    task = " ".join(prompt.split())[:MAX_TASK_CHARS]
    if task.startswith("/") or len(keywords(task)) < MIN_PROMPT_KEYWORDS:
        return None
    if settings.database_url is None and not settings.db_path.exists():
        return None  # nothing recorded yet; the stop hook creates the database
    namespace = namespace_for(settings, data.get("cwd"))
    with memories.open(namespace) as memory:
        result = memory.recall(task, RECALL_K, namespace=namespace, wait_for_model=0.0)
    state = SessionState(namespace=namespace, task=task)
    if result.procedures:
        state.recall_id = result.recall_id
        state.procedure_id = result.procedures[0].id
        from memp_mcp.server.render import render_injection

        state.injection = render_injection(result.procedures, result.recall_id, namespace)
    state.save(state_path(settings, data.get("session_id")))
    logger.info("prompt in %s: %d procedures (%s)", namespace, len(result.procedures), result.retrieval)
    if not state.injection:
        return None
    return {"hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "additionalContext": state.injection}}


# -- the end of a turn ---------------------------------------------------------------------


def on_turn_end(data: dict[str, Any], settings: Settings, memories: Memories) -> None:
    from memp_mcp.errors import MempError
    from memp_mcp.hooks.transcript import infer_outcome, read_last_turn, turn_steps, turn_task
    from memp_mcp.models import Outcome

    if data.get("stop_hook_active") is True:
        return  # Claude is already continuing because of a stop hook: this turn was handled
    transcript = data.get("transcript_path")
    if not isinstance(transcript, str) or not transcript:
        return
    try:
        turn = read_last_turn(Path(transcript))
    except OSError as exc:
        logger.info("no transcript to read (%s): %s", transcript, exc.strerror)
        return
    if turn is None:
        return
    path = state_path(settings, data.get("session_id"))
    state = SessionState.load(path)
    if turn.prompt_id and state.recorded_prompt_id == turn.prompt_id:
        return  # recorded at Stop; this is the SessionEnd after it
    steps = turn_steps(turn)
    if not steps:
        return
    task = turn_task(turn)
    same_prompt = state.task == " ".join(turn.prompt.split())[:MAX_TASK_CHARS]
    namespace = (
        state.namespace if same_prompt and state.namespace else namespace_for(settings, data.get("cwd") or turn.cwd)
    )
    success, evidence = infer_outcome(turn)
    agent = f"{AGENT}/{turn.model}" if turn.model else AGENT
    with memories.open(namespace) as memory:
        reported = False
        if same_prompt and state.recall_id and _reported_by_the_agent(memory, state.recall_id):
            # The agent judged its own work through the MCP tool (with or without the trajectory):
            # its word stands, and recording the turn again would count it twice.
            logger.info("recall %s was reported by the agent; the turn is not recorded again", state.recall_id)
            reported = True
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
                )
                reported = True
                logger.info("reported %s for recall %s: %s", success, state.recall_id, result.message)
            except MempError as exc:
                # Most often the agent reported it already through the MCP tool.
                logger.info("recall %s not reported: %s", state.recall_id, exc)
        if not reported:
            outcome = Outcome.UNKNOWN if success is None else Outcome.SUCCESS if success else Outcome.FAILURE
            recorded = memory.record(task, steps, outcome, namespace=namespace, agent=agent)
            logger.info("recorded %s (%s: %s): %s", recorded.action, outcome.value, evidence, recorded.message)
    state.recorded_prompt_id = turn.prompt_id
    if same_prompt:
        state.recall_id = None  # judged (or superseded by the record): never report it twice
    state.save(path)


def _reported_by_the_agent(memory: Any, recall_id: str) -> bool:
    from memp_mcp.errors import MempError

    try:
        return bool(memory.store.get_recall_event(recall_id).reported)
    except MempError:
        return False


# -- the start of a session ----------------------------------------------------------------


def on_session_start(data: dict[str, Any], settings: Settings, memories: Memories) -> dict[str, Any] | None:
    folder = state_path(settings, "x").parent
    if folder.is_dir():
        cutoff = time.time() - STATE_MAX_AGE_SECONDS
        for old in folder.glob("*.json"):
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
    if data.get("source") != "compact":
        return None
    state = SessionState.load(state_path(settings, data.get("session_id")))
    if not state.injection or not state.recall_id:
        return None
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": state.injection}}


# -- the command ---------------------------------------------------------------------------

HANDLERS = {
    "UserPromptSubmit": on_prompt,
    "Stop": on_turn_end,
    "SessionEnd": on_turn_end,
    "SessionStart": on_session_start,
}


def log_to_file(settings: Settings) -> None:
    folder = settings.db_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "hooks.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)


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


def main(raw: bytes | None = None, *, start_server: bool = False) -> int:
    """Run one hook event (`raw`, else stdin); always exits 0, printing only a reply Claude Code reads.

    With `start_server`, a prompt or session-start event also starts the warm server for the next one.
    """
    try:
        settings = load_settings()
    except Exception:  # settings a hook cannot use: stay silent rather than break the session
        return 0
    if not settings.hooks:
        return 0
    try:
        log_to_file(settings)
    except OSError:
        logging.getLogger().handlers[:] = [logging.NullHandler()]
    if raw is None:
        raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        logger.warning("hook input larger than %d bytes ignored", MAX_INPUT_BYTES)
        return 0
    reply: list[str | None] = []
    started = time.perf_counter()

    def work() -> None:
        try:
            reply.append(run_hook(raw, settings))
        except Exception:  # the top of the hook: whatever went wrong, the session goes on
            logger.exception("hook failed; input began %r", raw[:200])

    worker = threading.Thread(target=work, name="memp-hook", daemon=True)
    worker.start()
    event = _event_name(raw)
    deadline = PROMPT_DEADLINE_SECONDS if event in ("UserPromptSubmit", "SessionStart") else RECORD_DEADLINE_SECONDS
    worker.join(deadline)
    if worker.is_alive():
        logger.warning("%s hook gave up after %.1f s (a locked database?)", event, deadline)
        logging.shutdown()
        os._exit(0)  # the worker may be stuck inside SQLite; leave without waiting for it
    logger.debug("%s hook took %.0f ms", event, 1000 * (time.perf_counter() - started))
    if reply and reply[0]:
        sys.stdout.write(reply[0])
        sys.stdout.flush()
    has_memory = settings.database_url is not None or settings.db_path.exists()
    if start_server and event in ("UserPromptSubmit", "SessionStart") and has_memory:
        from memp_mcp.hooks.warm_server import start_in_background

        try:
            start_in_background(settings.db_path)
        except OSError as exc:
            logger.warning("warm server not started: %s", exc)
    return 0


def _event_name(raw: bytes) -> str:
    match = re.search(rb'"hook_event_name"\s*:\s*"(\w+)"', raw)
    return match.group(1).decode() if match else "unknown"
