"""Skills kept whole: a folder of real Agent Skills imported, exported, imported and exported again,
and the tasks of the same families recalled against them.

The dataset is laid out as `<root>/<family>/<variant>/instruction.md` (a task as a user asked it) and
`<root>/skills/<source>/<family>/<name>/SKILL.md` (skills for those families, by several authors).
Figures: how many skills were found, became a procedure of their own, or were refused (and why); whether
the round trip left each body and each file byte-identical; how often a task's first recalled procedure is
a skill of its own family, how often one is among the first three, and how often one is among what a recall
fitted to the answer budget still shows (as the MCP tool answers).
"""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memp_mcp.engine.memory import Memory
from memp_mcp.engine.skills import SKILL_FILE, export_skills, find_skills, import_skills, read_skill
from memp_mcp.models import MAX_TASK_CHARS
from memp_mcp.server.render import recall_cost, recall_header
from memp_mcp.store import SQLiteStore

NAMESPACE = "skills"


@dataclass
class SkillsReport:
    skills: int = 0
    procedures: int = 0
    refused: list[str] = field(default_factory=list)
    round_trip_identical: int = 0
    round_trip_differs: list[str] = field(default_factory=list)
    tasks: int = 0
    own_family_first: int = 0
    own_family_in_three: int = 0
    own_family_in_three_shown: int = 0
    # Procedures the budgeted recalls showed in all, of those the unbudgeted ones found (at most three each).
    shown: int = 0
    found: int = 0
    nothing_recalled: int = 0
    budget: int | None = None
    per_task: list[tuple[str, str, str | None, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "skills": self.skills,
            "procedures": self.procedures,
            "refused": self.refused,
            "round_trip_identical": self.round_trip_identical,
            "round_trip_differs": self.round_trip_differs,
            "tasks": self.tasks,
            "own_family_first": self.own_family_first,
            "own_family_first_rate": self._rate(self.own_family_first),
            "own_family_in_three": self.own_family_in_three,
            "own_family_in_three_rate": self._rate(self.own_family_in_three),
            "budget": self.budget,
            "own_family_in_three_shown": self.own_family_in_three_shown,
            "own_family_in_three_shown_rate": self._rate(self.own_family_in_three_shown),
            "shown_under_budget": self.shown,
            "found_in_three": self.found,
            "nothing_recalled": self.nothing_recalled,
        }

    def _rate(self, count: int) -> float | None:
        return round(count / self.tasks, 3) if self.tasks else None


def run_skills_bench(dataset: Path, embedder: Any, budget: int | None = None) -> SkillsReport:
    """Every figure of the module docstring, on a private database and private folders. With a `budget`,
    the first three are also counted as an agent sees them: what a recall fitted to that many
    characters (priced as the MCP answer is) still shows."""
    skills_root = dataset / "skills"
    report = SkillsReport(skills=len(find_skills(skills_root)), budget=budget)
    with tempfile.TemporaryDirectory(prefix="memp-bench-skills-") as tmp:
        work = Path(tmp)
        memory = Memory(SQLiteStore(work / "memory.db"), embedder, namespace=NAMESPACE)
        report.refused = import_skills(memory, skills_root, NAMESPACE).refused
        report.procedures = memory.store.count_procedures(NAMESPACE)
        _round_trip(memory, skills_root, work, report)
        family_of: dict[int, str] = {}
        for procedure in memory.list_procedures(NAMESPACE, None, None, 500):
            skill = memory.store.skill_of(procedure.id)
            parts = skill.folder.split("/") if skill is not None else []
            family_of[procedure.id] = parts[-2] if len(parts) >= 2 else ""
        for instruction in sorted(dataset.glob("*/*/instruction.md")):
            family = instruction.parent.parent.name
            task = " ".join(instruction.read_text(encoding="utf-8").split())[:MAX_TASK_CHARS]
            found = memory.recall(task, 3, namespace=NAMESPACE, wait_for_model=60.0, log=False).procedures
            first = family_of.get(found[0].id) if found else None
            report.tasks += 1
            report.own_family_first += first == family
            report.own_family_in_three += any(family_of.get(p.id) == family for p in found[:3])
            report.nothing_recalled += not found
            report.found += len(found[:3])
            if budget is not None:
                shown = memory.recall(
                    task,
                    3,
                    namespace=NAMESPACE,
                    wait_for_model=60.0,
                    log=False,
                    budget=budget,
                    cost=recall_cost,
                    overhead=len(recall_header("0" * 16, "vector+keyword")),
                ).procedures
                report.own_family_in_three_shown += any(family_of.get(p.id) == family for p in shown[:3])
                report.shown += len(shown[:3])
            report.per_task.append((instruction.parent.name, family, first, found[0].title if found else "-"))
        memory.store.close()
    return report


def _round_trip(memory: Memory, skills_root: Path, work: Path, report: SkillsReport) -> None:
    """export -> import into another database -> export; each body and file compared with the original."""
    first, second = work / "export-1", work / "export-2"
    export_skills(memory, NAMESPACE, first)
    again = Memory(SQLiteStore(work / "again.db"), memory.embedder(0.0), namespace=NAMESPACE)
    import_skills(again, first, NAMESPACE)
    export_skills(again, NAMESPACE, second)
    again.store.close()
    for folder in find_skills(skills_root):
        relative = folder.relative_to(skills_root)
        original = _contents(folder)
        if original == _contents(first / relative) == _contents(second / relative):
            report.round_trip_identical += 1
        else:
            report.round_trip_differs.append(relative.as_posix())


def _contents(folder: Path) -> tuple[str, dict[str, str]] | None:
    """A skill folder's body and files, as bytes would compare (None when it is missing)."""
    if not (folder / SKILL_FILE).is_file():
        return None
    files = {
        path.relative_to(folder).as_posix(): base64.b64encode(path.read_bytes()).decode()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != SKILL_FILE
    }
    return read_skill(folder).body, files
