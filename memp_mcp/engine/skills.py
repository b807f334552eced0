"""Procedures as Agent Skills: one folder per procedure with a SKILL.md, and back.

The Agent Skills specification (agentskills.io/specification) asks of SKILL.md: YAML frontmatter
then Markdown; `name` 1-64 characters of lowercase letters, digits and hyphens, not starting or
ending with a hyphen, no "--", equal to the folder's name; `description` 1-1,024 characters saying
what the skill does and when to use it; optional `license`, `compatibility` (at most 500
characters), `metadata` (a map of string to string) and `allowed-tools`. Some clients refuse other
top-level fields, so memp-mcp's provenance and statistics go in `metadata` under `memp-` keys.

Import goes through the library importer (`memp_mcp.engine.library`), so a skill is validated and merged
exactly as a library line is; imported procedures are written by source "skill" and name their
origin in `author`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from memp_mcp.engine.library import FORMAT_NAME, FORMAT_VERSION, import_library
from memp_mcp.engine.markdown import parse_procedure, render_procedure
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.results import ImportReport
from memp_mcp.engine.scan import refuse_secrets
from memp_mcp.errors import InvalidInputError
from memp_mcp.models import Procedure, ProcedureStatus

SKILL_FILE = "SKILL.md"
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1_024
MAX_COMPATIBILITY_CHARS = 500
SPEC_FIELDS = frozenset({"name", "description", "license", "compatibility", "metadata", "allowed-tools"})
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# Skills are small; a larger file is not a skill this importer should hold in memory.
MAX_SKILL_FILE_BYTES = 1_000_000
IMPORTED_SOURCE = "skill"


@dataclass(frozen=True)
class Skill:
    """One parsed SKILL.md: its folder, frontmatter and Markdown body."""

    folder: Path
    frontmatter: dict[str, Any]
    body: str


def skill_name(title: str, taken: set[str], fallback: str) -> str:
    """A spec-valid, unused folder name: "Put a clean {object} in {target}" -> "put-a-clean-object-in-target"."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-") or fallback
    slug = _clip(slug, MAX_NAME_CHARS)
    candidate, number = slug, 2
    while candidate in taken:
        suffix = f"-{number}"
        candidate = _clip(slug, MAX_NAME_CHARS - len(suffix)) + suffix
        number += 1
    return candidate


def _clip(slug: str, limit: int) -> str:
    if len(slug) <= limit:
        return slug
    cut = slug[:limit]
    # End on a whole word when there is one, and never on a hyphen.
    return (cut.rsplit("-", 1)[0] if "-" in cut[limit // 2 :] else cut).strip("-")


def skill_description(procedure: Procedure) -> str:
    """What the skill does and when to use it, within the spec's 1,024 characters."""
    when = " ".join(procedure.when_to_use.split()) or procedure.title
    title = " ".join(procedure.title.split())
    text = f"{title}: a step-by-step procedure learned from recorded agent work. When to use: {when}"
    # Angle brackets are refused in descriptions by some skill loaders (they read as markup).
    text = text.replace("<", "(").replace(">", ")")
    return text if len(text) <= MAX_DESCRIPTION_CHARS else text[: MAX_DESCRIPTION_CHARS - 3].rstrip() + "..."


def skill_metadata(procedure: Procedure, exported_at: str) -> dict[str, str]:
    """Provenance and statistics as the spec's string-to-string `metadata` map."""
    rate = procedure.success_rate
    return {
        "memp-id": str(procedure.id),
        "memp-namespace": procedure.namespace,
        "memp-version": str(procedure.version),
        "memp-source": procedure.source,
        "memp-author": procedure.author or "unknown",
        "memp-source-trajectories": ",".join(map(str, procedure.source_trajectory_ids)),
        "memp-support": str(procedure.support_count),
        "memp-retrieved": str(procedure.retrieved_count),
        "memp-succeeded": str(procedure.success_count),
        "memp-failed": str(procedure.failure_count),
        "memp-success-rate": "" if rate is None else f"{rate:.2f}",
        "memp-exported-at": exported_at,
    }


def render_skill(procedure: Procedure, name: str, exported_at: str) -> str:
    frontmatter = {
        "name": name,
        "description": skill_description(procedure),
        "metadata": skill_metadata(procedure, exported_at),
    }
    header = yaml.safe_dump(frontmatter, sort_keys=False, allow_unicode=True, width=1_000_000)
    return f"---\n{header}---\n\n{render_procedure(procedure, details=False)}"


def export_skills(memory: Memory, namespace: str, directory: Path) -> list[Path]:
    """Write one skill folder per active procedure of `namespace` under `directory`; returns the SKILL.md paths.

    A folder written by an earlier export of the same procedure is overwritten; nothing else in
    `directory` is touched.
    """
    procedures = list(_active_procedures(memory, namespace))
    for procedure in procedures:
        refuse_secrets(procedure, (), ())  # before anything is written
    directory.mkdir(parents=True, exist_ok=True)
    exported_at = datetime.now(UTC).isoformat(timespec="seconds")
    taken: set[str] = set()
    written: list[Path] = []
    for procedure in procedures:
        name = skill_name(procedure.title, taken, f"procedure-{procedure.id}")
        taken.add(name)
        path = directory / name / SKILL_FILE
        path.parent.mkdir(exist_ok=True)
        partial = path.with_name(SKILL_FILE + ".partial")
        partial.write_text(render_skill(procedure, name, exported_at), encoding="utf-8")
        partial.replace(path)
        written.append(path)
    return written


def _active_procedures(memory: Memory, namespace: str) -> Iterator[Procedure]:
    offset = 0
    while batch := memory.list_procedures(namespace, ProcedureStatus.ACTIVE, None, 200, offset):
        offset += len(batch)
        yield from batch


# -- reading and validating --------------------------------------------------------------


def read_skill(folder: Path) -> Skill:
    """Parse `folder`/SKILL.md. Raises InvalidInputError naming the folder and what is wrong."""
    path = folder / SKILL_FILE
    if not path.is_file():
        raise InvalidInputError(f"{folder} has no {SKILL_FILE}")
    if path.stat().st_size > MAX_SKILL_FILE_BYTES:
        raise InvalidInputError(f"{path} is larger than {MAX_SKILL_FILE_BYTES:,} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text") from None
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise InvalidInputError(f"{path} does not start with YAML frontmatter ('---' on the first line)")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise InvalidInputError(f"{path}: the frontmatter is not closed by a '---' line") from None
    try:
        frontmatter = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path}: the frontmatter is not valid YAML ({_first_line(exc)})") from None
    if not isinstance(frontmatter, dict):
        raise InvalidInputError(f"{path}: the frontmatter must be a mapping with name and description")
    return Skill(folder, frontmatter, "\n".join(lines[end + 1 :]))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def spec_problems(skill: Skill) -> list[str]:
    """Every way `skill` breaks the Agent Skills specification (empty when it conforms)."""
    meta = skill.frontmatter
    problems: list[str] = []
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        problems.append("name is missing")
    else:
        if len(name) > MAX_NAME_CHARS:
            problems.append(f"name is {len(name)} characters; at most {MAX_NAME_CHARS}")
        if not _NAME.match(name):
            problems.append(
                f"name {name!r} must be lowercase letters, digits and single hyphens, not starting or ending with one"
            )
        if name != skill.folder.name:
            problems.append(f"name {name!r} differs from its folder's name {skill.folder.name!r}")
    description = meta.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append("description is missing")
    elif len(description) > MAX_DESCRIPTION_CHARS:
        problems.append(f"description is {len(description)} characters; at most {MAX_DESCRIPTION_CHARS}")
    compatibility = meta.get("compatibility")
    if compatibility is not None and (
        not isinstance(compatibility, str) or not 1 <= len(compatibility) <= MAX_COMPATIBILITY_CHARS
    ):
        problems.append(f"compatibility must be 1-{MAX_COMPATIBILITY_CHARS} characters")
    metadata = meta.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        problems.append("metadata must map strings to strings")
    unknown = sorted(str(key) for key in meta if key not in SPEC_FIELDS)
    if unknown:
        problems.append(f"fields outside the specification: {', '.join(unknown)} (put them under metadata)")
    return problems


def find_skills(directory: Path) -> list[Path]:
    """The skill folders at `directory`: itself when it holds a SKILL.md, else its subfolders that do."""
    if not directory.is_dir():
        raise InvalidInputError(f"{directory} is not a directory")
    if (directory / SKILL_FILE).is_file():
        return [directory]
    folders = sorted(child for child in directory.iterdir() if (child / SKILL_FILE).is_file())
    if not folders:
        raise InvalidInputError(f"{directory} holds no skill: expected folders with a {SKILL_FILE}")
    return folders


def skill_as_library_line(skill: Skill) -> dict[str, Any]:
    """A library procedure line for `skill`; raises InvalidInputError when it is not a usable skill."""
    problems = spec_problems(skill)
    if problems:
        raise InvalidInputError(f"{skill.folder / SKILL_FILE}: {'; '.join(problems)}")
    name: str = skill.frontmatter["name"]
    description: str = " ".join(skill.frontmatter["description"].split())
    metadata: dict[str, str] = skill.frontmatter.get("metadata") or {}
    try:
        parsed = parse_procedure(skill.body)
    except InvalidInputError:
        parsed = _loose_procedure(skill.body, name)
    if not parsed["steps"]:
        raise InvalidInputError(
            f"{skill.folder / SKILL_FILE}: no steps found; memp-mcp imports skills whose body lists numbered steps"
        )
    origin = f"skill:{name}"
    author = metadata.get("memp-author")
    return {
        "type": "procedure",
        "title": parsed["title"],
        "when_to_use": str(parsed["when_to_use"]) or description,
        "steps": parsed["steps"],
        "pitfalls": parsed["pitfalls"],
        "source": IMPORTED_SOURCE,
        "author": f"{author} via {origin}" if author and author != "unknown" else origin,
        "keys": [description],
        "stats": {
            key.removeprefix("memp-"): int(value)
            for key, value in metadata.items()
            if key in ("memp-retrieved", "memp-succeeded", "memp-failed", "memp-support") and value.isdigit()
        },
        "trajectories": [],
    }


def _loose_procedure(body: str, name: str) -> dict[str, object]:
    """Title and steps from a skill not written by memp-mcp: its first heading and its list items."""
    title = next((line[2:].strip() for line in body.splitlines() if line.startswith("# ")), name.replace("-", " "))[
        :200
    ]
    steps = [m.group(1) for line in body.splitlines() if (m := re.match(r"^\s*(?:\d+[.)]|[-*])\s+(.*\S)\s*$", line))]
    return {"title": title, "when_to_use": "", "steps": steps[:60], "pitfalls": []}


def import_skills(memory: Memory, directory: Path, namespace: str | None = None) -> ImportReport:
    """Import every skill under `directory`: all are checked before anything is written."""
    lines = [json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "namespace": None})]
    lines += [json.dumps(skill_as_library_line(read_skill(folder))) for folder in find_skills(directory)]
    return import_library(memory, lines, namespace)
