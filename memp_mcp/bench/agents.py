"""Scripted agents for the simulated world, using procedural memory exactly as a real agent would.

An agent recalls before a task, reads what the recalled procedure says (which device does the
job, what must be opened first, where things were found, which actions failed before), acts in
the world, falls back to trial and error where the procedure is silent or wrong, then records its
trajectory and reports the outcome. It learns the world's hidden rules only through that text.
The memory is reached through `MemoryPort`; the benchmark plugs in a real MCP client.
"""

from __future__ import annotations

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
    Task,
    World,
    receptacle_name,
)

VERBS = {"clean": "clean", "heat": "heat", "cool": "cool"}
# Where a newcomer would look for each job: the real device is one of several plausible ones.
DEVICE_GUESSES = {
    "clean": ["countertop 1", "bathtub 1", "sinkbasin 1"],
    "heat": ["stoveburner 1", "microwave 1", "countertop 2"],
    "cool": ["countertop 2", "fridge 1", "shelf 1"],
}


class MemoryPort(Protocol):
    async def recall(self, task: str) -> tuple[str | None, list[dict[str, Any]], int]: ...

    async def record(self, task: str, steps: list[dict[str, str]], outcome: str, agent: str) -> None: ...

    async def report(self, recall_id: str, success: bool, notes: str, steps: list[dict[str, str]]) -> None: ...


@dataclass(frozen=True)
class Skill:
    name: str
    budget: int
    noise: float  # chance of a wasted, random action at each decision
    systematic: bool  # opens what is closed, tries every device, and never walks past a closed door


STRONG = Skill("strong", budget=30, noise=0.0, systematic=True)
WEAK = Skill("weak", budget=22, noise=0.2, systematic=False)


@dataclass
class Knowledge:
    """What the recalled procedures told the agent."""

    devices: dict[str, list[str]] = field(default_factory=dict)  # verb -> devices that worked
    open_first: set[str] = field(default_factory=set)
    places: list[str] = field(default_factory=list)  # where the object was found before
    avoid: set[tuple[str, str]] = field(default_factory=set)  # (verb, device) that failed before
    use_lamp: bool = False


_STEP = re.compile(r"^(clean|heat|cool) \{?\w[\w ]*?\}?(?: \d+)? with (\w+ \d+)$")


def read_procedure(procedure: dict[str, Any], task: Task, knowledge: Knowledge | None = None) -> Knowledge:
    """Add what a recalled procedure (steps, pitfalls, worked example) says about this task.

    Devices and what to open hold for any object; where an object was found is used only when
    the procedure is known to be about the same kind of object (its worked example's task names
    it, or its raw steps do), since each kind of object has its own usual place.
    """
    knowledge = knowledge or Knowledge()
    example_task = str(procedure.get("exemplar_task") or "").lower()
    same_object = task.thing in example_task.split()

    def fill(text: str) -> str:
        return " ".join(text.replace("{object}", task.thing).replace("{target}", task.target).lower().split())

    raw_lines = [str(s) for s in procedure.get("steps") or []]
    for step in procedure.get("exemplar") or []:
        if step.get("observation") != NOTHING:
            raw_lines.append(str(step.get("action", "")))
    previous = ""
    for raw in raw_lines:
        text = fill(raw)
        match = _STEP.match(text)
        if match:
            knowledge.devices.setdefault(match.group(1), []).append(match.group(2))
            if previous == f"open {match.group(2)}":
                knowledge.open_first.add(match.group(2))
        elif text.startswith("take ") and " from " in text:
            taken, place = text[5:].rsplit(" from ", 1)
            # A lifted step ("take {object} from ...") does not say which object it was about.
            about_it = same_object if "{object}" in raw else receptacle_name(taken) == task.thing
            if about_it and place in RECEPTACLES and place not in knowledge.places:
                knowledge.places.append(place)
        elif text == f"use {LAMP}":
            knowledge.use_lamp = True
        previous = text
    for pitfall in procedure.get("pitfalls") or []:
        quoted = re.match(r'^"([^"]+)" did not work', str(pitfall))
        failed = _STEP.match(fill(quoted.group(1))) if quoted else None
        if failed:
            knowledge.avoid.add((failed.group(1), failed.group(2)))
    return knowledge


def memory_chars(procedures: list[dict[str, Any]]) -> int:
    return sum(len(str(p.get("steps"))) + len(str(p.get("pitfalls"))) + len(str(p.get("exemplar") or ""))
               + len(str(p.get("title"))) for p in procedures)


@dataclass
class EpisodeResult:
    task: str
    family: str
    success: bool
    steps: int
    failed_actions: int
    memory_chars: int
    used_memory: bool


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

        def act(action: str) -> str:
            observation = world.act(action)
            trajectory.append({"action": action, "observation": observation})
            return observation

        try:
            self._play(world, knowledge, act)
        except _OutOfSteps:
            pass
        success = world.solved
        if memory is not None:
            await memory.record(task.text, trajectory, "success" if success else "failure", self.skill.name)
            if recall_id is not None:
                notes = "" if success else f"ran out of steps after {world.steps} actions"
                await memory.report(recall_id, success, notes, trajectory)
        return EpisodeResult(task.text, task.family, success, world.steps, world.failed_actions, chars, bool(procedures))

    # -- the policy ------------------------------------------------------------------------

    def _play(self, world: World, knowledge: Knowledge, act: Callable[[str], str]) -> None:
        task = world.task

        def step(action: str) -> str:
            if world.steps >= self.skill.budget or world.solved:
                raise _OutOfSteps
            if self.skill.noise and self.rng.random() < self.skill.noise:
                act(self.rng.choice(["look", "inventory", f"examine {task.thing}", f"go to {self.rng.choice(RECEPTACLES)}"]))
                if world.steps >= self.skill.budget:
                    raise _OutOfSteps
            return act(action)

        wanted = 2 if task.family == "two" else 1
        for _ in range(wanted):
            thing = self._find(world, knowledge, step)
            if thing is None:
                return
            if task.family in VERBS:
                self._transform(world, knowledge, step, thing, VERBS[task.family])
            if task.family == "examine":
                self._examine(knowledge, step, thing)
                return
            step(f"go to {task.target}")
            if task.target in world.closed:
                step(f"open {task.target}")
            step(f"put {thing} in/on {task.target}")

    def _find(self, world: World, knowledge: Knowledge, step: Callable[[str], str]) -> str | None:
        places = [p for p in HIDING_PLACES if p != world.task.target]
        places = self.rng.sample(places, len(places))  # a newcomer has no reason to prefer any place
        order = [p for p in knowledge.places if p in places] + [p for p in places if p not in knowledge.places]
        for place in order:
            observation = step(f"go to {place}")
            if place in world.closed:
                if not self.skill.systematic and self.rng.random() < 0.3:
                    continue  # a careless agent walks past closed doors
                observation = step(f"open {place}")
            for seen in re.findall(r"a ([a-z]+ \d+)", observation):
                if receptacle_name(seen) == world.task.thing:
                    if step(f"take {seen} from {place}") != NOTHING:
                        return str(seen)
        return None

    def _transform(self, world: World, knowledge: Knowledge, step: Callable[[str], str], thing: str, verb: str) -> None:
        guesses = DEVICE_GUESSES[verb]
        if not self.skill.systematic:
            guesses = self.rng.sample(guesses, len(guesses))
        known = knowledge.devices.get(verb, [])
        devices = [d for d in known if d in RECEPTACLES] + [d for d in guesses if d not in known]
        for device in devices:
            action = f"{verb} {thing} with {device}"
            if (verb, device) in knowledge.avoid and device not in known:
                continue
            step(f"go to {device}")
            if device in knowledge.open_first and device in world.closed:
                step(f"open {device}")
            if step(action) != NOTHING:
                return
            # Trial and error: perhaps it has to be opened first.
            if device in CLOSED_AT_START and device in world.closed and (self.skill.systematic or self.rng.random() < 0.5):
                step(f"open {device}")
                if step(action) != NOTHING:
                    return

    def _examine(self, knowledge: Knowledge, step: Callable[[str], str], thing: str) -> None:
        if not knowledge.use_lamp:
            step(f"examine {thing}")  # the obvious guess, which does nothing here
        step(f"go to {LAMP}")
        step(f"use {LAMP}")


class _OutOfSteps(Exception):
    pass


AsyncCall = Callable[[str, dict[str, Any]], Awaitable[Any]]


class McpMemory:
    """MemoryPort over an MCP client session (stdio or any transport): the tools, by name."""

    def __init__(self, call_tool: AsyncCall, k: int = 3) -> None:
        self.call_tool = call_tool
        self.k = k

    async def recall(self, task: str) -> tuple[str | None, list[dict[str, Any]], int]:
        result = await self.call_tool("recall_procedure", {"task": task, "k": self.k})
        if result.is_error:
            raise RuntimeError(f"recall_procedure failed: {result.content}")
        data = result.structured_content or {}
        procedures = list(data.get("procedures") or [])
        return data.get("recall_id"), procedures, memory_chars(procedures)

    async def record(self, task: str, steps: list[dict[str, str]], outcome: str, agent: str) -> None:
        result = await self.call_tool(
            "record_trajectory", {"task": task, "steps": steps, "outcome": outcome, "agent": f"{agent} scripted agent"}
        )
        if result.is_error:
            raise RuntimeError(f"record_trajectory failed: {result.content}")

    async def report(self, recall_id: str, success: bool, notes: str, steps: list[dict[str, str]]) -> None:
        arguments: dict[str, Any] = {"recall_id": recall_id, "success": success, "trajectory": steps}
        if notes:
            arguments["notes"] = notes
        result = await self.call_tool("report_outcome", arguments)
        if result.is_error:
            raise RuntimeError(f"report_outcome failed: {result.content}")
