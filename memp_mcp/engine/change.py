"""What coding work established: the change it made, how it was checked, and where it looked.

A run that wrote or edited files becomes a short procedure of what it established, not a transcript
of its tool calls (each file's net change is read by run_changes.py):

- *the skills it loaded* (one step naming them) and *the approach*: what the agent said it found and
  chose, in its own words before its calls;
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

import difflib
import re
from collections.abc import Sequence

from memp_mcp.engine.actions import (
    commands,
    is_looking,
    keeps_books,
    looked_at,
    only_submits,
    unprefixed,
    written_paths,
)
from memp_mcp.engine.run_changes import (
    EDIT_TOOL,
    HEREDOC_WRITE,
    LINE_EDIT,
    REMOVED,
    WRITE_TOOL,
    WRITES_IN_CODE,
    FileChange,
    Run,
    read_changes,
    same_path,
    scratch_files,
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
PATCH_CUT = "the rest of the patch is in the source trajectory"
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
# A program run on a script file: `python3 x.py`, `bash run.sh`, `node x.js`, `./x.sh`.
_SCRIPT_RUN = re.compile(
    r"(?:^|&&|;|\|)\s*(?:(?:python3?|py|bash|sh|zsh|node|ruby|perl|php|deno run|bun|npx tsx|tsx)\s+(?:-\S+\s+)*"
    r"(?P<a>[^\s;&|<>]+\.\w+)|(?P<b>\.?/[^\s;&|<>]+\.\w+))"
)
# The tail of a command line that only shapes what the agent sees.
_OUTPUT_SHAPING = re.compile(
    r"\s*(?:(?:&&|;)\s*echo\s+(?:\"[^\"$`]*\"|'[^']*'|[\w .:-]*)"
    r"|\|\s*(?:head|tail)(?:\s+-n)?\s+-?\d+|2>&1|2>/dev/null)\s*$"
)
_LEADING_CD = re.compile(r"^\s*cd\s+\S+\s*&&\s*")
_INLINE = re.compile(r"^\s*(?:python3?|node|ruby|perl)\s+-[ce]\b")
# Checks besides test runners: builds and linters (as the command's program), and a test script run.
_CHECK_COMMAND = re.compile(
    r"^\s*(?:\S+/)?(?:mvn|gradlew?|make|cargo\s+build|go\s+(?:build|vet)|tsc|npm\s+run\s+build|ruff|mypy|flake8|eslint)\b"
)
_TEST_SCRIPT = re.compile(r"(?:^|/)(?:run)?tests?[\w-]*\.\w+$|_tests?\.\w+$")
# Commands that make or move files: work with no code (sorting files, unpacking) is done with these.
_FILE_OPERATIONS = frozenset("mv cp mkdir touch ln tar unzip zip gunzip rsync install".split())


def coding_steps(steps: Sequence[Step]) -> list[str] | None:
    """The steps of a coding run as the module docstring describes, or None when the run changed no file."""
    steps = [s for s in steps if not (keeps_books(s.action) or never_ran(s))]
    run = Run(steps, [verdict(s) for s in steps], [unprefixed(s.action) for s in steps])
    read_changes(run)
    scratch = scratch_files(run)
    changed = {path: change for path, change in run.changes.items() if path not in scratch}
    operations = [i for i, action in enumerate(run.shell) if run.verdicts[i] == Verdict.WORKED and _operates(action)]
    if not changed and not operations:
        return None
    # The project's change starts with its first edit: the run's own scripts (written, then run) come before.
    ran = {path for action in run.shell for path in _runs_script(action)}
    own = {path for path in changed if path in run.written and any(same_path(path, r) for r in ran)}
    first_change = min(
        [c.first for p, c in changed.items() if p not in own] or [c.first for c in changed.values()] or operations
    )
    reproduction, reproduction_at, shown = _reproduction(run, scratch, first_change)
    changed = {path: change for path, change in changed.items() if path != shown}
    deliverables = _deliverable_commands(run, scratch, changed, reproduction_at)
    named = " ".join(
        [*changed, *(text for _, text in deliverables)]
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
    out += deliverables
    if check := _check(run, first_change, reproduction_at, changed, scratch, named, operations):
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
            continue  # a shorter one later may still fit
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
    if not WRITES_IN_CODE.search(action) and not written_paths(action):
        # A line of looks and print-only snippets (`wc -c r.json && python3 -c "..."`, `cat f | python3 -c`).
        first_line = action.split("\n", 1)[0]
        parts = commands(first_line) if "\n" not in action else re.split(r"&&|\|", first_line)
        if parts and all(is_looking(part) or _INLINE.match(part) for part in parts):
            return True
    # Reading tools are looks (actions.is_looking, above); fetching, searching the web and delegating are too.
    if re.match(r"^\s*(?:WebFetch|WebSearch|Agent|Task):", action):
        return True
    ran = _runs_script(action) + written_paths(action, in_place=False)
    if ran and all(any(same_path(path, s) for s in scratch) for path in ran):
        return True
    tokens = action.split()
    return bool(tokens) and tokens[0] in REMOVED and all(t in scratch for t in tokens[1:] if not t.startswith("-"))


def _reproduction(run: Run, scratch: set[str], first_change: int) -> tuple[str | None, int | None, str | None]:
    """The run's first way of seeing the problem (a check that failed before the change and later
    passed, else a command run before the change and run again after it), its step, and the script
    of the run's own that it shows whole."""
    before = [i for i in range(first_change) if not is_looking(run.shell[i])]
    candidates = [i for i in before if run.verdicts[i] == Verdict.CHECK_FAILED] + [
        i for i in before if run.verdicts[i] == Verdict.WORKED
    ]
    for index in candidates:
        action = run.shell[index]
        if HEREDOC_WRITE.match(action) or written_paths(action) or not (_runs_script(action) or _is_check(action)):
            continue
        again = [j for j in range(first_change, len(run.steps)) if run.shell[j] == action]
        if not again or not any(run.verdicts[j] == Verdict.WORKED for j in again):
            continue
        text = f"{REPRODUCE_OPENING}`{_one_line(action)}`"
        text += " (fails before the change)" if run.verdicts[index] == Verdict.CHECK_FAILED else " (before the change)"
        for path in _runs_script(action)[:1]:
            source = next((c for p, c in run.changes.items() if same_path(p, path) and p in run.written), None)
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
    run: Run, scratch: set[str], changed: dict[str, FileChange], reproduction_at: int | None
) -> list[tuple[int, str]]:
    """Commands that did the work besides editing files, consecutive ones of one kind kept once."""
    rewriting = {command for change in run.changes.values() for command in change.commands}
    groups: list[tuple[int, str, str, int]] = []  # (first step, command word, text, how many)
    for index, action in enumerate(run.shell):
        if run.verdicts[index] != Verdict.WORKED or only_submits(action):
            continue
        if reproduction_at is not None and action == run.shell[reproduction_at]:
            continue  # the reproduction, and its runs after the change: the check
        if WRITE_TOOL.match(run.steps[index].action.strip()) or EDIT_TOOL.match(run.steps[index].action.strip()):
            continue
        # A file's writes and rewrites are its change (or a scratch file's making); checks come last.
        if (
            HEREDOC_WRITE.match(action)
            or LINE_EDIT.match(action.strip())
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
            steps.append((first, f"{RUN_OPENING}{tidy_command(text)}`" + (f" ({more})" if more else "")))
    return steps


def tidy_command(command: str) -> str:
    """A one-line command without what only shaped its output for the agent: an `echo` of a message
    chained after it, a trailing `| head -N` or `| tail -N`, `2>&1` or `2>/dev/null` at its end. What
    it does is unchanged; a later agent reads less."""
    text = command.strip()
    for _ in range(4):
        tidier = _OUTPUT_SHAPING.sub("", text).rstrip()
        if tidier == text or not tidier:
            break
        text = tidier
    return text


def _one_line(action: str) -> str:
    line = tidy_command(" ".join(action.split()))
    return line if len(line) <= 300 else line[:297] + "..."


def _where(run: Run, first_change: int, changed: dict[str, FileChange], named: str) -> str | None:
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
        files = {name: None for name in read if not any(same_path(name, known) for known in changed)}
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
    if any(same_path(path, known) or known.startswith(path.rstrip("/") + "/") for known in changed):
        return True
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    # A folder counts in work that only moves files; in a change of files, the files themselves are named.
    return ("." in tail and tail in named) or (not changed and "/" in path and path.rstrip("/") in named)


def _runs_only(action: str, scratch: set[str]) -> bool:
    ran = _runs_script(action)
    return bool(ran) and all(any(same_path(path, s) for s in scratch) for path in ran)


def _check(
    run: Run,
    first_change: int,
    reproduction_at: int | None,
    changed: dict[str, FileChange],
    scratch: set[str],
    named: str,
    operations: list[int],
) -> str | None:
    """The last check that passed after the change, and the looks at what the work produced after it
    (`operations`: the steps that made or moved files)."""
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
                    if _named(f, {}, named) and not any(same_path(f, known) for known in changed) and f not in scratch
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
        return f"{CHANGE_OPENING}{change.path} ({PATCH_CUT})"
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
