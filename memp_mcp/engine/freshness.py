"""Freshness: whether a procedure's steps still hold for the project's code as it is now.

A step cites what it touches: the file an Edit, Read or Write names (and, for an edit, the text it
replaced and the text it put in), and the paths a shell command names. Against a project root:
- a cited file that no longer exists makes its step stale;
- so does an edit whose old text is gone from the file, or whose new text is already there.
A procedure with stale steps ranks below fresh ones; one whose every citing step is stale is not
given at all.

The project is the git work tree's top, whatever folder of it the check is given (a session started
in `repo/backend` checks against `repo`); the folder given is kept as context. A relative path is
placed at the top, else under that folder (procedures recorded before the top was the one root hold
paths relative to the session's folder, and shell commands name paths relative to where they ran),
else looked up among the work tree's files by its tail (`app.py`, `tests/test_app.py`): one match,
or one under the folder, is the file; several are "cannot tell"; none is a file that is gone.

The check only looks: it stats files and reads at most READ_BYTES_PER_FILE of each, and at most
READ_BYTES_PER_CHECK per procedure, runs nothing but `git ls-files` (only when a path is not where
it is cited, and cached per work tree), and never follows a path out of the project. What it cannot
judge (a placeholder in a path, a file past the budget, a path outside the project, a file name that
matches several files or cannot be looked up) counts as fresh: a false alarm would hide a procedure
that still works.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from memp_mcp.engine.build import LOOK_STEP_OPENINGS
from memp_mcp.engine.change import CHANGE_OPENING, CREATE_OPENING
from memp_mcp.engine.run_changes import QUOTED, quoted_text
from memp_mcp.project import project_root, work_tree_files, work_tree_git_dir

READ_BYTES_PER_FILE = 256 * 1024
READ_BYTES_PER_CHECK = 512 * 1024  # per procedure; a file read for one is not read again for the next
# The transcript reader writes an edit as `Edit: <path>: replace '<old>' with '<new>'` (Python reprs;
# steps recorded before it kept whitespace had its runs collapsed); tools that name one file as
# `Read: <path>`, `Write: <path>` (a written file's content on the lines after).
EDIT = re.compile(rf"^(?:Edit|MultiEdit): (?P<path>.+?): replace (?P<old>{QUOTED})(?: with (?P<new>{QUOTED}))?")
FILE_TOOL = re.compile(r"^(?P<tool>Edit|MultiEdit|Read|Write|NotebookEdit): (?P<path>\S+)")
COMMAND = re.compile(r"^Bash: (?P<command>.+)$")
# The builder writes a coding run's change per file (engine/change.py): "Change <path>:" with a diff or
# the content written whole, "Create <path>:" with the content, "Change <path>: `command`".
CHANGE = re.compile(
    rf"^(?P<verb>{CHANGE_OPENING}|{CREATE_OPENING})(?P<path>[^\s`]+?)(?: \(written whole\))?:(?:\n|\s|$)"
)
# A path in a command or in free text: with a slash, or a file name with an extension, and no scheme.
PATH_TOKEN = re.compile(r"(?<![\w./:@-])((?:\.{1,2}/|/)?[\w@+-][\w.@+-]*(?:/[\w.@+-]+)*\.[A-Za-z][\w]{0,9})(?![\w/])")
# Commands whose path arguments are made or removed by the command itself rather than read.
WRITING_COMMANDS = frozenset({"touch", "mkdir", "rm", "rmdir", "tee"})
PLACEHOLDER = re.compile(r"\{[^{}]*\}")
QUOTE_CHARS = "`'\"()[],;:"
TRUNCATED = "..."
SHOWN_CHARS = 60
# A work tree's file listing is reused while its index is unchanged, and at most this long: an untracked
# file made since does not touch the index.
LISTING_SECONDS = 30.0


@dataclass(frozen=True)
class Citation:
    path: str
    verb: str  # how the step touches it: edits, reads, writes, runs
    old: str | None = None
    new: str | None = None
    definite: bool = True  # named by a tool, not picked out of free text


@dataclass
class StepCheck:
    step: int  # 1-based
    reason: str


@dataclass
class Freshness:
    """What a check found: the stale steps, named, and how many steps cite anything."""

    stale: list[StepCheck] = field(default_factory=list)
    citing_steps: int = 0

    @property
    def stale_throughout(self) -> bool:
        return self.citing_steps > 0 and len(self.stale) == self.citing_steps

    def reasons(self) -> list[str]:
        return [s.reason for s in self.stale]


def citations(step: str) -> list[Citation]:
    """What one step cites."""
    text = step.strip()
    edit = EDIT.match(text)
    if edit:
        return [
            Citation(edit["path"], "edits", quoted_text(edit["old"]), quoted_text(edit["new"]) if edit["new"] else None)
        ]
    change = CHANGE.match(text)
    if change:
        if change["verb"] == CREATE_OPENING:
            return [Citation(change["path"], "writes")]
        hunks = _hunks(text)
        return [Citation(change["path"], "edits", old, new) for old, new in hunks] or [
            Citation(change["path"], "edits")
        ]
    tool = FILE_TOOL.match(text)
    if tool:
        verb = {"Read": "reads", "Write": "writes"}.get(tool["tool"], "edits")
        return [Citation(tool["path"].rstrip(":"), verb)]
    command = COMMAND.match(text)
    if command:
        return _command_citations(command["command"])
    # The builder folds a run's reads into one step naming what to look at (engine/build.py).
    verb = "reads" if text.startswith(LOOK_STEP_OPENINGS) else "cites"
    return [Citation(p, verb, definite=False) for p in _paths(text)]


def _hunks(step: str) -> list[tuple[str, str]]:
    """What each hunk of a step's diff takes out and puts in (its first run of changed lines); a hunk that
    only adds lines, content written whole or a command gives nothing to compare."""
    lines = step.split("\n")[1:]
    if not lines or not lines[0].startswith("@@"):
        return []
    found: list[tuple[str, str]] = []
    removed: list[str] = []
    added: list[str] = []
    done = False  # the hunk's first run of changed lines has ended
    for line in [*lines, "@@"]:
        if line.startswith("@@"):
            if removed:
                found.append(("\n".join(removed), "\n".join(added)))
            removed, added, done = [], [], False
        elif done:
            continue
        elif line.startswith("-"):
            removed.append(line[1:])
        elif line.startswith("+"):
            added.append(line[1:])
        elif removed or added:
            done = True
    return found


def _paths(text: str) -> list[str]:
    found = []
    for match in PATH_TOKEN.finditer(text):
        token = match.group(1).strip(QUOTE_CHARS)
        if "://" in text[max(0, match.start() - 10) : match.start() + 3] or token.startswith("-"):
            continue
        if token not in found:
            found.append(token)
    return found


def _command_citations(command: str) -> list[Citation]:
    cited: list[Citation] = []
    folder = ""
    # Each command of a pipeline or list on its own: `cd x && pytest a.py`, `cat a.py | grep b`.
    for part in re.split(r"&&|\|\||;|\|", command):
        words = part.split()
        if words and words[0] == "cd":
            # Later relative paths are under the folder it changes to (one it cannot place ends the check).
            target = words[1] if len(words) > 1 else ""
            if not target or target.startswith(("/", "~", "$", "-")) or ".." in target:
                break
            folder = f"{folder}{target.strip('/')}/"
            continue
        if not words or words[0] in WRITING_COMMANDS:
            continue
        paths = _paths(part)
        if words[0] in ("mv", "cp", "ln"):
            paths = paths[:1]  # the source; the target is what the command makes
        # Output files (`> out.txt`, `-o out.txt`) are made by the command.
        made = set(re.findall(r"(?:>>?|-o|--output(?:=|\s))\s*(\S+)", part))
        cited += [
            Citation(p if p.startswith("/") else folder + p.removeprefix("./"), "runs", definite=False)
            for p in paths
            if p not in made
        ]
    return cited


def _shown(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SHOWN_CHARS else line[: SHOWN_CHARS - 3] + TRUNCATED


class _Reader:
    """The project's files as the check reads them: bounded, cached, never outside the root."""

    def __init__(self, folder: Path) -> None:
        # One root for citing and checking: the work tree's top, the folder given (the session's) as context.
        self.folder = folder.resolve()
        self.root = project_root(self.folder)
        self.budget = READ_BYTES_PER_CHECK
        self.texts: dict[Path, tuple[bytes, bool] | None] = {}
        self.exists_cache: dict[Path, bool] = {}

    def locate(self, cited: str) -> Path | None:
        """The cited path inside the project, or None when it cannot be placed there."""
        if PLACEHOLDER.search(cited) or "\x00" in cited:
            return None
        pure = PurePosixPath(cited)
        if pure.is_absolute():
            try:
                relative = pure.relative_to(PurePosixPath(self.root.as_posix()))
            except ValueError:
                # Recorded in another checkout of the project: placed by a folder of the root's name
                # (the outermost whose place exists, as `src/<name>/` often repeats it).
                parts = pure.parts
                places = [
                    PurePosixPath(*parts[i + 1 :]) for i, part in enumerate(parts) if part == self.root.name and i > 0
                ]
                places = [p for p in places if p.parts and ".." not in p.parts]
                if not places:
                    return None
                relative = next((p for p in places if self.exists(self.root.joinpath(*p.parts))), places[0])
        else:
            relative = pure
        if not relative.parts:
            return None
        return self._place(relative)

    def _place(self, relative: PurePosixPath) -> Path | None:
        """A relative cited path placed in the work tree (see the module's docstring); a path that is
        nowhere is placed at the top, where the check finds it gone."""
        at_top = self._inside(self.root.joinpath(*relative.parts))
        if at_top is not None and self.exists(at_top):
            return at_top
        in_folder = self._inside(self.folder.joinpath(*relative.parts))
        if in_folder is not None and self.exists(in_folder):
            return in_folder
        if ".." in relative.parts:
            return None
        listed = _listing(self.root)
        if listed is None:
            # Nothing to look it up in: a bare name may live in any folder, so it cannot be judged.
            return at_top if len(relative.parts) > 1 else None
        tail = relative.as_posix()
        found = [
            path
            for name in listed.get(relative.name, ())
            if (name == tail or name.endswith("/" + tail)) and self.exists(path := self.root / name)
        ]
        near = [path for path in found if path.is_relative_to(self.folder)]
        if len(near) == 1 or len(found) == 1:
            return near[0] if len(near) == 1 else found[0]
        return None if found else at_top

    def _inside(self, path: Path) -> Path | None:
        """`path` with `..` resolved, or None when that leaves the project."""
        if ".." not in path.parts:
            return path  # joined from a relative path without `..`: inside by construction (and cheap)
        normal = Path(os.path.normpath(path))
        return normal if normal.is_relative_to(self.root) and normal != self.root else None

    def exists(self, path: Path) -> bool:
        if path not in self.exists_cache:
            self.exists_cache[path] = path.exists()
        return self.exists_cache[path]

    def text(self, path: Path) -> tuple[bytes, bool] | None:
        """The file's first READ_BYTES_PER_FILE bytes, and whether that is all of it; None past the budget."""
        if path in self.texts:
            return self.texts[path]
        text = None
        if self.budget > 0:
            try:
                with path.open("rb") as handle:
                    limit = min(READ_BYTES_PER_FILE, self.budget)
                    whole = os.fstat(handle.fileno()).st_size <= limit
                    raw = handle.read(limit)
                self.budget -= len(raw)
                text = (raw, whole)
            except OSError:
                text = None
        self.texts[path] = text
        return text


def _names_by_file_name(files: list[str]) -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = {}
    for name in files:
        by_name.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    return by_name


# Per work tree: (the index's mtime and size, when listed, the listing by file name or None).
_LISTINGS: dict[Path, tuple[tuple[int, int] | None, float, dict[str, list[str]] | None]] = {}


def _listing(root: Path) -> dict[str, list[str]] | None:
    """The work tree's files by file name, listed once and reused while the index is unchanged (the warm
    server checks many prompts against one tree); None when git cannot list them."""
    git_dir = work_tree_git_dir(root)
    try:
        index = (git_dir / "index").stat() if git_dir is not None else None
        stamp = (index.st_mtime_ns, index.st_size) if index is not None else None
    except OSError:
        stamp = None
    known = _LISTINGS.get(root)
    now = time.monotonic()
    if known is not None and known[0] == stamp and now - known[1] <= LISTING_SECONDS:
        return known[2]
    files = work_tree_files(root) if git_dir is not None else None
    listed = _names_by_file_name(files) if files is not None else None
    _LISTINGS[root] = (stamp, now, listed)
    return listed


def check(steps: Sequence[str], root: Path, reader: _Reader | None = None) -> Freshness:
    """Which of `steps` no longer hold in the project `root` is in: its git work tree's top, `root` itself
    kept as the folder relative paths may also be under (see the module's docstring)."""
    reader = reader or _Reader(root)
    result = Freshness()
    written: set[Path] = set()
    for number, step in enumerate(steps, 1):
        reason = None
        citing = False
        for cited in citations(step):
            path = reader.locate(cited.path)
            if path is None:
                continue
            if cited.verb == "writes":
                written.add(path)
                continue
            if path in written:
                continue  # made by an earlier step of the procedure
            if not reader.exists(path):
                # A bare file name picked out of a command or free text may live in any folder.
                if cited.definite or "/" in cited.path:
                    citing = True
                    reason = reason or f"step {number} {cited.verb} {cited.path}, which no longer exists"
                continue
            citing = True
            if cited.old is not None and reason is None:
                reason = _edit_reason(number, cited, path, reader)
        if citing:
            result.citing_steps += 1
        if reason:
            result.stale.append(StepCheck(number, reason))
    return result


def _edit_reason(number: int, cited: Citation, path: Path, reader: _Reader) -> str | None:
    old, new = _searchable(cited.old), _searchable(cited.new)
    if old is None:
        return None
    read = reader.text(path)
    if read is None:
        return None
    raw, whole = read
    where = f"step {number} edits {PurePosixPath(cited.path).name}'s `{_shown(cited.old or '')}`"
    applied = f"{where}, but `{_shown(cited.new or '')}` is already there"
    old_there = _found(old, raw)
    if new and (old in new or not old_there) and _found(new, raw):
        # Made already (when the old text is part of the new, only the new text tells).
        return applied
    if old_there:
        return None  # the edit still applies (its new text may be there too, elsewhere)
    # Absent from the part read of a file larger than the check reads: not known to be gone.
    return f"{where}, which is no longer there" if whole else None


def _found(text: str, raw: bytes) -> bool:
    """Whether `text` (whitespace runs made one space) is in the file's bytes, whatever whitespace the
    file has between its words: a regular expression over the bytes, not a normalised copy of the file
    (which cost milliseconds on a large file)."""
    words = [word.encode("utf-8") for word in text.split(" ")]
    if raw.find(max(words, key=len)) < 0:
        return False  # most texts that are gone are told by their longest word, at memchr's speed
    return re.search(rb"\s+".join(re.escape(word) for word in words), raw) is not None


def _searchable(text: str | None) -> str | None:
    """The text as the file is searched for it: whitespace runs one space, a clipped end dropped; None
    when it cannot be searched for (empty, or holding a placeholder)."""
    if text is None:
        return None
    if text.endswith(TRUNCATED):
        text = text[: -len(TRUNCATED)]
    text = " ".join(text.split())
    if not text or PLACEHOLDER.search(text):
        return None
    return text


def check_many(procedures: Sequence[tuple[int, Sequence[str]]], root: Path) -> dict[int, Freshness]:
    """Each procedure's freshness, each with its read budget, a file read once for all of them."""
    reader = _Reader(root)
    checked = {}
    for pid, steps in procedures:
        reader.budget = READ_BYTES_PER_CHECK
        checked[pid] = check(steps, root, reader)
    return checked
