"""Procedures as Agent Skills: one folder per procedure with a SKILL.md, and back.

The Agent Skills specification (agentskills.io/specification) asks of SKILL.md: YAML frontmatter
then Markdown; `name` 1-64 characters of lowercase letters, digits and hyphens, not starting or
ending with a hyphen, no "--", equal to the folder's name; `description` 1-1,024 characters saying
what the skill does and when to use it; optional `license`, `compatibility` (at most 500
characters), `metadata` (a map of string to string) and `allowed-tools`. Some clients refuse other
top-level fields, so memp-mcp's provenance and statistics go in `metadata` under `memp-` keys.

A skill is kept whole on import: its frontmatter, its body as written and the files beside it
(scripts, references, a licence) are stored with the procedure derived from it (`SkillDocument`), and
an export writes that folder back with the same name, body and files, plus memp-mcp's metadata. What
recall serves (steps and pitfalls) is derived from the body: its numbered steps, else its list items,
else its headings; list items under a heading about mistakes, warnings or what to avoid are pitfalls.
The frontmatter is read as agents' skill loaders read it (frontmatter.py: unquoted colons, text after a
block indicator, unindented continuation lines); a skill without a name goes by its folder's, one without a
description by its first paragraph. Import goes through the library importer (`memp_mcp.engine.library`),
skill by skill: one that cannot be imported is refused with its reason and the others come in. A skill
merges only with itself imported again (same content, same place), so two skills of one title stay two
procedures, and so do two copies of one skill filed in two folders. A skill memp-mcp's export wrote comes back
as the procedure it was written from when imported into that namespace (its memp- metadata, see
`memp_mcp.engine.imports`). Imported procedures are written by source "skill" and name their origin in `author`.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from memp_mcp.engine.frontmatter import parse_frontmatter, split_skill_file
from memp_mcp.engine.imports import check_imported
from memp_mcp.engine.library import FORMAT_NAME, FORMAT_VERSION, import_library, parse_library
from memp_mcp.engine.markdown import parse_procedure, render_procedure
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.results import ImportReport
from memp_mcp.engine.scan import refuse_secrets
from memp_mcp.errors import InvalidInputError
from memp_mcp.models import (
    MAX_NAME_CHARS as MAX_AGENT_NAME_CHARS,
)
from memp_mcp.models import (
    MAX_PITFALL_CHARS,
    MAX_PITFALLS,
    MAX_PROCEDURE_STEPS,
    MAX_STEP_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    Procedure,
    ProcedureStatus,
    SkillDocument,
)

SKILL_FILE = "SKILL.md"
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1_024
MAX_COMPATIBILITY_CHARS = 500
SPEC_FIELDS = frozenset({"name", "description", "license", "compatibility", "metadata", "allowed-tools"})
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# Skills are small; a larger file is not a skill this importer should hold in memory.
MAX_SKILL_FILE_BYTES = 1_000_000
# The files beside a SKILL.md (scripts, references, a licence), kept with it: at most this many, this large.
MAX_SUPPORTING_FILES = 200
MAX_SUPPORTING_BYTES = 3_000_000
IMPORTED_SOURCE = "skill"


@dataclass(frozen=True)
class Skill:
    """One parsed SKILL.md: its folder, frontmatter and Markdown body (exactly as written after the
    frontmatter's closing line), and where it sat under the folder imported (`relative`)."""

    folder: Path
    frontmatter: dict[str, Any]
    body: str
    relative: str = ""
    # What was read otherwise than strict YAML would (frontmatter.py), for the import's notes.
    notes: tuple[str, ...] = ()


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
    """What the skill does and when to use it, within the spec's 1,024 characters. Only a procedure
    built from recorded work says it was learned from it."""
    when = " ".join(procedure.when_to_use.split()) or procedure.title
    title = " ".join(procedure.title.split())
    recorded = procedure.source != IMPORTED_SOURCE and bool(procedure.source_trajectory_ids)
    kind = "a step-by-step procedure learned from recorded agent work" if recorded else "a step-by-step procedure"
    text = f"{title}: {kind}. When to use: {when}"
    # Angle brackets are refused in descriptions by some skill loaders (they read as markup).
    text = text.replace("<", "(").replace(">", ")")
    return _clip_text(text, MAX_DESCRIPTION_CHARS)


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


def render_skill(procedure: Procedure, name: str, exported_at: str, skill: SkillDocument | None = None) -> str:
    """SKILL.md for a procedure: an imported skill as it was written (its frontmatter with memp-mcp's
    metadata added, its body byte for byte); any other procedure rendered as Markdown steps."""
    if skill is not None:
        metadata = skill.frontmatter.get("metadata")
        kept = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
        kept.update(skill_metadata(procedure, exported_at))
        written = {**skill.frontmatter, "metadata": kept}
        header = yaml.safe_dump(written, sort_keys=False, allow_unicode=True, width=1_000_000)
        return f"---\n{header}---\n{skill.body}"
    frontmatter = {
        "name": name,
        "description": skill_description(procedure),
        "metadata": skill_metadata(procedure, exported_at),
    }
    header = yaml.safe_dump(frontmatter, sort_keys=False, allow_unicode=True, width=1_000_000)
    return f"---\n{header}---\n\n{render_procedure(procedure, details=False)}"


def export_skills(memory: Memory, namespace: str, directory: Path) -> list[Path]:
    """Write one skill folder per active procedure of `namespace` under `directory`; returns the SKILL.md paths.

    An imported skill goes back to the folder it came from (its path under the folder imported) with
    its own files; any other procedure to a folder named after its title. A folder written by an
    earlier export of the same procedure (its SKILL.md carries the same memp-id and namespace) is
    overwritten; a folder holding anything else (a skill someone wrote) is left alone and the export
    goes to a free name beside it.
    """
    procedures = list(_active_procedures(memory, namespace))
    for procedure in procedures:
        refuse_secrets(procedure, (), (), memory.store.skill_of(procedure.id))  # before anything is written
    directory.mkdir(parents=True, exist_ok=True)
    exported_at = datetime.now(UTC).isoformat(timespec="seconds")
    taken: set[str] = set()
    written: list[Path] = []
    for procedure in procedures:
        skill = memory.store.skill_of(procedure.id)
        if skill is not None:
            name, wanted = skill.name, _safe_relative(skill.folder) or skill.name
        else:
            name = skill_name(procedure.title, taken, f"procedure-{procedure.id}")
            wanted = name
        folder = _free_folder(wanted, taken | _others_work(directory, wanted, procedure))
        taken.add(folder)
        path = directory / folder / SKILL_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        for relative, encoded in (skill.files if skill is not None else {}).items():
            safe = _safe_relative(relative)
            if safe:
                target = path.parent / safe
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(encoded))
        partial = path.with_name(SKILL_FILE + ".partial")
        partial.write_text(render_skill(procedure, name, exported_at, skill), encoding="utf-8", newline="")
        partial.replace(path)
        written.append(path)
    return written


def _others_work(directory: Path, wanted: str, procedure: Procedure) -> set[str]:
    """The folders named `wanted`, `wanted-2`, ... under `directory` that hold something other than an
    earlier export of `procedure`: never overwritten."""
    found: set[str] = set()
    number = 1
    while True:
        folder = wanted if number == 1 else f"{wanted}-{number}"
        path = directory / folder
        if not path.exists():
            return found
        if not _exported_from(path, procedure) and (not path.is_dir() or any(path.iterdir())):
            found.add(folder)
        number += 1


def _exported_from(folder: Path, procedure: Procedure) -> bool:
    """Whether `folder` holds a skill an export of `procedure` wrote (its memp-id and namespace)."""
    try:
        metadata = read_skill(folder).frontmatter.get("metadata")
    except (InvalidInputError, OSError):
        return False
    return (
        isinstance(metadata, dict)
        and str(metadata.get("memp-id")) == str(procedure.id)
        and metadata.get("memp-namespace") == procedure.namespace
    )


def _free_folder(folder: str, taken: set[str]) -> str:
    candidate, number = folder, 2
    while candidate in taken:
        candidate, number = f"{folder}-{number}", number + 1
    return candidate


def _safe_relative(text: str) -> str:
    """`text` as a relative path inside a folder, or "" when it would leave it (absolute, `..`)."""
    parts = [part for part in text.replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts or any(part == ".." or ":" in part for part in parts) or text.startswith("/"):
        return ""
    return "/".join(parts)


def _active_procedures(memory: Memory, namespace: str) -> Iterator[Procedure]:
    offset = 0
    while batch := memory.list_procedures(namespace, ProcedureStatus.ACTIVE, None, 200, offset):
        offset += len(batch)
        yield from batch


# -- reading and validating --------------------------------------------------------------


def read_skill(folder: Path, root: Path | None = None) -> Skill:
    """Parse `folder`/SKILL.md; `root` is the folder imported, that `relative` is measured from.
    Raises InvalidInputError naming the file and what is wrong (see frontmatter.py for what is forgiven)."""
    path = folder / SKILL_FILE
    if not path.is_file():
        raise InvalidInputError(f"{folder} has no {SKILL_FILE}")
    if path.stat().st_size > MAX_SKILL_FILE_BYTES:
        raise InvalidInputError(f"{path} is larger than {MAX_SKILL_FILE_BYTES:,} bytes")
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text") from None
    try:
        split = split_skill_file(text)
        frontmatter, notes = parse_frontmatter(split.frontmatter_text)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None
    if root is not None and folder.resolve() != root.resolve():
        relative = folder.resolve().relative_to(root.resolve()).as_posix()
    else:
        relative = folder.name
    return Skill(folder, frontmatter, split.body, relative, (*split.notes, *notes))


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


def blocking_problems(skill: Skill) -> list[str]:
    """What keeps a skill from being imported at all: nothing to find it by (no description, nor a
    paragraph of prose to stand for one) or metadata that is not a mapping. A skill without a name goes
    by its folder's name, as agents' skill loaders name it; other departures from the specification (a
    name in another style, a folder named otherwise, extra fields) are imported as written and reported
    as notes."""
    problems = []
    if not skill_description_of(skill):
        problems.append("description is missing, and the body has no paragraph of prose to stand for it")
    if not isinstance(skill.frontmatter.get("metadata", {}), dict | None):
        problems.append("metadata must be a mapping")
    return problems


def skill_name_of(skill: Skill) -> str:
    """The name a skill goes by: its frontmatter's, else its folder's."""
    name = skill.frontmatter.get("name")
    return " ".join(name.split()) if isinstance(name, str) and name.strip() else skill.folder.name


def skill_description_of(skill: Skill) -> str:
    """What a skill says it is for: its description, else (as agents' skill loaders do) the body's first
    paragraph of prose; "" when it has neither."""
    description = skill.frontmatter.get("description")
    if isinstance(description, str) and description.strip():
        return " ".join(description.split())
    return _clip_text(_first_paragraph(skill.body), MAX_DESCRIPTION_CHARS)


def _first_paragraph(body: str) -> str:
    """The first run of prose lines in Markdown: headings, list items, tables, quotes, HTML and code skipped."""
    paragraph: list[str] = []
    in_fence = False
    for line in body.splitlines():
        stripped = line.strip()
        if _FENCE.match(line):
            in_fence = not in_fence
            if paragraph:
                break
            continue
        prose = stripped and not in_fence and not stripped.startswith(("#", "|", "<", ">", "---", "==="))
        if prose and not _ITEM.match(line):
            paragraph.append(stripped)
        elif paragraph:
            break
    return " ".join(paragraph)


def find_skills(directory: Path) -> list[Path]:
    """The skill folders under `directory`: itself when it holds a SKILL.md, else every folder below
    it that does (at any depth; the folders inside a skill are its files, not skills)."""
    if not directory.is_dir():
        raise InvalidInputError(f"{directory} is not a directory")
    if (directory / SKILL_FILE).is_file():
        return [directory]
    found: list[Path] = []
    pending = [directory]
    while pending:
        folder = pending.pop()
        for child in sorted(folder.iterdir(), reverse=True):
            if not child.is_dir() or child.is_symlink() or child.name.startswith("."):
                continue
            if (child / SKILL_FILE).is_file():
                found.append(child)
            else:
                pending.append(child)
    if not found:
        raise InvalidInputError(f"{directory} holds no skill: expected folders with a {SKILL_FILE}")
    return sorted(found)


def supporting_files(folder: Path) -> dict[str, str]:
    """The files beside a SKILL.md (relative path -> base64 bytes); symbolic links are not followed."""
    files: dict[str, str] = {}
    total = 0
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file() or path == folder / SKILL_FILE:
            continue
        relative = path.relative_to(folder).as_posix()
        # Hidden files and Python's bytecode caches are what running a skill's scripts left, not the skill.
        parts = relative.split("/")
        if any(part.startswith(".") or part == "__pycache__" for part in parts) or relative.endswith(".partial"):
            continue
        size = path.stat().st_size
        total += size
        if len(files) >= MAX_SUPPORTING_FILES or total > MAX_SUPPORTING_BYTES:
            raise InvalidInputError(
                f"{folder}: more than {MAX_SUPPORTING_FILES} files or {MAX_SUPPORTING_BYTES:,} bytes beside "
                f"{SKILL_FILE}; a skill this large is not imported"
            )
        files[relative] = base64.b64encode(path.read_bytes()).decode("ascii")
    return files


def skill_as_library_line(skill: Skill) -> dict[str, Any]:
    """A library procedure line for `skill`, with the skill kept whole; raises InvalidInputError when
    it cannot be imported."""
    problems = blocking_problems(skill)
    if problems:
        raise InvalidInputError(f"{skill.folder / SKILL_FILE}: {'; '.join(problems)}")
    name = skill_name_of(skill)
    description = skill_description_of(skill)
    # Some clients read a `when_to_use` beside the description, and show the model both.
    when = skill.frontmatter.get("when_to_use", skill.frontmatter.get("when-to-use"))
    if isinstance(when, str) and " ".join(when.split()) and " ".join(when.split()) not in description:
        description = f"{description} {' '.join(when.split())}"
    metadata = skill.frontmatter.get("metadata")
    memp: dict[str, str] = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
    parsed: dict[str, Any] | None = None
    if "memp-id" in memp:  # written by memp-mcp: its steps and pitfalls are exactly these
        try:
            parsed = parse_procedure(skill.body)
        except InvalidInputError:
            parsed = None
    if parsed is None:
        parsed = derive_procedure(skill.body, name)
    if not parsed["steps"]:
        parsed["steps"] = [_clip_text(description, MAX_STEP_CHARS)]
    origin = f"skill:{name}"
    author = memp.get("memp-author")
    document = SkillDocument(
        name=name,
        folder=skill.relative or skill.folder.name,
        frontmatter=skill.frontmatter,
        body=skill.body,
        files=supporting_files(skill.folder),
    )
    return {
        "type": "procedure",
        "title": _clip_text(str(parsed["title"]), MAX_TITLE_CHARS),
        "when_to_use": _clip_text(str(parsed["when_to_use"]) or description, MAX_TEXT_CHARS),
        "steps": parsed["steps"][:MAX_PROCEDURE_STEPS],
        "pitfalls": parsed["pitfalls"][:MAX_PITFALLS],
        "source": IMPORTED_SOURCE,
        # The author field holds an agent's name: a skill's name past the spec's 64 characters is cut.
        "author": _clip_text(
            f"{author} via {origin}" if author and author != "unknown" and origin not in author else origin,
            MAX_AGENT_NAME_CHARS,
        ),
        # What a skill is found by is what agents' clients route by: its name and description, as they show
        # them to the model, then each alone. The body is not a key: what it teaches is not what it is for,
        # and a long body read as one text is near everything (see routing_keys).
        "keys": routing_keys(str(parsed["title"]), description, parsed.get("keys", [])),
        "stats": {
            key.removeprefix("memp-"): int(value)
            for key, value in memp.items()
            if key in ("memp-retrieved", "memp-succeeded", "memp-failed", "memp-support") and value.isdigit()
        },
        "trajectories": [],
        "skill": document.model_dump(),
        "exported_as": _exported_as(memp),
    }


def routing_keys(title: str, description: str, more: list[str]) -> list[str]:
    """The search keys of a skill, most telling first: "name: description" (as a client lists a skill to its
    model), the description, then the others (its name in words). On the real skills the combined key
    raised each task's own-family cosines over the other families' (mean margin 0.355 -> 0.363), and a key
    from the body raised what unrelated long prompts reach (best 0.49 -> 0.51, over the long-task floor)."""
    combined = f"{title}: {description}" if title and title.casefold() not in description.casefold()[:200] else ""
    return list(dict.fromkeys(key for key in (combined, description, *more) if key))


def _exported_as(memp: dict[str, str]) -> dict[str, Any] | None:
    """The procedure memp-mcp's export wrote this skill from (its memp- metadata), for the importer to
    recognise it when it comes back; None for a skill from elsewhere, or with that metadata mangled."""
    number, version, namespace = memp.get("memp-id", ""), memp.get("memp-version", ""), memp.get("memp-namespace")
    if not (number.isdigit() and version.isdigit() and namespace):
        return None
    return {"id": int(number), "namespace": namespace, "version": int(version)}


# -- what recall serves of a skill ---------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^(\s*)(\d+[.)]|[-*+])\s+(.*\S)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# A section whose heading says it lists what goes wrong: its items are pitfalls, not steps.
_PITFALL_HEADING = re.compile(
    r"pitfall|gotcha|avoid|mistake|caveat|warning|troubleshoot|don'?t|do not|never|anti-?pattern|"
    r"common (?:error|issue|problem)|limitation|edge case|failure|watch out|critical|important",
    re.IGNORECASE,
)
# A line that warns on its own, wherever it stands.
_WARNING_LINE = re.compile(r"^\W*(?:never|don'?t|do not|avoid|warning|important|caution|note)\b", re.IGNORECASE)


@dataclass
class _Item:
    text: str
    numbered: bool
    pitfall: bool
    heading: str


def derive_procedure(body: str, name: str) -> dict[str, Any]:
    """Recall's view of a skill written by hand: a title from its name, steps from its numbered list
    items (else all its list items, else its headings), pitfalls from the items under a heading about
    what goes wrong and from lines that warn. A short code block that follows an item stays with it."""
    items: list[_Item] = []
    headings: list[str] = []
    warnings: list[str] = []
    heading = ""
    in_fence = False
    fence: list[str] = []
    for line in body.splitlines():
        if _FENCE.match(line):
            if in_fence:
                code = "\n".join(fence).strip("\n")
                if items and code and len(items[-1].text) + len(code) < 600:
                    items[-1].text += f"\n```\n{code}\n```"
                fence = []
            in_fence = not in_fence
            continue
        if in_fence:
            fence.append(line)
            continue
        if match := _HEADING.match(line):
            heading = match.group(2).strip()
            if len(match.group(1)) >= 2:
                headings.append(heading)
            continue
        if (match := _ITEM.match(line)) and len(match.group(1).expandtabs(4)) < 4:
            text = match.group(3).strip()
            items.append(_Item(text, match.group(2)[0].isdigit(), bool(_PITFALL_HEADING.search(heading)), heading))
        elif _WARNING_LINE.match(line.strip()) and len(line.strip()) > 20:
            warnings.append(line.strip().lstrip("*>_ ").strip())
    steps_from = [i for i in items if not i.pitfall]
    numbered = [i for i in steps_from if i.numbered]
    chosen = numbered if len(numbered) >= 2 else steps_from
    steps = [i.text for i in chosen] or headings
    pitfalls = [i.text for i in items if i.pitfall] + [w for w in warnings if w not in steps]
    title = name.replace("-", " ").replace("_", " ").strip() or name
    return {
        "title": title,
        "when_to_use": "",
        "steps": _fit(steps, MAX_PROCEDURE_STEPS, MAX_STEP_CHARS),
        "pitfalls": _fit(list(dict.fromkeys(pitfalls)), MAX_PITFALLS, MAX_PITFALL_CHARS),
        "keys": [title],
    }


def _fit(texts: list[str], count: int, chars: int) -> list[str]:
    """At most `count` texts of at most `chars` each; the last says how many more the skill holds."""
    clipped = [_clip_text(text, chars) for text in texts if text.strip()]
    if len(clipped) <= count:
        return clipped
    rest = len(clipped) - count + 1
    return [*clipped[: count - 1], f"... and {rest} more in the skill's SKILL.md"]


def _clip_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def import_skills(memory: Memory, directory: Path, namespace: str | None = None) -> ImportReport:
    """Import every skill under `directory` that can be imported, in one transaction; each one that cannot
    is named in the report's `refused` with the reason, and the others come in all the same (one broken
    file among a hundred skills is no reason to keep out the rest). InvalidInputError when none can."""
    root = directory if not (directory / SKILL_FILE).is_file() else directory.parent
    header = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "namespace": None})
    skills: list[Skill] = []
    lines: list[str] = []
    refused: list[str] = []
    for folder in find_skills(directory):
        try:
            skill = read_skill(folder, root)
            line = json.dumps(skill_as_library_line(skill), default=str)
            # Held to the importer's checks one by one here, so that one skill's failing them refuses
            # that skill alone instead of the whole import.
            check_imported(parse_library([header, line])[1][0])
        except InvalidInputError as exc:
            refused.append(_with_path(str(exc), folder / SKILL_FILE))
            continue
        skills.append(skill)
        lines.append(line)
    if not skills:
        raise InvalidInputError("no skill could be imported: " + "; ".join(refused))
    report = import_library(memory, [header, *lines], namespace)
    report.refused = refused
    for skill in skills:
        where = skill.folder / SKILL_FILE
        report.notes += [f"{where}: {note}" for note in skill.notes]
        for problem in spec_problems(skill):
            report.notes.append(f"{where}: {problem}; imported as written")
    return report


def _with_path(message: str, path: Path) -> str:
    """A refusal that names the file once."""
    return message if str(path) in message else f"{path}: {message}"
