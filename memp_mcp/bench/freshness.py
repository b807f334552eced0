"""Freshness under churn: procedures recorded against a repository, then the repository changes.

A repository is built in a temporary folder (a package of modules, their tests and docs, a few modules
large). For each module a coding session is recorded as the Stop hook records one: its tool calls
(a failing test run, reading the module, two edits, one of several lines, a passing run, sometimes
the docs) made into steps by the transcript reader and recorded in one memory. Then the repository
churns: modules are renamed, tests and docs deleted, edited lines rewritten, edits made by someone
else, and other lines of the same files reformatted, reindented and added to (which must not make
anything stale).

Which procedure steps are truly stale is known from what the churn did (each step is matched to its
module and edit by the names and lines the benchmark wrote, not by the check's parser). Printed: the
share of truly stale steps the check flags, the share of fresh steps it flags (before and after the
churn), and the time the check adds to a prompt's recall (the prompt hook's recall, with the project
root and without, p95 over all tasks).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memp_mcp.bench.latency import percentile
from memp_mcp.engine.build import LOOK_STEP_OPENINGS
from memp_mcp.engine.change import CHANGE_OPENING, CHECK_OPENING, REPRODUCE_OPENING

WORDS = (
    "billing invoices ledger payroll refunds coupons catalog orders shipping returns pricing taxes accounts "
    "sessions tokens quotas alerts metrics traces exports imports uploads storage cache queue scheduler "
    "mailer webhooks search ranking reports audit backups migrations profiles teams projects comments "
    "tickets"
).split()
LARGE_MODULES = 4  # about 300 KB each: past what the check reads of one file
RENAMED, TESTS_DELETED, DOCS_DELETED, REWRITTEN, APPLIED, REFORMATTED = 0.15, 0.1, 0.1, 0.2, 0.15, 0.3


@dataclass
class Module:
    name: str
    edits: list[tuple[str, str]]  # (old, new) as the session made them
    documented: bool
    large: bool
    stale_edits: set[int] = field(default_factory=set)
    renamed: bool = False
    tests_deleted: bool = False
    docs_deleted: bool = False

    @property
    def path(self) -> str:
        return f"pkg/{self.name}.py"


def _source(name: str, large: bool) -> str:
    body = [
        f'"""The {name} rules."""',
        "",
        f"RATE_{name.upper()} = 0.2",
        "",
        f"def charge_{name}(total_{name}, limit_{name}):",
        f"    if total_{name} < limit_{name}:",
        f"        return apply_{name}(total_{name})",
        "    return None",
        "",
        f"def describe_{name}(value):",
        f"    return 'the {name} value is ' + str(value)",
        "",
    ]
    if large:
        body += [f"def helper_{name}_{n}(x):\n    return x + {n}\n" for n in range(12_000)]
    return "\n".join(body) + "\n"


def _edits(name: str) -> list[tuple[str, str]]:
    return [
        (
            f"    if total_{name} < limit_{name}:\n        return apply_{name}(total_{name})",
            f"    if total_{name} <= limit_{name}:\n        return apply_{name}(total_{name})",
        ),
        (f"RATE_{name.upper()} = 0.2", f"RATE_{name.upper()} = 0.25"),
    ]


def build_repository(root: Path, count: int, rng: random.Random) -> list[Module]:
    (root / ".git").mkdir(parents=True)
    (root / "pkg").mkdir()
    (root / "tests").mkdir()
    (root / "docs").mkdir()
    modules = []
    for index, name in enumerate(WORDS[:count]):
        module = Module(name, _edits(name), documented=index % 3 == 0, large=index < LARGE_MODULES)
        (root / module.path).write_text(_source(name, module.large))
        (root / "tests" / f"test_{name}.py").write_text(f"def test_{name}(): ...\n")
        if module.documented:
            (root / "docs" / f"{name}.md").write_text(f"# {name}\n\nHow {name} is charged.\n")
        modules.append(module)
    return modules


def session_steps(root: Path, module: Module) -> list[Any]:
    """The module's session as the Stop hook records it: tool calls through the transcript reader."""
    from memp_mcp.hooks.transcript import ToolCall, call_step

    test = f"python -m pytest tests/test_{module.name}.py -q"
    calls = [
        ToolCall("Bash", {"command": test}, "Exit code 1\nF\n1 failed in 0.01s", is_error=True, answered=True),
        ToolCall("Grep", {"pattern": f"limit_{module.name}", "path": "pkg"}, module.path, answered=True),
        ToolCall("Read", {"file_path": str(root / module.path)}, "...", answered=True),
    ]
    if module.documented:
        calls.append(ToolCall("Read", {"file_path": f"docs/{module.name}.md"}, "...", answered=True))
    for old, new in module.edits:
        calls.append(
            ToolCall(
                "Edit",
                {"file_path": str(root / module.path), "old_string": old, "new_string": new},
                "The file has been updated.",
                answered=True,
            )
        )
    calls.append(ToolCall("Bash", {"command": test}, "1 passed in 0.01s", answered=True))
    return [call_step(call) for call in calls]


def churn(root: Path, modules: list[Module], rng: random.Random) -> None:
    """Rename, delete, rewrite and apply; and reformat what must stay fresh."""
    for module in modules:
        path = root / module.path
        text = path.read_text()
        edits = list(module.edits)
        if rng.random() < REFORMATTED:
            # Other lines change, the edited lines move down and are reindented: all still fresh.
            text = "import math\n\n\n" + text.replace("    return None", "    return math.nan")
            text = text.replace(edits[0][0], _indented(edits[0][0]))
            edits[0] = (_indented(edits[0][0]), _indented(edits[0][1]))
            text += f"\n\ndef added_{module.name}():\n    return 1\n"
        rewrites = [edits[0][0].replace(f"_{module.name}", f"_{module.name}_v2"), edits[1][0].replace("0.2", "0.3")]
        for index, (old, new) in enumerate(edits):
            roll = rng.random()
            if roll < REWRITTEN:
                text = text.replace(old, rewrites[index], 1)
                module.stale_edits.add(index)
            elif roll < REWRITTEN + APPLIED:
                text = text.replace(old, new, 1)
                module.stale_edits.add(index)
        path.write_text(text)
        if rng.random() < RENAMED:
            path.rename(root / "pkg" / f"{module.name}_core.py")
            module.renamed = True
        if rng.random() < TESTS_DELETED:
            (root / "tests" / f"test_{module.name}.py").unlink()
            module.tests_deleted = True
        if module.documented and rng.random() < 3 * DOCS_DELETED:
            (root / "docs" / f"{module.name}.md").unlink()
            module.docs_deleted = True


def _indented(lines: str) -> str:
    return "\n".join("    " + line for line in lines.split("\n"))


def truly_stale(step: str, module: Module) -> bool:
    """Whether the churn made this step of the module's procedure stale, from what the churn did."""
    name = module.name
    # The builder folds a session's reads into one step naming what to look at (engine/build.py).
    reads = step.startswith(("Read:", *LOOK_STEP_OPENINGS))
    # A command (the reproduction, the check) that runs the module's tests.
    runs = step.startswith(("Bash:", REPRODUCE_OPENING, CHECK_OPENING))
    edits = step.startswith(("Edit:", CHANGE_OPENING))
    if runs and f"tests/test_{name}.py" in step:
        return module.tests_deleted
    if reads and f"docs/{name}.md" in step and module.docs_deleted:
        return True
    if (reads or edits) and module.path in step:
        if module.renamed:
            return True
        if edits:
            # One step may hold both edits of the file (a coding run's net change): stale when either is.
            held = [index for index, (old, _) in enumerate(module.edits) if old.split("\n", 1)[0].strip() in step]
            return any(index in module.stale_edits for index in held or [0 if f"total_{name} <" in step else 1])
    return False


def run_freshness(modules: int = 40, seed: int = 0, repeats: int = 5) -> dict[str, Any]:
    from memp_mcp.engine.freshness import check_many
    from memp_mcp.engine.memory import Memory
    from memp_mcp.store import SQLiteStore

    rng = random.Random(seed)
    count = max(4, min(modules, len(WORDS)))
    with tempfile.TemporaryDirectory(prefix="memp-churn-") as tmp:
        root = Path(tmp) / "shop"
        built = build_repository(root, count, rng)
        store = SQLiteStore(Path(tmp) / "memory.db")
        memory = Memory(store, None, namespace="churn")
        procedures: dict[int, Module] = {}
        tasks: list[str] = []
        for module in built:
            task = f"Fix the {module.name} limit check so a total equal to the limit is charged, and raise the rate"
            result = memory.record(task, session_steps(root, module), "success", agent="claude-code")
            assert result.procedure_id is not None, result.message
            procedures[result.procedure_id] = module
            tasks.append(task)
        stored = {pid: store.get_procedure(pid) for pid in procedures}
        steps = [(pid, p.steps) for pid, p in stored.items()]
        before = check_many(steps, root)
        fresh_before = sum(len(p.steps) for p in stored.values())
        flagged_before = sum(len(f.stale) for f in before.values())

        churn(root, built, rng)
        after = check_many(steps, root)
        stale_total = stale_found = fresh_total = fresh_flagged = 0
        for pid, procedure in stored.items():
            flagged = {s.step for s in after[pid].stale}
            for number, step in enumerate(procedure.steps, 1):
                if truly_stale(step, procedures[pid]):
                    stale_total += 1
                    stale_found += number in flagged
                else:
                    fresh_total += 1
                    fresh_flagged += number in flagged
        examples = [r for f in after.values() for r in f.reasons()][:4]

        # Wall time, as a prompt waits for it; the check's CPU time beside it, which the machine's load
        # (other processes on its cores) does not inflate.
        timings: dict[str, list[float]] = {"with": [], "without": [], "check": [], "check_cpu": []}
        for _ in range(repeats):
            for task in tasks:
                for label, project in (("without", None), ("with", root)):
                    started = time.perf_counter()
                    recalled = memory.recall(task, 2, wait_for_model=0.0, origin="prompt hook", project_root=project)
                    timings[label].append(1000 * (time.perf_counter() - started))
                found = store.get_procedures([p.id for p in recalled.procedures])
                started, cpu = time.perf_counter(), time.process_time()
                check_many([(p.id, p.steps) for p in found], root)
                timings["check_cpu"].append(1000 * (time.process_time() - cpu))
                timings["check"].append(1000 * (time.perf_counter() - started))
        store.close()
    return {
        "modules": count,
        "procedures": len(stored),
        "steps": stale_total + fresh_total,
        "stale_steps": stale_total,
        "stale_flagged": stale_found,
        "stale_flagged_share": round(stale_found / stale_total, 4) if stale_total else None,
        "fresh_steps": fresh_total,
        "fresh_flagged": fresh_flagged,
        "fresh_flagged_share": round(fresh_flagged / fresh_total, 4) if fresh_total else None,
        "flagged_before_churn": flagged_before,
        "steps_before_churn": fresh_before,
        "p95_ms": {label: round(percentile(values, 0.95), 3) for label, values in timings.items()},
        "p50_ms": {label: round(statistics.median(values), 3) for label, values in timings.items()},
        "added_p95_ms": round(percentile(timings["with"], 0.95) - percentile(timings["without"], 0.95), 3),
        "examples": examples,
    }
