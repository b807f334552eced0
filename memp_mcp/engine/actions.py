"""What a shell line or a tool call does, read from its text: looks around, only submits, or writes files.

The builder (build.py) uses this to fold exploration into one "look at" step, to drop steps that only
hand the work in, and to tell an edit of the project from a script the agent wrote for itself.
"""

from __future__ import annotations

import functools
import itertools
import re

# A shell line split into its commands (pipes, &&, ||, ;); quoted text is not split.
_SEPARATOR = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(\|\||&&|[|;])""")
_TOOL_PREFIX = re.compile(r"^\s*(?:\$|bash:|shell:|sh:|run:)\s*", re.IGNORECASE)
# Commands that only show what is there.
_LOOKING = frozenset(
    """cat less more head tail grep egrep fgrep rg ag ls find tree wc file stat which nl pwd du realpath
    dirname basename readlink type awk cut sort uniq column diff
    open goto scroll_up scroll_down find_file search_file search_dir""".split()
)
# Commands that only print or wait: harmless inside a line that looks around.
_SAYING = frozenset("echo printf sleep true".split())
# An error stream sent to the output or to nowhere ("2>&1", "2>/dev/null"): no file written.
_STREAM_REDIRECT = re.compile(r"\d?>&\d|\d>/dev/null|&>/dev/null")
# Calls that keep an agent's own books (its to-do list, its tool catalogue, this memory): no work of the task.
_BOOKKEEPING = frozenset(
    """todowrite todoread toolsearch skill exitplanmode enterplanmode taskcreate taskupdate tasklist taskget
    recall_procedure record_trajectory report_outcome get_procedure list_procedures""".split()
)
_GIT_LOOKING = frozenset("diff log show status grep blame ls-files rev-parse branch".split())
# Tool calls of coding agents that read (as the hooks describe them: "Read: path", "Grep: 'x' in path").
_LOOKING_TOOLS = frozenset("read grep glob ls view open_file find_file search_file search_dir".split())
# Commands that search: their first argument that is not an option is a pattern, not a file.
_SEARCHING = frozenset("grep egrep fgrep rg ag find_file search_file search_dir".split())
_SCRIPTED = frozenset("sed awk".split())
# Commands whose arguments (after a search's pattern) are all files or folders.
_FILE_ARGUMENTS = frozenset(
    "cat less more head tail grep egrep fgrep rg ag ls find tree wc file stat nl du open find_file search_file "
    "search_dir".split()
)
_REDIRECT = re.compile(r"(?<![<>&\d])>>?\s*([^\s;&|<>]+)")
_HEREDOC = re.compile(r"<<-?\s*['\"]?\w+")
_LINE_RANGE = re.compile(r"^(\d+)(?:,(\d+))?p$")
_PATH_LIKE = re.compile(r"^(?:[\w.~-]*/[\w./~-]*|[\w~-][\w.-]*\.\w{1,8})$")
# A marker an agent prints to say it is done: a word of capitals, digits and underscores.
_MARKER = re.compile(r"^['\"]?[A-Z][A-Z0-9_]{5,}['\"]?$")
_SUBMITTING_GIT = frozenset("add diff status".split())


def unprefixed(action: str) -> str:
    """The action without a shell tool's label (`Bash: `, `$ `)."""
    return _TOOL_PREFIX.sub("", action.strip())


def commands(action: str) -> list[str]:
    """The commands of a one-line shell action, split at pipes and && || ; outside quotes."""
    parts: list[str] = []
    current = ""
    position = 0
    text = unprefixed(action)
    for match in _SEPARATOR.finditer(text):
        if match.group(2) is None:
            continue
        current += text[position : match.start()]
        parts.append(current.strip())
        current = ""
        position = match.end()
    parts.append((current + text[position:]).strip())
    return [part for part in parts if part]


_TOKEN = re.compile(r"""(?:'[^']*'|"(?:[^"\\]|\\.)*"|\\.|[^\s'"])+""")
_QUOTES = re.compile(r"'([^']*)'|\"((?:[^\"\\]|\\.)*)\"")


def _unquoted(match: re.Match[str]) -> str:
    return match.group(1) if match.group(1) is not None else match.group(2) or ""


def _tokens(command: str) -> list[str]:
    """The words of a command as a shell splits them, quotes removed (like shlex, faster, never raising)."""
    return [_QUOTES.sub(_unquoted, token) for token in _TOKEN.findall(command)]


def _tool_name(action: str) -> str | None:
    """The tool of an action written as "Tool: argument", lower case, or None."""
    match = re.match(r"^\s*([A-Za-z_]+):\s", action)
    return match.group(1).lower() if match else None


@functools.lru_cache(maxsize=4096)
def is_looking(action: str) -> bool:
    """Whether the action only reads: every command of it shows files, searches or lists, and nothing is written."""
    if "\n" in action.strip() or _HEREDOC.search(action):
        return False
    tool = _tool_name(action)
    if tool is not None and tool not in ("bash", "shell", "sh", "run"):
        return tool in _LOOKING_TOOLS
    if _REDIRECT.search(_strip_quoted(action).replace("2>&1", "").replace("2>/dev/null", "")):
        return False
    parts = commands(action)
    return bool(parts) and all(_looks(part) for part in parts)


def _strip_quoted(text: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", text)


def _looks(command: str) -> bool:
    tokens = [t for t in _tokens(command) if not _STREAM_REDIRECT.fullmatch(t)]
    if tokens and tokens[0] == "xargs":
        # xargs runs the command after its options on what it reads.
        tokens = list(itertools.dropwhile(lambda t: t.startswith("-"), tokens[1:]))
    if not tokens:
        return False
    word = tokens[0].rsplit("/", 1)[-1]
    if word in _SAYING:
        return True
    if word == "cd" or (len(tokens) == 2 and tokens[1] in ("--version", "-V", "version")):
        return True
    if word == "git":
        return len(tokens) > 1 and tokens[1] in _GIT_LOOKING
    if word == "sed":
        return "-n" in tokens and not any(t.startswith("-i") or t == "--in-place" for t in tokens)
    if word == "find":
        return not any(t in ("-exec", "-execdir", "-delete", "-ok") for t in tokens)
    # An editor's "open x.py" and "goto 40" read; a text world's "open drawer 1" acts.
    if word == "open":
        return len(tokens) >= 2 and bool(_PATH_LIKE.match(tokens[1]))
    if word == "goto":
        return len(tokens) == 2 and tokens[1].isdigit()
    return word in _LOOKING


@functools.lru_cache(maxsize=4096)
def looked_at(action: str) -> tuple[list[str], list[str]]:
    """The files and folders a looking action names (with a line range when it shows one), and what it searched for."""
    tool = _tool_name(action)
    if tool is not None and tool in _LOOKING_TOOLS:
        argument = action.split(":", 1)[1].strip()
        quoted = re.match(r"""^(['"])(.*?)\1(?:\s+in\s+(\S+))?$""", argument)
        if quoted:
            return ([quoted.group(3)] if quoted.group(3) else []), [quoted.group(2)]
        return ([argument] if argument else []), []
    files: list[str] = []
    patterns: list[str] = []
    for command in commands(action):
        tokens = [t for t in _tokens(command) if not _STREAM_REDIRECT.fullmatch(t)]
        if tokens and tokens[0] == "xargs":
            tokens = list(itertools.dropwhile(lambda t: t.startswith("-"), tokens[1:]))
        if not tokens:
            continue
        word = tokens[0].rsplit("/", 1)[-1]
        arguments = [t for t in tokens[1:] if not t.startswith("-")]
        if word == "git":
            arguments = arguments[1:]
        lines = ""
        if word in _SEARCHING and arguments:
            patterns.append(arguments[0])
            arguments = arguments[1:]
        elif word in _SCRIPTED and arguments:
            if word == "sed" and (match := _LINE_RANGE.match(arguments[0])):
                lines = f" (lines {match.group(1)}-{match.group(2)})" if match.group(2) else f" (line {match.group(1)})"
            arguments = arguments[1:]
        if word == "cd":
            continue
        if word == "find":
            arguments = arguments[:1]
        if word in ("ls", "tree", "find") and not arguments:
            arguments = ["."]
        named_only = word not in _FILE_ARGUMENTS
        for argument in arguments:
            if argument.isdigit() or (named_only and not _PATH_LIKE.match(argument)):
                continue
            files.append(argument + lines)
        if lines and files and not any(lines in f for f in files):
            files[-1] += lines
    return files, patterns


@functools.lru_cache(maxsize=4096)
def only_submits(action: str) -> bool:
    """Whether the action does nothing but print a marker and show or stage the diff (an agent handing in)."""
    text = unprefixed(action)
    if "\n" in text.strip():
        return False
    if text.strip().lower() == "submit":
        return True
    marked = False
    for command in commands(text):
        tokens = _tokens(command)
        if not tokens:
            return False
        if tokens[0] in ("echo", "printf") and len(tokens) == 2 and _MARKER.match(tokens[1]):
            marked = True
        elif not (tokens[0] == "git" and len(tokens) > 1 and tokens[1] in _SUBMITTING_GIT):
            return False
    return marked


@functools.lru_cache(maxsize=4096)
def written_paths(action: str, *, in_place: bool = True) -> list[str]:
    """The files an action writes that its text names: redirect targets, tee's files, and (unless not
    `in_place`) the files sed -i changes, which exist before it."""
    first_line = action.strip().split("\n", 1)[0]
    paths = [target for target in _REDIRECT.findall(_strip_quoted(first_line)) if target not in ("/dev/null",)]
    words = _tokens(first_line)
    if len(words) == 2 and words[0] == "create":
        paths.append(words[1])
    for command in commands(first_line):
        tokens = _tokens(command)
        if not tokens:
            continue
        if tokens[0] == "tee":
            paths += [t for t in tokens[1:] if not t.startswith("-")]
        elif in_place and tokens[0] == "sed" and any(t.startswith("-i") for t in tokens):
            arguments = [t for t in tokens[1:] if not t.startswith("-")]
            paths += arguments[1:]
    return paths


def keeps_books(action: str) -> bool:
    """Whether the action is an agent's bookkeeping (its to-do list, tool search, this memory's own tools)."""
    name = _tool_name(action) or (_tokens(action[:200])[:1] or [""])[0].lower()
    return name.removeprefix("mcp__").split("__")[-1] in _BOOKKEEPING


def edit_target(action: str, open_file: str | None) -> str | None:
    """The file an agent's editor has open after this action: the one it opens or creates, else the same."""
    tokens = _tokens(action.strip().split("\n", 1)[0])
    if len(tokens) >= 2 and tokens[0] in ("open", "create"):
        return tokens[1]
    return open_file
