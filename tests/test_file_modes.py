"""The files memp-mcp writes beside its database hold recorded work: other local users may not read them.

Each is created 0600 in a folder created 0700, whatever the umask (the tests set the usual 022, under
which a plain open makes files 0644 in 0755 folders).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from memp_mcp.store import SQLiteStore
from tests.claude_code_session import Transcript


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_database_and_its_wal_and_shm_are_0600_in_0700_folders(tmp_path: Path) -> None:
    path = tmp_path / "home" / "data" / "memory.db"
    store = SQLiteStore(path)
    try:
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)  # WAL mode: both exist while the store is open
        assert {f.name: oct(mode(f)) for f in files} == {f.name: oct(0o600) for f in files}
    finally:
        store.close()
    assert oct(mode(path.parent)) == oct(0o700)
    assert oct(mode(path.parent.parent)) == oct(0o700)  # every folder memp-mcp made on the way


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    # A folder the user made (a shared team folder, their home) is theirs to set: only what memp-mcp creates is 0700.
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o750)
    os.chmod(folder, 0o750)
    SQLiteStore(folder / "memory.db").close()
    assert oct(mode(folder)) == oct(0o750)
    assert oct(mode(folder / "memory.db")) == oct(0o600)


def test_hooks_log_and_session_files_are_0600_in_0700_folders(tmp_path: Path) -> None:
    data = tmp_path / "data"
    project = tmp_path / "app"
    (project / ".git").mkdir(parents=True)
    transcript = Transcript(tmp_path / "t.jsonl", "s1", project)
    transcript.prompt("deploy the app")
    transcript.tool("Bash", {"command": "make deploy"}, "deployed")
    env = {**os.environ, "MEMP_DB_PATH": str(data / "memory.db"), "MEMP_LOG_LEVEL": "DEBUG", "MEMP_HOOK_SERVER": "0"}
    base = {"session_id": "s1", "transcript_path": str(transcript.path), "cwd": str(project)}
    for name, fields in (("UserPromptSubmit", {"prompt": "deploy the app"}), ("Stop", {})):
        done = subprocess.run(
            [sys.executable, "-m", "memp_mcp.entry", "hook"],
            input=json.dumps({**base, "hook_event_name": name, **fields}),
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
    log, sessions = data / "hooks.log", data / "hook-sessions"
    assert log.is_file() and list(sessions.glob("*.json"))
    created = [log, data / "memory.db", *sessions.glob("*.json")]
    assert {f.name: oct(mode(f)) for f in created} == {f.name: oct(0o600) for f in created}
    assert {d.name: oct(mode(d)) for d in (data, sessions)} == {d.name: oct(0o700) for d in (data, sessions)}


def test_the_project_namespaces_file_is_0600_in_a_0700_folder(tmp_path: Path) -> None:
    from memp_mcp.project import carried_namespace, folder_namespace

    project = tmp_path / "app"
    (project / ".git").mkdir(parents=True)
    # An origin names the project, so its namespace differs from the folder-keyed one it had before.
    (project / ".git" / "config").write_text('[remote "origin"]\n\turl = https://github.com/acme/app.git\n')
    aliases = tmp_path / "data" / "project-namespaces.json"
    legacy = folder_namespace(project)
    # The folder-keyed namespace alone holds memory: the project carries it on, and says so in the file.
    assert carried_namespace(project, lambda namespace: namespace == legacy, aliases) == legacy
    assert aliases.is_file()
    assert oct(mode(aliases)) == oct(0o600)
    assert oct(mode(aliases.parent)) == oct(0o700)
