"""Reading one step of a trajectory: whether it worked, what it said, whether it is a command line.

The builder (build.py) and the lessons (lessons.py) read steps this way; the hooks' transcript reader
uses TEST_COMMAND to tell a test run from other commands.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum

from memp_mcp.models import Step

# What an agent sees when the action itself was wrong: a rejected edit, a command or file that
# does not exist, a bad option, a package that cannot be found, a refused tool call, or (in
# text worlds such as ALFWorld) "Nothing happens.".
_ACTION_ERROR = re.compile(
    r"\A\s*(?:nothing happens|error\b|failed\b|failure\b|invalid\b|unknown command|you can't|you cannot"
    r"|i don't understand|not found\b|fatal:|usage:)"
    r"|command not found|no such file or directory|no such file|cannot access|is not recognized as an internal"
    r"|permission denied|unknown (?:option|command|argument|flag)|unrecognized (?:option|arguments?)"
    # "rejected" as a harness or a tool says it of the action, not as a program's own output says it of
    # its input ("PASS: http://foo/bar@example.com was rejected" is a check that passed).
    r"|invalid (?:option|choice|argument)|(?:tool use|edit|change|patch|request|command|operation|action)s? "
    r"(?:was|were|has been|is) rejected|\A\s*rejected\b|was not applied|string to replace not found"
    r"|not found in (?:the )?file|no changes (?:were )?made|hunk #?\d* ?failed|patch does not apply"
    r"|<tool_use_error>|could not find a version that satisfies|no matching distribution found"
    r"|unable to locate package|npm err! 404"
    r"|your proposed edit has introduced new syntax error|edit (?:was|has been) (?:rejected|reverted|discarded)",
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


# What an agent's harness answers when it ran nothing: the agent's message held no action, or several,
# or was not in the expected format. Such a step did nothing, so it teaches nothing about the task.
_NOT_RUN = re.compile(
    r"\A\s*(?:please (?:always )?provide exactly one action|your (?:last )?(?:output|response|message) "
    r"(?:was|is) not (?:formatted|parsed|in the (?:correct|expected) format)|no (?:valid )?action (?:was )?found"
    r"|could not parse (?:an |the |your )?action)",
    re.IGNORECASE,
)


def never_ran(step: Step) -> bool:
    """Whether the harness refused to run the step at all for its form (not for what it asked)."""
    return step.exit_code is None and bool(_NOT_RUN.match(step.observation or ""))


_NAMED_ERROR = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b:.*")


class Verdict(Enum):
    """What became of one step of a trajectory."""

    WORKED = "worked"
    ACTION_ERROR = "action error"  # the action itself was wrong: drop it, learn a pitfall
    CHECK_FAILED = "check failed"  # it ran and reported a failure: a retry, a mistake, or a reproduction


# An exit code an agent writes at the head of an observation ("<returncode>1</returncode>", "Exit code: 1").
_REPORTED_EXIT = re.compile(r"\A\s*(?:<returncode>\s*(\d+)\s*</returncode>|exit code:? *(\d+)\b)", re.IGNORECASE)
# Searches exit 1 when they find nothing: an answer, not a failure.
_SEARCHES = frozenset("grep egrep fgrep rg ag git find".split())


def exit_code(step: Step) -> int | None:
    """The step's exit code: as the agent sent it, or as its observation reports it first thing."""
    if step.exit_code is not None:
        return step.exit_code
    match = _REPORTED_EXIT.match(step.observation or "")
    return int(match.group(1) or match.group(2)) if match else None


def verdict(step: Step) -> Verdict:
    """Whether a step worked, from the agent's own flag or exit code first, then from what it saw."""
    observation = step.observation or ""
    code = exit_code(step)
    if code == 1 and command_word(step.action) in _SEARCHES and "\n" not in step.action.strip():
        code = 0
    explicit_failure = step.ok is False or (code is not None and code != 0)
    if step.ok is True or (code == 0 and step.ok is None):
        return Verdict.WORKED
    # A read shows a file's or a log's content, which may hold any error text: only its own
    # complaint (the first line, "cat: x: No such file or directory") says the read failed.
    reads = command_word(step.action) in _READ_COMMANDS
    first_line_only = reads or bool(TEST_COMMAND.search(step.action))
    if _ACTION_ERROR.search(observation.lstrip().split("\n", 1)[0] if first_line_only else observation):
        return Verdict.ACTION_ERROR
    if explicit_failure:
        return Verdict.CHECK_FAILED
    if not reads and _CHECK_FAILED.search(observation):
        return Verdict.CHECK_FAILED
    return Verdict.WORKED


def passed_its_tests(steps: Sequence[Step]) -> bool:
    """Whether the last test run among `steps` worked: a run that ended on it checked its own result."""
    runs = [s for s in steps if is_command_line(s.action) and TEST_COMMAND.search(s.action)]
    return bool(runs) and verdict(runs[-1]) == Verdict.WORKED


def normal_action(action: str) -> str:
    """The action with its runs of whitespace made one space, as steps are compared."""
    return " ".join(action.split())


def command_word(action: str) -> str:
    stripped = _COMMAND_PREFIX.sub("", action)
    first = stripped.split(maxsplit=1)[0] if stripped.strip() else ""
    return first.lower()


def is_command_line(action: str) -> bool:
    """A shell command line (kept literal): a known program first, or a path to one."""
    first = command_word(action)
    if first == "go":
        rest = _COMMAND_PREFIX.sub("", action).split()
        return len(rest) > 1 and rest[1].lower() in _GO_SUBCOMMANDS
    return first in _SHELL_COMMANDS or first.startswith(("./", "/", "~/")) or bool(_COMMAND_PREFIX.match(action))


def writes_files(action: str) -> bool:
    """An action that edits the working tree (an edit tool, a patch, an in-place sed, a redirect)."""
    lowered = action.lower()
    first = command_word(action)
    return (
        first in {"apply_patch", "edit", "write", "create", "str_replace", "insert", "patch", "replace", "tee"}
        or first.startswith(("edit", "write", "create", "str_replace", "apply"))
        or (first == "sed" and " -i" in lowered)
        or bool(re.search(r"(?<![<>&\d])>>?\s*[\w./~-]", action) and is_command_line(action))
    )


def error_line(step: Step) -> str:
    """The line of the observation that says what went wrong, shortened."""
    observation = step.observation or ""
    lines = [" ".join(line.split()) for line in observation.splitlines() if line.strip()]
    chosen = next((line for line in reversed(lines) if _ACTION_ERROR.search(line)), None)
    if chosen is not None:
        # A refusal's first sentence, then the error it names ("... syntax error(s): IndentationError: ...").
        named = next((m for line in lines if line != chosen and (m := _NAMED_ERROR.search(line))), None)
        if named is not None:
            chosen = chosen.split(". ", 1)[0].rstrip(".") + ": " + named.group()
    chosen = chosen or next((line for line in reversed(lines) if _CHECK_FAILED.search(line)), None)
    if chosen is None:
        chosen = lines[0] if lines else ""
        if exit_code(step) not in (None, 0):
            chosen = f"exit code {exit_code(step)}" + (f": {chosen}" if chosen else "")
    return (chosen[:157] + "...") if len(chosen) > 160 else chosen or "it failed"
