"""Lessons: what a run teaches about its environment, and the pitfalls procedures learn from it.

A run that found an action refused, and what worked in its place, teaches every procedure that takes
that action (a tool replaced, an option removed, a service to start first), not only the one followed:
`lessons` reads them from a run's steps, `lesson_pitfall` words one for a procedure's own steps, and
`spread_lessons` gives it to the procedures of the nearest tasks (the record's and the outcome's write).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from memp_mcp.engine.build import PLACEHOLDER, REPRODUCES_NOTE, distill_steps
from memp_mcp.engine.trust import may_learn_from
from memp_mcp.engine.verdict import command_word, is_command_line, normal_action
from memp_mcp.models import MAX_PITFALL_CHARS, MAX_PITFALLS, Procedure, Step
from memp_mcp.store import Store
from memp_mcp.text import STOPWORDS

# A lesson about the environment (an action refused, what worked instead) is offered to the procedures
# of the nearest tasks, by the run's task vector, not to the whole namespace: a scan of every
# procedure's steps took ~85 ms at 100,000 procedures, inside the record's write, and one run that met
# a common refusal revised thousands of procedures (record p95 of several seconds). Without vectors
# (keyword-only memory) the newest procedures whose steps name the action's words are offered instead.
LESSON_NEIGHBOURS = 50
# At most this many procedures learn from one run; the rest learn when they are followed.
MAX_WARNED_PER_RUN = 20

_ARTICLES = frozenset({"a", "an", "the"})
_SENTENCE_MARKS = ".,;:!?"


@dataclass(frozen=True)
class Lesson:
    """What one run showed about its environment: an action that was refused, and what got the work done.

    `instead`: another action that did the same kind of thing in its place; `first`: what had to be done
    before (before `instead` when there is one, else before the refused action itself, which then
    worked). Neither: nothing was found to do in its place. A lesson is about the place the work is done
    in (a tool replaced, an option removed, a service that must be started first), so it concerns every
    procedure that takes the same action, not only the one that was followed.
    """

    action: str
    said: str
    instead: str | None = None
    first: str | None = None

    @property
    def shows_a_way(self) -> bool:
        return bool(self.instead or self.first)


def lessons(steps: Sequence[Step]) -> list[Lesson]:
    """The actions a run found refused (action errors, not failing checks), with what worked in their place.

    What worked instead must do the same kind of thing: name the refused action's verb or program ("uv pip
    install" for "pip install"; "heat ... with the stove" for "heat ... with the microwave"). The next
    thing that worked is not a replacement because it resembles the refused action ("switch on the tap"
    after "clean ... in the sink" was refused is what cleaning needed first, or just the next step).
    """
    failures = distill_steps(steps).failures
    worked_after = {f.action.lower(): f.other for f in failures if f.relation == "after" and f.other}
    found = []
    for failure in failures:
        if not failure.refused:
            continue
        verb = command_word(failure.action)
        if failure.relation == "instead" and failure.other and verb in failure.other.lower().split():
            found.append(Lesson(failure.action, failure.said, failure.other, worked_after.get(failure.other.lower())))
        elif failure.relation == "after" and failure.other:
            found.append(Lesson(failure.action, failure.said, first=failure.other))
        else:
            found.append(Lesson(failure.action, failure.said))
    return found


def _match_words(text: str) -> list[str]:
    return [w.strip(_SENTENCE_MARKS) for w in text.split() if w.lower().strip(_SENTENCE_MARKS) not in _ARTICLES]


def match_step(step: str, action: str) -> dict[str, str] | None:
    """What a procedure step's placeholders stand for when the step says `action`; None when it does not.

    Prose is compared word by word, without case, articles or sentence marks ("heat the {object} with
    microwave 1." says "heat egg 1 with microwave 1", with {object} = "egg 1"). A command line matches
    only as written, the whole step or a part of it in backquotes ("Install it with `pip install -e .`").
    A step must say more than its placeholders do: "go to {target}" says too little to be any one action.
    """
    step = step.removesuffix(REPRODUCES_NOTE).strip()
    action = normal_action(action)
    if not step or not action:
        return None
    if any(normal_action(quoted) == action for quoted in re.findall(r"`([^`\n]+)`", step)):
        return {}
    if is_command_line(action) or is_command_line(step):
        return {} if normal_action(step) == action else None
    step_words = _match_words(step)
    if "{" not in step:
        # No placeholder: the same words, whatever their case (what the pattern below would say, without
        # compiling one per step for each lesson: a record's lessons read 50 procedures' steps).
        said = " ".join(step_words)
        return {} if len(step_words) >= 2 and said.casefold() == " ".join(_match_words(action)).casefold() else None
    groups: dict[str, str] = {}
    pattern: list[str] = []
    literal = 0
    for word in step_words:
        parts = PLACEHOLDER.split(word)
        piece = ""
        for index, part in enumerate(parts):
            if index % 2 == 0:
                piece += re.escape(part)
            elif part in groups.values():
                piece += f"(?P={next(g for g, name in groups.items() if name == part)})"
            else:
                group = f"g{len(groups)}"
                groups[group] = part
                piece += f"(?P<{group}>.+?)"
        literal += len(parts) == 1
        pattern.append(piece)
    if literal < len(groups) + 2:
        return None
    found = re.fullmatch(" ".join(pattern), " ".join(_match_words(action)), re.IGNORECASE)
    if found is None:
        return None
    return {name: found.group(group) for group, name in groups.items()}


def _bind(text: str, bound: dict[str, str]) -> str:
    """`text` in a procedure's own terms: the values its placeholders stood for put back as placeholders."""
    if is_command_line(text):
        return text
    for name, value in sorted(bound.items(), key=lambda item: -len(item[1])):
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "{" + name + "}", text, flags=re.IGNORECASE)
    return text


def lesson_pitfall(steps: Sequence[str], lesson: Lesson) -> str | None:
    """The pitfall a procedure with these steps learns from `lesson`; None when none of its steps takes
    the refused action (or it already does first what the action turned out to need)."""
    for index, step in enumerate(steps):
        bound = match_step(step, lesson.action)
        if bound is None:
            continue
        stale = step.removesuffix(REPRODUCES_NOTE)
        # What the placeholders stood for in that run: whether the lesson holds for other values is the
        # reader's call (a broken tool fails for every file; a missing file is missing for one).
        said = "; ".join(f"{{{name}}} = {value}" for name, value in bound.items())
        said = f"with {said}: {lesson.said}" if said else lesson.said
        if lesson.instead:
            text = f'"{stale}" no longer worked in a recent run ({said}); "{_bind(lesson.instead, bound)}" '
            return text + "worked instead" + (f', after "{_bind(lesson.first, bound)}"' if lesson.first else "")
        if lesson.first:
            if any(match_step(earlier, lesson.first) is not None for earlier in steps[:index]):
                return None
            return f'"{stale}" did not work in a recent run ({said}); it worked after "{_bind(lesson.first, bound)}"'
        return f'"{stale}" was refused in a recent run ({said}) and nothing was found to do instead'
    return None


def spread_lessons(
    store: Store,
    namespace: str,
    learned: Sequence[Lesson],
    task: str,
    trajectory_id: int,
    agent: str | None,
    principal: str,
    skip: set[int],
    near: Sequence[float] | None,
) -> list[int]:
    """Inside a write: give every active procedure of the namespace that takes an action this run found
    refused, where the run also found what worked instead, a pitfall saying so. The lesson is about the
    environment (a command replaced, a service to start first), so the next task of another kind does
    not walk into it. A new version, not a fresh record: no step is rewritten without a run of that task.

    Only procedures the same principal recorded learn it: one run is one author's word, and a lesson names
    what to run instead, so another author's procedures would otherwise take instructions from any
    agent that can record (trust.may_learn_from).
    """
    useful = [lesson for lesson in learned if lesson.shows_a_way]
    if not useful:
        return []
    warned: list[int] = []
    for procedure in _procedures_taking(store, namespace, useful, near):
        if len(warned) >= MAX_WARNED_PER_RUN:
            break
        if procedure.id in skip or not may_learn_from(procedure, principal):
            continue
        new = [p for lesson in useful if (p := lesson_pitfall(procedure.steps, lesson))]
        new = [p[:MAX_PITFALL_CHARS] for p in dict.fromkeys(new) if p[:MAX_PITFALL_CHARS] not in procedure.pitfalls]
        if not new:
            continue
        store.revise_procedure(
            procedure.id,
            reason=f"lesson from trajectory {trajectory_id} on '{task[:120]}': a step it shares was refused "
            "there and something else worked",
            changed_by=agent,
            pitfalls=merged_pitfalls(procedure.pitfalls, new),
        )
        warned.append(procedure.id)
    return warned


def _procedures_taking(
    store: Store, namespace: str, learned: Sequence[Lesson], near: Sequence[float] | None
) -> list[Procedure]:
    """Active procedures that may take one of the refused actions, each then matched step by step: those
    of the tasks nearest `near`, or without it the newest whose steps name the action's first word (the
    program, or the verb) and another of its words."""
    if near is not None:
        ids = [pid for pid, _ in store.vector_search(namespace, list(near), LESSON_NEIGHBOURS)]
        return store.get_procedures(ids)
    found: set[int] = set()
    for lesson in learned:
        tokens = [t for t in re.findall(r"[A-Za-z0-9]+", lesson.action) if t.lower() not in STOPWORDS]
        if tokens:
            others = [t for t in tokens[1:] if len(t) >= 3]
            found.update(store.procedures_with_step_words(namespace, tokens[0], others))
    return store.get_procedures(sorted(found, reverse=True)[:LESSON_NEIGHBOURS])


def merged_pitfalls(old: Sequence[str], new: Sequence[str]) -> list[str]:
    """`old` then the `new` pitfalls it lacks, the newest kept when there are more than a procedure holds.

    A new pitfall is clipped to the length an edit or an import accepts: a lesson quotes a step, which
    may be twice that long, and a memory must be able to export and import what it holds."""
    merged = list(dict.fromkeys([*old, *(pitfall[:MAX_PITFALL_CHARS] for pitfall in new)]))
    return merged[-MAX_PITFALLS:]


def warned_message(procedure_ids: Sequence[int]) -> str:
    listed = ", ".join(map(str, procedure_ids))
    return f"Procedures {listed} take an action this run found refused: each got a pitfall saying what worked instead."
