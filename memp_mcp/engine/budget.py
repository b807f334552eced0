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
# pitfall kept, most pitfalls kept). The last form also keeps only the leading steps that fit, down
# to none (its title, when-to-use and id, and how many steps get_procedure gives).
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
    if max_steps == 0 and steps:
        steps = [f"({len(steps)} steps: get_procedure({procedure.id}) has them)"]
    elif max_steps is not None and max_steps < len(steps):
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


def fit(
    procedures: Sequence[P],
    budget: int,
    cost: Callable[[P], int],
    base: int,
    with_exemplar: Callable[[P], P] | None = None,
) -> Fitted[P]:
    """The procedures, best first, shortened to fit `budget` characters in all.

    `cost` is what one procedure adds to the answer (all its renderings), `base` what the answer
    costs without any. `with_exemplar`, when given, adds a procedure's worked example (the
    procedures come without, as loading one costs a read): it is called only for the procedures
    placed, since the others cannot be given one. First each procedure, in rank order, is placed
    in the largest of its abridged forms (no worked example; long texts cut, then fewer pitfalls,
    then only its leading steps, then none: its title, when-to-use and id) that fits its fair share
    of the room left, or else the room left less what the least forms of the procedures after it
    need (as many as fit so), until one does not fit at all. Then, in rank order, each is given
    back as much of its steps and pitfalls as the rest allows, and then, in rank order again, its
    worked example. So no worked example is sent while a procedure that would fit abridged is left out.
    """
    reserve = 700  # for the note saying what was left out, sent in both renderings
    remaining = budget - base - reserve
    forms = [_Forms(p, cost) for p in procedures]
    # The leading procedures whose least forms fit together are each shown at least so: the best one
    # with its first step, the others as their title, when-to-use and id. A long first one cannot crowd
    # out the next ones, which an agent choosing among them needs to see, nor they leave it no step.
    headlines: list[int] = []
    for index, procedure_forms in enumerate(forms):
        least = procedure_forms.smallest() if index else procedure_forms.one_step()
        if least is None or sum(headlines) + least[1] > remaining:
            break
        headlines.append(least[1])
    placed: list[P] = []
    sizes: list[int] = []
    for index, procedure_forms in enumerate(forms):
        share = remaining // (len(procedures) - index)
        room = remaining - sum(headlines[index + 1 :])
        # The best one is given a step to follow where any room allows it; its headline is the last resort.
        form = (
            procedure_forms.largest_abridged(min(share, room), headline=index > 0)
            or procedure_forms.largest_abridged(room, headline=index > 0)
            or procedure_forms.largest_abridged(room)
        )
        if form is None:
            break
        placed.append(form[0])
        sizes.append(form[1])
        remaining -= form[1]
    for index in range(len(placed)):
        room = sizes[index] + remaining
        whole, whole_size = forms[index].whole()
        richer = (whole, whole_size) if whole_size <= room else forms[index].largest_abridged(room)
        if richer is not None and richer[1] > sizes[index]:
            placed[index], sizes[index] = richer
            remaining = room - richer[1]
    found = list(procedures)
    if with_exemplar is not None:
        found[: len(placed)] = [with_exemplar(p) for p in procedures[: len(placed)]]
    for index, current in enumerate(placed):
        if found[index].exemplar and current == forms[index].whole()[0]:
            full_size = cost(found[index])
            if full_size - sizes[index] <= remaining:
                remaining -= full_size - sizes[index]
                placed[index], sizes[index] = found[index], full_size
    return Fitted(placed, _left_out(found, placed, budget))


class _Forms(Generic[P]):
    """One procedure's shorter forms, each made and measured at most once (measuring renders it)."""

    def __init__(self, procedure: P, cost: Callable[[P], int]) -> None:
        self.procedure = procedure
        self.cost = cost
        self._made: dict[tuple[int, int, int | None], tuple[P, int]] = {}
        self._whole: tuple[P, int] | None = None

    def whole(self) -> tuple[P, int]:
        """The procedure without its worked example, and its cost."""
        if self._whole is None:
            form = without_exemplar(self.procedure)
            self._whole = (form, self.cost(form))
        return self._whole

    def abridged(self, text_chars: int, max_pitfalls: int, max_steps: int | None = None) -> tuple[P, int]:
        key = (text_chars, max_pitfalls, max_steps)
        if key not in self._made:
            form = abridge(self.procedure, text_chars, max_pitfalls, max_steps)
            self._made[key] = (form, self.cost(form))
        return self._made[key]

    def one_step(self) -> tuple[P, int] | None:
        """The smallest form that keeps a step: the first one, abridged."""
        return self.abridged(*ABRIDGED_FORMS[-1], max_steps=1) if self.procedure.steps else None

    def smallest(self) -> tuple[P, int] | None:
        """The smallest form: its title, when-to-use (abridged) and id, its steps left to get_procedure."""
        return self.abridged(*ABRIDGED_FORMS[-1], max_steps=0) if self.procedure.steps else None

    def largest_abridged(self, room: int, headline: bool = True) -> tuple[P, int] | None:
        """The largest abridged form that fits in `room` characters, and its cost; None if none does.
        Without `headline`, only forms that keep a step."""
        first = self.abridged(*ABRIDGED_FORMS[0])
        if first[1] <= room:
            return first
        # The form with its first step alone decides at once whether any form with a step fits; with
        # none, the smallest form may still.
        if self.abridged(*ABRIDGED_FORMS[-1], max_steps=1)[1] > room:
            smallest = self.smallest() if headline else None
            return smallest if smallest is not None and smallest[1] <= room else None
        for text_chars, max_pitfalls in ABRIDGED_FORMS[1:]:
            form = self.abridged(text_chars, max_pitfalls)
            if form[1] <= room:
                return form
        low, high = 1, len(self.procedure.steps)  # the most leading steps that fit: the first one does
        while low < high:
            middle = (low + high + 1) // 2
            if self.abridged(*ABRIDGED_FORMS[-1], max_steps=middle)[1] <= room:
                low = middle
            else:
                high = middle - 1
        return self.abridged(*ABRIDGED_FORMS[-1], max_steps=low)


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
