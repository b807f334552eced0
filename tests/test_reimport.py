"""A memory's own export imported back: each procedure is recognised as the one it came from.

The finding: `export --format skills` then `import` into the same namespace created every procedure
again, and recall served both copies. What an export came from is the same procedure; only what was
edited in it since comes in, and then as the trust rules let it (docs/trust.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memp_mcp.cli import app
from memp_mcp.engine.library import export_library, import_library
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.skills import SKILL_FILE, export_skills, import_skills
from memp_mcp.models import ProcedureStatus
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder
from tests.test_memory import CLEAN_SOAP, HEAT_EGG

runner = CliRunner()
SOAP_TASK = "put a clean soapbar in cabinet"
EGG_TASK = "heat some egg and put it in garbagecan"


def recorded_memory(path: Path, namespace: str = "kitchen") -> Memory:
    memory = Memory(SQLiteStore(path), FakeEmbedder(), namespace=namespace)
    memory.record(SOAP_TASK, CLEAN_SOAP, "success")
    memory.record(EGG_TASK, HEAT_EGG, "success")
    return memory


def proven(memory: Memory, task: str) -> int:
    """The id of `task`'s procedure after one reported success for its current steps."""
    recalled = memory.recall(task)
    memory.report_outcome(recalled.recall_id, True)
    return recalled.procedures[0].id


def skill_folder_of(directory: Path, memory: Memory, procedure_id: int) -> Path:
    title = memory.store.get_procedure(procedure_id).title
    return next(p.parent for p in directory.glob(f"*/{SKILL_FILE}") if f"# {title}\n" in p.read_text())


def edit_first_step(folder: Path, new_step: str) -> None:
    path = folder / SKILL_FILE
    text = path.read_text()
    start = text.index("\n1. ") + len("\n1. ")
    path.write_text(text[:start] + new_step + text[text.index("\n", start) :])


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_the_cli_round_trip_of_skills_into_their_namespace_imports_nothing_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "memp.db"
    recorded_memory(db).store.close()
    monkeypatch.setenv("MEMP_DB_PATH", str(db))
    monkeypatch.setenv("MEMP_NAMESPACE", "kitchen")
    monkeypatch.setenv("MEMP_EMBEDDINGS", "0")
    monkeypatch.chdir(tmp_path)  # outside any repository: MEMP_NAMESPACE decides
    skills = tmp_path / "skills"
    assert run("export", "--format", "skills", str(skills))[0] == 0
    code, out = run("import", str(skills))
    assert code == 0 and "imported 0 new procedures, 2 already present" in out, out
    memory = Memory(SQLiteStore(db), FakeEmbedder(), namespace="kitchen")
    assert memory.store.count_procedures("kitchen") == 2
    titles = [p.title for p in memory.recall(SOAP_TASK, log=False).procedures]
    assert len(titles) == len(set(titles)), titles


def test_a_reimport_adds_no_statistics_even_when_the_skill_declares_more(tmp_path: Path) -> None:
    memory = recorded_memory(tmp_path / "memp.db")
    soap = proven(memory, SOAP_TASK)
    before = [(p.id, p.success_count, p.retrieved_count, p.version) for p in memory.list_procedures("kitchen")]
    export_skills(memory, "kitchen", tmp_path / "skills")
    folder = skill_folder_of(tmp_path / "skills", memory, soap)
    path = folder / SKILL_FILE
    path.write_text(path.read_text().replace("memp-succeeded: '1'", "memp-succeeded: '500'"))
    report = import_skills(memory, tmp_path / "skills")
    assert (report.created, report.unchanged) == (0, 2)
    after = [(p.id, p.success_count, p.retrieved_count, p.version) for p in memory.list_procedures("kitchen")]
    assert after == before


def test_another_namespace_or_another_database_still_gets_every_skill(tmp_path: Path) -> None:
    memory = recorded_memory(tmp_path / "memp.db")
    export_skills(memory, "kitchen", tmp_path / "skills")
    assert import_skills(memory, tmp_path / "skills", "elsewhere").created == 2
    # A fresh database has procedure ids 1 and 2 in a namespace of the same name: other procedures.
    other = Memory(SQLiteStore(tmp_path / "other.db"), FakeEmbedder(), namespace="kitchen")
    other.record("water the plant in the office", [{"action": "go to plant 1"}], "success")
    other.record("open the window in the hall", [{"action": "go to window 1"}], "success")
    report = import_skills(other, tmp_path / "skills")
    assert (report.created, report.unchanged) == (2, 0)
    assert other.store.count_procedures("kitchen") == 4


def test_an_edited_skill_of_ones_own_provisional_procedure_updates_it_in_place(tmp_path: Path) -> None:
    memory = recorded_memory(tmp_path / "memp.db")
    soap = memory.recall(SOAP_TASK, log=False).procedures[0].id
    old_steps = memory.store.get_procedure(soap).steps
    export_skills(memory, "kitchen", tmp_path / "skills")
    edit_first_step(skill_folder_of(tmp_path / "skills", memory, soap), "look in the cabinet first")
    report = import_skills(memory, tmp_path / "skills")
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    assert any(f"procedure {soap}" in change and "in place" in change for change in report.changes), report.changes
    updated = memory.store.get_procedure(soap)
    assert updated.steps[0] == "look in the cabinet first" and updated.steps[1:] == old_steps[1:]
    assert updated.version == 2 and memory.store.versions(soap)[0].steps == old_steps
    assert memory.store.count_procedures("kitchen") == 2
    # The same edited folder again: what it says is now what the procedure says.
    again = import_skills(memory, tmp_path / "skills")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert memory.store.get_procedure(soap).version == 2


def test_an_edited_skill_of_a_proven_procedure_becomes_a_candidate_with_no_declared_counts(tmp_path: Path) -> None:
    memory = recorded_memory(tmp_path / "memp.db")
    soap = proven(memory, SOAP_TASK)
    steps = memory.store.get_procedure(soap).steps
    export_skills(memory, "kitchen", tmp_path / "skills")
    edit_first_step(skill_folder_of(tmp_path / "skills", memory, soap), "look in the cabinet first")
    report = import_skills(memory, tmp_path / "skills")
    assert (report.created, report.unchanged) == (1, 1)
    candidate = next(p for p in memory.list_procedures("kitchen") if p.candidate_of == soap)
    assert candidate.steps[0] == "look in the cabinet first"
    assert (candidate.success_count, candidate.retrieved_count) == (0, 0)  # the counts are the original's
    assert any(f"candidate {candidate.id}" in change for change in report.changes), report.changes
    assert memory.store.get_procedure(soap).steps == steps
    assert [p.id for p in memory.recall(SOAP_TASK, log=False).procedures].count(candidate.id) == 0
    again = import_skills(memory, tmp_path / "skills")
    assert (again.created, again.unchanged) == (0, 2)


def test_an_export_older_than_the_procedure_does_not_take_it_back(tmp_path: Path) -> None:
    memory = recorded_memory(tmp_path / "memp.db")
    soap = memory.recall(SOAP_TASK, log=False).procedures[0].id
    export_skills(memory, "kitchen", tmp_path / "skills")
    memory.edit(soap, pitfalls=["the bathtub does not clean soap"])
    report = import_skills(memory, tmp_path / "skills")
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    assert memory.store.get_procedure(soap).pitfalls == ["the bathtub does not clean soap"]


def test_a_skill_written_by_hand_edited_after_its_export_is_the_same_procedure(tmp_path: Path) -> None:
    folder = tmp_path / "in" / "release-notes"
    folder.mkdir(parents=True)
    (folder / SKILL_FILE).write_text(
        "---\nname: release-notes\ndescription: Write release notes.\n---\n1. list the merged changes\n2. group them\n"
    )
    memory = Memory(SQLiteStore(tmp_path / "memp.db"), FakeEmbedder(), namespace="docs")
    assert import_skills(memory, tmp_path / "in").created == 1
    export_skills(memory, "docs", tmp_path / "out")
    exported = tmp_path / "out" / "release-notes" / SKILL_FILE
    exported.write_text(exported.read_text().replace("2. group them", "2. group them by area"))
    report = import_skills(memory, tmp_path / "out")
    assert (report.created, report.updated) == (0, 1)
    (procedure,) = memory.list_procedures("docs", ProcedureStatus.ACTIVE)
    assert procedure.steps == ["list the merged changes", "group them by area"]
    export_skills(memory, "docs", tmp_path / "again")
    assert "2. group them by area" in (tmp_path / "again" / "release-notes" / SKILL_FILE).read_text()


def test_a_library_file_imported_back_into_its_namespace_is_already_present(tmp_path: Path) -> None:
    memory = recorded_memory(tmp_path / "memp.db")
    proven(memory, SOAP_TASK)
    before = [(p.id, p.success_count, p.support_count, p.version) for p in memory.list_procedures("kitchen")]
    report = import_library(memory, list(export_library(memory, "kitchen")))
    assert (report.created, report.merged, report.unchanged) == (0, 0, 2)
    assert [(p.id, p.success_count, p.support_count, p.version) for p in memory.list_procedures("kitchen")] == before
