"""Which project a working directory belongs to, and the memory namespace that project gets.

A project is a repository, not a folder: its namespace comes from the normalized URL of its
`origin` remote, else from its root commit, else (no git at all) from the folder's path. So two
clones, a worktree and a moved folder share one memory. Memory recorded when namespaces were keyed
on the folder's path is carried over by `carried_namespace`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memp_mcp.paths import private_folder, write_private_text

# Two subprocesses here, both kept off the common path since a prompt hook runs on every prompt:
# `git rev-list`, only for a repository without an origin and then cached, and `git ls-files`, only
# when freshness must look a cited path up (memp_mcp.engine.freshness, which caches it).
GIT_TIMEOUT_SECONDS = 2.0
# Listing a work tree's files is given less: the prompt hook that waits on it gives up after 3 s.
LISTING_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Identity:
    """What names a project: `key` is hashed into the namespace, `name` makes it readable."""

    name: str
    key: str


def project_root(cwd: Path) -> Path:
    """The nearest enclosing git work tree (a `.git` folder or file), else `cwd` itself.

    Found by walking up the tree rather than by running git: a prompt hook runs on every prompt
    and a subprocess would cost it tens of milliseconds.
    """
    cwd = cwd.resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / ".git").exists():
            return folder
    return cwd


def in_repository(cwd: Path) -> bool:
    return (project_root(cwd) / ".git").exists()


def project_namespace(cwd: Path) -> str:
    """`project/<name>-<8 hex digits of the identity>`: one per repository, readable, namesakes apart."""
    identity = project_identity(cwd)
    return _namespace(identity.name, identity.key)


def folder_namespace(cwd: Path) -> str:
    """The namespace earlier versions gave a project: keyed on its folder's absolute path."""
    root = project_root(cwd)
    return _namespace(root.name, str(root))


def carried_namespace(cwd: Path, holds: Callable[[str], bool], aliases: Path) -> str:
    """The project's namespace, or the folder-keyed one it had before, when only that one holds memory.

    The choice is written to `aliases` (a JSON object beside the database), so every clone and
    worktree of the repository on this machine then uses that same namespace.
    """
    namespace = project_namespace(cwd)
    known = _read_aliases(aliases)
    if namespace in known:
        return known[namespace]
    legacy = folder_namespace(cwd)
    if legacy == namespace or holds(namespace) or not holds(legacy):
        return namespace
    known[namespace] = legacy
    try:
        # It names the user's repositories and folders: the owner's alone, as the database is.
        private_folder(aliases.parent)
        write_private_text(aliases, json.dumps(known, indent=1, sort_keys=True))
    except OSError:
        pass  # the memory is still found from this folder; the other clones start their own
    return legacy


def project_identity(cwd: Path) -> Identity:
    root = project_root(cwd)
    common = _git_common_dir(root)
    if common is not None:
        url = _origin_url(common / "config")
        normalized = normalize_remote_url(url) if url else ""
        # A clone of a folder on this machine has that folder's path as origin, which another
        # clone of the same repository may not share: its history names it better.
        if normalized and not normalized.startswith("/"):
            name = normalized.rstrip("/").rsplit("/", 1)[-1] or root.name
            return Identity(name, f"origin:{normalized}")
        commit = _root_commit(root, common)
        if commit:
            return Identity(f"commit-{commit[:8]}", f"root:{commit}")
    return Identity(root.name, str(root))


def normalize_remote_url(url: str) -> str:
    """`host/owner/repo` for every way of writing one remote (https, ssh, scp-like, with a user,
    a port or `.git`), lower-cased; a local path stays a path."""
    text = url.strip()
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme and scheme.group(1).lower() != "file":
        rest = text[scheme.end() :]
        host, _, path = rest.partition("/")
        host = host.rsplit("@", 1)[-1].split(":", 1)[0]
    elif scheme:
        host, path = "", text[scheme.end() :]
    elif re.match(r"^[^/\\]+:", text) and not re.match(r"^[A-Za-z]:[\\/]", text):  # scp-like user@host:path
        host, _, path = text.partition(":")
        host = host.rsplit("@", 1)[-1]
    else:
        host, path = "", text
    path = path.strip("/")
    path = path.removesuffix(".git").rstrip("/")
    return (f"{host}/{path}" if host else f"/{path}").lower()


def _namespace(name: str, key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "root"
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"project/{readable}-{digest}"


def work_tree_git_dir(root: Path) -> Path | None:
    """The work tree's own git folder (where its index is): `.git` itself, or for a worktree the
    folder its `.git` file points to."""
    dot_git = root / ".git"
    try:
        if dot_git.is_dir():
            return dot_git
        line = dot_git.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not line.startswith("gitdir:"):
        return None
    return (root / line.removeprefix("gitdir:").strip()).resolve()


def work_tree_files(root: Path) -> list[str] | None:
    """The files of the git work tree at `root` (tracked, and untracked ones git does not ignore), as
    paths relative to it; None when git cannot list them (no git, not a repository, too slow)."""
    import subprocess

    try:
        run = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            timeout=LISTING_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if run.returncode != 0:
        return None
    return [name for name in run.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


def _git_common_dir(root: Path) -> Path | None:
    """The repository's shared git folder: the work tree's git folder followed to its `commondir`."""
    git_dir = work_tree_git_dir(root)
    if git_dir is None:
        return None
    try:
        commondir = git_dir / "commondir"
        if commondir.is_file():
            git_dir = (git_dir / commondir.read_text(encoding="utf-8").strip()).resolve()
    except (OSError, UnicodeDecodeError):
        return None
    return git_dir if (git_dir / "config").is_file() or (git_dir / "HEAD").is_file() else None


def _origin_url(config: Path) -> str | None:
    """`remote.origin.url` read from the git config file itself (no `git` process)."""
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    in_origin = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            in_origin = re.fullmatch(r'\[\s*remote\s+"origin"\s*\]', line) is not None
        elif in_origin:
            key, sep, value = line.partition("=")
            if sep and key.strip().lower() == "url":
                return value.strip().strip('"') or None
    return None


def _root_commit(root: Path, common: Path) -> str | None:
    """The repository's first commit, by one `git` call cached per repository folder."""
    import subprocess

    from memp_mcp.paths import default_cache_dir

    cache = default_cache_dir() / "root-commits.json"
    known = _read_aliases(cache)
    if str(common) in known:
        return known[str(common)] or None
    try:
        run = subprocess.run(
            ["git", "rev-list", "--max-parents=0", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commits = sorted(run.stdout.split()) if run.returncode == 0 else []
    if not commits:
        return None  # no commit yet: the path names it, and nothing is cached so a first commit counts
    known[str(common)] = commits[0]
    try:
        private_folder(cache.parent)
        write_private_text(cache, json.dumps(known, indent=1, sort_keys=True))
    except OSError:
        pass
    return commits[0]


def _read_aliases(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
