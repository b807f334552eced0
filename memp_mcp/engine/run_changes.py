"""What a run changed, file by file, read from its steps and from its final diff.

Each file's net change: the content a tool or a heredoc wrote (later edits applied), the replacements
an edit tool made (an edit of an earlier edit's text folded into it), the command that rewrote it in
place when nothing better shows the change, and, authoritative for the files it shows, the agent's
final `git diff`. Scratch files (written and then deleted, or left out of a final diff shown whole)
are told apart. change.py makes a procedure's steps from what this finds.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from memp_mcp.engine.actions import edit_target, is_looking, looked_at, only_submits, written_paths
from memp_mcp.engine.verdict import Verdict
from memp_mcp.models import Step

# A Python string literal, as the transcript reader writes each side of an edit (freshness.py reads it too).
QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_REPLACEMENT = re.compile(rf"replace (?P<old>{QUOTED}) with (?P<new>{QUOTED})")
EDIT_TOOL = re.compile(r"^(?:Edit|MultiEdit): (?P<path>.+?): replace ")
WRITE_TOOL = re.compile(r"^Write: (?P<path>[^\n]+)(?:\n(?P<content>.*))?\Z", re.DOTALL)
# An editor's line edit of the file it has open (SWE-agent: `edit 3:5`, the new lines, `end_of_edit`).
LINE_EDIT = re.compile(r"^edit \d+:\d+\n(?P<body>.*?)\n?\s*end_of_edit$", re.DOTALL)
# `cat <<'EOF' > path`, `cat > path <<EOF`, `tee path <<EOF`: a file written from a heredoc.
HEREDOC_WRITE = re.compile(
    r"^\s*(?:cat\s*(?:<<-?\s*['\"]?(?P<tag1>\w+)['\"]?\s*>\s*(?P<path1>[^\s;&|]+)"
    r"|>\s*(?P<path2>[^\s;&|]+)\s*<<-?\s*['\"]?(?P<tag2>\w+)['\"]?)"
    r"|tee\s+(?P<path3>[^\s;&|-][^\s;&|]*)\s*<<-?\s*['\"]?(?P<tag3>\w+)['\"]?)"
)
# Snippets and scripts that write something (a file, a document, a chart): not a probe.
WRITES_IN_CODE = re.compile(
    r"\.write(?:_text|_bytes)?\(|\bopen\([^)]*['\"][wa]b?\+?['\"]|\.save\(|\.savefig\(|\.to_(?:csv|json|excel|parquet)\("
    r"|json\.dump\(|shutil\.\w+\(|os\.(?:rename|replace|remove|makedirs|mkdir)\(|\.mkdir\(|\.rename\(|\.unlink\("
)
_DIFF_FILE = re.compile(r"^diff --git a/(?P<a>\S+) b/(?P<b>\S+)$", re.MULTILINE)
REMOVED = frozenset("rm unlink".split())


@dataclass
class FileChange:
    """How the run changed one file: written whole, edited, rewritten by a command, or shown by a patch."""

    path: str
    first: int  # the step that first changed it
    content: str | None = None  # as written (later edits applied), when the run wrote it whole
    hunks: list[tuple[str, str]] = field(default_factory=list)  # (old, new) text replaced by edit tools
    commands: list[str] = field(default_factory=list)  # shell commands that rewrote it in place
    patch: str | None = None  # its part of the run's final diff
    created: bool = False
    cut: bool = False  # named by a final diff whose text was cut before this file's part


@dataclass
class Run:
    """One coding run read step by step."""

    steps: Sequence[Step]
    verdicts: list[Verdict]
    shell: list[str]  # each action without its tool prefix
    changes: dict[str, FileChange] = field(default_factory=dict)
    written: dict[str, list[int]] = field(default_factory=dict)  # files the run wrote from nothing, by step
    deleted: dict[str, int] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)  # files commands wrote through a redirect or tee
    patch: str | None = None
    patch_cut: bool = False


def read_changes(run: Run) -> None:
    open_file: str | None = None  # the file an agent's editor has open ("open x.py", "create x.py")
    for index, (step, action) in enumerate(zip(run.steps, run.shell, strict=True)):
        if only_submits(action) or re.match(r"^\s*git\s+diff\b", action):
            if (step.observation or "").lstrip().startswith("diff --git"):
                run.patch = step.observation
            continue
        if run.verdicts[index] != Verdict.WORKED:
            continue
        open_file = edit_target(action, open_file)
        if re.match(r"^create\s+\S+$", action.strip()):
            _wrote(run, index, action.split()[1], "")
        elif (line_edit := LINE_EDIT.match(action.strip())) and open_file:
            # The editor names the file it changed in its answer ("[File: /repo/x.py (40 lines total)]").
            shown = re.match(r"\[File: (\S+)", (step.observation or "").lstrip())
            named = shown[1] if shown else open_file
            # Spelled as the run already named it (`/repo/x.py` is the `x.py` it created or has open).
            known = find_change(run, named)
            path = open_file if same_path(open_file, named) else known.path if known else named
            change = _change(run, path, index)
            if change.content == "":
                change.content = line_edit["body"]  # the first edit of a file the editor just created
            else:
                change.commands.append(action.strip())
        elif written := WRITE_TOOL.match(step.action.strip()):
            _wrote(run, index, written["path"].strip(), written["content"])
        elif edited := EDIT_TOOL.match(step.action.strip()):
            change = _change(run, edited["path"], index)
            for replacement in _REPLACEMENT.finditer(step.action):
                old, new = quoted_text(replacement["old"]), quoted_text(replacement["new"])
                if old is not None and new is not None:
                    _apply_edit(change, old, new)
        elif heredoc := HEREDOC_WRITE.match(action):
            path = heredoc["path1"] or heredoc["path2"] or heredoc["path3"]
            tag = heredoc["tag1"] or heredoc["tag2"] or heredoc["tag3"]
            _wrote(run, index, path, _heredoc_body(action, tag))
        else:
            _shell_changes(run, index, action)
    if run.patch:
        _read_patch(run)


def _wrote(run: Run, index: int, path: str, content: str | None) -> None:
    # A file the run read or changed before it wrote it whole existed: it is rewritten, not created.
    existed = (path in run.changes and not run.changes[path].created) or any(
        is_looking(run.steps[i].action)
        and any(same_path(path, f.split(" (", 1)[0]) for f in looked_at(run.steps[i].action)[0])
        for i in range(index)
    )
    change = _change(run, path, index)
    change.content, change.hunks, change.created = content, [], not existed or change.created
    if change.created:
        run.written.setdefault(path, []).append(index)
    run.deleted.pop(path, None)


def _shell_changes(run: Run, index: int, action: str) -> None:
    first_line = action.split("\n", 1)[0]
    for command in re.split(r"&&|\|\||;", first_line):
        tokens = command.split()
        if tokens and tokens[0] in REMOVED:
            for path in (t for t in tokens[1:] if not t.startswith("-")):
                run.deleted[path] = index
    outputs = written_paths(action, in_place=False)
    run.outputs.update(outputs)
    # Only files changed in place are changes (`sed -i`); a command's output file is what it produced.
    rewritten = [path for path in written_paths(action) if path not in outputs]
    if not rewritten and "\n" in action and WRITES_IN_CODE.search(action):
        # An inline script that rewrites files (`python - <<EOF ... open(p, 'w')`): the files it names.
        rewritten = [p for p in re.findall(r"['\"]([\w./-]+\.\w{1,8})['\"]", action) if p in run.changes or "/" in p]
    for path in rewritten:
        if path in ("/dev/null",) or path.startswith("/tmp/"):
            continue
        change = _change(run, path, index)
        if change.content is None:
            change.commands.append(action)


def _change(run: Run, path: str, index: int) -> FileChange:
    if path not in run.changes:
        run.changes[path] = FileChange(path, index)
    return run.changes[path]


def _apply_edit(change: FileChange, old: str, new: str) -> None:
    """An edit folded into what is known of the file: into its content, into an earlier edit it redoes,
    or as a hunk of its own."""
    if change.content is not None and old in change.content:
        change.content = change.content.replace(old, new, 1)
        return
    for position, (earlier_old, earlier_new) in enumerate(change.hunks):
        if old and old in earlier_new:
            change.hunks[position] = (earlier_old, earlier_new.replace(old, new, 1))
            return
    change.hunks.append((old, new))


def quoted_text(quoted: str) -> str | None:
    """The text of a Python string literal as the transcript reader writes an edit's sides, or None."""
    try:
        value = ast.literal_eval(quoted)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


def _heredoc_body(action: str, tag: str) -> str:
    lines = action.split("\n")[1:]
    body: list[str] = []
    for line in lines:
        if line.strip() == tag:
            break
        body.append(line)
    return "\n".join(body)


def _read_patch(run: Run) -> None:
    """The final diff, per file: it is the net change, whatever the commands before it did."""
    text = run.patch or ""
    run.patch_cut = not _patch_complete(text)
    matches = list(_DIFF_FILE.finditer(text))
    for number, match in enumerate(matches):
        end = matches[number + 1].start() if number + 1 < len(matches) else len(text)
        path = match["b"]
        if "\n@@" not in text[match.start() : end]:
            # A header with no hunk: the output was cut before this file's diff. The file is changed all
            # the same; what else the run shows of it stands.
            run.patch_cut = True
            if find_change(run, path) is None:
                run.changes[path] = FileChange(path, len(run.steps), cut=True)
            continue
        change = run.changes.get(path) or find_change(run, path) or FileChange(path, len(run.steps))
        run.changes.pop(change.path, None)
        change.path, change.patch = path, text[match.end() : end].strip("\n")
        change.created = "\nnew file mode" in text[match.start() : end]
        run.changes[path] = change


_HUNK_HEADER = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def _patch_complete(text: str) -> bool:
    """Whether the diff ends where its last hunk says it does (an observation may be cut short)."""
    lines = text.rstrip("\n").split("\n")
    old = new = 0
    for line in lines:
        if header := _HUNK_HEADER.match(line):
            if old > 0 or new > 0:
                return False  # the hunk before this one ended early
            old, new = int(header[1] or 1), int(header[2] or 1)
        elif line.startswith("diff --git"):
            if old > 0 or new > 0:
                return False
        elif old > 0 or new > 0:
            if line.startswith("-"):
                old -= 1
            elif line.startswith("+"):
                new -= 1
            elif line.startswith(" ") or line == "":
                old, new = old - 1, new - 1
    return old <= 0 and new <= 0


def find_change(run: Run, path: str) -> FileChange | None:
    """The change recorded under another spelling of the same path (`./x.py`, `/repo/x.py`)."""
    return next((change for known, change in run.changes.items() if same_path(known, path)), None)


def scratch_files(run: Run) -> set[str]:
    """Files the run wrote for itself and did not keep: deleted later, or left out of its final diff."""
    made = dict.fromkeys(run.outputs, -1) | {path: indexes[-1] for path, indexes in run.written.items()}
    scratch = {path for path, at in made.items() if path in run.deleted and run.deleted[path] > at}
    if run.patch and not run.patch_cut:
        in_patch = {m["b"] for m in _DIFF_FILE.finditer(run.patch)}
        scratch |= {path for path in [*run.changes, *run.outputs] if not any(same_path(path, p) for p in in_patch)}
    return scratch


def same_path(one: str, other: str) -> bool:
    one, other = one.removeprefix("./"), other.removeprefix("./")
    return one == other or one.endswith("/" + other) or other.endswith("/" + one)
