"""The recall budget: how much of what was found fits in one answer.

Every character a recall returns is context the agent pays for, and clients cut long tool results.
A recall is filled best-first within a character budget: every procedure that fits gets its steps
and pitfalls (long ones abridged) before any gets a worked example; procedures that do not fit
even abridged are left out; and the answer says what was left out and how to get it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

# Smaller and smaller forms a procedure is tried in when it does not fit whole: (longest step or
# pitfall kept, most pitfalls kept). The last form also keeps only the leading steps that fit.
ABRIDGED_FORMS = ((240, 5), (100, 2), (100, 0))
ABRIDGED_MARK = " [...abridged]"
# The exemplar is given whole or not at all: half a worked example misleads.


class Shortenable(Protocol):
    """What the budget reads and shortens of a recalled procedure (memory.RecalledProcedure)."""

    id: int
    when_to_use: str
    steps: list[str]
    pitfalls: list[str]
    exemplar: Any
    abridged: bool

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self: ...


P = TypeVar("P", bound=Shortenable)


@dataclass
class Fitted(Generic[P]):
    procedures: list[P]
    left_out: str | None  # what was shortened or left out, for the agent to read; None when nothing


def abridge(procedure: P, text_chars: int, max_pitfalls: int, max_steps: int | None = None) -> P:
    """The procedure without its worked example, its steps and pitfalls cut to `text_chars` (its
    when-to-use to twice that), at most
    `max_pitfalls` pitfalls and (when given) `max_steps` steps, the last saying how many more there are."""
    old_steps, old_pitfalls = procedure.steps, procedure.pitfalls
    steps = [_cut(s, text_chars) for s in old_steps]
    if max_steps is not None and max_steps < len(steps):
        steps = [*steps[:max_steps], f"(... {len(steps) - max_steps} more steps: get_procedure has them)"]
    pitfalls = [_cut(p, text_chars) for p in old_pitfalls[:max_pitfalls]]
    old_when = procedure.when_to_use
    when_to_use = _cut(old_when, 2 * text_chars)
    changed = steps != old_steps or pitfalls != old_pitfalls or when_to_use != old_when
    update = {"steps": steps, "pitfalls": pitfalls, "when_to_use": when_to_use, "exemplar": None, "abridged": changed}
    return procedure.model_copy(update=update)


def without_exemplar(procedure: P) -> P:
    return procedure.model_copy(update={"exemplar": None})


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(ABRIDGED_MARK)] + ABRIDGED_MARK


def fit(procedures: Sequence[P], budget: int, cost: Callable[[P], int], base: int) -> Fitted[P]:
    """The procedures, best first, shortened to fit `budget` characters in all.

    `cost` is what one procedure adds to the answer (all its renderings), `base` what the answer
    costs without any. First each procedure, in rank order, is placed in the largest of its
    abridged forms (no worked example; long texts cut, then fewer pitfalls, then only its leading
    steps) that fits its fair share of the room left, or else the room left, until one does not
    fit at all. Then, in rank order, each is given back as much of its steps and pitfalls as the
    rest allows, and then, in rank order again, its worked example. So no worked example is sent
    while a procedure that would fit abridged is left out.
    """
    reserve = 700  # for the note saying what was left out, sent in both renderings
    remaining = budget - base - reserve
    placed: list[P] = []
    sizes: list[int] = []
    for index, procedure in enumerate(procedures):
        share = remaining // (len(procedures) - index)
        form = _largest_abridged_form(procedure, cost, share) or _largest_abridged_form(procedure, cost, remaining)
        if form is None:
            break
        placed.append(form)
        sizes.append(cost(form))
        remaining -= sizes[-1]
    for index in range(len(placed)):
        room = sizes[index] + remaining
        whole = without_exemplar(procedures[index])
        whole_size = cost(whole)
        richer = whole if whole_size <= room else _largest_abridged_form(procedures[index], cost, room)
        richer_size = whole_size if richer is whole else (cost(richer) if richer is not None else 0)
        if richer is not None and richer_size > sizes[index]:
            placed[index], sizes[index] = richer, richer_size
            remaining = room - richer_size
    for index, current in enumerate(placed):
        if procedures[index].exemplar and current == without_exemplar(procedures[index]):
            full_size = cost(procedures[index])
            if full_size - sizes[index] <= remaining:
                remaining -= full_size - sizes[index]
                placed[index], sizes[index] = procedures[index], full_size
    return Fitted(placed, _left_out(procedures, placed, budget))


def _largest_abridged_form(procedure: P, cost: Callable[[P], int], room: int) -> P | None:
    """The largest abridged form of `procedure` that fits in `room` characters, or None."""
    for text_chars, max_pitfalls in ABRIDGED_FORMS:
        form = abridge(procedure, text_chars, max_pitfalls)
        if cost(form) <= room:
            return form
    low, high = 0, len(procedure.steps)  # the most leading steps that fit: at least one, or nothing
    while low < high:
        middle = (low + high + 1) // 2
        if cost(abridge(procedure, *ABRIDGED_FORMS[-1], max_steps=middle)) <= room:
            low = middle
        else:
            high = middle - 1
    return abridge(procedure, *ABRIDGED_FORMS[-1], max_steps=low) if low else None


def _left_out(found: Sequence[P], placed: Sequence[P], budget: int) -> str | None:
    abridged = [_id(p) for p in placed if p.abridged]
    no_example = [
        _id(p) for p, whole in zip(placed, found, strict=False) if _has_exemplar(whole) and not _has_exemplar(p)
    ]
    dropped = [_id(p) for p in found[len(placed) :]]
    if not (abridged or no_example or dropped):
        return None
    parts = []
    if dropped:
        parts.append(f"procedures {_ids(dropped)} left out")
    if abridged:
        parts.append(f"steps or pitfalls of {_ids(abridged)} abridged")
    if no_example:
        parts.append(f"worked examples of {_ids(no_example)} left out")
    return (
        f"To stay within {budget:,} characters: {'; '.join(parts)}. "
        "get_procedure(procedure_id) returns any of them in full."
    )


def _has_exemplar(procedure: Shortenable) -> bool:
    return bool(procedure.exemplar)


def _id(procedure: Shortenable) -> int:
    return procedure.id


def _ids(ids: list[int]) -> str:
    return ", ".join(f"#{i}" for i in ids)
