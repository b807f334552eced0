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
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from memp_mcp.models import MAX_PROCEDURE_STEPS, MAX_TEXT_CHARS, Outcome, ProcedureDraft, Step
from memp_mcp.text import keywords, words

# What an agent sees when the action itself was wrong: a rejected edit, a command or file that
# does not exist, a bad option, a package that cannot be found, a refused tool call, or (in
# text worlds such as ALFWorld) "Nothing happens.".
_ACTION_ERROR = re.compile(
    r"\A\s*(?:nothing happens|error\b|failed\b|failure\b|invalid\b|unknown command|you can't|you cannot"
    r"|i don't understand|not found\b|fatal:|usage:)"
    r"|command not found|no such file or directory|no such file|cannot access|is not recognized as an internal"
    r"|permission denied|unknown (?:option|command|argument|flag)|unrecognized (?:option|arguments?)"
    r"|invalid (?:option|choice|argument)|\brejected\b|was not applied|string to replace not found"
    r"|not found in (?:the )?file|no changes (?:were )?made|hunk #?\d* ?failed|patch does not apply"
    r"|<tool_use_error>|could not find a version that satisfies|no matching distribution found"
    r"|unable to locate package|npm err! 404",
    re.IGNORECASE,
)
# What an agent sees when the action ran but reported a failure: failing tests, a crash, a
# non-zero exit, an HTTP error status. Such a run may be the point (reproducing a bug).
_CHECK_FAILED = re.compile(
    r"\b[1-9]\d* (?:failed|errors?)\b|^(?:FAILED|ERROR)\b|^--- FAIL|test result: FAILED|^FAIL\b"
    r"|Traceback \(most recent call last\)|^\w*(?:Error|Exception)\b.*:|^E\s+\w*(?:Error|Exception)\b"
    r"|\bpanic:|segmentation fault|core dumped"
    r"|\bexit(?:ed)? (?:with )?(?:code|status):? *[1-9]|\[exit code:? *[1-9]"
    r"|\bHTTP/\d(?:\.\d)? [45]\d\d\b|returned error: [45]\d\d|\bstatus(?: code)?:? [45]\d\d\b",
    re.MULTILINE,
)
# A test run: its output shows the errors of the code under test ("No such file or directory" in a
# failing test's traceback), so only its own first line can say the run itself was refused.
TEST_COMMAND = re.compile(
    r"\b(pytest|py\.test|unittest|tox|nox|(npm|pnpm|yarn|bun)\s+(run\s+)?test|jest|vitest|mocha|go\s+test|cargo\s+test"
    r"|make\s+(test|check)|mvn\s+test|gradle\w*\s+test|rspec|phpunit|ctest|dotnet\s+test)\b"
)
# Reading files and logs shows their content: a traceback in a log is what was looked for, not a failure.
_READ_COMMANDS = frozenset(
    """cat less more head tail grep rg ag ls find tree wc file stat which type read view open_file
    journalctl dmesg strings xxd hexdump od objdump readelf nm ldd""".split()
)
_THOUGHT_REPRODUCES = re.compile(
    r"reproduc|confirm (?:the )?(?:bug|failure|error|crash|problem)|see (?:the )?(?:failure|error|crash)"
    r"|expect(?:ed|ing)? (?:it |this |them )?to fail|should fail|make sure it fails",
    re.IGNORECASE,
)
# Programs whose command lines are kept literal, never lifted into placeholders.
_SHELL_COMMANDS = frozenset(
    """python python3 py pytest pip pip3 pipx uv poetry pdm hatch tox nox conda npm npx yarn pnpm node deno
    bun tsc jest vitest eslint prettier git gh make cmake cargo rustc gofmt java javac mvn gradle dotnet
    ruby bundle rake gem php composer docker podman kubectl helm terraform ansible ls cat grep rg ag sed
    awk find cd mkdir rm cp mv touch echo printf curl wget http bash sh zsh chmod chown head tail less
    more diff patch alembic psql mysql sqlite3 redis-cli mypy ruff flake8 black isort pylint gdb lldb
    strace ltrace file objdump readelf nm ldd strings xxd hexdump od journalctl systemctl service ps
    kill pkill env export source sudo apt apt-get dnf yum brew which du df tar unzip zip ssh scp rsync
    jq yq tee xargs sort uniq wc tree stat ln django-admin flask uvicorn gunicorn celery manage.py
    ./manage.py pre-commit""".split()
)
# "go" is also how a text world moves ("go to desk 1"): a command only before one of its subcommands.
_GO_SUBCOMMANDS = frozenset("build test run mod get vet fmt install generate env version clean list tool work".split())
_COMMAND_PREFIX = re.compile(r"^\s*(?:\$|>|run:|bash:|shell:|sh:|cmd:|exec:|terminal:)\s*", re.IGNORECASE)
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
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_INSTANCE = re.compile(r"\b([^\W\d_]+)\s+\d+\b")
REPRODUCES_NOTE = " (fails before the fix: this run reproduces the problem)"
_SIMILAR_ENOUGH = 0.5


class Verdict(Enum):
    """What became of one step of a trajectory."""

    WORKED = "worked"
    ACTION_ERROR = "action error"  # the action itself was wrong: drop it, learn a pitfall
    CHECK_FAILED = "check failed"  # it ran and reported a failure: a retry, a mistake, or a reproduction


def verdict(step: Step) -> Verdict:
    """Whether a step worked, from the agent's own flag or exit code first, then from what it saw."""
    observation = step.observation or ""
    explicit_failure = step.ok is False or (step.exit_code is not None and step.exit_code != 0)
    if step.ok is True or (step.exit_code == 0 and step.ok is None):
        return Verdict.WORKED
    # A read shows a file's or a log's content, which may hold any error text: only its own
    # complaint (the first line, "cat: x: No such file or directory") says the read failed.
    reads = _command_word(step.action) in _READ_COMMANDS
    first_line_only = reads or bool(TEST_COMMAND.search(step.action))
    if _ACTION_ERROR.search(observation.lstrip().split("\n", 1)[0] if first_line_only else observation):
        return Verdict.ACTION_ERROR
    if explicit_failure:
        return Verdict.CHECK_FAILED
    if not reads and _CHECK_FAILED.search(observation):
        return Verdict.CHECK_FAILED
    return Verdict.WORKED


def action_failed(step: Step) -> bool:
    return verdict(step) != Verdict.WORKED


def _normal(action: str) -> str:
    return " ".join(action.split())


def _command_word(action: str) -> str:
    stripped = _COMMAND_PREFIX.sub("", action)
    first = stripped.split(maxsplit=1)[0] if stripped.strip() else ""
    return first.lower()


def is_command_line(action: str) -> bool:
    """A shell command line (kept literal): a known program first, or a path to one."""
    first = _command_word(action)
    if first == "go":
        rest = _COMMAND_PREFIX.sub("", action).split()
        return len(rest) > 1 and rest[1].lower() in _GO_SUBCOMMANDS
    return first in _SHELL_COMMANDS or first.startswith(("./", "/", "~/")) or bool(_COMMAND_PREFIX.match(action))


def _writes_files(action: str) -> bool:
    """An action that edits the working tree (an edit tool, a patch, an in-place sed, a redirect)."""
    lowered = action.lower()
    first = _command_word(action)
    return (
        first in {"apply_patch", "edit", "write", "create", "str_replace", "insert", "patch", "replace", "tee"}
        or first.startswith(("edit", "write", "create", "str_replace", "apply"))
        or (first == "sed" and " -i" in lowered)
        or bool(re.search(r"(?<![<>&\d])>>?\s*[\w./~-]", action) and is_command_line(action))
    )


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
        text = f'"{lift_action(self.action)[:200]}" did not work ({self.said})'
        if self.other and self.relation == "instead":
            return f'{text}; "{lift_action(self.other)[:200]}" worked instead'
        if self.other and self.relation == "after":
            return f'{text}; it worked after "{lift_action(self.other)[:160]}"'
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


def distill_steps(steps: Sequence[Step]) -> Built:
    """The actions that did something, in order, and a pitfall per distinct failed action.

    - A failed action is dropped. When the same action later works it was a retry (collapsed into
      the run that worked) or a check that only passed after further work; otherwise the pitfall
      names the similar action that worked instead, if one did.
    - A check that fails on its first run, before the agent edited anything (or that the agent
      says is meant to fail), and passes later, reproduces the problem: it is part of the procedure.
    - No-ops, loops (an action repeated with the same observation) and wandering are dropped.
    """
    normal = [_normal(s.action) for s in steps]
    verdicts = [verdict(s) for s in steps]
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
            if (
                verdicts[index] == Verdict.CHECK_FAILED
                and later is not None
                and first_run
                and (not edited or meant_to_fail)
                and any(verdicts[i] == Verdict.WORKED for i in range(index + 1, later))
            ):
                kept.append((index, action + REPRODUCES_NOTE))
                reproductions += 1
                continue
            if action.lower() not in pitfall_actions and (
                pitfall := _pitfall(step, action, normal, verdicts, index, later)
            ):
                pitfall_actions.add(action.lower())
                pitfalls.append(pitfall)
            continue
        edited = edited or _writes_files(action)
        signature = (action.lower(), (step.observation or "").strip().lower()[:200])
        if signature in seen:
            continue
        seen.add(signature)
        kept.append((index, action))
    return Built(_drop_wandering([a for _, a in kept]), pitfalls, failed, reproductions)


def _later_success(normal: list[str], verdicts: list[Verdict], index: int) -> int | None:
    for later in range(index + 1, len(normal)):
        if normal[later] == normal[index] and verdicts[later] == Verdict.WORKED:
            return later
    return None


def _pitfall(
    step: Step, action: str, normal: list[str], verdicts: list[Verdict], index: int, later: int | None
) -> Pitfall | None:
    said = _error_line(step)
    refused = verdicts[index] == Verdict.ACTION_ERROR
    if later is not None:
        between = [a for i, a in enumerate(normal[index + 1 : later], index + 1) if verdicts[i] == Verdict.WORKED]
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
        ratio = difflib.SequenceMatcher(None, normal[index].lower(), normal[later].lower()).ratio()
        if ratio > best_ratio:
            best, best_ratio = normal[later], ratio
    return best


def _error_line(step: Step) -> str:
    """The line of the observation that says what went wrong, shortened."""
    observation = step.observation or ""
    lines = [" ".join(line.split()) for line in observation.splitlines() if line.strip()]
    chosen = next((line for line in reversed(lines) if _ACTION_ERROR.search(line)), None)
    chosen = chosen or next((line for line in reversed(lines) if _CHECK_FAILED.search(line)), None)
    if chosen is None:
        chosen = lines[0] if lines else ""
        if step.exit_code not in (None, 0):
            chosen = f"exit code {step.exit_code}" + (f": {chosen}" if chosen else "")
    return (chosen[:157] + "...") if len(chosen) > 160 else chosen or "it failed"


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
    return action.lower().startswith(("go to ", "goto ", "cd "))


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
            and not _PLACEHOLDER.fullmatch(core)
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
    _, instances, literal = _word_sets(actions)
    task_prose, _, _ = _word_sets([task], actions=False)
    terms = [w for w in keywords(task) if w not in _NOT_ENTITIES and not w.isdigit() and w in task_prose]
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
    return [name for piece, literal in _pieces(text) if literal for name in _PLACEHOLDER.findall(piece)]


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


def extract_procedure(task: str, steps: Sequence[Step], outcome: Outcome) -> ProcedureDraft:
    """A procedure distilled from one trajectory by the rules above; never fails."""
    built = distill_steps(steps)
    entities = task_entities(task, built.steps)
    lifted = _dedupe([lift(a, entities) for a in built.steps]) or ["(no successful action was recorded)"]
    if len(lifted) > MAX_PROCEDURE_STEPS:
        lifted = [*lifted[: MAX_PROCEDURE_STEPS - 1], lifted[-1]]
    family = lift(_clean_task(task), entities, action=False)
    pitfalls = [failure.render(lambda action: lift(action, entities)) for failure in built.failures[:5]]
    if outcome == Outcome.FAILURE:
        pitfalls.insert(0, "This procedure comes from a run that failed; check each step's result.")
    return ProcedureDraft(
        title=_title(family),
        steps=lifted,
        when_to_use=_when_to_use(family),
        pitfalls=pitfalls[:10],
    )


def failure_pitfalls(steps: Sequence[Step], limit: int = 5) -> list[str]:
    """One pitfall per distinct failed action: what was tried, what it said, and what worked instead."""
    return distill_steps(steps).pitfalls[:limit]


def _dedupe(steps: list[str]) -> list[str]:
    """Drop a step identical to the one just before it (lifting can make neighbours equal)."""
    return [s for i, s in enumerate(steps) if i == 0 or s != steps[i - 1]]


def _when_to_use(family: str) -> str:
    return f"Tasks like: {family[: MAX_TEXT_CHARS - 20]}"


def _title(family: str) -> str:
    title = family[:1].upper() + family[1:]
    return title if len(title) <= 120 else title[:117] + "..."


def trajectory_as_procedure(task: str, steps: Sequence[Step]) -> ProcedureDraft:
    """The `trajectory` build strategy: the actions verbatim, nothing abstracted."""
    actions = [" ".join(s.action.split()) for s in steps if s.action.strip()]
    if len(actions) > MAX_PROCEDURE_STEPS:
        actions = [*actions[: MAX_PROCEDURE_STEPS - 1], actions[-1]]
    family = _clean_task(task)
    return ProcedureDraft(
        title=_title(family), steps=actions or ["(empty trajectory)"], when_to_use=_when_to_use(family)
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


# -- lessons about the environment ---------------------------------------------------------

_ARTICLES = frozenset({"a", "an", "the"})
_SENTENCE_MARKS = ".,;:!?"


@dataclass(frozen=True)
class Lesson:
    """What one run showed about its environment: an action that was refused, and what got the work done.

    `instead`: another action that did the same kind of thing in its place; `first`: what had to be done
    before (before `instead` when there is one, else before the refused action itself, which then
    worked). Neither: nothing was found to do in its place. A lesson is about the place the work is done
    in (a tool replaced, an option removed, a service that must be started first), so it concerns every
    procedure that takes the same action, not only the one that was followed.
    """

    action: str
    said: str
    instead: str | None = None
    first: str | None = None

    @property
    def shows_a_way(self) -> bool:
        return bool(self.instead or self.first)


def lessons(steps: Sequence[Step]) -> list[Lesson]:
    """The actions a run found refused (action errors, not failing checks), with what worked in their place.

    What worked instead must do the same kind of thing: name the refused action's verb or program ("uv pip
    install" for "pip install"; "heat ... with the stove" for "heat ... with the microwave"). The next
    thing that worked is not a replacement because it resembles the refused action ("switch on the tap"
    after "clean ... in the sink" was refused is what cleaning needed first, or just the next step).
    """
    failures = distill_steps(steps).failures
    worked_after = {f.action.lower(): f.other for f in failures if f.relation == "after" and f.other}
    found = []
    for failure in failures:
        if not failure.refused:
            continue
        verb = _command_word(failure.action)
        if failure.relation == "instead" and failure.other and verb in failure.other.lower().split():
            found.append(Lesson(failure.action, failure.said, failure.other, worked_after.get(failure.other.lower())))
        elif failure.relation == "after" and failure.other:
            found.append(Lesson(failure.action, failure.said, first=failure.other))
        else:
            found.append(Lesson(failure.action, failure.said))
    return found


def _match_words(text: str) -> list[str]:
    return [w.strip(_SENTENCE_MARKS) for w in text.split() if w.lower().strip(_SENTENCE_MARKS) not in _ARTICLES]


def match_step(step: str, action: str) -> dict[str, str] | None:
    """What a procedure step's placeholders stand for when the step says `action`; None when it does not.

    Prose is compared word by word, without case, articles or sentence marks ("heat the {object} with
    microwave 1." says "heat egg 1 with microwave 1", with {object} = "egg 1"). A command line matches
    only as written, the whole step or a part of it in backquotes ("Install it with `pip install -e .`").
    A step must say more than its placeholders do: "go to {target}" says too little to be any one action.
    """
    step = step.removesuffix(REPRODUCES_NOTE).strip()
    action = _normal(action)
    if not step or not action:
        return None
    if any(_normal(quoted) == action for quoted in re.findall(r"`([^`\n]+)`", step)):
        return {}
    if is_command_line(action) or is_command_line(step):
        return {} if _normal(step) == action else None
    groups: dict[str, str] = {}
    pattern: list[str] = []
    literal = 0
    for word in _match_words(step):
        parts = _PLACEHOLDER.split(word)
        piece = ""
        for index, part in enumerate(parts):
            if index % 2 == 0:
                piece += re.escape(part)
            elif part in groups.values():
                piece += f"(?P={next(g for g, name in groups.items() if name == part)})"
            else:
                group = f"g{len(groups)}"
                groups[group] = part
                piece += f"(?P<{group}>.+?)"
        literal += len(parts) == 1
        pattern.append(piece)
    if literal < len(groups) + 2:
        return None
    found = re.fullmatch(" ".join(pattern), " ".join(_match_words(action)), re.IGNORECASE)
    if found is None:
        return None
    return {name: found.group(group) for group, name in groups.items()}


def _bind(text: str, bound: dict[str, str]) -> str:
    """`text` in a procedure's own terms: the values its placeholders stood for put back as placeholders."""
    if is_command_line(text):
        return text
    for name, value in sorted(bound.items(), key=lambda item: -len(item[1])):
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "{" + name + "}", text, flags=re.IGNORECASE)
    return text


def lesson_pitfall(steps: Sequence[str], lesson: Lesson) -> str | None:
    """The pitfall a procedure with these steps learns from `lesson`; None when none of its steps takes
    the refused action (or it already does first what the action turned out to need)."""
    for index, step in enumerate(steps):
        bound = match_step(step, lesson.action)
        if bound is None:
            continue
        stale = step.removesuffix(REPRODUCES_NOTE)
        # What the placeholders stood for in that run: whether the lesson holds for other values is the
        # reader's call (a broken tool fails for every file; a missing file is missing for one).
        said = "; ".join(f"{{{name}}} = {value}" for name, value in bound.items())
        said = f"with {said}: {lesson.said}" if said else lesson.said
        if lesson.instead:
            text = f'"{stale}" no longer worked in a recent run ({said}); "{_bind(lesson.instead, bound)}" '
            return text + "worked instead" + (f', after "{_bind(lesson.first, bound)}"' if lesson.first else "")
        if lesson.first:
            if any(match_step(earlier, lesson.first) is not None for earlier in steps[:index]):
                return None
            return f'"{stale}" did not work in a recent run ({said}); it worked after "{_bind(lesson.first, bound)}"'
        return f'"{stale}" was refused in a recent run ({said}) and nothing was found to do instead'
    return None
