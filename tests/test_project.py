"""A project's memory follows the repository: clones, worktrees and moved folders share one namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from memp_mcp.config import load_settings
from memp_mcp.engine.memory import Memory
from memp_mcp.hooks.handlers import namespace_for
from memp_mcp.project import folder_namespace, normalize_remote_url, project_namespace
from memp_mcp.store.sqlite import SQLiteStore

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
AUTHOR = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **AUTHOR}
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env).stdout.strip()


def repository(folder: Path, origin: str | None = None) -> Path:
    folder.mkdir(parents=True)
    git(folder, "init", "-q")
    (folder / "a.txt").write_text("a\n")
    git(folder, "add", "a.txt")
    git(folder, "-c", "commit.gpgsign=false", "commit", "-qm", "first")
    if origin:
        git(folder, "remote", "add", "origin", origin)
    return folder


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/Acme/cachelib.git",
        "git@github.com:acme/cachelib.git",
        "ssh://git@github.com:22/acme/cachelib",
        "https://user:secret@github.com/acme/cachelib/",
    ],
)
def test_every_way_of_writing_a_remote_names_the_same_repository(url: str) -> None:
    assert normalize_remote_url(url) == "github.com/acme/cachelib"


@needs_git
def test_two_clones_of_one_remote_share_a_namespace_and_a_namesake_does_not(tmp_path: Path) -> None:
    one = repository(tmp_path / "one" / "cachelib", "git@github.com:acme/cachelib.git")
    two = repository(tmp_path / "two" / "renamed", "https://github.com/acme/cachelib")
    other = repository(tmp_path / "three" / "cachelib", "https://github.com/someone/cachelib")
    (one / "sub").mkdir()
    assert project_namespace(one) == project_namespace(one / "sub") == project_namespace(two)
    assert project_namespace(one).startswith("project/cachelib-")
    assert project_namespace(other) != project_namespace(one)
    Memory(SQLiteStore(tmp_path / "x.db"), None, namespace=project_namespace(one))  # a valid namespace


@needs_git
def test_without_a_remote_a_clone_a_worktree_and_a_moved_folder_share_the_first_commits_namespace(
    tmp_path: Path,
) -> None:
    original = repository(tmp_path / "app")
    clone = tmp_path / "elsewhere" / "copy"
    git(tmp_path, "clone", "-q", str(original), str(clone))  # its origin is a local path
    worktree = tmp_path / "wt"
    git(original, "worktree", "add", "-q", str(worktree), "-b", "feature")
    namespace = project_namespace(original)
    assert project_namespace(clone) == project_namespace(worktree) == namespace
    moved = tmp_path / "moved"
    original.rename(moved)
    assert project_namespace(moved) == namespace
    assert namespace != folder_namespace(moved)


def test_a_folder_outside_any_repository_keeps_the_namespace_of_its_path(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    assert project_namespace(folder) == folder_namespace(folder)


@needs_git
def test_memory_recorded_under_the_folder_keyed_namespace_is_carried_over_to_every_clone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEMP_HOOK_NAMESPACE", raising=False)
    db = tmp_path / "data" / "memory.db"
    settings = load_settings({"db_path": db})
    first = repository(tmp_path / "first", "https://example.org/team/app.git")
    legacy = folder_namespace(first)
    with SQLiteStore(db) as store:
        Memory(store, None, namespace=legacy).record("deploy the app", ["make deploy"], "success", namespace=legacy)
    assert namespace_for(settings, str(first)) == legacy
    # Another clone of the same repository, which never had a namespace of its own, finds it too.
    second = repository(tmp_path / "second", "git@example.org:team/app.git")
    assert namespace_for(settings, str(second)) == legacy
    # A repository that never had folder-keyed memory gets its own namespace.
    fresh = repository(tmp_path / "fresh", "https://example.org/team/other.git")
    assert namespace_for(settings, str(fresh)) == project_namespace(fresh)


@needs_git
def test_work_recorded_by_the_hooks_in_one_clone_is_listed_and_injected_in_another(tmp_path: Path) -> None:
    import json
    import sys

    from tests.claude_code_session import Transcript
    from tests.test_hooks import FIRST_PROMPT, REWORDED_PROMPT, event, fix_the_bug, hook

    env = {
        **os.environ,
        "MEMP_DB_PATH": str(tmp_path / "data" / "memory.db"),
        "MEMP_HOOK_SERVER": "0",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    env.pop("MEMP_NAMESPACE", None)
    env.pop("MEMP_HOOK_NAMESPACE", None)
    here = repository(tmp_path / "work" / "cachelib", "git@github.com:acme/cachelib.git")
    # The files the session's steps cite, committed, so the clone has them too (the prompt hook checks them).
    (here / "src" / "cachelib").mkdir(parents=True)
    (here / "src" / "cachelib" / "store.py").write_text("def expire(self, now):\n    if item.deadline < now:\n")
    (here / "tests").mkdir()
    (here / "tests" / "test_cache.py").write_text("def test_expires_at_deadline(): ...\n")
    git(here, "add", "src", "tests")
    git(here, "-c", "commit.gpgsign=false", "commit", "-qm", "the cache")
    there = tmp_path / "elsewhere" / "cachelib-copy"
    git(tmp_path, "clone", "-q", str(here), str(there))
    git(there, "remote", "set-url", "origin", "https://github.com/acme/cachelib")
    first = Transcript(tmp_path / "t" / "s1.jsonl", "s1", here)
    first.prompt(FIRST_PROMPT)
    fix_the_bug(first)
    hook(event("Stop", "s1", first.path, here, stop_hook_active=False), env)

    listed = subprocess.run(
        [sys.executable, "-m", "memp_mcp.cli", "list", "--json"], cwd=there, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert len([json.loads(line) for line in listed.stdout.splitlines()]) == 1
    assert f"namespace {project_namespace(there)} (this repository's" in listed.stderr

    second = Transcript(tmp_path / "t" / "s2.jsonl", "s2", there)
    second.prompt(REWORDED_PROMPT)
    answer = hook(event("UserPromptSubmit", "s2", second.path, there, prompt=REWORDED_PROMPT), env).stdout
    assert "<procedure" in json.loads(answer)["hookSpecificOutput"]["additionalContext"]
