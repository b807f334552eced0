"""Build: turn a trajectory into a reusable procedure without any language model.

The extractive builder keeps the actions that worked, drops failed actions, no-ops, retries and
exploration loops (each failure becomes a pitfall saying what failed and what worked instead),
and lifts the task's entities into {placeholders}, so that the steps of "put a clean soapbar in
cabinet" also serve "put a clean cloth in drawer". Code, quoted text, paths and command lines are
never lifted: an entity that appears in any of them stays literal everywhere. An agent's own
draft (or a draft sampled from the client's model) is always preferred; this is the fallback that
works everywhere.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memp_mcp.engine.actions import edit_target, is_looking, keeps_books, looked_at, only_submits, written_paths
from memp_mcp.engine.change import SKILLS_OPENING, coding_steps, skills_used
from memp_mcp.engine.titles import title_from_task, when_to_use_from_task
from memp_mcp.engine.verdict import (
    Verdict,
    command_word,
    error_line,
    is_command_line,
    never_ran,
    normal_action,
    verdict,
    writes_files,
)
from memp_mcp.models import (
    MAX_PITFALL_CHARS,
    MAX_PROCEDURE_STEPS,
    MAX_STEP_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    Outcome,
    ProcedureDraft,
    Step,
)
from memp_mcp.text import keywords, words

_THOUGHT_REPRODUCES = re.compile(
    r"reproduc|confirm (?:the )?(?:bug|failure|error|crash|problem)|see (?:the )?(?:failure|error|crash)"
    r"|expect(?:ed|ing)? (?:it |this |them )?to fail|should fail|make sure it fails",
    re.IGNORECASE,
)
# A token is code or a path when it holds one of these (after its sentence punctuation is dropped),
# or mixes cases inside a word (CamelCase identifiers).
_CODE_CHARS = re.compile(r"[/\\.=()\[\]{}<>:;$@#_|&*~^%+`'\"]")
_MIXED_CASE = re.compile(r"[a-z][A-Z]|[A-Z]{2,}[a-z]")
_QUOTED = re.compile(r"`[^`]*`|'[^'\n]*'|\"[^\"\n]*\"")
# Actions that only look around; they carry no procedure of their own.
_NO_OP_ACTIONS = frozenset({"look", "inventory", "help", "wait", "noop", "think"})
# Verbs and words too generic to be a task's entity.
_NOT_ENTITIES = frozenset(
    """put place move take find get clean heat cool examine look use turn open close go make
    bring carry set some it them then with under using in on into from""".split()
)
_PLACEHOLDER_NAMES = ("object", "target", "tool", "item4", "item5", "item6")
_INSTANCE_NUMBER = r"(?:\s+\d+)?"
PLACEHOLDER = re.compile(r"\{(\w+)\}")
_INSTANCE = re.compile(r"\b([^\W\d_]+)\s+\d+\b")
REPRODUCES_NOTE = " (fails before the fix: this run reproduces the problem)"
# How the steps made from the run's own actions begin (folded reads) or say so (an abridged step).
LOOK_STEP_OPENINGS = ("Look at ", "Search for ", "Look around: ")
ABRIDGED_NOTE = "the whole step is in the source trajectory"
_LOOK_ITEMS = 8
# Actions are compared by their opening: a long heredoc's first lines say what it writes.
_COMPARED_CHARS = 300
_LOOK_CHARS = 600
_SIMILAR_ENOUGH = 0.5


@dataclass(frozen=True)
class Pitfall:
    """A failed action, what it said, and what worked in its place ("instead") or after it ("after").

    `refused` when the action itself was refused (an action error: an unknown option, a command
    or file that is not there, "Nothing happens."), not a check that ran and reported a failure.
    """

    action: str
    said: str
    relation: str | None = None
    other: str | None = None
    refused: bool = False

    def render(self, lift_action: Callable[[str], str] = str) -> str:
        def quoted(action: str, limit: int) -> str:
            return normal_action(lift_action(action))[:limit]

        text = f'"{quoted(self.action, 200)}" did not work ({self.said})'
        if self.other and self.relation == "instead":
            return f'{text}; "{quoted(self.other, 200)}" worked instead'
        if self.other and self.relation == "after":
            return f'{text}; it worked after "{quoted(self.other, 160)}"'
        return text


@dataclass
class Built:
    """The steps kept, in order, and what the dropped ones taught."""

    steps: list[str]
    failures: list[Pitfall]
    failed_actions: int
    reproductions: int

    @property
    def pitfalls(self) -> list[str]:
        return [failure.render() for failure in self.failures]


_StepKey = tuple[str, str | None, str | None, bool | None, int | None]


def distill_steps(steps: Sequence[Step]) -> Built:
    """The actions that did something, in order, and a pitfall per distinct failed action (see
    _distill). A record reads one trajectory several times (can it build, the procedure, its
    lessons): the last two are kept, so each is distilled once."""
    built = _distilled(tuple((s.action, s.observation, s.thought, s.ok, s.exit_code) for s in steps))
    return Built(list(built.steps), list(built.failures), built.failed_actions, built.reproductions)


@functools.lru_cache(maxsize=2)
def _distilled(key: tuple[_StepKey, ...]) -> Built:
    return _distill(
        [Step.model_construct(action=a, observation=o, thought=t, ok=ok, exit_code=code) for a, o, t, ok, code in key]
    )


def _distill(steps: Sequence[Step]) -> Built:
    """The actions that did something, in order, and a pitfall per distinct failed action.

    - A failed action is dropped. When the same action later works it was a retry (collapsed into
      the run that worked) or a check that only passed after further work; otherwise the pitfall
      names the similar action that worked instead, if one did.
    - A check that fails on its first run, before the agent edited anything (or that the agent
      says is meant to fail), and passes later, reproduces the problem: it is part of the procedure.
    - No-ops, loops (an action repeated with the same observation) and wandering are dropped.
    """
    steps = [s for s in steps if not (only_submits(s.action) or keeps_books(s.action) or never_ran(s))]
    # Code is compared line by line: an edit refused for its indentation differs from the one accepted.
    normal = [kept_text(s.action) if "\n" in s.action.strip() else normal_action(s.action) for s in steps]
    verdicts = [verdict(s) for s in steps]
    created: set[str] = set()
    open_file: str | None = None  # the file an agent's editor has open ("open x.py", "create x.py")
    kept: list[tuple[int, str]] = []
    pitfalls: list[Pitfall] = []
    pitfall_actions: set[str] = set()
    seen: set[tuple[str, str]] = set()
    edited = False
    failed = reproductions = 0
    for index, (step, action) in enumerate(zip(steps, normal, strict=True)):
        if not action or action.lower() in _NO_OP_ACTIONS:
            continue
        if verdicts[index] != Verdict.WORKED:
            failed += 1
            later = _later_success(normal, verdicts, index)
            first_run = action not in normal[:index]
            meant_to_fail = bool(step.thought and _THOUGHT_REPRODUCES.search(step.thought))
            own_scripts = {path for path in created if path in action}
            runs_own_script = bool(own_scripts)
            if own_scripts:
                # The first run of the script as last written: an earlier draft's runs do not count.
                written_at = max(
                    (j for j in range(index) if own_scripts & set(written_paths(steps[j].action))), default=-1
                )
                first_run = action not in normal[written_at + 1 : index]
            # Its own script rewritten before the next run: the script was at fault, not the project.
            until = later if later is not None else len(steps)
            script_fixed = any(own_scripts & set(written_paths(steps[j].action)) for j in range(index + 1, until))
            if (
                verdicts[index] == Verdict.CHECK_FAILED
                and first_run
                and not script_fixed
                and (not edited or meant_to_fail)
                and (
                    (later is not None and any(verdicts[i] == Verdict.WORKED for i in range(index + 1, later)))
                    or (later is None and runs_own_script)
                )
            ):
                kept.append((index, kept_text(step.action) + REPRODUCES_NOTE))
                reproductions += 1
                continue
            if action.lower() not in pitfall_actions and (
                pitfall := _pitfall(step, action, normal, verdicts, index, later)
            ):
                pitfall_actions.add(action.lower())
                pitfalls.append(pitfall)
            continue
        open_file = edit_target(step.action, open_file)
        edited = edited or _edits_project(step.action, normal[:index], created, open_file)
        signature = (action.lower(), (step.observation or "").strip().lower()[:200])
        if signature in seen:
            continue
        seen.add(signature)
        kept.append((index, kept_text(step.action)))
    actions = _drop_drafts(_drop_superseded([a for _, a in kept]), created)
    return Built(_drop_wandering(_fold_looking(actions)), pitfalls, failed, reproductions)


def _drop_superseded(actions: list[str], window: int = 6) -> list[str]:
    """Drop an edit that a similar edit of the same files soon redid, with nothing run in between
    but looks and one-off checks: the attempts before the one that stuck."""
    dropped: set[int] = set()
    for index, action in enumerate(actions):
        paths = written_paths(action)
        if not paths or action.endswith(REPRODUCES_NOTE):
            continue
        for later in range(index + 1, min(len(actions), index + 1 + window)):
            other = actions[later]
            if written_paths(other) == paths:
                matcher = difflib.SequenceMatcher(None, action[:_COMPARED_CHARS], other[:_COMPARED_CHARS])
                if matcher.quick_ratio() >= _SIMILAR_ENOUGH and matcher.ratio() >= _SIMILAR_ENOUGH:
                    dropped.add(index)
                break
            if not (is_looking(other) or _one_off_check(other)):
                break
    return [a for i, a in enumerate(actions) if i not in dropped]


def _drop_drafts(actions: list[str], own: set[str]) -> list[str]:
    """Drop a draft of a script the run wrote for itself: a version that the run wrote again before it
    changed the project, with the runs of that version in between (unless one of them is the reproduction)."""
    dropped: set[int] = set()
    for index, action in enumerate(actions):
        paths = written_paths(action)
        if len(paths) != 1 or paths[0] not in own:
            continue
        path = paths[0]
        runs: list[int] = []
        for later in range(index + 1, len(actions)):
            other = actions[later]
            written = written_paths(other)
            if written == paths:
                if not any(actions[i].endswith(REPRODUCES_NOTE) for i in runs):
                    dropped.update([index, *runs])
                break
            if written or command_word(other) == "edit" or (other.endswith(REPRODUCES_NOTE) and path not in other):
                break  # the project changed (or another script was written): the earlier version did its part
            if path in other and not is_looking(other):
                runs.append(later)
    return [a for i, a in enumerate(actions) if i not in dropped]


def _one_off_check(action: str) -> bool:
    """An inline snippet run to try something (`python -c ...`), not a script or a test run."""
    return bool(re.match(r"^\s*(?:python3?|node|ruby)\s+-[ce]\b", action))


def kept_text(action: str) -> str:
    """An action as a step keeps it: one line made tidy, or code with its line breaks and indentation."""
    stripped = action.strip("\n").rstrip()
    if "\n" not in stripped:
        return normal_action(action)
    return "\n".join(line.rstrip() for line in stripped.split("\n"))


def _edits_project(action: str, before: Sequence[str], created: set[str], open_file: str | None = None) -> bool:
    """Whether an action that worked changed the project, not only a file this run created for itself
    (a reproduction script). A file is the run's own when no earlier action named it before it was written;
    an editor's line edit ("edit 3:5") changes the file it has open."""
    if command_word(action) == "edit" and open_file is not None:
        return open_file not in created
    paths = written_paths(action)
    for path in written_paths(action, in_place=False):
        if not any(path in earlier for earlier in before):
            created.add(path)
    if paths:
        return not all(path in created for path in paths)
    body = action.split("\n", 1)[1] if "\n" in action else ""
    return writes_files(action) or bool(re.search(r"\.write(?:_text)?\(|\bopen\([^)]*['\"][wa]", body))


def _fold_looking(actions: list[str]) -> list[str]:
    """Consecutive actions that only look around become one step naming what to look at."""
    folded: list[str] = []
    run: list[str] = []
    for action in [*actions, ""]:
        if action and is_looking(action):
            run.append(action)
            continue
        if run:
            folded.append(_look_step(run))
            run = []
        if action:
            folded.append(action)
    return folded


def _look_step(actions: list[str]) -> str:
    files: dict[str, None] = {}
    patterns: dict[str, None] = {}
    for action in actions:
        named, searched = looked_at(action)
        files.update(dict.fromkeys(named))
        patterns.update(dict.fromkeys(searched))
    # A file also named with the lines looked at needs no bare mention.
    ranged = {name.split(" (", 1)[0] for name in files if " (" in name}
    files = {name: None for name in files if name not in ranged}
    # A folder that holds a file also named says nothing more.
    paths = [name.split(" (", 1)[0] for name in files]
    files = {name: None for name in files if not any(p.startswith(name.rstrip("/") + "/") for p in paths if p != name)}
    if not files and not patterns:
        return actions[0] if len(actions) == 1 else f"{LOOK_STEP_OPENINGS[2]}{'; '.join(actions[:3])}"[:_LOOK_CHARS]
    parts = []
    if files:
        parts.append(
            "Look at " + ", ".join(list(files)[:_LOOK_ITEMS]) + (" and more" if len(files) > _LOOK_ITEMS else "")
        )
    if patterns:
        quoted = ", ".join(f"'{p}'" for p in list(patterns)[:_LOOK_ITEMS])
        parts.append(("search for " if files else "Search for ") + quoted)
    return "; ".join(parts)[:_LOOK_CHARS]


def _later_success(normal: list[str], verdicts: list[Verdict], index: int) -> int | None:
    for later in range(index + 1, len(normal)):
        if normal[later] == normal[index] and verdicts[later] == Verdict.WORKED:
            return later
    return None


def _pitfall(
    step: Step, action: str, normal: list[str], verdicts: list[Verdict], index: int, later: int | None
) -> Pitfall | None:
    said = error_line(step)
    refused = verdicts[index] == Verdict.ACTION_ERROR
    if later is not None:
        between = [a for i, a in enumerate(normal[index + 1 : later], index + 1) if verdicts[i] == Verdict.WORKED]
        # What changed things between the two runs made the difference: an edit first, then anything but a look.
        between = (
            [a for a in between if writes_files(a) or written_paths(a)]
            or [a for a in between if not is_looking(a)]
            or between
        )
        # A plain retry that worked teaches nothing beyond the step itself.
        return Pitfall(action, said, "after", between[-1], refused) if between else None
    instead = _similar_success(normal, verdicts, index)
    return Pitfall(action, said, "instead" if instead else None, instead, refused)


def _similar_success(normal: list[str], verdicts: list[Verdict], index: int, window: int = 6) -> str | None:
    """The action that most resembles a failed one among the next few that worked."""
    best, best_ratio = None, _SIMILAR_ENOUGH
    for later in range(index + 1, min(len(normal), index + 1 + window)):
        if verdicts[later] != Verdict.WORKED:
            continue
        matcher = difflib.SequenceMatcher(
            None, normal[index][:_COMPARED_CHARS].lower(), normal[later][:_COMPARED_CHARS].lower()
        )
        if matcher.quick_ratio() <= best_ratio:
            continue
        ratio = matcher.ratio()
        if ratio > best_ratio:
            best, best_ratio = normal[later], ratio
    return best


def useful_actions(steps: Sequence[Step]) -> list[str]:
    """The steps a procedure keeps (see distill_steps)."""
    return distill_steps(steps).steps


def _drop_wandering(actions: list[str]) -> list[str]:
    """Drop moves that lead nowhere: a "go to X" immediately followed by another "go to"."""
    result: list[str] = []
    for index, action in enumerate(actions):
        following = actions[index + 1] if index + 1 < len(actions) else None
        if _is_move(action) and following is not None and _is_move(following):
            continue
        result.append(action)
    return result


def _is_move(action: str) -> bool:
    """A move and nothing else: "go to desk 1", or a bare "cd dir" (not "cd dir && make")."""
    lowered = action.lower()
    if lowered.startswith("cd "):
        return not re.search(r"&&|\|\||;|\|", action)
    return lowered.startswith(("go to ", "goto "))


# -- placeholders --------------------------------------------------------------------------


def _pieces(text: str, *, action: bool = True) -> list[tuple[str, bool]]:
    """`text` cut into (piece, literal) pieces: quoted text, code, paths and (in an action) command lines
    are literal. A task is prose even when it starts with a program's name ("find two books ...")."""
    if action and is_command_line(text):
        return [(text, True)]
    pieces: list[tuple[str, bool]] = []
    position = 0
    for quoted in _QUOTED.finditer(text):
        pieces += _token_pieces(text[position : quoted.start()])
        pieces.append((quoted.group(), True))
        position = quoted.end()
    pieces += _token_pieces(text[position:])
    return pieces


def _token_pieces(text: str) -> list[tuple[str, bool]]:
    pieces: list[tuple[str, bool]] = []
    for token in re.split(r"(\s+)", text):
        if not token:
            continue
        core = token.strip(".,:;!?()")
        literal = (
            bool(core)
            and not PLACEHOLDER.fullmatch(core)
            and (bool(_CODE_CHARS.search(core)) or bool(_MIXED_CASE.search(core)))
        )
        if pieces and pieces[-1][1] == literal:
            pieces[-1] = (pieces[-1][0] + token, literal)
        else:
            pieces.append((token, literal))
    return pieces


def _word_sets(texts: Sequence[str], *, actions: bool = True) -> tuple[set[str], set[str], set[str]]:
    """Words found in the prose of `texts`, words named there as instances ("mug 1"), and words found
    in their literal pieces."""
    prose: set[str] = set()
    instances: set[str] = set()
    literal: set[str] = set()
    for text in texts:
        for piece, is_literal in _pieces(text, action=actions):
            (literal if is_literal else prose).update(words(piece))
            if is_literal:
                literal.update(w.lower() for w in re.findall(r"[A-Za-z]+", piece))
            else:
                instances.update(w.lower() for w in _INSTANCE.findall(piece))
    return prose, instances, literal


def task_entities(task: str, actions: Sequence[str]) -> list[str]:
    """Words of the task that name things the actions touch, in task order.

    Only things the actions name as instances in prose count ("take mug 1 from desk 1", as text
    worlds do); ordinary words ("add", "table") are not entities, and a word that also appears in
    code, a path, quoted text or a command line stays literal, so lifting it never changes what a
    step does. In coding work the names are code, paths and commands: nothing is lifted.
    A name the task splits and the actions join ("coffee machine", "coffeemachine") is one entity,
    written with a space.
    """
    terms = [w for w in keywords(task) if w not in _NOT_ENTITIES and not w.isdigit()]
    # Only a word the actions name as an instance ("mug 1") can be an entity: when none of the task's
    # words is one anywhere (coding work), the actions need no closer reading.
    named = {w.lower() for action in actions for w in _INSTANCE.findall(action)}
    known = set(terms)
    if not any(word in known or any(word.startswith(t) and word[len(t) :] in known for t in terms) for word in named):
        return []
    _, instances, literal = _word_sets(actions)
    task_prose, _, _ = _word_sets([task], actions=False)
    terms = [w for w in terms if w in task_prose]
    entities: list[str] = []
    skip = False
    for first, second in zip(terms, [*terms[1:], ""], strict=False):
        if skip:
            skip = False
            continue
        if second and first + second in instances and first + second not in literal:
            entities.append(f"{first} {second}")
            skip = True
        elif first in instances and first not in literal:
            entities.append(first)
    return entities[: len(_PLACEHOLDER_NAMES)]


def lift(text: str, entities: Sequence[str], *, action: bool = True) -> str:
    """Replace each entity (and an instance number after it, "soapbar 1") by its placeholder, in prose only."""
    if not entities:
        return text
    out: list[str] = []
    for piece, literal in _pieces(text, action=action):
        if not literal:
            for entity, name in zip(entities, _PLACEHOLDER_NAMES, strict=False):
                pattern = r"\s*".join(re.escape(part) for part in entity.split())
                piece = re.sub(rf"\b{pattern}{_INSTANCE_NUMBER}\b", "{" + name + "}", piece, flags=re.IGNORECASE)
        out.append(piece)
    return "".join(out)


def placeholders_in_literal_text(text: str) -> list[str]:
    """Placeholders that sit inside code, quoted text, a path or a command line (none should)."""
    return [name for piece, literal in _pieces(text) if literal for name in PLACEHOLDER.findall(piece)]


def abstract_task(task: str, steps: Sequence[Step]) -> str:
    """The task with its entities lifted: the task family this trajectory belongs to."""
    return lift(_clean_task(task), task_entities(task, [s.action for s in steps]), action=False)


def _clean_task(task: str) -> str:
    return " ".join(task.split()).rstrip(" .")


def why_nothing_to_build(steps: Sequence[Step]) -> str | None:
    """Why these steps cannot make a procedure (no steps, or no action that worked), or None."""
    if not steps:
        return "the trajectory has no steps"
    if not distill_steps(steps).steps:
        return "none of its actions worked (each was a no-op or failed)"
    return None


def extract_procedure(
    task: str, steps: Sequence[Step], outcome: Outcome, root: str | None = None, heading: str | None = None
) -> ProcedureDraft:
    """A procedure distilled from one trajectory by the rules above; never fails.

    Paths under `root` (the project's folder, when known) are written relative to it. The title and
    when-to-use are the task's opening statement of work (titles.py), read from `heading` when given
    (the task as sent, its line breaks kept), with its entities lifted.
    """
    heading = heading if heading and heading.strip() else task
    built = distill_steps(steps)
    # Coding work keeps what it established (change.py); its names are code, so nothing is lifted.
    coded = coding_steps(steps)
    entities = [] if coded is not None else task_entities(task, built.steps)
    kept = coded if coded is not None else built.steps
    if skills := skills_used(steps):
        kept = [SKILLS_OPENING + ", ".join(skills), *kept]
    lifted = _dedupe([abridged(relative_to(lift(a, entities), root)) for a in kept]) or [
        "(no successful action was recorded)"
    ]
    if len(lifted) > MAX_PROCEDURE_STEPS:
        lifted = [*lifted[: MAX_PROCEDURE_STEPS - 1], lifted[-1]]
    pitfalls = [
        relative_to(failure.render(lambda action: lift(action, entities)), root)[:MAX_PITFALL_CHARS]
        for failure in built.failures[:5]
    ]
    if outcome == Outcome.FAILURE:
        pitfalls.insert(0, "This procedure comes from a run that failed; check each step's result.")
    return ProcedureDraft(
        title=lift(title_from_task(heading), entities, action=False)[:MAX_TITLE_CHARS],
        steps=lifted,
        when_to_use=lift(when_to_use_from_task(heading), entities, action=False)[:MAX_TEXT_CHARS],
        pitfalls=pitfalls[:10],
    )


def relative_to(text: str, root: str | None) -> str:
    """`text` with paths under `root` written relative to it (and a leading "cd root &&" dropped)."""
    if not isinstance(root, str) or not root.startswith("/") or root.rstrip("/") == "":
        return text
    base = root.rstrip("/")
    # A step may open with a label and a backtick ("Check: `cd /repo && ..."): the cd goes all the same.
    text = re.sub(rf"^(\s*(?:[\w ]+:\s*)?`?)cd\s+['\"]?{re.escape(base)}/?['\"]?\s*(?:&&|;)\s*", r"\1", text)
    text = re.sub(rf"{re.escape(base)}/(?=[^\s/])", "", text)
    return re.sub(rf"(?<![\w/.-]){re.escape(base)}/?(?![\w.-])", ".", text)


def abridged(step: str, limit: int = MAX_STEP_CHARS) -> str:
    """A step over `limit` characters kept by its head and tail, saying how much was cut and where the rest is."""
    if len(step) <= limit:
        return step
    budget = limit - 200
    if "\n" in step:
        lines = step.split("\n")
        head: list[str] = []
        tail: list[str] = []
        used = 0
        for line in lines:
            if used + len(line) + 1 > budget * 2 // 3:
                break
            head.append(line)
            used += len(line) + 1
        for line in reversed(lines[len(head) :]):
            if used + len(line) + 1 > budget:
                break
            tail.insert(0, line)
            used += len(line) + 1
        cut = lines[len(head) : len(lines) - len(tail)]
        if head:
            note = f"[... {len(cut)} lines ({sum(len(c) + 1 for c in cut)} characters) cut here; {ABRIDGED_NOTE} ...]"
            return "\n".join([*head, note, *tail])
    cut_chars = len(step) - budget
    note = f" [... {cut_chars} characters cut here; {ABRIDGED_NOTE} ...] "
    return step[: budget * 2 // 3] + note + step[len(step) - (budget - budget * 2 // 3) :]


def failure_pitfalls(steps: Sequence[Step], limit: int = 5) -> list[str]:
    """One pitfall per distinct failed action: what was tried, what it said, and what worked instead."""
    return distill_steps(steps).pitfalls[:limit]


def _dedupe(steps: list[str]) -> list[str]:
    """Drop a step identical to the one just before it (lifting can make neighbours equal)."""
    return [s for i, s in enumerate(steps) if i == 0 or s != steps[i - 1]]


def trajectory_as_procedure(task: str, steps: Sequence[Step]) -> ProcedureDraft:
    """The `trajectory` build strategy: the actions verbatim, nothing abstracted."""
    actions = [kept_text(s.action) for s in steps if s.action.strip()]
    if len(actions) > MAX_PROCEDURE_STEPS:
        actions = [*actions[: MAX_PROCEDURE_STEPS - 1], actions[-1]]
    return ProcedureDraft(
        title=title_from_task(task),
        steps=[abridged(action) for action in actions] or ["(empty trajectory)"],
        when_to_use=when_to_use_from_task(task),
    )


def step_skeleton(steps: Sequence[str]) -> set[str]:
    """The verbs and placeholders of a step list, to tell whether two procedures do the same thing."""
    skeleton: set[str] = set()
    for step in steps:
        tokens = words(step)
        if tokens:
            skeleton.add(tokens[0])
        skeleton.update(re.findall(r"\{(\w+)\}", step))
    return skeleton
