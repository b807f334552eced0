"""Agent Skills: every exported SKILL.md meets the specification, and skills come back in as procedures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from memp_mcp.cli import app
from memp_mcp.config import DEFAULT_RECALL_BUDGET
from memp_mcp.engine.imports import ImportedProcedure
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.skills import Skill, read_skill, skill_name, spec_problems
from memp_mcp.models import ProcedureDraft
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder
from tests.test_memory import CLEAN_SOAP, HEAT_EGG

runner = CliRunner()

FIX_TEST = [
    {"action": "Bash: pytest tests/test_cache.py -q", "observation": "1 failed: assert entry is None"},
    {"action": "Read: src/cachelib/store.py", "observation": "if item.deadline < now: del self._items[key]"},
    {"action": "Edit: src/cachelib/store.py: '<' -> '<='", "observation": "The file has been updated."},
    {"action": "Bash: pytest tests/test_cache.py -q", "observation": "4 passed in 0.02s"},
]
LONG_TITLE = "Fix: the TTL store's expire() keeps entries whose deadline equals now -- and also " + "x" * 80


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Four procedures: two household ones, a coding one with a long, punctuated title, and a forgotten one."""
    path = tmp_path / "skills.db"
    memory = Memory(SQLiteStore(path), FakeEmbedder())
    memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success", agent="agent-a")
    memory.record("heat some egg and put it in garbagecan", HEAT_EGG, "success", agent="agent-b")
    coding = memory.record(
        "cachelib: entries whose deadline equals now are not expired",
        FIX_TEST,
        "success",
        agent="claude-code",
        draft=ProcedureDraft(
            title=LONG_TITLE,
            when_to_use="A cache or TTL store keeps an entry at exactly its deadline: <= versus <.",
            steps=["Reproduce: run the failing test", "Read the expiry check", "Change '<' to '<='", "Rerun the test"],
            pitfalls=["Do not change the test's clock; the bug is in the comparison"],
        ),
    )
    forgotten = memory.record("water the plant in the office", [{"action": "go to plant 1"}], "success")
    assert forgotten.procedure_id is not None and coding.procedure_id is not None
    memory.forget(forgotten.procedure_id)
    memory.store.close()
    monkeypatch.setenv("MEMP_DB_PATH", str(path))
    monkeypatch.setenv("MEMP_EMBEDDINGS", "0")
    monkeypatch.delenv("MEMP_NAMESPACE", raising=False)
    monkeypatch.chdir(tmp_path)  # outside any repository: the commands use the default namespace
    return path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    # Rich wraps long lines at the terminal width; the tests read messages, not layout.
    return result.exit_code, " ".join(result.output.split())


def check_against_spec(folder: Path) -> dict[str, object]:
    """The specification's rules, written out here independently of memp_mcp.engine.skills."""
    text = (folder / "SKILL.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.DOTALL)
    assert match, f"{folder}: no frontmatter"
    front = yaml.safe_load(match.group(1))
    assert set(front) <= {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
    name = front["name"]
    assert name == folder.name and 1 <= len(name) <= 64
    assert (
        re.fullmatch(r"[a-z0-9-]+", name) and not name.startswith("-") and not name.endswith("-") and "--" not in name
    )
    assert isinstance(front["description"], str) and 1 <= len(front["description"]) <= 1024
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in front["metadata"].items())
    assert match.group(2).strip(), "empty body"
    return dict(front)


def test_every_exported_skill_meets_the_specification(db: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "skills"
    code, out = run("export", "--format", "skills", str(out_dir))
    assert code == 0, out
    folders = sorted(p for p in out_dir.iterdir())
    assert len(folders) == 3, "one folder per active procedure; the forgotten one stays out"
    fronts = {folder.name: check_against_spec(folder) for folder in folders}
    assert not [spec_problems(read_skill(folder)) for folder in folders if spec_problems(read_skill(folder))]
    coding = next(f for f in fronts.values() if "deadline" in str(f["description"]))
    meta = coding["metadata"]
    assert isinstance(meta, dict)
    assert meta["memp-author"] == "claude-code" and meta["memp-source"] == "agent" and meta["memp-support"] == "1"
    assert "When to use: A cache" in str(coding["description"]) and "<" not in str(coding["description"])
    body = (out_dir / str(coding["name"]) / "SKILL.md").read_text()
    assert "1. Reproduce: run the failing test" in body and "- Do not change the test's clock" in body


def test_export_again_overwrites_its_own_folders_only(db: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "skills"
    (out_dir / "my-own-skill").mkdir(parents=True)
    (out_dir / "my-own-skill" / "SKILL.md").write_text("---\nname: my-own-skill\ndescription: mine\n---\n1. x\n")
    assert run("export", "--format", "skills", str(out_dir))[0] == 0
    first = {p.name: (p / "SKILL.md").read_text() for p in out_dir.iterdir()}
    assert run("export", "--format", "skills", str(out_dir))[0] == 0
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(first)
    assert (out_dir / "my-own-skill" / "SKILL.md").read_text() == first["my-own-skill"]


def test_export_never_overwrites_a_skill_someone_wrote_under_the_same_name(db: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "skills"
    assert run("export", "--format", "skills", str(out_dir))[0] == 0
    names = sorted(p.name for p in out_dir.iterdir())
    # Someone replaces one exported folder with a skill of their own, of the same name.
    theirs = out_dir / names[0] / "SKILL.md"
    handwritten = f"---\nname: {names[0]}\ndescription: written by hand\n---\n1. my own way\n"
    theirs.write_text(handwritten)
    assert run("export", "--format", "skills", str(out_dir))[0] == 0
    assert theirs.read_text() == handwritten
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([*names, f"{names[0]}-2"])
    # Exporting again overwrites its own folders, and still not theirs.
    assert run("export", "--format", "skills", str(out_dir))[0] == 0
    assert theirs.read_text() == handwritten
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([*names, f"{names[0]}-2"])


def test_skill_names_are_valid_unique_and_short() -> None:
    taken: set[str] = set()
    for title in [
        "Put a clean {object} in {target}",
        "Put a clean {object} in {target}",
        "---",
        LONG_TITLE,
        "Émile's café",
    ]:
        name = skill_name(title, taken, "procedure-7")
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) and len(name) <= 64, name
        assert name not in taken
        taken.add(name)
    assert {"put-a-clean-object-in-target-2", "procedure-7", "emile-s-cafe"} <= taken


def test_export_then_import_gives_back_the_same_procedures(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "skills"
    assert run("export", "--format", "skills", str(out_dir))[0] == 0
    other = tmp_path / "other.db"
    monkeypatch.setenv("MEMP_DB_PATH", str(other))
    code, out = run("import", str(out_dir))
    assert code == 0 and "imported 3 new procedures" in out, out
    source = Memory(SQLiteStore(db), FakeEmbedder())
    target = Memory(SQLiteStore(other), FakeEmbedder())
    before = {p.title: p for p in source.list_procedures(status="active")}
    after = {p.title: p for p in target.list_procedures()}
    assert sorted(before) == sorted(after)
    for title, procedure in after.items():
        original = before[title]
        assert (procedure.steps, procedure.pitfalls, procedure.when_to_use) == (
            original.steps,
            original.pitfalls,
            original.when_to_use,
        )
        # Marked as imported, with its origin and the original recorder.
        assert procedure.source == "skill"
        assert procedure.author is not None and procedure.author.endswith(f"via skill:{skill_name(title, set(), '')}")
        assert procedure.author.startswith(original.author or "")
    found = target.recall("cachelib: entries whose deadline equals now are not expired", log=False).procedures
    assert found and found[0].title == LONG_TITLE


def test_a_skill_written_by_hand_imports_from_its_own_folder(db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "release-a-package"
    folder.mkdir()
    (folder / "SKILL.md").write_text(
        "---\nname: release-a-package\ndescription: Release a Python package to the index. Use when asked to "
        "publish a new version.\nlicense: MIT\n---\n\n# Releasing\n\nSome prose first.\n\n"
        "1. Bump the version in pyproject.toml\n2. Build with `python -m build`\n3. Upload with twine\n"
    )
    code, out = run("import", str(folder))
    assert code == 0 and "imported 1 new procedure," in out, out
    memory = Memory(SQLiteStore(db), FakeEmbedder())
    imported = memory.list_procedures(text="release a package")[0]
    assert imported.title == "release a package"  # its name, not its first heading
    assert imported.steps == ["Bump the version in pyproject.toml", "Build with `python -m build`", "Upload with twine"]
    assert imported.when_to_use.startswith("Release a Python package") and imported.author == "skill:release-a-package"
    kept = memory.store.skill_of(imported.id)
    assert kept is not None and kept.frontmatter["license"] == "MIT" and "Some prose first." in kept.body


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("---\nname: the-skill\n---\n1. step\n", "description is missing"),
        ("---\nname: the-skill\ndescription: d\nmetadata: [1, 2]\n---\n1. step\n", "metadata must be a mapping"),
        ("---\nname: the-skill\ndescription: d\n1. step\n", "not closed"),
        ("# The skill\n\nNo frontmatter at all.\n", "does not start with YAML frontmatter"),
        ("---\n- a list\n- not a mapping\n---\n1. step\n", "must be a mapping"),
    ],
)
def test_a_skill_that_cannot_be_imported_is_refused_with_its_reason_and_the_others_come_in(
    db: Path, tmp_path: Path, text: str, problem: str
) -> None:
    root = tmp_path / "in"
    good = root / "good-one"
    good.mkdir(parents=True)
    (good / "SKILL.md").write_text("---\nname: good-one\ndescription: fine\n---\n1. do it\n")
    bad = root / "the-skill"
    bad.mkdir()
    (bad / "SKILL.md").write_text(text)
    before = SQLiteStore(db).count_procedures()
    code, out = run("import", str(root))
    assert code == 1 and "imported 1 new procedure," in out and "refused:" in out and problem in out, out
    assert str(bad / "SKILL.md") in out
    assert SQLiteStore(db).count_procedures() == before + 1


def test_a_folder_whose_every_skill_is_refused_imports_nothing(db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "in" / "the-skill"
    bad.mkdir(parents=True)
    (bad / "SKILL.md").write_bytes(b"---\nname: the-skill\ndescription: \xff\xfe\n---\n")
    before = SQLiteStore(db).count_procedures()
    code, out = run("import", str(tmp_path / "in"))
    assert code == 2 and "nothing imported" in out and "not UTF-8" in out, out
    assert SQLiteStore(db).count_procedures() == before


@pytest.mark.parametrize(
    ("frontmatter", "problem"),
    [
        ("name: Bad-Name\ndescription: d", "lowercase"),
        ("name: other-name\ndescription: d", "differs from its folder"),
        ("name: run2_csv-reporting\ndescription: d", "single hyphens"),
        ("name: the-skill\ndescription: " + "d" * 1025, "at most 1024"),
        ("name: the-skill\ndescription: d\nmetadata:\n  stats: [1, 2]", "strings to strings"),
        ("name: the-skill\ndescription: d\nversion: 3", "outside the specification"),
    ],
)
def test_a_skill_that_departs_from_the_specification_is_imported_as_written_with_a_note(
    db: Path, tmp_path: Path, frontmatter: str, problem: str
) -> None:
    """Skills in the wild (names with underscores, a folder renamed) are still skills to keep."""
    folder = tmp_path / "in" / "the-skill"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text("---\n" + frontmatter + "\n---\n1. step one\n2. step two\n")
    result = runner.invoke(app, ["import", str(folder.parent)])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "imported 1 new procedure," in said and problem in said, said
    assert "note:" in said


def test_a_folder_without_skills_or_steps_is_refused(db: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = run("import", str(empty))
    assert code == 2 and "holds no skill" in out
    # A skill of prose alone is still a skill: recall serves its description as its one step.
    prose = tmp_path / "prose-only"
    prose.mkdir()
    (prose / "SKILL.md").write_text("---\nname: prose-only\ndescription: Say it in prose.\n---\nJust a paragraph.\n")
    code, out = run("import", str(prose))
    assert code == 0 and "imported 1 new procedure," in out, out


def test_spec_problems_reports_nothing_for_a_minimal_valid_skill(tmp_path: Path) -> None:
    skill = Skill(tmp_path / "pdf-processing", {"name": "pdf-processing", "description": "Extract text."}, "1. x")
    assert spec_problems(skill) == []


PDF_SKILL = """---
name: pdf
description: Extract text and tables from PDF files, fill forms, merge and split documents.
license: Proprietary. LICENSE.txt has complete terms
metadata:
  author: someone
---

# PDF Processing Guide

Read REFERENCE.md for the advanced features.

| Task | Tool |
|---|---|
| text | pdfplumber |

## Quick start

1. Open the file with pdfplumber
   ```python
   with pdfplumber.open("in.pdf") as pdf:
       text = pdf.pages[0].extract_text()
   ```
2. Extract the tables page by page
3. Write what you found to out.json

## Common mistakes

- Scanned pages have no text layer: run OCR first
- Never write over the input file
"""


def write_pdf_skill(root: Path) -> Path:
    folder = root / "pdf"
    (folder / "scripts").mkdir(parents=True)
    (folder / "SKILL.md").write_bytes(PDF_SKILL.replace("\n", "\r\n", 3).encode())  # CRLF in the frontmatter
    (folder / "REFERENCE.md").write_text("# Reference\n\nEverything else.\n")
    (folder / "scripts" / "fill_form.py").write_text("print('fill')\n")
    (folder / "LICENSE.txt").write_bytes(b"Terms\x00\xff binary-safe\n")
    return folder


def test_a_skill_is_kept_whole_and_exported_as_the_same_folder(db: Path, tmp_path: Path) -> None:
    from memp_mcp.engine.skills import export_skills, import_skills

    source = write_pdf_skill(tmp_path / "in")
    memory = Memory(SQLiteStore(db), FakeEmbedder(), namespace="docs")
    report = import_skills(memory, source)
    assert report.created == 1
    procedure = memory.list_procedures("docs")[0]
    assert procedure.title == "pdf" and procedure.steps[0].startswith("Open the file with pdfplumber")
    assert "pdf.pages[0].extract_text()" in procedure.steps[0]  # the code that goes with the step stays with it
    assert procedure.steps[1:] == ["Extract the tables page by page", "Write what you found to out.json"]
    assert procedure.pitfalls == ["Scanned pages have no text layer: run OCR first", "Never write over the input file"]
    exported = tmp_path / "out"
    export_skills(memory, "docs", exported)
    folder = exported / "pdf"
    assert read_skill(folder).body == read_skill(source).body
    for name in ("REFERENCE.md", "scripts/fill_form.py", "LICENSE.txt"):
        assert (folder / name).read_bytes() == (source / name).read_bytes(), name
    front = yaml.safe_load((folder / "SKILL.md").read_text().split("---")[1])
    assert front["name"] == "pdf" and front["license"] == "Proprietary. LICENSE.txt has complete terms"
    assert front["description"] == "Extract text and tables from PDF files, fill forms, merge and split documents."
    assert front["metadata"]["author"] == "someone" and front["metadata"]["memp-source"] == "skill"
    # Imported again, the same skill is the same procedure: nothing new.
    assert import_skills(memory, folder).created == 0


def test_two_different_skills_of_one_name_or_title_stay_two_procedures(db: Path, tmp_path: Path) -> None:
    from memp_mcp.engine.skills import export_skills, import_skills

    for author in ("people", "model"):
        folder = tmp_path / "in" / author / "cvss-score-extraction"
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(
            f"---\nname: cvss-score-extraction\ndescription: CVSS scores, by {author}.\n---\n1. read {author}\n"
        )
    memory = Memory(SQLiteStore(db), FakeEmbedder(), namespace="docs")
    assert import_skills(memory, tmp_path / "in").created == 2
    export_skills(memory, "docs", tmp_path / "out")
    for author in ("people", "model"):
        assert f"1. read {author}" in (tmp_path / "out" / author / "cvss-score-extraction" / "SKILL.md").read_text()


def test_only_a_procedure_from_recorded_work_says_it_was_learned_from_it(db: Path, tmp_path: Path) -> None:
    from memp_mcp.engine.skills import export_skills

    memory = Memory(SQLiteStore(db), FakeEmbedder())
    memory.import_procedures(
        [ImportedProcedure(title="Written by hand", when_to_use="when asked", steps=["do it"], source="skill")]
    )
    export_skills(memory, "default", tmp_path / "out")
    descriptions = {
        folder.name: yaml.safe_load((folder / "SKILL.md").read_text().split("---")[1])["description"]
        for folder in (tmp_path / "out").iterdir()
    }
    assert "recorded agent work" not in descriptions["written-by-hand"]
    assert "learned from recorded agent work" in descriptions["put-a-clean-object-in-target"]


def test_a_long_skill_keeps_its_steps_in_order_and_says_how_many_more_it_holds() -> None:
    from memp_mcp.engine.skills import derive_procedure

    body = "# Requirements for Outputs\n\n" + "".join(f"- requirement {n}\n" for n in range(1, 78))
    derived = derive_procedure(body, "xlsx")
    assert derived["title"] == "xlsx" and len(derived["steps"]) == 60
    assert derived["steps"][0] == "requirement 1" and derived["steps"][-1] == "... and 18 more in the skill's SKILL.md"


DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "claude_code_sessions"
needs_dataset = pytest.mark.skipif(
    not (DATASET / "skills").is_dir(), reason=f"the real skills are not at {DATASET / 'skills'}"
)


@needs_dataset
def test_every_real_skill_is_its_own_procedure_and_round_trips_byte_identical() -> None:
    from memp_mcp.bench.skills import run_skills_bench

    report = run_skills_bench(DATASET, FakeEmbedder())
    print(report.as_dict())
    assert report.skills >= 40 and report.procedures == report.skills
    assert report.round_trip_identical == report.skills, report.round_trip_differs


@needs_dataset
@pytest.mark.real_model
def test_each_task_gets_a_skill_of_its_own_family_first(real_embedder: object) -> None:
    from memp_mcp.bench.skills import run_skills_bench

    report = run_skills_bench(DATASET, real_embedder, budget=DEFAULT_RECALL_BUDGET)
    print(report.as_dict())
    assert report.own_family_first / report.tasks >= 0.85, report.per_task
    assert report.own_family_in_three / report.tasks >= 0.98, report.per_task
    # What the agent sees under the default budget: the first three, not only the first.
    assert report.own_family_in_three_shown / report.tasks >= 0.98, report.as_dict()
    assert report.shown == report.found, report.as_dict()


def test_a_library_file_carries_a_skill_whole(db: Path, tmp_path: Path) -> None:
    from memp_mcp.engine.library import export_library, import_library
    from memp_mcp.engine.skills import export_skills, import_skills

    source = write_pdf_skill(tmp_path / "in")
    memory = Memory(SQLiteStore(db), FakeEmbedder(), namespace="docs")
    import_skills(memory, source)
    lines = list(export_library(memory, "docs"))
    other = Memory(SQLiteStore(tmp_path / "other.db"), FakeEmbedder(), namespace="docs")
    assert import_library(other, lines).created == 1
    export_skills(other, "docs", tmp_path / "out")
    assert read_skill(tmp_path / "out" / "pdf").body == read_skill(source).body
    assert (tmp_path / "out" / "pdf" / "LICENSE.txt").read_bytes() == (source / "LICENSE.txt").read_bytes()
