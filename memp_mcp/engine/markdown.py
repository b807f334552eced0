"""Procedures as Markdown: rendered for people and MCP resources, parsed back for `memp-mcp edit`."""

from __future__ import annotations

import re

from memp_mcp.errors import InvalidInputError
from memp_mcp.models import Procedure
from memp_mcp.text import code_fence, code_lines, counted, one_line

_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*\S)\s*$")
_BULLET = re.compile(r"^\s*[-*]\s+(.*\S)\s*$")


def render_procedure(procedure: Procedure, *, details: bool = True) -> str:
    """The procedure as Markdown; each stored text on one line of its own, so none can forge a section."""
    lines = [f"# {one_line(procedure.title)}", "", f"When to use: {one_line(procedure.when_to_use)}", "", "## Steps"]
    lines += [f"{number}. {_step(step)}" for number, step in enumerate(procedure.steps, 1)]
    lines += ["", "## Pitfalls"]
    lines += [f"- {one_line(pitfall)}" for pitfall in procedure.pitfalls] or ["- (none yet)"]
    if details:
        rate = procedure.success_rate
        trust = "provisional (no reported success for this version yet)" if procedure.provisional else "trusted"
        lines += [
            "",
            "## About",
            f"- id {procedure.id}, namespace {procedure.namespace}, version {procedure.version}, "
            f"{procedure.status.value}, {trust}",
            f"- written by {one_line(procedure.source)}; recorded by {one_line(procedure.author or 'unknown')}",
            f"- retrieved {counted(procedure.retrieved_count, 'time')}; {procedure.success_count} successes, "
            f"{procedure.failure_count} failures over all versions",
            f"- this version: {procedure.version_success_count} successes, {procedure.version_failure_count} failures"
            + (f" ({rate:.0%} success)" if rate is not None else " (not yet judged)"),
            f"- built from trajectories {', '.join(map(str, procedure.source_trajectory_ids)) or 'none'}",
        ]
        if procedure.candidate_of is not None:
            lines.append(
                f"- candidate to replace the steps of procedure {procedure.candidate_of}: recall serves it once "
                "it has a reported success"
            )
    return "\n".join(lines) + "\n"


def _step(step: str) -> str:
    """A step on its line, or code in a fenced block its text cannot close (its line breaks kept)."""
    if "\n" not in step.strip():
        return one_line(step)
    body = code_lines(step)
    fence = code_fence(body)
    return f"{fence}\n{body}\n{fence}"


def parse_procedure(text: str) -> dict[str, object]:
    """Title, when_to_use, steps and pitfalls from Markdown in the rendered shape.

    The "About" section is ignored (it is not editable). Raises InvalidInputError saying what is missing.
    """
    title: str | None = None
    when_to_use: str | None = None
    steps: list[str] = []
    pitfalls: list[str] = []
    section = ""
    fence: str | None = None
    code: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if fence is not None:
            if stripped == fence:
                steps.append("\n".join(code))
                fence, code = None, []
            else:
                code.append(line)
            continue
        if section == "steps" and (match := _NUMBERED.match(line)) and re.fullmatch(r"`{3,}", match.group(1)):
            fence = match.group(1)
            continue
        if stripped.startswith("# ") and title is None:
            title = stripped[2:].strip()
        elif stripped.startswith("## "):
            section = stripped[3:].strip().lower()
        elif stripped.lower().startswith("when to use:") and not section:
            when_to_use = stripped.split(":", 1)[1].strip()
        elif section == "steps" and (match := _NUMBERED.match(line) or _BULLET.match(line)):
            steps.append(match.group(1))
        elif section == "pitfalls" and (match := _BULLET.match(line)) and match.group(1) != "(none yet)":
            pitfalls.append(match.group(1))
    if not title:
        raise InvalidInputError("the Markdown has no '# Title' line")
    if not steps:
        raise InvalidInputError("the Markdown has no numbered steps under '## Steps'")
    return {"title": title, "when_to_use": when_to_use or "", "steps": steps, "pitfalls": pitfalls}
