"""One project root for recording, citing and checking: a session started in a subfolder of a git work tree.

Claude Code gives a session the folder it was started in as `cwd`; its Bash commands and Grep paths are
relative to that folder, its Read and Edit paths absolute. The procedure recorded there must be served,
fresh, to a later session in the same subfolder and to one at the repository's top.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from memp_mcp.engine.freshness import check
from memp_mcp.engine.memory import Memory
from memp_mcp.project import project_namespace
from memp_mcp.store import SQLiteStore
from tests.claude_code_session import Transcript
from tests.conftest import FakeEmbedder
from tests.test_hooks import event, hook

TASK = "Fix the failing discount test in the backend: orders of exactly the threshold get no discount"
LATER_TASK = "The backend's discount is not given to an order of exactly the threshold amount; please fix it"
APP = "def discount(total, threshold):\n    if total > threshold:\n        return 0.1\n    return 0.0\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree with the project's code one folder down, in backend/, and a frontend beside it."""
    root = tmp_path / "shop"
    (root / "backend" / "tests").mkdir(parents=True)
    (root / "backend" / "app.py").write_text(APP)
    (root / "backend" / "tests" / "test_app.py").write_text("def test_threshold_gets_discount(): ...\n")
    (root / "frontend").mkdir()
    (root / "frontend" / "app.js").write_text("export const shop = 1;\n")
    (root / "README.md").write_text("# shop\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "start")
    return root


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MEMP_DB_PATH": str(tmp_path / "data" / "memory.db"),
        "MEMP_HOOK_SERVER": "0",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # the root-commit cache stays the test's own
    }


def fix_the_discount(transcript: Transcript, backend: Path) -> None:
    """A fix as Claude Code logs it from backend/: relative paths in commands, absolute ones in Read and Edit."""
    transcript.tool(
        "Bash",
        {"command": "python -m pytest tests/test_app.py -q"},
        "Exit code 1\nF\nE   assert 0.0 == 0.1\n1 failed in 0.02s",
        is_error=True,
    )
    transcript.tool("Grep", {"pattern": "threshold", "path": "app.py"}, "app.py:2:    if total > threshold:")
    transcript.tool("Read", {"file_path": str(backend / "app.py")}, "1 def discount(total, threshold):")
    transcript.tool(
        "Edit",
        {"file_path": str(backend / "app.py"), "old_string": "if total > threshold:", "new_string": "if total >= x:"},
        f"The file {backend / 'app.py'} has been updated.",
    )
    transcript.tool("Bash", {"command": "python -m pytest tests/test_app.py -q"}, "1 passed in 0.01s")
    transcript.say("Fixed: an order of exactly the threshold now gets the discount.")


def injected(tmp_path: Path, env: dict[str, str], cwd: Path, session: str) -> str:
    """What the prompt hook adds to the context of a later session started in `cwd`."""
    later = Transcript(tmp_path / f"{session}.jsonl", session, cwd)
    later.prompt(LATER_TASK)
    reply = hook(event("UserPromptSubmit", session, later.path, cwd, prompt=LATER_TASK), env).stdout
    return str(json.loads(reply)["hookSpecificOutput"]["additionalContext"]) if reply else ""


def test_a_session_in_a_subfolder_is_served_fresh_there_and_at_the_top_and_a_deleted_file_is_still_stale(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    backend = repo / "backend"
    first = Transcript(tmp_path / "s1.jsonl", "s1", backend)
    first.prompt(TASK)
    hook(event("UserPromptSubmit", "s1", first.path, backend, prompt=TASK), env)
    fix_the_discount(first, backend)
    hook(event("Stop", "s1", first.path, backend), env)

    for cwd, session in ((backend, "s2"), (repo, "s3")):
        context = injected(tmp_path, env, cwd, session)
        assert "<procedure" in context and "Stale:" not in context, (cwd, context)

    # Recorded relative to the repository's top, as the check reads it: the edit names backend/app.py.
    memory = Memory(SQLiteStore(Path(env["MEMP_DB_PATH"])), FakeEmbedder())
    (procedure,) = memory.list_procedures(namespace=project_namespace(repo))
    memory.store.close()
    assert any(step.startswith("Change backend/app.py:\n") for step in procedure.steps), procedure.steps

    # A file that is truly gone is still named, from either folder; the edit of app.py still holds.
    (backend / "tests" / "test_app.py").unlink()
    for cwd, session in ((backend, "s4"), (repo, "s5")):
        context = injected(tmp_path, env, cwd, session)
        assert "<procedure" in context and "Stale: step" in context and "test_app.py" in context, (cwd, context)
    (backend / "app.py").unlink()
    assert injected(tmp_path, env, repo, "s6") == ""  # stale throughout: withheld


def test_a_procedure_recorded_relative_to_a_subfolder_before_this_change_reads_correctly(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    backend = repo / "backend"
    steps = [
        "Bash: python -m pytest tests/test_app.py -q",
        "Read: app.py",
        "Edit: app.py: replace 'if total > threshold:' with 'if total >= x:'",
    ]
    # Earlier versions recorded with the session's folder as the root: paths came out relative to backend/.
    memory = Memory(SQLiteStore(Path(env["MEMP_DB_PATH"])), FakeEmbedder())
    namespace = project_namespace(repo)
    memory.record(TASK, steps, "success", namespace=namespace, root=str(backend))
    (procedure,) = memory.list_procedures(namespace=namespace)
    memory.store.close()
    assert procedure.steps[-1].startswith("Change app.py:\n")
    for cwd, session in ((backend, "s2"), (repo, "s3")):
        context = injected(tmp_path, env, cwd, session)
        assert "<procedure" in context and "Stale:" not in context, (cwd, context)
    for folder in (backend, repo):
        assert check(procedure.steps, folder).stale == [], folder


def test_a_bare_file_name_resolves_when_unambiguous_and_cannot_check_is_not_stale(repo: Path) -> None:
    # `app.py` is one file under backend/ seen from the top: checked there, its edit found to hold.
    edit = "Edit: app.py: replace 'if total > threshold:' with 'if total >= x:'"
    assert check([edit], repo).stale == [] and check([edit], repo).citing_steps == 1
    (repo / "backend" / "app.py").write_text(APP.replace("if total > threshold:", "if total.over(threshold):"))
    assert "no longer there" in check([edit], repo).reasons()[0]
    # Two files of that name and neither under the session's folder: which one is meant cannot be told.
    (repo / "frontend" / "app.py").write_text("shop = 1\n")
    git(repo, "add", "frontend/app.py")  # the listing is reused while the index is unchanged
    ambiguous = check([edit], repo)
    assert ambiguous.stale == [] and ambiguous.citing_steps == 0
    # From backend/, the session's folder says which.
    assert "no longer there" in check([edit], repo / "backend").reasons()[0]
    # Deleted everywhere: stale, named.
    (repo / "backend" / "app.py").unlink()
    (repo / "frontend" / "app.py").unlink()
    assert check([edit], repo).reasons() == ["step 1 edits app.py, which no longer exists"]


def test_outside_git_a_path_that_cannot_be_placed_is_not_stale(tmp_path: Path) -> None:
    folder = tmp_path / "scratch"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "app.py").write_text(APP)
    # No repository to look the name up in: a bare name not at the folder cannot be judged either way.
    unplaced = check(["Edit: app.py: replace 'if total > threshold:' with 'x'"], folder)
    assert unplaced.stale == [] and unplaced.citing_steps == 0
    # A path with its folder still says plainly that the file is gone.
    assert check(["Read: sub/gone.py"], folder).reasons() == ["step 1 reads sub/gone.py, which no longer exists"]
