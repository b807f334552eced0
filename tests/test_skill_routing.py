"""A task finds the skill whose name and description say it is for it, whatever its body says."""

from __future__ import annotations

from pathlib import Path

import pytest

from memp_mcp.engine.memory import Memory
from memp_mcp.engine.skills import import_skills, routing_keys
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder

# Both bodies speak of spreadsheets, charts and reports; only the descriptions tell the skills apart.
SHARED_BODY = (
    "## Steps\n\n1. Read the spreadsheet rows with the csv module\n2. Group the rows by region and month\n"
    "3. Draw a bar chart of the totals and save it as a PNG report\n4. Check the chart's labels and legend\n"
)
SKILLS = {
    "chart-sales": "Turn a sales spreadsheet into a bar chart report by region and month.",
    "audit-lockfile": "Audit a dependency lockfile for known vulnerabilities offline and list them by severity.",
}


def write_skills(root: Path, body_for: dict[str, str]) -> Path:
    for name, description in SKILLS.items():
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(f"---\nname: {name}\ndescription: {description}\n---\n{body_for[name]}")
    return root


@pytest.mark.parametrize("embedder", [FakeEmbedder(), pytest.param("real", marks=pytest.mark.real_model)])
def test_a_task_gets_the_skill_its_description_matches_though_the_bodies_share_its_words(
    tmp_path: Path, embedder: object, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue("real_embedder") if embedder == "real" else embedder
    # The audit skill's body says even more about spreadsheets and charts than the chart skill's does.
    bodies = {"chart-sales": SHARED_BODY, "audit-lockfile": SHARED_BODY * 3}
    memory = Memory(SQLiteStore(tmp_path / "routing.db"), model, namespace="skills")  # type: ignore[arg-type]
    import_skills(memory, write_skills(tmp_path / "in", bodies))
    for task, wanted in (
        ("audit the dependency lockfile for known vulnerabilities and list them by severity", "audit lockfile"),
        ("turn the sales spreadsheet into a bar chart report by region", "chart sales"),
    ):
        found = memory.recall(task, 2, log=False, wait_for_model=60.0).procedures
        assert found and found[0].title == wanted, (task, [p.title for p in found])


def test_a_skill_is_found_by_its_name_and_description_together_then_each_alone() -> None:
    keys = routing_keys("audit lockfile", "Audit a lockfile offline.", ["audit lockfile"])
    assert keys == ["audit lockfile: Audit a lockfile offline.", "Audit a lockfile offline.", "audit lockfile"]
    # A description that starts by naming the skill is not said twice.
    assert routing_keys("pdf", "PDF toolkit: extract text.", ["pdf"]) == ["PDF toolkit: extract text.", "pdf"]


def test_a_when_to_use_beside_the_description_is_part_of_what_the_skill_is_found_by(tmp_path: Path) -> None:
    folder = tmp_path / "in" / "audit-lockfile"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(
        "---\nname: audit-lockfile\ndescription: Audit a lockfile.\nwhen_to_use: Before a release, offline.\n---\n"
        + SHARED_BODY
    )
    memory = Memory(SQLiteStore(tmp_path / "when.db"), FakeEmbedder(), namespace="skills")
    import_skills(memory, tmp_path / "in")
    procedure = memory.list_procedures()[0]
    assert procedure.when_to_use == "Audit a lockfile. Before a release, offline."
    assert "audit lockfile: Audit a lockfile. Before a release, offline." in memory.store.keys(procedure.id)
