"""A warm process that answers the prompt hook, so a prompt does not pay for imports and a model load.

SessionStart (or the first prompt hook, when no server answers) starts this server in the background
(`python -m memp_mcp.hooks.warm_server`, see memp_mcp.hooks.client); prompt hooks send their JSON
over a Unix socket and print the reply. The server keeps the store open, loads the model in the
background (a prompt waits up to MODEL_WAIT_SECONDS for it, then recalls by keywords until it is
ready), handles one event at a time, and exits after IDLE_SECONDS without a request.

Before each event it checks that the WAL it writes is still the file's (memp_mcp.store.sqlite.health): a
WAL deleted under it means its writes reach no other process, and a normal exit would checkpoint its
stale pages over newer ones, so it marks the memory damaged and leaves at once, without closing the
store. After an event, and when it exits idle, it takes a backup when one is due, off the event's path.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import sys
import threading

from memp_mcp.config import Settings, load_settings
from memp_mcp.hooks.client import (
    MAX_EVENT_BYTES,
    REPLY_TIMEOUT_SECONDS,
    ensure_runtime_dir,
    lock_path,
    runtime_dir,
    socket_path,
    starting_path,
)
from memp_mcp.hooks.command import log_to_file, oversized_event
from memp_mcp.hooks.handlers import back_up_if_due, run_hook
from memp_mcp.hooks.memories import KeptMemories

# Named, not __name__: run with -m, this module is __main__.
logger = logging.getLogger("memp_mcp.hooks.warm_server")

IDLE_SECONDS = 1800.0
# How long a prompt waits for the model while it loads (just after SessionStart started the server):
# inside the client's reply timeout, so the first prompt is answered as later ones are.
MODEL_WAIT_SECONDS = 3.0
MAX_REQUEST_BYTES = MAX_EVENT_BYTES


def serve() -> int:
    """Run the warm server for the configured database until it has been idle for IDLE_SECONDS."""
    settings = load_settings()
    log_to_file(settings)
    if ensure_runtime_dir() is None:
        logger.warning("warm server not started: %s is not a folder only this user may enter", runtime_dir())
        return 0
    path = socket_path(settings.db_path)
    # One server per database and settings: the first to lock it serves, later starts (two prompts at
    # once) leave. Opened without following a link, and emptied only once locked.
    try:
        descriptor = os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        logger.warning("warm server not started: cannot open its lock file: %s", exc)
        return 0
    lock = os.fdopen(descriptor, "r+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return 0
    lock.truncate(0)
    lock.write(str(os.getpid()))  # who to signal to stop it (see memp_mcp.hooks.client.server_pid)
    lock.flush()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path.unlink(missing_ok=True)
    old_mask = os.umask(0o077)  # the socket is this user's alone
    try:
        listener.bind(str(path))
    except OSError as exc:
        logger.info("warm server not started: %s", exc)
        return 0
    finally:
        os.umask(old_mask)
    listener.listen(8)
    starting_path(path).unlink(missing_ok=True)
    # Ended with SIGTERM, it still removes its socket (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener.settimeout(IDLE_SECONDS)
    memories = KeptMemories(settings, model_wait=MODEL_WAIT_SECONDS)
    threading.Thread(target=memories.load_model, name="model-load", daemon=True).start()
    logger.info("warm server for %s on %s (pid %d)", settings.db_path, path, os.getpid())
    backing_up: threading.Thread | None = None
    try:
        while True:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                logger.info("warm server idle for %.0f s: exiting", IDLE_SECONDS)
                back_up_if_due(settings)
                return 0
            _leave_if_split(settings)
            with connection:
                connection.settimeout(REPLY_TIMEOUT_SECONDS)
                try:
                    request = _read_all(connection)
                    reply = run_hook(request, settings, memories) if request else None
                    connection.sendall(b"ok\n" + (reply or "").encode("utf-8"))
                except Exception:  # one bad request must not end the server
                    logger.exception("warm server request failed")
            if backing_up is None or not backing_up.is_alive():
                backing_up = threading.Thread(target=back_up_if_due, args=(settings,), name="backup", daemon=True)
                backing_up.start()
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        lock.close()


def _leave_if_split(settings: Settings) -> None:
    """Exit at once, without closing the store, when the WAL this server writes was deleted under it."""
    if settings.database_url is not None:
        return
    from memp_mcp.store.sqlite import health

    if health.own_wal_deleted(settings.db_path):
        health.mark_damaged(
            settings.db_path,
            "the hooks' warm server found the WAL it wrote deleted by another process; what it wrote since is "
            "lost to the file",
        )
        logger.error("warm server (pid %d) left: its WAL of %s was deleted under it", os.getpid(), settings.db_path)
        logging.shutdown()
        os._exit(1)  # closing would checkpoint the deleted WAL's stale pages into the file


def _read_all(connection: socket.socket) -> bytes:
    """The request, or b"" (answered with no reply) for one over MAX_REQUEST_BYTES, read to its end and
    logged once: a closed connection would send the client to start a server and ask again."""
    chunks: list[bytes] = []
    size = 0
    while chunk := connection.recv(65536):
        size += len(chunk)
        if size <= MAX_REQUEST_BYTES:
            chunks.append(chunk)
    if size > MAX_REQUEST_BYTES:
        logger.warning(oversized_event(b"".join(chunks)))
        return b""
    return b"".join(chunks)


if __name__ == "__main__":
    sys.exit(serve())
