"""A SKILL.md's frontmatter, read as the skills people and models publish write it.

Skill loaders in agents read frontmatter forgivingly, and skills are written for them, not for a YAML
validator: a description with an unquoted `: ` in it ("Use when: ..."), a block indicator followed by
text on its line (`description: | Use this when ...`), continuation lines that are not indented, tabs, a
value starting with `*` or `[`. PyYAML refuses all of these, so a file it cannot read is read again
line by line (`read_leniently`): `key: value` at the start of a line opens a field and every other line
continues the one before. Either way a note says what was read differently from strict YAML.

Also tolerated: a byte-order mark, blank lines before the opening `---`, a whole file wrapped in a code
fence (as a model's answer often is), CRLF line ends and no line end after the closing `---`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import yaml

from memp_mcp.errors import InvalidInputError

_DELIMITER = "---"
_OPENING_FENCE = re.compile(r"^\s*(```|~~~)[\w-]*\s*$")
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*:(?:[ \t]+(.*?))?[ \t]*$")
_BLOCK_INDICATOR = re.compile(r"^([|>])[-+0-9]*(?:[ \t]+|$)")
_LIST_ITEM = re.compile(r"^-[ \t]+(.*?)[ \t]*$")


@dataclass(frozen=True)
class SplitSkillFile:
    """A SKILL.md cut in two: its frontmatter's text and its body, exactly as written after the closing line."""

    frontmatter_text: str
    body: str
    notes: tuple[str, ...] = ()


def split_skill_file(text: str) -> SplitSkillFile:
    """The frontmatter's text and the body of a SKILL.md. Raises InvalidInputError (without the file's
    name, which the caller adds) when there is no frontmatter or it is never closed."""
    lines = text.removeprefix("\ufeff").splitlines(keepends=True)
    notes: list[str] = []
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start + 1 < len(lines) and _OPENING_FENCE.match(lines[start]) and lines[start + 1].strip() == _DELIMITER:
        notes.append("the file is wrapped in a code fence; read from inside it")
        start += 1
    if start >= len(lines) or lines[start].strip() != _DELIMITER:
        raise InvalidInputError("does not start with YAML frontmatter ('---' on the first line)")
    try:
        end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == _DELIMITER)
    except StopIteration:
        raise InvalidInputError("the frontmatter is not closed by a '---' line") from None
    return SplitSkillFile("".join(lines[start + 1 : end]), "".join(lines[end + 1 :]), tuple(notes))


def parse_frontmatter(text: str) -> tuple[dict[str, Any], list[str]]:
    """The frontmatter as a mapping, and notes on what strict YAML would have read otherwise.

    Strict YAML first; where it fails, or reads `name` or `description` as something other than text
    (`name: 2048` is a number, `name: yes` a boolean), the line-by-line reading decides. Raises
    InvalidInputError when neither reading finds a mapping.
    """
    notes: list[str] = []
    strict: Any = None
    problem = ""
    try:
        strict = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = _first_line(exc)
    if isinstance(strict, dict) and all(isinstance(key, str) for key in strict):
        fields: dict[str, Any] = strict
        for key in ("name", "description"):
            value = fields.get(key)
            if value is None or isinstance(value, str):
                continue
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                fields[key] = " ".join(value)
            elif isinstance(value, bool | int | float | date):
                raw = read_leniently(text).get(key)
                fields[key] = raw if isinstance(raw, str) and raw else str(value)
            else:
                continue
            notes.append(f"{key} was not written as text; read as {fields[key]!r}")
        return fields, notes
    lenient = read_leniently(text)
    if not lenient:
        if problem:
            raise InvalidInputError(f"the frontmatter is not valid YAML ({problem})")
        raise InvalidInputError("the frontmatter must be a mapping with name and description")
    why = f"not valid YAML ({problem})" if problem else "not a YAML mapping"
    notes.append(f"the frontmatter is {why}; read line by line as skill loaders do")
    return lenient, notes


def read_leniently(text: str) -> dict[str, Any]:
    """The frontmatter read line by line: a `key:` at the start of a line opens a field, every other
    line continues it. A field with nothing on its line and `- item` lines under it is a list, one with
    `key: value` lines under it a mapping; any other value is text, its quotes and block indicator taken off."""
    fields: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.expandtabs(4).splitlines():
        if not line.strip():
            if current is not None:
                fields[current].append("")
            continue
        if line.startswith("#"):
            continue
        match = _FIELD.match(line) if not line[0].isspace() else None
        if match:
            current = match.group(1)
            fields[current] = [match.group(2) or ""]
        elif current is not None:
            fields[current].append(line)
    return {key: _value(lines) for key, lines in fields.items()}


def _value(lines: list[str]) -> Any:
    first, rest = lines[0], list(lines[1:])
    while rest and not rest[-1].strip():
        rest.pop()
    if not first and rest:
        nested = _dedent(rest)
        if all(_LIST_ITEM.match(line) for line in nested if line.strip() and not line[0].isspace()):
            try:
                parsed = yaml.safe_load("\n".join(nested))
            except yaml.YAMLError:
                parsed = None
            if isinstance(parsed, list):
                return parsed
            return [_unquoted(m.group(1)) for line in nested if (m := _LIST_ITEM.match(line))]
        if all(_FIELD.match(line) for line in nested if line.strip() and not line[0].isspace()):
            try:
                parsed = yaml.safe_load("\n".join(nested))
            except yaml.YAMLError:
                parsed = None
            return parsed if isinstance(parsed, dict) else read_leniently("\n".join(nested))
    indicator = _BLOCK_INDICATOR.match(first)
    literal = bool(indicator) and indicator is not None and indicator.group(1) == "|"
    if indicator:
        first = first[indicator.end() :]
    parts = [first.strip(), *(line.strip() for line in rest)]
    if literal:
        return "\n".join(parts).strip()
    # Folded as YAML folds: lines joined by spaces, an empty line kept as a line break.
    text = " ".join(part if part else "\n" for part in parts)
    return _unquoted(re.sub(r" ?\n ?", "\n", text).strip())


def _dedent(lines: list[str]) -> list[str]:
    margin = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return [line[margin:] for line in lines]


def _unquoted(text: str) -> str:
    """`text` without the quotes around all of it, if it has them."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        inner = text[1:-1]
        return inner.replace("''", "'") if text[0] == "'" else inner.replace('\\"', '"')
    return text


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
