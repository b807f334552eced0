"""What coding work established: the change it made, how it was checked, and where it looked.

A run that wrote or edited files becomes a short procedure of what it established, not a transcript
of its tool calls:

- *where*: one step naming the files (and the searches) read before the change that the change, or a
  command that made the deliverable, names;
- *the reproduction*: a check that failed before the change, or a command run before the change and
  run again after it (the run's own way of seeing the problem), with the script it ran when the run
  wrote that script for itself;
- *the change*, one step per file: its net change as a diff (an agent's final `git diff`, when the run
  shows one, is authoritative), a file the run created and kept with its content (its later edits
  applied), or the command that rewrote it when nothing better shows the change;
- *the commands that made the deliverable*: a kept script run, a tool that wrote the output, files
  moved into place (a run of commands of one kind kept once, with a count);
- *the check*: the last check that passed after the change, and a look at what the work produced.

Probes go: inspections whose output was only read (`python -c` prints, `cat`, `ls`, `grep`) and
scratch files written, run and deleted (unless one is the reproduction). What failed is the
builder's pitfalls (build.py). Runs that change no file (a text world's moves) are not coding work:
`coding_steps` answers None and the builder keeps its general rules.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from memp_mcp.engine.actions import (
    commands,
    edit_target,
    is_looking,
    keeps_books,
    looked_at,
    only_submits,
    written_paths,
)
from memp_mcp.engine.verdict import TEST_COMMAND, Verdict, never_ran, verdict
from memp_mcp.models import Step

# How the steps made here begin: freshness (freshness.py) reads the path after them.
CHANGE_OPENING = "Change "
CREATE_OPENING = "Create "
LOOK_OPENING = "Look at "
REPRODUCE_OPENING = "Reproduce first: "
CHECK_OPENING = "Check: "
RUN_OPENING = "Run `"
SEARCH_OPENING = "Search for "
PATCH_CUT_NOTE = "[... the rest of the patch is in the source trajectory ...]"
# Bounds that keep a procedure short: files shown one by one, commands kept, a scratch script's lines.
MAX_CHANGED_FILES = 8
MAX_COMMAND_STEPS = 4
MAX_LOOKED_FILES = 8
MAX_LOOK_CHARS = 400
SCRATCH_SCRIPT_CHARS = 900

_SKILLS_STEP = re.compile(r"^Skill: ([\w:., -]+)$")
SKILLS_OPENING = "Load the skills "
APPROACH_OPENING = "Approach: "
MAX_APPROACH_CHARS = 500
_APPROACH_MIN_WORDS = 6
_SENTENCE = re.compile(r"(?<=[.!?:])\s+(?=[A-Z`\"'(])|\n+")
# Openings that only hand over to the next call, and the announcing words of a sentence that says what it does.
_FILLER = re.compile(r"^(?:(?:now|ok|okay|good|great|perfect|excellent|done|alright|so)\b[,.!:]?\s*)+", re.IGNORECASE)
# A sentence that only says the agent now knows, and one that only says it will look around.
_NO_FINDING = re.compile(
    r"^(?:i (?:now )?(?:have|see|understand|know|get)|i've (?:got|found|seen)|that's|this is)\b", re.I
)
_LOOKING_VERB = re.compile(r"^(?:explore|check|look|read|verify|examine|inspect|gather|search|find|review|see)\b", re.I)
_NARRATION = re.compile(r"^(?:(?:first|next|then),?\s+)?(?:let me|let's|i'll|i will|i'm going to)\s+", re.IGNORECASE)
# How every step made here opens (a multi-line command is the command itself): a recall needs no worked
# example that repeats them, the run is one get_procedure away (engine/recall.py).
STEP_OPENINGS = (
    CHANGE_OPENING,
    CREATE_OPENING,
    LOOK_OPENING,
    REPRODUCE_OPENING,
    CHECK_OPENING,
    RUN_OPENING,
    SEARCH_OPENING,
    SKILLS_OPENING,
    APPROACH_OPENING,
    "# and ",
)
_TOOL_PREFIX = re.compile(r"^(?:Bash|bash|shell|sh|run):\s*")
_QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_REPLACEMENT = re.compile(rf"replace (?P<old>{_QUOTED}) with (?P<new>{_QUOTED})")
_EDIT_TOOL = re.compile(r"^(?:Edit|MultiEdit): (?P<path>.+?): replace ")
_WRITE_TOOL = re.compile(r"^Write: (?P<path>[^\n]+)(?:\n(?P<content>.*))?\Z", re.DOTALL)
# `cat <<'EOF' > path`, `cat > path <<EOF`, `tee path <<EOF`: a file written from a heredoc.
# An editor's line edit of the file it has open (SWE-agent: `edit 3:5`, the new lines, `end_of_edit`).
_LINE_EDIT = re.compile(r"^edit \d+:\d+\n(?P<body>.*?)\n?\s*end_of_edit$", re.DOTALL)
_HEREDOC_WRITE = re.compile(
    r"^\s*(?:cat\s*(?:<<-?\s*['\"]?(?P<tag1>\w+)['\"]?\s*>\s*(?P<path1>[^\s;&|]+)"
    r"|>\s*(?P<path2>[^\s;&|]+)\s*<<-?\s*['\"]?(?P<tag2>\w+)['\"]?)"
    r"|tee\s+(?P<path3>[^\s;&|-][^\s;&|]*)\s*<<-?\s*['\"]?(?P<tag3>\w+)['\"]?)"
)
# A program run on a script file: `python3 x.py`, `bash run.sh`, `node x.js`, `./x.sh`.
_SCRIPT_RUN = re.compile(
    r"(?:^|&&|;|\|)\s*(?:(?:python3?|py|bash|sh|zsh|node|ruby|perl|php|deno run|bun|npx tsx|tsx)\s+(?:-\S+\s+)*"
    r"(?P<a>[^\s;&|<>]+\.\w+)|(?P<b>\.?/[^\s;&|<>]+\.\w+))"
)
_LEADING_CD = re.compile(r"^\s*cd\s+\S+\s*&&\s*")
_INLINE = re.compile(r"^\s*(?:python3?|node|ruby|perl)\s+-[ce]\b")
# Snippets and scripts that write something (a file, a document, a chart): not a probe.
_WRITES_IN_CODE = re.compile(
    r"\.write(?:_text|_bytes)?\(|\bopen\([^)]*['\"][wa]b?\+?['\"]|\.save\(|\.savefig\(|\.to_(?:csv|json|excel|parquet)\("
    r"|json\.dump\(|shutil\.\w+\(|os\.(?:rename|replace|remove|makedirs|mkdir)\(|\.mkdir\(|\.rename\(|\.unlink\("
)
# Checks besides test runners: builds and linters (as the command's program), and a test script run.
_CHECK_COMMAND = re.compile(
    r"^\s*(?:\S+/)?(?:mvn|gradlew?|make|cargo\s+build|go\s+(?:build|vet)|tsc|npm\s+run\s+build|ruff|mypy|flake8|eslint)\b"
)
_TEST_SCRIPT = re.compile(r"(?:^|/)(?:run)?tests?[\w-]*\.\w+$|_tests?\.\w+$")
_DIFF_FILE = re.compile(r"^diff --git a/(?P<a>\S+) b/(?P<b>\S+)$", re.MULTILINE)
_REMOVED = frozenset("rm unlink".split())
# Commands that make or move files: work with no code (sorting files, unpacking) is done with these.
_FILE_OPERATIONS = frozenset("mv cp mkdir touch ln tar unzip zip gunzip rsync install".split())


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
class _Run:
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


def coding_steps(steps: Sequence[Step]) -> list[str] | None:
    """The steps of a coding run as the module docstring describes, or None when the run changed no file."""
    steps = [s for s in steps if not (keeps_books(s.action) or never_ran(s))]
    run = _Run(steps, [verdict(s) for s in steps], [_TOOL_PREFIX.sub("", s.action.strip()) for s in steps])
    _read_changes(run)
    scratch = _scratch_files(run)
    changed = {path: change for path, change in run.changes.items() if path not in scratch}
    operations = [i for i, action in enumerate(run.shell) if run.verdicts[i] == Verdict.WORKED and _operates(action)]
    if not changed and not operations:
        return None
    # The project's change starts with its first edit: the run's own scripts (written, then run) come before.
    ran = {path for action in run.shell for path in _runs_script(action)}
    own = {path for path in changed if path in run.written and any(_same_path(path, r) for r in ran)}
    first_change = min(
        [c.first for p, c in changed.items() if p not in own] or [c.first for c in changed.values()] or operations
    )
    reproduction, reproduction_at, shown = _reproduction(run, scratch, first_change)
    changed = {path: change for path, change in changed.items() if path != shown}
    commands = _deliverable_commands(run, scratch, changed, reproduction_at)
    named = " ".join(
        [*changed, *(text for _, text in commands)]
        + [f"{c.content or ''} {c.patch or ''} {' '.join(o + n for o, n in c.hunks)}" for c in changed.values()]
        + [command for c in changed.values() for command in c.commands]
    )
    out: list[tuple[int, str]] = []
    if approach := _approach(run.steps):
        out.append((-3, approach))
    if where := _where(run, first_change, changed, named):
        out.append((-2, where))
    if reproduction:
        out.append((-1, reproduction))
    ordered = _one_per_command(sorted(changed.values(), key=lambda c: c.first))
    rendered = _same_change_once([(change, _render_change(change)) for change in ordered])
    out += rendered[:MAX_CHANGED_FILES]
    if len(rendered) > MAX_CHANGED_FILES:
        rest = [text.split("\n", 1)[0].rstrip(":") for _, text in rendered[MAX_CHANGED_FILES:]]
        out.append((rendered[MAX_CHANGED_FILES][0], "Also: " + "; ".join(rest[:12]) + _more(len(rest) - 12)))
    out += commands
    if check := _check(run, first_change, reproduction_at, changed, scratch, named):
        out.append((len(steps), check))
    return [text for _, text in sorted(out, key=lambda item: item[0])]


def _approach(steps: Sequence[Step]) -> str | None:
    """What the agent said it was doing, in its own words (the text before its calls, which the
    transcript reader keeps as each step's thought): what it found and what it chose, in order, as
    one short step. Filler ("Let me check", "Perfect!") and sentences of a few words go."""
    sentences: dict[str, None] = {}
    for step in steps:
        for sentence in _SENTENCE.split(step.thought or ""):
            # "Now let me read each file to categorize it" says what it did: "Read each file to categorize it".
            sentence = _NARRATION.sub("", _FILLER.sub("", sentence.strip())).strip().rstrip(":")
            if len(sentence.split()) < _APPROACH_MIN_WORDS or _NO_FINDING.match(sentence):
                continue
            # Looking around says nothing unless it names what it looks at ("Read `conf.py` for the retries").
            if _LOOKING_VERB.match(sentence) and "`" not in sentence:
                continue
            sentence = sentence[0].upper() + sentence[1:]
            sentences[sentence if sentence[-1] in ".!?" else sentence + "."] = None
    text = ""
    for sentence in sentences:
        if len(text) + len(sentence) + 1 > MAX_APPROACH_CHARS:
            break
        text = f"{text} {sentence}".strip()
    return APPROACH_OPENING + text if text else None


def _same_change_once(rendered: list[tuple[FileChange, str]]) -> list[tuple[int, str]]:
    """Files given the same change (the same lines taken out and put in, whatever the context) as one
    step that shows it once and names them all: "apply this to every file like it" is the know-how."""
    groups: dict[tuple[str, ...], list[tuple[FileChange, str]]] = {}
    for change, text in rendered:
        changed_lines = tuple(
            line.strip() for line in text.split("\n")[1:] if line.startswith(("-", "+")) and line[1:].strip()
        )
        key = changed_lines if changed_lines and (change.hunks or change.patch) else (text,)
        groups.setdefault(key, []).append((change, text))
    steps = []
    for group in groups.values():
        first, text = group[0]
        if len(group) > 1:
            names = [change.path for change, _ in group]
            label = f"{CHANGE_OPENING}{', '.join(names[:8])}{_more(len(names) - 8)} (the same change in each):"
            text = label + "\n" + text.split("\n", 1)[1]
        steps.append((first.first, text))
    return steps


def _one_per_command(changes: list[FileChange]) -> list[FileChange]:
    """Files that one command changed (`sed -i ... a.py b.py`), and nothing shows better, as one change."""
    merged: list[FileChange] = []
    by_command: dict[str, FileChange] = {}
    for change in changes:
        if change.patch is None and change.content is None and not change.hunks and change.commands:
            command = change.commands[-1]
            if command in by_command:
                by_command[command].path += f", {change.path}"
                continue
            change = FileChange(change.path, change.first, commands=[command])
            by_command[command] = change
        merged.append(change)
    return merged


def skills_used(steps: Sequence[Step]) -> list[str]:
    """The skills the run loaded (the transcript reader names them in one `Skill: a, b` step)."""
    names: dict[str, None] = {}
    for step in steps:
        if found := _SKILLS_STEP.match(step.action):
            names.update(dict.fromkeys(n.strip() for n in found[1].split(",") if n.strip()))
    return list(names)


def _operates(action: str) -> bool:
    """Whether a shell line makes, moves or unpacks files (beyond a scratch folder)."""
    for part in re.split(r"&&|\|\||;", action.split("\n", 1)[0]):
        tokens = part.split()
        if tokens and tokens[0] in _FILE_OPERATIONS and not all(t.startswith(("-", "/tmp/")) for t in tokens[1:]):
            return True
    return False


def _more(count: int) -> str:
    return f" and {count} more" if count > 0 else ""


# -- reading the run ------------------------------------------------------------------------


def _read_changes(run: _Run) -> None:
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
        elif (line_edit := _LINE_EDIT.match(action.strip())) and open_file:
            # The editor names the file it changed in its answer ("[File: /repo/x.py (40 lines total)]").
            shown = re.match(r"\[File: (\S+)", (step.observation or "").lstrip())
            named = shown[1] if shown else open_file
            change = _change(run, open_file if _same_path(open_file, named) else _known_spelling(run, named), index)
            if change.content == "":
                change.content = line_edit["body"]  # the first edit of a file the editor just created
            else:
                change.commands.append(action.strip())
        elif written := _WRITE_TOOL.match(step.action.strip()):
            _wrote(run, index, written["path"].strip(), written["content"])
        elif edited := _EDIT_TOOL.match(step.action.strip()):
            change = _change(run, edited["path"], index)
            for replacement in _REPLACEMENT.finditer(step.action):
                old, new = quoted_text(replacement["old"]), quoted_text(replacement["new"])
                if old is not None and new is not None:
                    _apply_edit(change, old, new)
        elif heredoc := _HEREDOC_WRITE.match(action):
            path = heredoc["path1"] or heredoc["path2"] or heredoc["path3"]
            tag = heredoc["tag1"] or heredoc["tag2"] or heredoc["tag3"]
            _wrote(run, index, path, _heredoc_body(action, tag))
        else:
            _shell_changes(run, index, action)
    if run.patch:
        _read_patch(run)


def _wrote(run: _Run, index: int, path: str, content: str | None) -> None:
    # A file the run read or changed before it wrote it whole existed: it is rewritten, not created.
    existed = (path in run.changes and not run.changes[path].created) or any(
        is_looking(run.steps[i].action)
        and any(_same_path(path, f.split(" (", 1)[0]) for f in looked_at(run.steps[i].action)[0])
        for i in range(index)
    )
    change = _change(run, path, index)
    change.content, change.hunks, change.created = content, [], not existed or change.created
    if change.created:
        run.written.setdefault(path, []).append(index)
    run.deleted.pop(path, None)


def _shell_changes(run: _Run, index: int, action: str) -> None:
    first_line = action.split("\n", 1)[0]
    for command in re.split(r"&&|\|\||;", first_line):
        tokens = command.split()
        if tokens and tokens[0] in _REMOVED:
            for path in (t for t in tokens[1:] if not t.startswith("-")):
                run.deleted[path] = index
    outputs = written_paths(action, in_place=False)
    run.outputs.update(outputs)
    # Only files changed in place are changes (`sed -i`); a command's output file is what it produced.
    rewritten = [path for path in written_paths(action) if path not in outputs]
    if not rewritten and "\n" in action and _WRITES_IN_CODE.search(action):
        # An inline script that rewrites files (`python - <<EOF ... open(p, 'w')`): the files it names.
        rewritten = [p for p in re.findall(r"['\"]([\w./-]+\.\w{1,8})['\"]", action) if p in run.changes or "/" in p]
    for path in rewritten:
        if path in ("/dev/null",) or path.startswith("/tmp/"):
            continue
        change = _change(run, path, index)
        if change.content is None:
            change.commands.append(action)


def _change(run: _Run, path: str, index: int) -> FileChange:
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


def _read_patch(run: _Run) -> None:
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
            if _find_change(run, path) is None:
                run.changes[path] = FileChange(path, len(run.steps), cut=True)
            continue
        change = run.changes.get(path) or _find_change(run, path) or FileChange(path, len(run.steps))
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


def _known_spelling(run: _Run, path: str) -> str:
    """`path` as the run already named it, when it did (`/repo/x.py` is the `x.py` it created)."""
    return next((known for known in run.changes if _same_path(known, path)), path)


def _find_change(run: _Run, path: str) -> FileChange | None:
    """The change recorded under another spelling of the same path (`./x.py`, `/repo/x.py`)."""
    for known, change in run.changes.items():
        if known.lstrip("./").endswith(path) or path.endswith(known.lstrip("./")):
            return change
    return None


def _scratch_files(run: _Run) -> set[str]:
    """Files the run wrote for itself and did not keep: deleted later, or left out of its final diff."""
    made = dict.fromkeys(run.outputs, -1) | {path: indexes[-1] for path, indexes in run.written.items()}
    scratch = {path for path, at in made.items() if path in run.deleted and run.deleted[path] > at}
    if run.patch and not run.patch_cut:
        in_patch = {m["b"] for m in _DIFF_FILE.finditer(run.patch)}
        scratch |= {path for path in [*run.changes, *run.outputs] if not any(_same_path(path, p) for p in in_patch)}
    return scratch


def _same_path(one: str, other: str) -> bool:
    one, other = one.removeprefix("./"), other.removeprefix("./")
    return one == other or one.endswith("/" + other) or other.endswith("/" + one)


# -- the steps ------------------------------------------------------------------------------


def _runs_script(action: str) -> list[str]:
    return [m["a"] or m["b"] for m in _SCRIPT_RUN.finditer(action.split("\n", 1)[0])]


def _is_check(action: str) -> bool:
    first_line = action.split("\n", 1)[0]
    return bool(
        TEST_COMMAND.search(first_line)
        or any(_CHECK_COMMAND.match(part) for part in re.split(r"&&|;", first_line))
        or any(_TEST_SCRIPT.search(path) for path in _runs_script(first_line))
    )


def _is_probe(action: str, scratch: set[str]) -> bool:
    """An inspection whose output was only read: a look, an inline snippet that writes nothing, a scratch
    script's run or its removal."""
    action = _LEADING_CD.sub("", action)
    if not _WRITES_IN_CODE.search(action) and not written_paths(action):
        # A line of looks and print-only snippets (`wc -c r.json && python3 -c "..."`, `cat f | python3 -c`).
        first_line = action.split("\n", 1)[0]
        parts = commands(first_line) if "\n" not in action else re.split(r"&&|\|", first_line)
        if parts and all(is_looking(part) or _INLINE.match(part) for part in parts):
            return True
    if is_looking(action) or re.match(r"^\s*(?:Read|Grep|Glob|LS|WebFetch|WebSearch|Agent|Task):", action):
        return True
    if _INLINE.match(action) and not _WRITES_IN_CODE.search(action):
        return True
    ran = _runs_script(action) + written_paths(action, in_place=False)
    if ran and all(any(_same_path(path, s) for s in scratch) for path in ran):
        return True
    tokens = action.split()
    return bool(tokens) and tokens[0] in _REMOVED and all(t in scratch for t in tokens[1:] if not t.startswith("-"))


def _reproduction(run: _Run, scratch: set[str], first_change: int) -> tuple[str | None, int | None, str | None]:
    """The run's first way of seeing the problem (a check that failed before the change and later
    passed, else a command run before the change and run again after it), its step, and the script
    of the run's own that it shows whole."""
    before = [i for i in range(first_change) if not is_looking(run.shell[i])]
    candidates = [i for i in before if run.verdicts[i] == Verdict.CHECK_FAILED] + [
        i for i in before if run.verdicts[i] == Verdict.WORKED
    ]
    for index in candidates:
        action = run.shell[index]
        if _HEREDOC_WRITE.match(action) or written_paths(action) or not (_runs_script(action) or _is_check(action)):
            continue
        again = [j for j in range(first_change, len(run.steps)) if run.shell[j] == action]
        if not again or not any(run.verdicts[j] == Verdict.WORKED for j in again):
            continue
        text = f"{REPRODUCE_OPENING}`{_one_line(action)}`"
        text += " (fails before the change)" if run.verdicts[index] == Verdict.CHECK_FAILED else " (before the change)"
        for path in _runs_script(action)[:1]:
            source = next((c for p, c in run.changes.items() if _same_path(p, path) and p in run.written), None)
            if source and source.content:
                body = source.content.strip("\n")
                if len(body) > SCRATCH_SCRIPT_CHARS:
                    body = body[:SCRATCH_SCRIPT_CHARS].rsplit("\n", 1)[0] + "\n..."
                kind = "a throwaway" if source.path in scratch else "the script"
                text += f", with {kind} {source.path}:\n{body}"
                return text, index, source.path
        return text, index, None
    return None, None, None


def _deliverable_commands(
    run: _Run, scratch: set[str], changed: dict[str, FileChange], reproduction_at: int | None
) -> list[tuple[int, str]]:
    """Commands that did the work besides editing files, consecutive ones of one kind kept once."""
    rewriting = {command for change in run.changes.values() for command in change.commands}
    groups: list[tuple[int, str, str, int]] = []  # (first step, command word, text, how many)
    for index, action in enumerate(run.shell):
        if run.verdicts[index] != Verdict.WORKED or only_submits(action):
            continue
        if reproduction_at is not None and action == run.shell[reproduction_at]:
            continue  # the reproduction, and its runs after the change: the check
        if _WRITE_TOOL.match(run.steps[index].action.strip()) or _EDIT_TOOL.match(run.steps[index].action.strip()):
            continue
        # A file's writes and rewrites are its change (or a scratch file's making); checks come last.
        if (
            _HEREDOC_WRITE.match(action)
            or _LINE_EDIT.match(action.strip())
            or re.match(r"^create\s+\S+$", action.strip())
            or action in rewriting
            or _is_probe(action, scratch)
            or _is_check(action)
        ):
            continue
        if re.match(r"^\s*(?:cd|echo|printf|sleep|true|export|source)\b", action) and "&&" not in action:
            continue
        word = action.split(maxsplit=1)[0] if action.split() else ""
        if groups and groups[-1][1] == word and word not in ("python", "python3", "node", "bash", "sh"):
            first, _, text, count = groups[-1]
            groups[-1] = (first, word, text, count + 1)
            continue
        groups.append((index, word, action, 1))
    steps = []
    for first, word, text, count in groups[-MAX_COMMAND_STEPS:]:
        more = f"and {count - 1} more `{word}` like it" if count > 1 else ""
        if "\n" in text.strip():
            # Code stays code: the command as the step, what it stands for as a comment above it.
            steps.append((first, (f"# {more}\n" if more else "") + text.strip()))
        else:
            steps.append((first, f"{RUN_OPENING}{text.strip()}`" + (f" ({more})" if more else "")))
    return steps


def _one_line(action: str) -> str:
    line = " ".join(action.split())
    return line if len(line) <= 300 else line[:297] + "..."


def _where(run: _Run, first_change: int, changed: dict[str, FileChange], named: str) -> str | None:
    """The files read before the change that the change (or what made the deliverable) names; when it
    names none of them (a page written about the code it read), the files read, as the context it needed."""
    files: dict[str, None] = {}
    patterns: dict[str, None] = {}
    read: dict[str, None] = {}
    for index in range(first_change):
        action = run.steps[index].action
        if not is_looking(action):
            continue
        looked, searched = looked_at(action)
        read.update(dict.fromkeys(f for f in looked if "." in f.split(" (", 1)[0].rsplit("/", 1)[-1]))
        relevant = [f for f in looked if _named(f.split(" (", 1)[0], changed, named)]
        files.update(dict.fromkeys(relevant))
        # A search of a changed file found where to change it; other searches count when the work names them.
        patterns.update(dict.fromkeys(p for p in searched if len(p) >= 3 and (relevant or p in named)))
    if not files:
        files = {name: None for name in read if not any(_same_path(name, known) for known in changed)}
    # A file also named with the lines looked at needs no bare mention, nor a folder that holds one named.
    ranged = {name.split(" (", 1)[0] for name in files if " (" in name}
    files = {name: None for name in files if name not in ranged}
    paths = [name.split(" (", 1)[0] for name in files]
    files = {name: None for name in files if not any(p.startswith(name.rstrip("/") + "/") for p in paths)}
    if not files and not patterns:
        return None
    parts = []
    if files:
        shown = list(files)[:MAX_LOOKED_FILES]
        while len(shown) > 1 and sum(len(name) + 2 for name in shown) > MAX_LOOK_CHARS:
            shown.pop()  # one line a model reads at a glance, not a listing
        parts.append(LOOK_OPENING + ", ".join(shown) + _more(len(files) - len(shown)))
    if patterns:
        quoted = ", ".join(f"'{p}'" for p in list(patterns)[:MAX_LOOKED_FILES])
        parts.append(("search for " if files else SEARCH_OPENING) + quoted)
    return "; ".join(parts)


def _named(path: str, changed: dict[str, FileChange], named: str) -> bool:
    if not path or path in (".", "/"):
        return False
    if any(_same_path(path, known) or known.startswith(path.rstrip("/") + "/") for known in changed):
        return True
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    # A folder counts in work that only moves files; in a change of files, the files themselves are named.
    return ("." in tail and tail in named) or (not changed and "/" in path and path.rstrip("/") in named)


def _runs_only(action: str, scratch: set[str]) -> bool:
    ran = _runs_script(action)
    return bool(ran) and all(any(_same_path(path, s) for s in scratch) for path in ran)


def _check(
    run: _Run,
    first_change: int,
    reproduction_at: int | None,
    changed: dict[str, FileChange],
    scratch: set[str],
    named: str,
) -> str | None:
    """The last check that passed after the change, and the looks at what the work produced after it."""
    operations = [i for i, action in enumerate(run.shell) if run.verdicts[i] == Verdict.WORKED and _operates(action)]
    last_change = max([change.first for change in changed.values()] + operations + [first_change])
    for change in changed.values():
        for index in run.written.get(change.path, []):
            last_change = max(last_change, index)
    checks = [
        i
        for i in range(first_change, len(run.steps))
        if run.verdicts[i] == Verdict.WORKED
        and (
            (_is_check(run.shell[i]) and not _runs_only(run.shell[i], scratch))
            or (reproduction_at is not None and run.shell[i] == run.shell[reproduction_at])
        )
    ]
    parts = []
    if checks:
        parts.append(f"`{_one_line(run.shell[checks[-1]])}` passes")
    # What the work made and the run read back: a file the change or a command names, not a source file.
    produced: dict[str, None] = {}
    for index in range(last_change + 1, len(run.steps)):
        if is_looking(run.steps[index].action) and run.verdicts[index] == Verdict.WORKED:
            looked, _ = looked_at(run.steps[index].action)
            produced.update(
                dict.fromkeys(
                    f
                    for f in looked
                    if _named(f, {}, named) and not any(_same_path(f, known) for known in changed) and f not in scratch
                )
            )
    if produced:
        parts.append("look at " + ", ".join(list(produced)[:4]))
    return CHECK_OPENING + "; ".join(parts) if parts else None


def _render_change(change: FileChange) -> str:
    if change.patch is not None:
        verb = CREATE_OPENING if change.created else CHANGE_OPENING
        headers = ("index ", "--- ", "+++ ", "new file mode")
        body = "\n".join(line for line in change.patch.split("\n") if not line.startswith(headers))
        return f"{verb}{change.path}:\n{body}"
    if change.content is not None:
        verb, whole = (CREATE_OPENING, "") if change.created else (CHANGE_OPENING, " (written whole)")
        return f"{verb}{change.path}{whole}:\n{change.content.rstrip()}"
    if change.hunks:
        return f"{CHANGE_OPENING}{change.path}:\n" + "\n".join(_hunk(o, n) for o, n in change.hunks)
    if change.commands:
        command = change.commands[-1]
        if "\n" in command.strip():
            return f"{CHANGE_OPENING}{change.path}:\n{command.strip()}"
        return f"{CHANGE_OPENING}{change.path}: `{command.strip()}`"
    if change.cut:
        return f"{CHANGE_OPENING}{change.path} ({PATCH_CUT_NOTE.strip('[]. ')})"
    return f"{CHANGE_OPENING}{change.path}"


def _hunk(old: str, new: str) -> str:
    """One replacement as diff lines, the lines both sides share kept as context."""
    old_lines, new_lines = old.split("\n"), new.split("\n")
    lines = ["@@"]
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            lines += [f" {line}" for line in old_lines[i1:i2]]
            continue
        lines += [f"-{line}" for line in old_lines[i1:i2]]
        lines += [f"+{line}" for line in new_lines[j1:j2]]
    return "\n".join(lines)
