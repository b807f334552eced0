"""`memp-mcp hook`: one Claude Code hook event read from stdin, its reply written to stdout.

A hook must never break the session: every failure is logged to `hooks.log` beside the database and
the command exits 0 without output; the work runs under a deadline well inside Claude Code's timeout.
memp_mcp.entry calls `main` only when no warm server answered; a prompt or session-start event then
starts one for the next event.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from typing import Any

from memp_mcp.config import Settings, load_settings
from memp_mcp.hooks.client import MAX_EVENT_BYTES, start_in_background
from memp_mcp.hooks.handlers import damage_notice, run_hook
from memp_mcp.paths import create_private_file, private_folder

logger = logging.getLogger(__name__)

PROMPT_DEADLINE_SECONDS = 3.0
RECORD_DEADLINE_SECONDS = 20.0
MAX_INPUT_BYTES = MAX_EVENT_BYTES


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
        logger.warning(oversized_event(raw))
        _drain(sys.stdin.buffer)  # Claude Code writing the rest sees the event read, not a broken pipe
        return 0
    event = _event_name(raw)
    has_memory = settings.database_url is not None or settings.db_path.exists()
    # A memory marked damaged is not read (hooks.handlers.damage_notice): no server to hold it open.
    if start_server and event in ("UserPromptSubmit", "SessionStart") and has_memory and not damage_notice(settings):
        # Started first: it imports and loads the model while this process answers, so the next
        # prompt (a session's first, after SessionStart) finds it ready.
        try:
            start_in_background(settings.db_path)
        except OSError as exc:
            logger.warning("warm server not started: %s", exc)
    reply: list[str | None] = []
    started = time.perf_counter()

    def work() -> None:
        try:
            reply.append(run_hook(raw, settings))
        except Exception:  # the top of the hook: whatever went wrong, the session goes on
            logger.exception("hook failed; input began %r", raw[:200])

    worker = threading.Thread(target=work, name="memp-hook", daemon=True)
    worker.start()
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
    return 0


def oversized_event(head: bytes) -> str:
    """The one log line for an event over the input limit, of which `head` is the start."""
    return (
        f"hook input larger than {MAX_INPUT_BYTES} bytes ignored ({_event_name(head)} event): "
        "nothing recalled or recorded for it"
    )


def _drain(stream: Any) -> None:
    try:
        while stream.read(1 << 20):
            pass
    except (OSError, ValueError):  # closed, or not readable: nothing left to take
        pass


def log_to_file(settings: Settings) -> None:
    folder = settings.db_path.parent
    private_folder(folder)
    # Created 0600 before the handler opens it for appending: the log names tasks and commands.
    create_private_file(folder / "hooks.log")
    handler = logging.FileHandler(folder / "hooks.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)


def _event_name(raw: bytes) -> str:
    match = re.search(rb'"hook_event_name"\s*:\s*"(\w+)"', raw)
    return match.group(1).decode() if match else "unknown"
