"""Other agents' runs, recorded: what the builder makes of a JSONL of SWE-style runs.

Each line is one run in record_trajectory's shape (`task`, `steps` of {action, observation},
`outcome`, plus `id`, `repo` and, when known, the project's `root` folder). Every run is recorded
into a fresh database, in file order; then the first line of each task (an issue's title) is
recalled alone. The figures:

- refused: runs the record refused (an error instead of a stored trajectory);
- plumbing: the share of built steps that are no work of the task (a submit-only step, a tool's
  bookkeeping call, a JSON object, an encoded blob, a one-line step over 600 characters);
- title P@1: of the runs that built a procedure, how often the title alone finds that procedure first;
- patch files held: of the resolved runs that show their final patch, the share whose procedure names
  every file the patch changes;
- probes: the share of built steps that only look (a read, a search, a print-only snippet) or are one
  line over 600 characters;
- steps per procedure, and record time p50/p95 (the whole record call: build, embed, write), in
  wall-clock time and in this process's CPU time (which other work on the machine does not inflate);
- from unresolved runs: recalls that serve a procedure whose only evidence is runs that did not
  resolve their task, and of those the ones served as proven (not provisional): none may be.

The plumbing test here is written apart from the builder's own, so the builder is not its own judge.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memp_mcp.bench.latency import percentile
from memp_mcp.embedding import Embedder
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.strategies import Strategies
from memp_mcp.errors import MempError
from memp_mcp.store import SQLiteStore

# A step a procedure should never hold: what these patterns find is no work of the task.
_PLUMBING = (
    re.compile(r"^\s*echo\s+['\"]?[A-Z][A-Z0-9_]{6,}['\"]?\s*(?:&&|;|$)"),  # a bare marker, e.g. a submit sentinel
    re.compile(r"^\s*(?:TodoWrite|ToolSearch|Skill|TaskCreate|TaskUpdate|ExitPlanMode)\b"),
    re.compile(r"^\s*(?:recall_procedure|record_trajectory|report_outcome|mcp__)"),
    re.compile(r"^\s*[{\[]\s*\""),  # a JSON object or array as the whole step
    re.compile(r"[A-Za-z0-9+/]{200,}={0,2}"),  # an encoded blob
)
LONG_ONE_LINE_STEP = 600


def is_plumbing(step: str) -> bool:
    """Whether a built step is bookkeeping rather than work (see the module docstring)."""
    if "\n" not in step and len(step) > LONG_ONE_LINE_STEP:
        return True
    return any(pattern.search(step) for pattern in _PLUMBING)


_PATCHED_FILE = re.compile(r"^diff --git a/\S+ b/(\S+)$", re.MULTILINE)


def _patch_files_held(
    runs: list[dict[str, Any]], built: dict[int, int], procedures: dict[int, Any]
) -> tuple[float | None, list[str]]:
    """Of the resolved runs that built a procedure and show their final patch, the share whose procedure
    names every file the patch changes (the change is the point of the run), and the ones that miss."""
    checked, missing = 0, []
    for index, procedure_id in built.items():
        run = runs[index]
        patches = [str(s.get("observation") or "") for s in run["steps"] if isinstance(s, dict)]
        files = next((found for text in reversed(patches) if (found := _PATCHED_FILE.findall(text))), [])
        if run.get("outcome") != "success" or not files or procedure_id not in procedures:
            continue
        checked += 1
        text = "\n".join(procedures[procedure_id].steps)
        absent = [path for path in files if path not in text]
        if absent:
            missing.append(f"{run.get('id', index)}: {', '.join(absent)}")
    return (round((checked - len(missing)) / checked, 3) if checked else None), missing


# A probe as a step: a look at files, or a snippet run only to print (written apart from the builder's
# own rules, like the plumbing test). A folded "Look at ..." step names what to look at: no probe.
_PROBE_COMMAND = re.compile(
    r"^\s*(?:(?:cat|head|tail|less|ls|grep|rg|find|wc|nl|file|stat|tree|pwd|which)\b(?!.*(?:>|\|\s*tee\b))"
    r"|sed\s+-n\b|(?:python3?|node)\s+-[ce]\b(?!.*(?:\.write|open\([^)]*['\"][wa]|\.save\(|\.to_csv\()))",
    re.DOTALL,
)


def is_probe(step: str) -> bool:
    """Whether a built step only looks (a read, a search, a listing, a print-only snippet) or is one line
    over LONG_ONE_LINE_STEP characters."""
    text = re.sub(r"^(?:Bash:|Run)\s*`?", "", step.strip())
    return ("\n" not in step.strip() and len(step) > LONG_ONE_LINE_STEP) or bool(_PROBE_COMMAND.match(text))


def title_of(task: str) -> str:
    """The issue's title: the task's first line."""
    return task.strip().split("\n", 1)[0].strip()


def load_runs(path: Path) -> list[dict[str, Any]]:
    """The runs of a JSONL file; MempError naming the first line that is not a run."""
    runs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            run = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MempError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(run, dict) or not isinstance(run.get("task"), str) or not isinstance(run.get("steps"), list):
            raise MempError(f"{path}:{number}: a run needs 'task' (text) and 'steps' (a list)")
        runs.append(run)
    return runs


def run_runs_benchmark(
    runs: list[dict[str, Any]],
    embedder: Embedder,
    progress: Callable[[str, int, int], None] | None = None,
    strategies: Strategies | None = None,
) -> dict[str, Any]:
    """Record every run into a fresh database, recall each title alone; the figures of the module docstring."""
    with tempfile.TemporaryDirectory(prefix="memp-bench-runs-") as folder:
        store = SQLiteStore(Path(folder) / "runs.db")
        memory = Memory(store, embedder, strategies=strategies)
        memory.embedder(wait=None)
        embedder.embed(["a first inference, so that no record pays the model's warm-up"])
        refused: list[dict[str, str]] = []
        record_ms: list[float] = []
        built: dict[int, int] = {}  # run index -> procedure id
        trajectory_of: dict[int, int] = {}
        record_cpu_ms: list[float] = []
        for index, run in enumerate(runs):
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                result = memory.record(
                    run["task"], run["steps"], run.get("outcome", "unknown"), agent="bench-runs", root=run.get("root")
                )
            except MempError as exc:
                refused.append({"id": str(run.get("id", index)), "reason": str(exc)[:200]})
                continue
            finally:
                record_ms.append((time.perf_counter() - started) * 1000)
                record_cpu_ms.append((time.process_time() - cpu_started) * 1000)
            trajectory_of[index] = result.trajectory_id
            if result.procedure_id is not None and result.action == "created":
                built[index] = result.procedure_id
            if progress:
                progress("recording", index + 1, len(runs))
        procedures = {p.id: p for p in store.get_procedures(sorted(set(built.values())))}
        steps = [step for p in procedures.values() for step in p.steps]
        plumbing = [step for step in steps if is_plumbing(step)]
        probes = [step for step in steps if is_probe(step)]
        hits = 0
        unresolved_trajectories = {
            trajectory_of[i] for i, run in enumerate(runs) if i in trajectory_of and run.get("outcome") != "success"
        }
        proven_from_unresolved = served_from_unresolved = 0
        for done, (index, run) in enumerate(enumerate(runs), 1):
            if index not in trajectory_of:
                continue
            recalled = memory.recall(title_of(run["task"]), k=3, log=False).procedures
            if index in built and recalled and recalled[0].id == built[index]:
                hits += 1
            for procedure in recalled:
                evidence = set(procedure.source_trajectory_ids)
                if evidence and evidence <= unresolved_trajectories:
                    served_from_unresolved += 1
                    proven_from_unresolved += not procedure.provisional
            if progress:
                progress("recalling titles", done, len(runs))
        step_counts = [len(p.steps) for p in procedures.values()]
        held, missing = _patch_files_held(runs, built, procedures)
        store.close()
    return {
        "runs": len(runs),
        "resolved": sum(1 for run in runs if run.get("outcome") == "success"),
        "refused": len(refused),
        "refused_examples": refused[:5],
        "procedures": len(procedures),
        "steps": len(steps),
        "plumbing_steps": len(plumbing),
        "plumbing_share": len(plumbing) / len(steps) if steps else 0.0,
        "plumbing_examples": [step[:160] for step in plumbing[:5]],
        "probe_or_long_line_share": len(probes) / len(steps) if steps else 0.0,
        "probe_examples": [step[:160] for step in probes[:5]],
        "title_p_at_1": hits / len(built) if built else 0.0,
        "title_queries": len(built),
        "steps_per_procedure": {
            "median": statistics.median(step_counts) if step_counts else 0,
            "max": max(step_counts, default=0),
        },
        "patch_files_held": held,
        "patch_files_missing": missing[:5],
        "record_ms": {"p50": percentile(record_ms, 0.5), "p95": percentile(record_ms, 0.95)},
        # CPU time of this process (all its threads): what a record costs whatever else the machine runs.
        "record_cpu_ms": {"p50": percentile(record_cpu_ms, 0.5), "p95": percentile(record_cpu_ms, 0.95)},
        "proven_from_unresolved": proven_from_unresolved,
        "served_from_unresolved": served_from_unresolved,
        "titles": [p.title for p in list(procedures.values())[:8]],
        "model": embedder.identity,
        "update_strategy": memory.strategies.update,
    }
