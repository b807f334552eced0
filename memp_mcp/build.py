"""Build: turn a trajectory into a reusable procedure without any language model.

The extractive builder keeps the actions that worked, drops failed actions, no-ops and
exploration loops, and lifts the task's entities into {placeholders}, so that the steps of
"put a clean soapbar in cabinet" also serve "put a clean cloth in drawer". An agent's own draft
(or a draft sampled from the client's model) is always preferred; this is the fallback that works
everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from memp_mcp.models import MAX_PROCEDURE_STEPS, Outcome, ProcedureDraft, Step
from memp_mcp.text import keywords, words

# Observations that mean the action did nothing (ALFWorld says "Nothing happens."; shells and
# APIs say error / failed / not found). A step whose observation starts like this is dropped.
_FAILED_OBSERVATION = re.compile(
    r"^\s*(nothing happens|error\b|failed\b|failure\b|invalid\b|unknown command|command not found|"
    r"you can't|you cannot|i don't understand|not found\b|permission denied|traceback\b)",
    re.IGNORECASE,
)
# Actions that only look around; they carry no procedure of their own.
_NO_OP_ACTIONS = frozenset({"look", "inventory", "help", "wait", "noop", "think"})
# Verbs and words too generic to be a task's entity.
_NOT_ENTITIES = frozenset(
    """put place move take find get clean heat cool examine look use turn open close go make
    bring carry set some it them then with under using in on into from""".split()
)
_PLACEHOLDER_NAMES = ("object", "target", "tool", "item4", "item5", "item6")
_INSTANCE_NUMBER = r"(?:\s+\d+)?"


def action_failed(step: Step) -> bool:
    return bool(step.observation) and bool(_FAILED_OBSERVATION.match(step.observation or ""))


def useful_actions(steps: Sequence[Step]) -> list[str]:
    """The actions that did something, in order, with no-ops, failures and loops removed.

    A loop is an action repeated with the same observation (the agent went back and forth);
    only its first occurrence is kept.
    """
    kept: list[str] = []
    seen: set[tuple[str, str]] = set()
    for step in steps:
        action = " ".join(step.action.split())
        if not action or action.lower() in _NO_OP_ACTIONS or action_failed(step):
            continue
        signature = (action.lower(), (step.observation or "").strip().lower()[:200])
        if signature in seen:
            continue
        seen.add(signature)
        kept.append(action)
    return _drop_wandering(kept)


def _drop_wandering(actions: list[str]) -> list[str]:
    """Drop moves that lead nowhere: a "go to X" immediately followed by another "go to"."""
    result: list[str] = []
    for index, action in enumerate(actions):
        following = actions[index + 1] if index + 1 < len(actions) else None
        if _is_move(action) and following is not None and _is_move(following):
            continue
        result.append(action)
    return result


def _is_move(action: str) -> bool:
    lowered = action.lower()
    return lowered.startswith("go to ") or lowered.startswith("goto ") or lowered.startswith("cd ")


def task_entities(task: str, actions: Sequence[str]) -> list[str]:
    """Words of the task that name things the actions touch, in task order.

    A name the task splits and the actions join ("coffee machine", "coffeemachine") is one entity,
    written with a space.
    """
    action_words = {w for a in actions for w in words(a)}
    terms = [w for w in keywords(task) if w not in _NOT_ENTITIES and not w.isdigit()]
    entities: list[str] = []
    skip = False
    for first, second in zip(terms, [*terms[1:], ""], strict=False):
        if skip:
            skip = False
            continue
        if second and first + second in action_words:
            entities.append(f"{first} {second}")
            skip = True
        elif first in action_words:
            entities.append(first)
    return entities[: len(_PLACEHOLDER_NAMES)]


def lift(text: str, entities: Sequence[str]) -> str:
    """Replace each entity (and an instance number after it, "soapbar 1") by its placeholder."""
    for entity, name in zip(entities, _PLACEHOLDER_NAMES, strict=False):
        pattern = r"\s*".join(re.escape(part) for part in entity.split())
        text = re.sub(rf"\b{pattern}{_INSTANCE_NUMBER}\b", "{" + name + "}", text, flags=re.IGNORECASE)
    return text


def abstract_task(task: str, steps: Sequence[Step]) -> str:
    """The task with its entities lifted: the task family this trajectory belongs to."""
    return lift(_clean_task(task), task_entities(task, [s.action for s in steps]))


def _clean_task(task: str) -> str:
    return " ".join(task.split()).rstrip(" .")


def extract_procedure(task: str, steps: Sequence[Step], outcome: Outcome) -> ProcedureDraft:
    """A procedure distilled from one trajectory by the rules above; never fails."""
    actions = useful_actions(steps)
    entities = task_entities(task, actions)
    lifted = _dedupe([lift(a, entities) for a in actions]) or ["(no successful action was recorded)"]
    if len(lifted) > MAX_PROCEDURE_STEPS:
        lifted = [*lifted[: MAX_PROCEDURE_STEPS - 1], lifted[-1]]
    family = lift(_clean_task(task), entities)
    pitfalls = [lift(p, entities) for p in failure_pitfalls(steps)]
    if outcome == Outcome.FAILURE:
        pitfalls.insert(0, "This procedure comes from a run that failed; check each step's result.")
    return ProcedureDraft(
        title=_title(family),
        steps=lifted,
        when_to_use=f"Tasks like: {family}",
        pitfalls=pitfalls[:10],
    )


def failure_pitfalls(steps: Sequence[Step], limit: int = 5) -> list[str]:
    """One pitfall per distinct failed action: what was tried and what the environment said."""
    pitfalls: list[str] = []
    seen: set[str] = set()
    for step in steps:
        if not action_failed(step):
            continue
        action = " ".join(step.action.split())[:200]
        if action.lower() in seen:
            continue
        seen.add(action.lower())
        said = " ".join((step.observation or "").split())[:160]
        pitfalls.append(f'"{action}" did not work ({said})')
        if len(pitfalls) >= limit:
            break
    return pitfalls


def _dedupe(steps: list[str]) -> list[str]:
    """Drop a step identical to the one just before it (lifting can make neighbours equal)."""
    return [s for i, s in enumerate(steps) if i == 0 or s != steps[i - 1]]


def _title(family: str) -> str:
    title = family[:1].upper() + family[1:]
    return title if len(title) <= 120 else title[:117] + "..."


def trajectory_as_procedure(task: str, steps: Sequence[Step]) -> ProcedureDraft:
    """The `trajectory` build strategy: the actions verbatim, nothing abstracted."""
    actions = [" ".join(s.action.split()) for s in steps if s.action.strip()]
    if len(actions) > MAX_PROCEDURE_STEPS:
        actions = [*actions[: MAX_PROCEDURE_STEPS - 1], actions[-1]]
    family = _clean_task(task)
    return ProcedureDraft(
        title=_title(family), steps=actions or ["(empty trajectory)"], when_to_use=f"Tasks like: {family}"
    )


def step_skeleton(steps: Sequence[str]) -> set[str]:
    """The verbs and placeholders of a step list, to tell whether two procedures do the same thing."""
    skeleton: set[str] = set()
    for step in steps:
        tokens = words(step)
        if tokens:
            skeleton.add(tokens[0])
        skeleton.update(re.findall(r"\{(\w+)\}", step))
    return skeleton
