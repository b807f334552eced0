"""SKILL.md files as people and models publish them: each quirk agents' skill loaders accept imports whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from memp_mcp.engine.frontmatter import parse_frontmatter, read_leniently, split_skill_file
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.skills import export_skills, import_skills, read_skill
from memp_mcp.errors import InvalidInputError
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder

BODY = "# Scanning\n\n1. Run the scanner offline\n2. Write the findings to a CSV file\n"


@pytest.fixture
def memory(tmp_path: Path) -> Memory:
    return Memory(SQLiteStore(tmp_path / "quirks.db"), FakeEmbedder(), namespace="skills")


def write_skill(root: Path, folder: str, raw: bytes | str) -> Path:
    path = root / folder
    path.mkdir(parents=True)
    (path / "SKILL.md").write_bytes(raw.encode() if isinstance(raw, str) else raw)
    return path


@pytest.mark.parametrize(
    ("frontmatter", "description"),
    [
        # A plain scalar over several indented lines is one line of YAML.
        ("name: scan\ndescription: Scan a lockfile\n  for known vulnerabilities offline.\n", None),
        # Continuation lines that are not indented: not YAML, but what the author meant is plain.
        ("name: scan\ndescription: Scan a lockfile\nfor known vulnerabilities offline.\n", None),
        ("name: scan\ndescription: >-\n  Scan a lockfile\n  for known vulnerabilities offline.\n", None),
        ("name: scan\ndescription: | Scan a lockfile for known vulnerabilities offline.\n", None),
        (
            "name: scan\ndescription: Use when: a lockfile must be scanned offline.\n",
            "Use when: a lockfile must be scanned offline.",
        ),
        (
            'name: scan\ndescription: "Scan a \\"lockfile\\" offline."\n',
            'Scan a "lockfile" offline.',
        ),
        ("name: scan\ndescription: 'Scan the team''s lockfile offline.'\n", "Scan the team's lockfile offline."),
        ("name: scan\ndescription: *Scan* a lockfile offline.\n", "*Scan* a lockfile offline."),
        ("name: scan\ndescription: [beta] Scan a lockfile offline.\n", "[beta] Scan a lockfile offline."),
        # A tab to indent the continuation, which YAML forbids.
        ("name: scan\ndescription: Scan a lockfile\n\tfor known vulnerabilities offline.\n", None),
        (
            "name: scan\ndescription: Scan a lockfile offline.\nversion: 1.2\nauthor: someone\ntags:\n  - security\n"
            "  - csv\nmetadata:\n  team: platform\n",
            "Scan a lockfile offline.",
        ),
    ],
)
def test_a_description_written_any_way_loaders_accept_is_read_as_meant(
    memory: Memory, tmp_path: Path, frontmatter: str, description: str | None
) -> None:
    write_skill(tmp_path / "in", "scan", f"---\n{frontmatter}---\n{BODY}")
    report = import_skills(memory, tmp_path / "in")
    assert report.created == 1 and not report.refused, report
    procedure = memory.list_procedures()[0]
    expected = description or "Scan a lockfile for known vulnerabilities offline."
    assert procedure.when_to_use == expected
    assert procedure.steps == ["Run the scanner offline", "Write the findings to a CSV file"]


def test_frontmatter_yaml_refuses_is_read_line_by_line_with_a_note(memory: Memory, tmp_path: Path) -> None:
    write_skill(tmp_path / "in", "scan", f"---\nname: scan\ndescription: Use when: scanning.\n---\n{BODY}")
    report = import_skills(memory, tmp_path / "in")
    assert any("not valid YAML" in note and "read line by line" in note for note in report.notes), report.notes


@pytest.mark.parametrize(
    "raw",
    [
        b"\xef\xbb\xbf---\nname: scan\ndescription: Scan offline.\n---\n" + BODY.encode(),  # a byte-order mark
        b"---\r\nname: scan\r\ndescription: Scan offline.\r\n---\r\n" + BODY.replace("\n", "\r\n").encode(),
        b"\n\n---\nname: scan\ndescription: Scan offline.\n---\n" + BODY.encode(),  # blank lines first
        b"```markdown\n---\nname: scan\ndescription: Scan offline.\n---\n" + BODY.encode() + b"```\n",
        b"---  \nname: scan\ndescription: Scan offline.\n---   \n" + BODY.encode(),  # spaces after the dashes
    ],
)
def test_a_file_around_its_frontmatter_is_read_and_its_body_kept_byte_for_byte(
    memory: Memory, tmp_path: Path, raw: bytes
) -> None:
    source = write_skill(tmp_path / "in", "scan", raw)
    report = import_skills(memory, tmp_path / "in")
    assert report.created == 1 and not report.refused
    assert memory.list_procedures()[0].when_to_use == "Scan offline."
    export_skills(memory, "skills", tmp_path / "out")
    assert read_skill(tmp_path / "out" / "scan").body == read_skill(source).body
    assert raw.endswith(read_skill(source).body.encode())


def test_a_frontmatter_with_no_line_end_after_it_is_a_skill_of_its_description(memory: Memory, tmp_path: Path) -> None:
    write_skill(tmp_path / "in", "scan", "---\nname: scan\ndescription: Scan a lockfile offline.\n---")
    assert import_skills(memory, tmp_path / "in").created == 1
    assert memory.list_procedures()[0].steps == ["Scan a lockfile offline."]


def test_dashes_in_the_body_are_the_body_s(memory: Memory, tmp_path: Path) -> None:
    body = "Intro paragraph.\n\n---\n\n1. First step\n2. Second step\n\n---\nname: not-frontmatter\n"
    source = write_skill(tmp_path / "in", "scan", "---\nname: scan\ndescription: Scan.\n---\n" + body)
    assert import_skills(memory, tmp_path / "in").created == 1
    read = read_skill(source)
    assert read.body == body and read.frontmatter == {"name": "scan", "description": "Scan."}
    assert memory.list_procedures()[0].steps == ["First step", "Second step"]


@pytest.mark.parametrize(
    ("frontmatter", "name"),
    [("name: 2048\n", "2048"), ("name: yes\n", "yes"), ("name: 1.10\n", "1.10"), ("", "the-folder")],
)
def test_a_name_not_written_as_text_or_not_at_all_is_read_as_written_or_the_folder_s(
    memory: Memory, tmp_path: Path, frontmatter: str, name: str
) -> None:
    write_skill(tmp_path / "in", "the-folder", f"---\n{frontmatter}description: Scan offline.\n---\n{BODY}")
    report = import_skills(memory, tmp_path / "in")
    assert report.created == 1 and not report.refused
    procedure = memory.list_procedures()[0]
    skill = memory.store.skill_of(procedure.id)
    assert skill is not None and skill.name == name and procedure.author == f"skill:{name}"


def test_a_skill_without_a_description_is_found_by_its_first_paragraph(memory: Memory, tmp_path: Path) -> None:
    body = "# Scanner\n\nScan a lockfile for vulnerabilities\nwithout network access.\n\nMore prose.\n\n" + BODY
    write_skill(tmp_path / "in", "scan", f"---\nname: scan\n---\n{body}")
    report = import_skills(memory, tmp_path / "in")
    assert report.created == 1 and any("description is missing" in note for note in report.notes)
    assert memory.list_procedures()[0].when_to_use == "Scan a lockfile for vulnerabilities without network access."


def test_a_name_longer_than_an_author_field_is_still_imported(memory: Memory, tmp_path: Path) -> None:
    name = "scan-" + "very-" * 30 + "long"
    write_skill(tmp_path / "in", name, f"---\nname: {name}\ndescription: Scan offline.\n---\n{BODY}")
    report = import_skills(memory, tmp_path / "in")
    assert report.created == 1 and not report.refused and any("at most 64" in note for note in report.notes)


def test_one_skill_filed_in_two_places_is_kept_twice_and_once_on_import_again(memory: Memory, tmp_path: Path) -> None:
    """The same author's skill copied under two task families: two skills of one name, both kept."""
    root = tmp_path / "in"
    text = f"---\nname: pdf\ndescription: Work with PDF files.\n---\n{BODY}"
    write_skill(root / "people" / "sort-files", "pdf", text)
    write_skill(root / "people" / "plan-meetings", "pdf", text)
    write_skill(root / "model" / "sort-files", "pdf", text.replace("Work with", "Read"))
    assert import_skills(memory, root).created == 3
    folders = sorted(s.folder for p in memory.list_procedures() if (s := memory.store.skill_of(p.id)))
    assert folders == ["model/sort-files/pdf", "people/plan-meetings/pdf", "people/sort-files/pdf"]
    again = import_skills(memory, root)
    assert again.created == 0 and again.unchanged == 3
    # One of the same tree's folders, imported on its own, holds skills already present.
    assert import_skills(memory, root / "people").created == 0
    export_skills(memory, "skills", tmp_path / "out")
    assert len(list((tmp_path / "out").rglob("SKILL.md"))) == 3


def test_split_refuses_what_has_no_frontmatter_and_says_so() -> None:
    with pytest.raises(InvalidInputError, match="does not start with YAML frontmatter"):
        split_skill_file("Just prose.\n")
    with pytest.raises(InvalidInputError, match="not closed"):
        split_skill_file("---\nname: x\n")


def test_the_line_by_line_reading_keeps_lists_and_mappings() -> None:
    text = "name: x\nallowed-tools:\n  - Read\n  - Bash(git *)\nmetadata:\n  owner: team: a\n  tier: 2\n"
    fields = read_leniently(text)
    assert fields["allowed-tools"] == ["Read", "Bash(git *)"]
    assert fields["metadata"] == {"owner": "team: a", "tier": "2"}
    assert parse_frontmatter(text)[0]["metadata"] == {"owner": "team: a", "tier": "2"}


def test_bytecode_caches_beside_a_skill_are_not_part_of_it(memory: Memory, tmp_path: Path) -> None:
    source = write_skill(tmp_path / "in", "scan", f"---\nname: scan\ndescription: Scan offline.\n---\n{BODY}")
    (source / "scripts" / "__pycache__").mkdir(parents=True)
    (source / "scripts" / "scan.py").write_text("print('scan')\n")
    (source / "scripts" / "__pycache__" / "scan.cpython-312.pyc").write_bytes(b"\x00" * 64)
    import_skills(memory, tmp_path / "in")
    kept = memory.store.skill_of(memory.list_procedures()[0].id)
    assert kept is not None and list(kept.files) == ["scripts/scan.py"]
