"""`memp-mcp install claude-code`: the MCP server entry and the hooks in Claude Code's settings.

Where Claude Code reads them:
- hooks: `~/.claude/settings.json` (user scope) or `<project>/.claude/settings.json` (project
  scope), under `"hooks": {"<Event>": [{"matcher"?, "hooks": [{"type": "command", "command",
  "timeout"}]}]}`;
- MCP servers: `~/.claude.json` (user scope) or `<project>/.mcp.json` (project scope), under
  `"mcpServers": {"<name>": {"type": "stdio", "command", "args", "env"?}}`.

Every edit is a splice (memp_mcp.hooks.jsonedit): whatever else the files hold keeps its bytes, and
installing twice changes nothing. Our hooks are recognised by their command (`memp-mcp ... hook`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from memp_mcp.errors import InvalidInputError
from memp_mcp.hooks import jsonedit
from memp_mcp.project import project_root

SERVER_NAME = "procedural-memory"
# Event -> timeout in seconds. The prompt hook answers within its own budget long before this;
# the stop and end hooks read a transcript and write to the database.
HOOK_EVENTS: dict[str, int] = {"SessionStart": 10, "UserPromptSubmit": 10, "Stop": 30, "SessionEnd": 30}
_OUR_HOOK = re.compile(r"memp[-_]mcp(\.cli)?['\"]?\s+hook(\s|$)")
_OUR_SERVER = re.compile(r"memp[-_]mcp")

Scope = Literal["user", "project"]


@dataclass(frozen=True)
class Change:
    """One file's content before and after (None: the file does not exist, or is to be removed)."""

    path: Path
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            (self.after or "").splitlines(keepends=True),
            fromfile=str(self.path) if self.before is not None else "/dev/null",
            tofile=str(self.path) if self.after is not None else "/dev/null",
        )
        return "".join(lines)


# In a project's files, which everyone who clones the project shares, memp-mcp is started from the
# PATH (as the plugin does): an absolute path names one machine's installation.
SHARED_LAUNCHER = ["memp-mcp"]


def launcher() -> list[str]:
    """How to start this memp-mcp: the console script beside this Python, else `python -m memp_mcp.cli`.

    Absolute, because Claude Code starts hooks and servers with its own PATH, which often lacks a
    virtual environment's bin folder.
    """
    script = Path(sys.executable).parent / ("memp-mcp.exe" if os.name == "nt" else "memp-mcp")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "memp_mcp.cli"]


def hook_entry(command: list[str], timeout: int) -> dict[str, Any]:
    return {"hooks": [{"type": "command", "command": shlex.join([*command, "hook"]), "timeout": timeout}]}


def server_entry(command: list[str]) -> dict[str, Any]:
    return {"type": "stdio", "command": command[0], "args": [*command[1:], "serve", "--project-namespace"]}


def is_our_hook(hook: Any) -> bool:
    return isinstance(hook, dict) and isinstance(hook.get("command"), str) and bool(_OUR_HOOK.search(hook["command"]))


def _root(text: str, path: Path) -> jsonedit.Node:
    try:
        root = jsonedit.parse(text)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path} is {exc}; fix it by hand first, nothing was written") from None
    if not isinstance(root.value, dict):
        raise InvalidInputError(f"{path} does not hold a JSON object; nothing was written")
    return root


def _first_of_ours(hooks: jsonedit.Node, event: str) -> tuple[int, int] | None:
    groups = hooks.member(event)
    if groups is None or not isinstance(groups.value, list):
        return None
    for group_index, (_, _, group) in enumerate(groups.items):
        inner = group.member("hooks") if isinstance(group.value, dict) else None
        if inner is None or not isinstance(inner.value, list):
            continue
        for hook_index, (_, _, hook) in enumerate(inner.items):
            if is_our_hook(hook.value):
                return group_index, hook_index
    return None


def _drop_our_hooks(text: str, path: Path, event: str, *, keep_empty_event: bool) -> str:
    """Remove every memp-mcp hook of `event`, and the groups, event and `hooks` object it empties."""
    while True:
        root = _root(text, path)
        hooks = root.member("hooks")
        found = _first_of_ours(hooks, event) if hooks is not None and isinstance(hooks.value, dict) else None
        if hooks is None or found is None:
            return text
        groups = hooks.member(event)
        assert groups is not None  # found above
        group = groups.items[found[0]][2]
        inner = group.member("hooks")
        assert inner is not None
        if len(inner.items) > 1:
            text = jsonedit.remove(text, inner, found[1])
        elif len(groups.items) > 1 or keep_empty_event:
            text = jsonedit.remove(text, groups, found[0])
        elif len(hooks.items) > 1:
            text = jsonedit.remove(text, hooks, _index_of(hooks, event))
        else:
            text = jsonedit.remove(text, root, _index_of(root, "hooks"))


def _index_of(node: jsonedit.Node, key: str) -> int:
    return next(i for i, (name, _, _) in enumerate(node.items) if name == key)


def settings_with_hooks(text: str | None, path: Path, command: list[str], *, install: bool) -> str:
    """The settings text with memp-mcp's hooks added (or removed), everything else unchanged."""
    if text is None:
        if not install:
            return ""
        text = "{}\n"
    for event, timeout in HOOK_EVENTS.items():
        desired = hook_entry(command, timeout)
        root = _root(text, path)
        hooks = root.member("hooks")
        if hooks is not None and not isinstance(hooks.value, dict):
            raise InvalidInputError(f'{path}: "hooks" is not an object; nothing was written')
        groups = hooks.member(event) if hooks is not None else None
        if groups is not None and not isinstance(groups.value, list):
            raise InvalidInputError(f"{path}: hooks.{event} is not a list; nothing was written")
        if install and groups is not None:
            ours = [
                g
                for _, _, g in groups.items
                if isinstance(g.value, dict) and any(map(is_our_hook, g.value.get("hooks") or []))
            ]
            if len(ours) == 1 and ours[0].value == desired and _count_ours(groups.value) == 1:
                continue  # already installed as it should be
        text = _drop_our_hooks(text, path, event, keep_empty_event=install)
        if not install:
            continue
        root = _root(text, path)
        hooks = root.member("hooks")
        if hooks is None:
            text = jsonedit.append(text, root, {event: [desired]}, key="hooks")
            continue
        groups = hooks.member(event)
        if groups is None:
            text = jsonedit.append(text, hooks, [desired], key=event)
        else:
            text = jsonedit.append(text, groups, desired)
    return text


def _count_ours(groups: list[Any]) -> int:
    return sum(is_our_hook(h) for g in groups if isinstance(g, dict) for h in (g.get("hooks") or []))


def servers_with_memp(text: str | None, path: Path, command: list[str], *, install: bool) -> str:
    """The MCP configuration text with memp-mcp's server entry added (or removed)."""
    if text is None:
        if not install:
            return ""
        text = "{}\n"
    entry = server_entry(command)
    root = _root(text, path)
    servers = root.member("mcpServers")
    if servers is not None and not isinstance(servers.value, dict):
        raise InvalidInputError(f'{path}: "mcpServers" is not an object; nothing was written')
    current = servers.member(SERVER_NAME) if servers is not None else None
    if current is not None and not _OUR_SERVER.search(
        str(current.value.get("command", "")) if isinstance(current.value, dict) else ""
    ):
        raise InvalidInputError(
            f"{path}: a server named {SERVER_NAME!r} already exists and is not memp-mcp; rename it, then run this again"
        )
    if not install:
        if servers is None or current is None:
            return text
        if len(servers.items) > 1:
            return jsonedit.remove(text, servers, _index_of(servers, SERVER_NAME))
        return jsonedit.remove(text, root, _index_of(root, "mcpServers"))
    if servers is None:
        return jsonedit.append(text, root, {SERVER_NAME: entry}, key="mcpServers")
    if current is None:
        return jsonedit.append(text, servers, entry, key=SERVER_NAME)
    if current.value == entry:
        return text
    return jsonedit.replace(text, current, entry)


def claude_code_paths(scope: Scope, home: Path, cwd: Path) -> tuple[Path, Path]:
    """(settings file for the hooks, file for the MCP server entry) of a scope."""
    if scope == "user":
        return home / ".claude" / "settings.json", home / ".claude.json"
    root = project_root(cwd)
    return root / ".claude" / "settings.json", root / ".mcp.json"


def plan_claude_code(
    scope: Scope,
    *,
    uninstall: bool = False,
    home: Path | None = None,
    cwd: Path | None = None,
    command: list[str] | None = None,
) -> list[Change]:
    """The changes `install claude-code` would make, without making them. Raises InvalidInputError.

    The user's files name this installation by its absolute path (see `launcher`); a project's files
    name `memp-mcp`, found on the PATH of whoever opens the project. A file that holds nothing but an
    empty object once memp-mcp's entries are taken out is removed, as install would have created it
    (one that held an empty object before is left as it was).
    """
    command = command or (launcher() if scope == "user" else SHARED_LAUNCHER)
    settings_path, servers_path = claude_code_paths(scope, home or Path.home(), cwd or Path.cwd())
    changes = []
    for path, edit in ((settings_path, settings_with_hooks), (servers_path, servers_with_memp)):
        before = _read(path)
        after: str | None = edit(before, path, command, install=not uninstall)
        if uninstall and after is not None and after != before and _is_empty_object(after):
            after = None
        if before is not None or after:
            changes.append(Change(path, before, after))
    return changes


def hooks_installed(scope: Scope, *, home: Path | None = None, cwd: Path | None = None) -> Path | None:
    """The settings file of `scope` when it holds memp-mcp's hooks, else None: with both scopes
    installed, Claude Code runs every hook twice (two recalls, two recordings of each turn)."""
    settings_path, _ = claude_code_paths(scope, home or Path.home(), cwd or Path.cwd())
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    events = settings.get("hooks") if isinstance(settings, dict) else None
    if not isinstance(events, dict):
        return None
    for groups in events.values():
        for group in groups if isinstance(groups, list) else []:
            hooks = group.get("hooks") if isinstance(group, dict) else None
            if isinstance(hooks, list) and any(is_our_hook(hook) for hook in hooks):
                return settings_path
    return None


def _is_empty_object(text: str) -> bool:
    try:
        return bool(json.loads(text) == {})
    except ValueError:
        return False


def _read(path: Path) -> str | None:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text; nothing was written") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None


def apply(changes: list[Change]) -> None:
    """Write each changed file atomically (a temporary file renamed over it), keeping its permissions.

    A symlinked settings file (dotfiles kept in a repository) is written where the link points, and
    the link kept. A file that changed since it was read (the client saving its settings meanwhile)
    is not overwritten: InvalidInputError, and that file and those after it are left as they are.
    """
    for change in changes:
        if not change.changed:
            continue
        if _read(change.path) != change.before:
            raise InvalidInputError(
                f"{change.path} changed while memp-mcp was editing it; nothing more was written, run this again"
            )
        target = Path(os.path.realpath(change.path))
        if change.after is None:
            change.path.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o777 if change.before is not None else None
        handle, temporary = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(change.after)
            if mode is not None:
                os.chmod(temporary, mode)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
