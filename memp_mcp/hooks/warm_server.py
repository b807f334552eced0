"""A warm process that answers the prompt hook, so a prompt does not pay for imports and a model load.

A hook is a new process per prompt: importing the engine costs a few hundred milliseconds and
loading the embedding model about a second. The first prompt hook of a database answers in its
own process (keyword recall) and starts this server in the background; later prompt hooks send
their JSON over a Unix socket and print the reply, importing nothing but the standard library.
The server keeps the store open, loads the model in the background (hybrid recall once it is
ready, keywords until then), handles one event at a time, and exits after IDLE_SECONDS without
a request. The socket lives in the temporary folder (Unix socket paths are short), is named
after the database, and is only trusted when it belongs to this user.

Only the client half of this module (`ask`, `socket_path`, `client_environment`) may be imported
by the hook's fast path: it must not import the engine.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import tempfile
from pathlib import Path

IDLE_SECONDS = 1800.0
CONNECT_TIMEOUT_SECONDS = 0.2
# Inside the prompt hook's own deadline: a server that does not answer by then is skipped.
REPLY_TIMEOUT_SECONDS = 2.5
MAX_REQUEST_BYTES = 1_000_000


def client_environment(environ: dict[str, str] | os._Environ[str]) -> tuple[Path | None, bool]:
    """(the database path, whether the warm server may be used) from the environment.

    The one place outside memp_mcp.config that reads settings, because the fast path must not
    import pydantic: only MEMP_DB_PATH, MEMP_HOOKS and MEMP_HOOK_SERVER, with the same meanings.
    None means "the default database", which the client leaves to the full path to resolve.
    """
    off = {"0", "false", "no", "off"}
    enabled = environ.get("MEMP_HOOKS", "1").strip().lower() not in off
    server = environ.get("MEMP_HOOK_SERVER", "1").strip().lower() not in off
    raw = environ.get("MEMP_DB_PATH")
    return (Path(raw).expanduser() if raw else None), enabled and server


def socket_path(db_path: Path) -> Path:
    digest = hashlib.sha256(str(db_path.expanduser().absolute()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"memp-hook-{uid}-{digest}.sock"


def lock_path(socket: Path) -> Path:
    return socket.with_suffix(".lock")


def server_pid(db_path: Path) -> int | None:
    """The pid of the warm server answering for `db_path`, if one is."""
    path = socket_path(db_path)
    if ask(path, b"") is None:
        return None
    try:
        return int(lock_path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def ask(path: Path, request: bytes) -> bytes | None:
    """The warm server's reply to `request`, or None when there is no server of this user to ask."""
    if not hasattr(socket, "AF_UNIX"):
        return None
    try:
        if path.stat().st_uid != (os.getuid() if hasattr(os, "getuid") else 0):
            return None  # someone else's socket: never take context from it
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(CONNECT_TIMEOUT_SECONDS)
            connection.connect(str(path))
            connection.settimeout(REPLY_TIMEOUT_SECONDS)
            connection.sendall(request)
            connection.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
    except OSError:
        return None
    reply = b"".join(chunks)
    return reply if reply.startswith(b"ok\n") else None


def start_in_background(db_path: Path) -> None:
    """Start a warm server for `db_path` detached from this process (it outlives the hook)."""
    import subprocess

    if not hasattr(socket, "AF_UNIX"):
        return
    subprocess.Popen(
        [sys.executable, "-m", "memp_mcp.hooks.warm_server"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        env={**os.environ, "MEMP_DB_PATH": str(db_path)},
    )


def serve() -> int:
    """Run the warm server for the configured database until it has been idle for IDLE_SECONDS."""
    import fcntl
    import logging
    import signal
    import threading

    from memp_mcp.config import load_settings
    from memp_mcp.hooks.handlers import KeptMemories, log_to_file, run_hook

    settings = load_settings()
    log_to_file(settings)
    logger = logging.getLogger("memp_mcp.hooks.warm_server")
    path = socket_path(settings.db_path)
    # One server per database: the first to lock it serves, later starts (two prompts at once) leave.
    lock = lock_path(path).open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0
    lock.truncate(0)
    lock.write(str(os.getpid()))  # who to signal to stop it (see server_pid)
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
    # Ended with SIGTERM, it still removes its socket (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener.settimeout(IDLE_SECONDS)
    memories = KeptMemories(settings)
    threading.Thread(target=memories.load_model, name="model-load", daemon=True).start()
    logger.info("warm server for %s on %s (pid %d)", settings.db_path, path, os.getpid())
    try:
        while True:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                logger.info("warm server idle for %.0f s: exiting", IDLE_SECONDS)
                return 0
            with connection:
                connection.settimeout(REPLY_TIMEOUT_SECONDS)
                try:
                    request = _read_all(connection)
                    reply = run_hook(request, settings, memories) if request else None
                    connection.sendall(b"ok\n" + (reply or "").encode("utf-8"))
                except Exception:  # one bad request must not end the server
                    logger.exception("warm server request failed")
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        lock.close()


def _read_all(connection: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := connection.recv(65536):
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise ValueError("request too large")
        chunks.append(chunk)
    return b"".join(chunks)


if __name__ == "__main__":
    sys.exit(serve())
