"""The hook's client of the warm server: what runs on every prompt, before anything heavy.

A hook is a new process per prompt: importing the engine costs a few hundred milliseconds and
loading the embedding model about a second. So a prompt or session-start event is first sent to
the database's warm server (memp_mcp.hooks.warm_server) over a Unix socket and its reply printed;
only without a server does the hook import the engine and answer itself, starting one for the
next event. SessionStart starts one, so a session's first prompt finds it: a prompt that finds a
server still starting (STARTING_SECONDS) waits for it, up to START_WAIT_SECONDS, rather than
answering by keywords alone.

One server serves one user and one configuration: its socket and lock file live in a folder only
this user may enter (runtime_dir), checked without following links, and are named after the
database and every MEMP_ setting, so two projects configured differently never share a server
(nor one's namespace, or its database). A server is only asked when the folder passes its checks and,
where the system tells, the process at the other end runs as this user.

Imports the standard library alone, at any depth: memp_mcp.entry's fast path imports this module
and nothing else of memp_mcp (tests/test_hooks.py checks it in a fresh interpreter).
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

CONNECT_TIMEOUT_SECONDS = 0.2
# Inside the prompt hook's own deadline: a server that does not answer by then is skipped.
REPLY_TIMEOUT_SECONDS = 4.0
# A server started this recently may still be importing: a prompt waits for its socket this long at
# most. This wait, the reply (the server's own wait for its model, warm_server.MODEL_WAIT_SECONDS,
# inside it) and the hook's own answer when no reply comes (hooks.command.PROMPT_DEADLINE_SECONDS)
# stay inside the prompt hook's 10 s timeout (hooks.install.HOOK_EVENTS).
STARTING_SECONDS = 15.0
START_WAIT_SECONDS = 2.0
# The largest hook event read (a prompt of a pasted file can exceed it): a larger one is ignored, by the
# hook process alone (memp_mcp.hooks.command), never sent to a server.
MAX_EVENT_BYTES = 1_000_000


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


_NOT_SERVER_SETTINGS = frozenset({"MEMP_DB_PATH", "MEMP_HOOKS", "MEMP_HOOK_SERVER"})


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def runtime_dir() -> Path:
    """This user's folder for warm servers: under XDG_RUNTIME_DIR where the system gives one, else
    in the temporary folder (Unix socket paths must stay short). Created private; see is_private."""
    base = os.environ.get("XDG_RUNTIME_DIR") or ""
    if not (base and os.path.isabs(base) and os.path.isdir(base)):
        base = tempfile.gettempdir()
    return Path(base) / f"memp-mcp-{_uid()}"


def is_private(folder: Path) -> bool:
    """Whether `folder` is a real folder (not a link) that only this user owns and may enter. Anyone can
    create a path in a shared temporary folder first; a folder that is not ours is never used."""
    try:
        found = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(found.st_mode) and found.st_uid == _uid() and found.st_mode & 0o077 == 0


def ensure_runtime_dir() -> Path | None:
    """The private runtime folder, created if need be; None when it is not safe to use."""
    folder = runtime_dir()
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    return folder if is_private(folder) else None


def settings_key(db_path: Path, environ: Mapping[str, str] | None = None) -> str:
    """What one warm server is for: the database and every MEMP_ setting the hook runs with (the
    namespace, strategies, database URL...). MEMP_DB_PATH is the database itself, resolved; MEMP_HOOKS
    and MEMP_HOOK_SERVER only decide whether a server is asked at all."""
    env = os.environ if environ is None else environ
    settings = sorted((k, v) for k, v in env.items() if k.startswith("MEMP_") and k not in _NOT_SERVER_SETTINGS)
    key = "\0".join([str(db_path.expanduser().absolute()), *(f"{k}={v}" for k, v in settings)])
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def socket_path(db_path: Path, environ: Mapping[str, str] | None = None) -> Path:
    return runtime_dir() / f"hook-{settings_key(db_path, environ)}.sock"


def lock_path(socket: Path) -> Path:
    return socket.with_suffix(".lock")


def starting_path(socket: Path) -> Path:
    return socket.with_suffix(".starting")


def is_starting(socket: Path) -> bool:
    """A server was started for this socket moments ago and may not listen yet."""
    try:
        return time.time() - starting_path(socket).stat().st_mtime < STARTING_SECONDS
    except OSError:
        return False


def ask_or_wait(path: Path, request: bytes, wait: float = START_WAIT_SECONDS) -> bytes | None:
    """`ask`, waiting up to `wait` seconds for a server that is still starting."""
    reply = ask(path, request)
    if reply is not None or not is_starting(path):
        return reply
    give_up = time.monotonic() + wait
    while time.monotonic() < give_up:
        time.sleep(0.05)
        reply = ask(path, request)
        if reply is not None:
            return reply
    return None


def server_pid(db_path: Path, environ: Mapping[str, str] | None = None) -> int | None:
    """The pid of the warm server answering for `db_path` with the settings in `environ`, if one is."""
    path = socket_path(db_path, environ)
    if ask(path, b"") is None:
        return None
    try:
        return int(lock_path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def ask(path: Path, request: bytes) -> bytes | None:
    """The warm server's reply to `request`, or None when there is no server of this user to ask."""
    if not hasattr(socket, "AF_UNIX") or not is_private(path.parent):
        return None
    try:
        if os.lstat(path).st_uid != _uid():
            return None  # someone else's socket: never take context from it
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(CONNECT_TIMEOUT_SECONDS)
            connection.connect(str(path))
            if not _peer_is_this_user(connection):
                return None
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


def _peer_is_this_user(connection: socket.socket) -> bool:
    """Whether the process at the other end runs as this user, where the system says (Linux); elsewhere
    the private folder is the check."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    size = struct.calcsize("3i")
    _pid, uid, _gid = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size))
    return bool(uid == _uid())


# memp_mcp.store.sqlite.health.MARKER_SUFFIX, spelt again here because this module imports the standard
# library alone (tests/test_recovery.py checks that the two agree).
DAMAGE_MARKER_SUFFIX = ".damaged"


def marked_damaged(db_path: Path) -> bool:
    """Whether the SQLite memory at `db_path` is marked damaged (see memp_mcp.store.sqlite.health)."""
    return db_path.with_name(db_path.name + DAMAGE_MARKER_SUFFIX).exists()


def start_in_background(db_path: Path) -> None:
    """Start a warm server for `db_path` detached from this process (it outlives the hook)."""
    import subprocess

    if not hasattr(socket, "AF_UNIX") or ensure_runtime_dir() is None:
        return
    starting_path(socket_path(db_path)).touch()
    subprocess.Popen(
        [sys.executable, "-m", "memp_mcp.hooks.warm_server"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        env={**os.environ, "MEMP_DB_PATH": str(db_path)},
    )
