"""Measured uplift: memory withheld from a random share of tasks (MEMP_HOLDOUT), outcomes of both arms
compared.

A task is drawn once, at its first logged recall: arm 'holdout' (with probability `holdout`) gets an
answer as if nothing fitted, arm 'memory' the recall as usual. Recalling the same task again before any
outcome keeps its arm. An outcome joins its task by the recall's id (report_outcome), else by the task's
text (record_trajectory, the Stop hook's record); it counts one attempt and its tool calls.

`uplift` compares the arms' success rates with Newcombe's hybrid score interval for a difference of
two proportions (Wilson intervals of each arm combined), which holds at the small counts a project
gathers (a normal interval does not: with 3 of 4 it can pass 100%).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from memp_mcp.models import TaskArm
from memp_mcp.store import Store

MEMORY = "memory"
HOLDOUT = "holdout"
# Tasks are matched on their first characters, whitespace and case aside: the Stop hook clips a long
# prompt differently from the prompt hook.
TASK_KEY_CHARS = 200
Z_95 = 1.959963984540054
# Under this many judged tasks in an arm, the figures are reported but no conclusion is drawn.
MIN_JUDGED_PER_ARM = 10


def task_key(task: str) -> str:
    return " ".join(task.lower().split())[:TASK_KEY_CHARS]


def draw_arm(holdout: float, rng: random.Random) -> str:
    return HOLDOUT if holdout > 0 and rng.random() < holdout else MEMORY


class ArmFigures(BaseModel):
    tasks: int
    judged: int
    successes: int
    success_rate: float | None
    mean_tool_calls: float | None
    mean_turns: float | None


class Uplift(BaseModel):
    namespace: str
    with_memory: ArmFigures
    without_memory: ArmFigures
    difference: float | None  # success rate with memory minus without, in points of a share (0-1)
    interval: tuple[float, float] | None  # 95%
    conclusion: str


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(s1: int, n1: int, s2: int, n2: int, z: float = Z_95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) for p1 - p2."""
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson(s1, n1, z)
    l2, u2 = wilson(s2, n2, z)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def _figures(arms: Sequence[TaskArm]) -> ArmFigures:
    judged = [a for a in arms if a.success is not None]
    successes = sum(1 for a in judged if a.success)
    attempted = [a for a in arms if a.turns > 0]
    return ArmFigures(
        tasks=len(arms),
        judged=len(judged),
        successes=successes,
        success_rate=round(successes / len(judged), 4) if judged else None,
        mean_tool_calls=round(statistics.fmean(a.tool_calls for a in attempted), 2) if attempted else None,
        mean_turns=round(statistics.fmean(a.turns for a in attempted), 2) if attempted else None,
    )


def uplift(namespace: str, arms: Sequence[TaskArm]) -> Uplift:
    """The two arms of one namespace compared, with what the counts allow one to say."""
    given = _figures([a for a in arms if a.arm == MEMORY])
    withheld = _figures([a for a in arms if a.arm == HOLDOUT])
    difference = interval = None
    if given.judged and withheld.judged:
        difference = round(given.successes / given.judged - withheld.successes / withheld.judged, 4)
        low, high = newcombe(given.successes, given.judged, withheld.successes, withheld.judged)
        interval = (round(low, 4), round(high, 4))
    return Uplift(
        namespace=namespace,
        with_memory=given,
        without_memory=withheld,
        difference=difference,
        interval=interval,
        conclusion=conclusion(given, withheld, difference, interval),
    )


def conclusion(
    given: ArmFigures, withheld: ArmFigures, difference: float | None, interval: tuple[float, float] | None
) -> str:
    if withheld.tasks == 0:
        return (
            "No task was held out, so nothing can be said about uplift: set MEMP_HOLDOUT (e.g. 0.2) to withhold "
            "memory from that share of tasks."
        )
    if difference is None or interval is None:
        return "Not enough outcomes yet: each arm needs tasks whose outcome was reported or recorded."
    low, high = (round(100 * v) for v in interval)
    span = f"between {low:+d} and {high:+d} points (95% interval)"
    if min(given.judged, withheld.judged) < MIN_JUDGED_PER_ARM:
        return (
            f"Too few judged tasks to conclude ({given.judged} with memory, {withheld.judged} without; "
            f"{MIN_JUDGED_PER_ARM}+ each needed): the difference could be anywhere {span}."
        )
    if low > 0:
        return f"Memory helps here: tasks with memory succeed more often, by {span}."
    if high < 0:
        return f"Memory hurts here: tasks with memory succeed less often, by {span}; check what it injects (log)."
    return (
        f"No difference shown yet: the uplift is {span}, which includes none; more tasks narrow it "
        f"({given.judged} with memory, {withheld.judged} without so far)."
    )


def note_outcome(
    store: Store,
    namespace: str,
    task: str,
    recall_id: str | None,
    success: bool | None,
    tool_calls: int,
    kind: str,
    summary: str,
    detail: dict[str, Any],
) -> None:
    """Inside an outcome's or a record's write: count the attempt against the task's arm, and log it."""
    found = store.task_arm_for(namespace, task_key(task), recall_id)
    arm = None
    if found is not None:
        store.judge_task_arm(found[0], success, tool_calls, kind)
        arm = found[1]
    store.add_event(namespace, kind, task, summary, detail, recall_id=recall_id, arm=arm)
