"""The `memp-mcp` console script. `memp-mcp hook` takes a fast path that imports little.

A hook is a new process on every prompt, so its cost is start-up: a prompt or session-start event
is first offered to the warm server by memp_mcp.hooks.client, which imports the standard library
alone; only without one does the hook import the engine and answer itself (memp_mcp.hooks.command).
Every other command goes to memp_mcp.cli.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if sys.argv[1:] == ["hook"]:
        sys.exit(_hook())
    from memp_mcp.cli import main as cli_main

    cli_main()


def _hook() -> int:
    from memp_mcp.hooks.client import (
        MAX_EVENT_BYTES,
        ask,
        ask_or_wait,
        client_environment,
        is_starting,
        socket_path,
        start_in_background,
    )

    raw = sys.stdin.buffer.read(MAX_EVENT_BYTES + 1)
    db_path, use_server = client_environment(os.environ)
    # An event over the limit goes to the hook process, which logs it once and answers nothing.
    warm_event = len(raw) <= MAX_EVENT_BYTES and (b'"UserPromptSubmit"' in raw or b'"SessionStart"' in raw)
    if use_server and warm_event:
        if db_path is None:
            from memp_mcp.paths import default_db_path

            db_path = default_db_path()
        # A prompt waits for a server SessionStart has just started; a session start does not wait.
        prompt = b'"UserPromptSubmit"' in raw
        path = socket_path(db_path)
        reply = (ask_or_wait if prompt else ask)(path, raw)
        if reply is None and prompt and not is_starting(path) and _has_memory(db_path):
            # The server had gone (idle, a reboot): start it and wait for it, so this prompt is answered
            # with the model like the others rather than by keywords alone.
            try:
                start_in_background(db_path)
            except OSError:
                pass
            else:
                reply = ask_or_wait(path, raw)
        if reply is not None:
            sys.stdout.write(reply[3:].decode("utf-8"))
            return 0
    from memp_mcp.hooks.command import main as hook_main

    return hook_main(raw, start_server=use_server and warm_event)


def _has_memory(db_path: object) -> bool:
    """A memory a warm server could serve: PostgreSQL, or a SQLite file not marked damaged (it is not read)."""
    from pathlib import Path

    from memp_mcp.hooks.client import marked_damaged

    if os.environ.get("MEMP_DATABASE_URL"):
        return True
    return isinstance(db_path, Path) and db_path.exists() and not marked_damaged(db_path)


if __name__ == "__main__":
    main()
