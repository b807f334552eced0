"""Scripted agents for the simulated world, using procedural memory as a careful agent would.

An agent recalls before a task and reads the recalled text the way a language model would: it
looks for verbs and the things they act on (which device cleans, heats or cools; what must be
opened or switched on first; where the object was taken from; which actions did not work or no
longer work), whatever the exact wording of the steps. It follows what it read, falls back to
trial and error where the text is silent or wrong, and notices when a step that memory vouched
for no longer works or a thing is not where memory said. Then it records its trajectory and
reports the outcome with what it learned: the step that failed and what worked instead (on a
failure, as a corrected procedure). It learns the world's hidden rules only through that text.
The memory is reached through `MemoryPort`; the benchmark plugs in an MCP client.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from memp_mcp.bench.world import (
    CLOSED_AT_START,
    HIDING_PLACES,
    LAMP,
    NOTHING,
    RECEPTACLES,
    SWITCHABLE,
    Task,
    World,
    receptacle_name,
)

VERBS = {"clean": "clean", "heat": "heat", "cool": "cool"}
# Words a procedure may use for each job.
VERB_WORDS = {
    "clean": ("clean", "cleaned", "cleaning", "wash", "washed", "rinse", "rinsed"),
    "heat": ("heat", "heated", "heating", "warm", "warmed", "microwave it"),
    "cool": ("cool", "cooled", "cooling", "chill", "chilled"),
}
# Where a newcomer would look for each job: the real device is one of several plausible ones.
DEVICE_GUESSES = {
    "clean": ["countertop 1", "bathtub 1", "sinkbasin 1"],
    "heat": ["stoveburner 1", "microwave 1", "countertop 2"],
    "cool": ["countertop 2", "fridge 1", "shelf 1"],
}
# Everyday names a text may use for the world's receptacles.
ALIASES = {
    "sink basin": "sinkbasin",
    "sink": "sinkbasin",
    "stove burner": "stoveburner",
    "stove": "stoveburner",
    "desk lamp": "desklamp",
    "lamp": "desklamp",
    "garbage can": "garbagecan",
    "dining table": "diningtable",
    "side table": "sidetable",
}
_FAILED = (
    "did not work",
    "didn't work",
    "does not work",
    "doesn't work",
    "no longer",
    "nothing happens",
    "failed",
    "fails",
    "stopped",
    "not any more",
    "any more",
    "anymore",
)
_NO_LONGER = ("no longer", "stopped", "not any more", "any more", "anymore")
NO_LONGER_WORKS = "no longer works (Nothing happens, even once it is open and switched on)"
_PREPARE_NOTE = {None: "", "open": " (open it first)", "turn on": " (switch it on first)"}
_RECEPTACLE_KINDS = sorted({receptacle_name(r) for r in RECEPTACLES}, key=len, reverse=True)
_MENTION = re.compile(r"\b(" + "|".join(_RECEPTACLE_KINDS) + r")(?:\s+(\d+))?\b")


class MemoryPort(Protocol):
    async def recall(self, task: str) -> tuple[str | None, list[dict[str, Any]], int]: ...

    async def record(self, task: str, steps: list[dict[str, str]], outcome: str, agent: str) -> None: ...

    async def report(self, report: OutcomeReport) -> None: ...


@dataclass(frozen=True)
class Skill:
    name: str
    budget: int
    noise: float  # chance of a wasted, random action at each decision
    systematic: bool  # opens what is closed, tries every device and every fix, never walks past a closed door


STRONG = Skill("strong", budget=24, noise=0.0, systematic=True)
WEAK = Skill("weak", budget=20, noise=0.2, systematic=False)


@dataclass
class Knowledge:
    """What the recalled procedures told the agent."""

    devices: dict[str, list[str]] = field(default_factory=dict)  # verb -> devices the text says do it
    open_first: set[str] = field(default_factory=set)
    switch_on_first: set[str] = field(default_factory=set)
    places: list[str] = field(default_factory=list)  # where the object was found before
    avoid: set[tuple[str, str]] = field(default_factory=set)  # (verb, device) that did not work once
    stale: set[tuple[str, str]] = field(default_factory=set)  # (verb, device) that no longer works
    gone_from: set[str] = field(default_factory=set)  # places the object is no longer kept in
    storage: set[str] = field(default_factory=set)  # kinds of place other things were found in
    use_lamp: bool = False


def _normalise(text: str) -> str:
    text = " ".join(text.lower().split())
    for alias, name in ALIASES.items():
        text = re.sub(rf"\b{alias}\b", name, text)
    return text


def mentions(text: str) -> list[str]:
    """The receptacles a (normalised) text names, in order ("the microwave" is microwave 1)."""
    found = []
    for match in _MENTION.finditer(text):
        instance = f"{match.group(1)} {match.group(2) or 1}"
        if instance in RECEPTACLES:
            found.append(instance)
    return found


def _verb_of(text: str) -> str | None:
    words = f" {re.sub(r'[^a-z ]', ' ', text)} "
    for verb, forms in VERB_WORDS.items():
        if any(f" {form} " in words for form in forms):
            return verb
    return None


def _prepared(text: str, verb: str) -> list[str]:
    """Receptacles the text says to open (or switch on) first: "open the fridge", "switch it on first"."""
    direct = [m.group(0) for m in re.finditer(rf"\b{verb}\s+(?:the\s+)?{_MENTION.pattern}", text)]
    found = [n for d in direct for n in mentions(d)]
    pronoun = {"open": r"\bopen it\b", "on": r"\b(?:switch|turn)(?:ed)? (?:it )?on\b"}[verb.split()[-1]]
    if re.search(pronoun, text):
        found += mentions(text)[-1:]
    return found


def read_procedure(procedure: dict[str, Any], task: Task, knowledge: Knowledge | None = None) -> Knowledge:
    """Add what a recalled procedure (steps, pitfalls, worked example) says about this task.

    Devices and what to open or switch on hold for any object; where an object was found is used
    only when the text is about the same kind of object (it names it, or its worked example's task
    does), since each kind of object has its own usual place. Each sentence or clause is read on
    its own.
    """
    knowledge = knowledge or Knowledge()
    example_task = str(procedure.get("exemplar_task") or procedure.get("title") or "").lower()
    same_object = task.thing in re.findall(r"[a-z]+", example_task)

    def fill(text: str) -> str:
        text = re.sub(r"\{(object|item|thing|obj)\w*\}", task.thing, text, flags=re.IGNORECASE)
        text = re.sub(r"\{(target|place|destination|receptacle)\w*\}", task.target, text, flags=re.IGNORECASE)
        return _normalise(text)

    lines = [(str(s), False) for s in procedure.get("steps") or []]
    lines += [(clause, True) for s in procedure.get("pitfalls") or [] for clause in re.split(r";|\. ", str(s))]
    for step in procedure.get("exemplar") or []:
        if step.get("observation") != NOTHING:
            lines.append((str(step.get("action", "")), False))
    for raw, is_pitfall in lines:
        text = fill(raw)
        named = [n for n in mentions(text) if n != task.target]
        no_longer = any(word in text for word in _NO_LONGER)
        failed = (is_pitfall and any(word in text for word in _FAILED)) or no_longer
        if not failed:
            knowledge.open_first.update(_prepared(text, "open"))
            knowledge.switch_on_first.update(_prepared(text, "switch on") + _prepared(text, "turn on"))
        verb = _verb_of(text)
        if verb and named:
            device = named[0] if failed else named[-1]
            if failed:
                knowledge.avoid.add((verb, device))
                if no_longer:
                    knowledge.stale.add((verb, device))
            elif device not in knowledge.devices.get(verb, []):
                knowledge.devices.setdefault(verb, []).append(device)
            continue
        about_it = task.thing in re.findall(r"[a-z]+", text) and ("{" not in raw or same_object)
        taken = re.search(r"\b(take|took|pick|picked|get|got|grab|find|found|fetch|look)\b", text)
        if named and not verb and not failed and taken and not about_it:
            # Where other things were found says what kind of place things are kept in.
            knowledge.storage.update(receptacle_name(n) for n in named if n in HIDING_PLACES)
        if named and about_it and not verb:
            place = named[-1]
            if failed:
                knowledge.gone_from.add(place)
            elif taken and place in HIDING_PLACES and place not in knowledge.places:
                knowledge.places.append(place)
        if LAMP in named and not failed and re.search(r"\b(use|turn on|switch on)\b", text):
            knowledge.use_lamp = True
    return knowledge


def memory_chars(procedures: list[dict[str, Any]]) -> int:
    return sum(
        len(str(p.get("steps")))
        + len(str(p.get("pitfalls")))
        + len(str(p.get("exemplar") or ""))
        + len(str(p.get("title")))
        for p in procedures
    )


@dataclass
class Learned:
    """What the agent found out during one episode, to report."""

    stale: list[tuple[str, str]] = field(default_factory=list)  # (verb, device) memory vouched for, no longer working
    device: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # verb -> (device, "open"/"turn on")
    found_at: str | None = None
    not_at: list[str] = field(default_factory=list)  # places memory pointed to, without the object


def memory_name(agent: str) -> str:
    """The name a scripted agent records and reports under: lessons reach the procedures of that name."""
    return f"{agent} scripted agent"


@dataclass
class OutcomeReport:
    """A report_outcome call: the recall, the procedure followed, the outcome and what was learned."""

    recall_id: str
    procedure_id: int | None
    success: bool
    notes: str
    steps: list[dict[str, str]]
    correction: dict[str, Any] | None = None
    agent: str | None = None


@dataclass
class EpisodeResult:
    task: str
    family: str
    success: bool
    steps: int
    failed_actions: int
    memory_chars: int
    used_memory: bool
    misled: bool = False  # memory vouched for something that no longer held


class Agent:
    """Plays one episode at a time in a World, with or without memory."""

    def __init__(self, skill: Skill, seed: int) -> None:
        self.skill = skill
        self.rng = random.Random(seed)

    async def run(self, world: World, memory: MemoryPort | None) -> EpisodeResult:
        task = world.task
        recall_id: str | None = None
        procedures: list[dict[str, Any]] = []
        chars = 0
        if memory is not None:
            recall_id, procedures, chars = await memory.recall(task.text)
        knowledge = Knowledge()
        for procedure in procedures:
            knowledge = read_procedure(procedure, task, knowledge)
        trajectory: list[dict[str, str]] = []
        learned = Learned()

        def act(action: str) -> str:
            observation = world.act(action)
            trajectory.append({"action": action, "observation": observation})
            return observation

        with contextlib.suppress(_OutOfSteps):
            self._play(world, knowledge, learned, act)
        success = world.solved
        if memory is not None:
            await memory.record(task.text, trajectory, "success" if success else "failure", self.skill.name)
            if recall_id is not None:
                followed = procedures[0] if procedures else {}
                await memory.report(
                    OutcomeReport(
                        recall_id=recall_id,
                        procedure_id=followed.get("id"),
                        success=success,
                        notes=self._notes(task, learned, world, success),
                        steps=trajectory,
                        correction=self._correction(task, knowledge, learned, followed),
                        agent=self.skill.name,
                    )
                )
        misled = bool(learned.stale or learned.not_at)
        return EpisodeResult(
            task.text, task.family, success, world.steps, world.failed_actions, chars, bool(procedures), misled
        )

    # -- what the agent tells the memory -------------------------------------------------------

    @staticmethod
    def _notes(task: Task, learned: Learned, world: World, success: bool) -> str:
        parts = [f'"{verb} the {task.thing} with {device}" {NO_LONGER_WORKS}' for verb, device in learned.stale]
        if learned.stale:
            for verb, (device, prepare) in learned.device.items():
                parts.append(f'"{verb} the {task.thing} with {device}" worked instead{_PREPARE_NOTE[prepare]}')
        parts += [f"the {task.thing} was not in {place} this time" for place in learned.not_at]
        if learned.not_at and learned.found_at:
            parts.append(f"found the {task.thing} in {learned.found_at}")
        if not success:
            parts.append(f"ran out of steps after {world.steps} actions")
        return "; ".join(parts)

    @staticmethod
    def _correction(
        task: Task, knowledge: Knowledge, learned: Learned, followed: dict[str, Any]
    ) -> dict[str, Any] | None:
        """When memory misled it: the followed procedure rewritten with what worked instead."""
        if not (learned.stale or learned.not_at) or not followed:
            return None
        place = learned.found_at or next((p for p in knowledge.places if p not in learned.not_at), None)
        steps: list[str] = []
        if place:
            steps.append(f"go to {place}")
            if place in CLOSED_AT_START:
                steps.append(f"open {place}")
            steps.append(f"take the {{object}} from {place}")
            steps += [f"if the {{object}} is not there, look in {other}" for other in learned.not_at if other != place]
        else:
            steps.append("find the {object} (look in the cabinets and drawers, opening them)")
        verb = VERBS.get(task.family)
        if verb:
            if verb in learned.device:
                device, prepare = learned.device[verb]
            else:
                stale = set(learned.stale) | knowledge.stale
                device = next((d for d in knowledge.devices.get(verb, []) if (verb, d) not in stale), "")
                prepare = (
                    "open"
                    if device in knowledge.open_first
                    else "turn on"
                    if device in knowledge.switch_on_first
                    else None
                )
            if device:
                steps.append(f"go to {device}")
                if prepare:
                    steps.append(f"{prepare} {device}")
                steps.append(f"{verb} the {{object}} with {device}")
            else:
                steps.append(f"{verb} the {{object}} (the usual device no longer works; try the others)")
        if task.family == "examine":
            steps += [f"go to {LAMP}", f"use {LAMP} while holding the {{object}}"]
        else:
            steps += ["go to {target}", "put the {object} in/on {target}"]
        pitfalls = [f'"{verb} the {{object}} with {device}" {NO_LONGER_WORKS}' for verb, device in learned.stale]
        pitfalls += [f"the {{object}} was not in {place} once" for place in learned.not_at]
        return {
            "title": str(followed.get("title") or task.text)[:200],
            "steps": steps,
            "pitfalls": pitfalls,
            "when_to_use": followed.get("when_to_use") or None,
        }

    # -- the policy ------------------------------------------------------------------------

    def _play(self, world: World, knowledge: Knowledge, learned: Learned, act: Callable[[str], str]) -> None:
        task = world.task

        def step(action: str) -> str:
            if world.steps >= self.skill.budget or world.solved:
                raise _OutOfSteps
            if self.skill.noise and self.rng.random() < self.skill.noise:
                wasted = ["look", "inventory", f"examine {task.thing}", f"go to {self.rng.choice(RECEPTACLES)}"]
                act(self.rng.choice(wasted))
                if world.steps >= self.skill.budget:
                    raise _OutOfSteps
            return act(action)

        wanted = 2 if task.family == "two" else 1
        for _ in range(wanted):
            thing = self._find(world, knowledge, learned, step)
            if thing is None:
                return
            if task.family in VERBS:
                self._transform(world, knowledge, learned, step, thing, VERBS[task.family])
            if task.family == "examine":
                self._examine(knowledge, step, thing)
                return
            step(f"go to {task.target}")
            if task.target in world.closed:
                step(f"open {task.target}")
            step(f"put {thing} in/on {task.target}")

    def _find(self, world: World, knowledge: Knowledge, learned: Learned, step: Callable[[str], str]) -> str | None:
        places = [p for p in HIDING_PLACES if p != world.task.target]
        places = self.rng.sample(places, len(places))  # a newcomer has no reason to prefer any place
        remembered = [p for p in knowledge.places if p in places and p not in knowledge.gone_from]
        storage = [p for p in places if receptacle_name(p) in knowledge.storage and p not in remembered]
        order = remembered + storage + [p for p in places if p not in remembered and p not in storage]
        for place in order:
            observation = step(f"go to {place}")
            if place in world.closed:
                if not self.skill.systematic and place not in remembered and self.rng.random() < 0.3:
                    continue  # a careless agent walks past closed doors, unless told what is behind one
                observation = step(f"open {place}")
            for seen in re.findall(r"a ([a-z]+ \d+)", observation):
                if receptacle_name(seen) == world.task.thing and step(f"take {seen} from {place}") != NOTHING:
                    learned.found_at = place
                    return str(seen)
            if place in remembered and place not in learned.not_at and learned.found_at is None:
                learned.not_at.append(place)
        return None

    def _transform(
        self, world: World, knowledge: Knowledge, learned: Learned, step: Callable[[str], str], thing: str, verb: str
    ) -> None:
        guesses = DEVICE_GUESSES[verb]
        if not self.skill.systematic:
            guesses = self.rng.sample(guesses, len(guesses))
        known = [d for d in knowledge.devices.get(verb, []) if d in RECEPTACLES and (verb, d) not in knowledge.stale]
        devices = known + [d for d in guesses if d not in known and (verb, d) not in knowledge.stale]
        switched: set[str] = set()
        # What memory says did not work comes last, not never: a careful agent tries it once the rest failed.
        devices = [d for d in devices if (verb, d) not in knowledge.avoid or d in known] + [
            d for d in devices if (verb, d) in knowledge.avoid and d not in known
        ]
        for device in devices:
            action = f"{verb} {thing} with {device}"
            step(f"go to {device}")
            prepared: str | None = None
            if device in knowledge.open_first and device in world.closed:
                step(f"open {device}")
                prepared = "open"
            if device in knowledge.switch_on_first and device in SWITCHABLE:
                step(f"turn on {device}")
                switched.add(device)
                prepared = "turn on"
            if step(action) != NOTHING:
                learned.device[verb] = (device, prepared)
                return
            # Trial and error: perhaps it has to be opened, or switched on, first.
            if self.skill.systematic or self.rng.random() < 0.5:
                fix = "open" if device in world.closed else "turn on" if device in SWITCHABLE - switched else None
                if fix:
                    step(f"{fix} {device}")
                    if step(action) != NOTHING:
                        learned.device[verb] = (device, fix)
                        return
            if device in known:
                learned.stale.append((verb, device))

    def _examine(self, knowledge: Knowledge, step: Callable[[str], str], thing: str) -> None:
        if not knowledge.use_lamp:
            step(f"examine {thing}")  # the obvious guess, which does nothing here
        step(f"go to {LAMP}")
        step(f"use {LAMP}")


class _OutOfSteps(Exception):
    pass


AsyncCall = Callable[[str, dict[str, Any]], Awaitable[Any]]


class McpMemory:
    """MemoryPort over an MCP client session (stdio or in memory): the tools, by name.

    `attribute` says whether report_outcome takes the `procedure_id` of the procedure that was
    followed (servers that do not only know what the recall returned; recall k=1 then keeps the
    attribution exact).
    """

    def __init__(self, call_tool: AsyncCall, k: int = 3, attribute: bool = False) -> None:
        self.call_tool = call_tool
        self.k = k
        self.attribute = attribute

    async def recall(self, task: str) -> tuple[str | None, list[dict[str, Any]], int]:
        result = await self.call_tool("recall_procedure", {"task": task, "k": self.k})
        if result.is_error:
            raise RuntimeError(f"recall_procedure failed: {result.content}")
        data = result.structured_content or {}
        procedures = list(data.get("procedures") or [])
        return data.get("recall_id"), procedures, memory_chars(procedures)

    async def record(self, task: str, steps: list[dict[str, str]], outcome: str, agent: str) -> None:
        result = await self.call_tool(
            "record_trajectory", {"task": task, "steps": steps, "outcome": outcome, "agent": memory_name(agent)}
        )
        if result.is_error:
            raise RuntimeError(f"record_trajectory failed: {result.content}")

    async def report(self, report: OutcomeReport) -> None:
        arguments: dict[str, Any] = {
            "recall_id": report.recall_id,
            "success": report.success,
            "trajectory": report.steps,
        }
        if report.notes:
            arguments["notes"] = report.notes
        if report.correction:
            arguments["correction"] = report.correction
        if self.attribute and report.procedure_id is not None:
            arguments["procedure_id"] = report.procedure_id
        if report.agent:
            arguments["agent"] = memory_name(report.agent)
        result = await self.call_tool("report_outcome", arguments)
        if result.is_error:
            raise RuntimeError(f"report_outcome failed: {result.content}")


async def reports_take_procedure_id(list_tools: Callable[[], Awaitable[Any]]) -> bool:
    """Whether the server's report_outcome accepts the id of the procedure that was followed."""
    tools = (await list_tools()).tools
    return any(t.name == "report_outcome" and "procedure_id" in (t.input_schema.get("properties") or {}) for t in tools)
