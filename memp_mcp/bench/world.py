"""A small deterministic text world in the spirit of ALFWorld, for the lifelong benchmark.

Rooms hold receptacles (some closed) and objects; tasks come from six families (place; clean,
heat or cool then place; examine under the desk lamp; place two). Each family has hidden rules a
newcomer learns only by trial and error:
- only the sink basin cleans (the bathtub and the countertop look as if they might);
- only the microwave heats, and only once it has been opened (the stove burner does nothing);
- only the fridge cools, and only once it has been opened;
- an object is examined by holding it and using the desk lamp (examining it does nothing).
Invalid actions answer "Nothing happens." and change nothing, as in ALFWorld. No MCP here.

The rules can drift (`Rules`, `DRIFTS`): from a chosen episode on, a device stops working and
another takes its place, a device must now be switched on first, or every kind of object gets a
new usual place. Nothing announces a drift; an agent notices it only when an action that used to
work answers "Nothing happens." or a thing is not where it was.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

NOTHING = "Nothing happens."
STEP_BUDGET = 30

# Where objects may start, and where tasks may ask them to go.
HIDING_PLACES = [
    "countertop 1",
    "countertop 2",
    *(f"cabinet {n}" for n in range(1, 7)),
    *(f"drawer {n}" for n in range(1, 5)),
    "shelf 1",
    "shelf 2",
    "shelf 3",
    "diningtable 1",
    "desk 1",
    "sidetable 1",
    "dresser 1",
]
RECEPTACLES = [
    *HIDING_PLACES,
    "fridge 1",
    "microwave 1",
    "sinkbasin 1",
    "bathtub 1",
    "stoveburner 1",
    "desklamp 1",
    "garbagecan 1",
]
CLOSED_AT_START = {p for p in RECEPTACLES if p.startswith(("cabinet", "drawer"))} | {"fridge 1", "microwave 1"}
TARGETS = [
    "cabinet 1",
    "cabinet 2",
    "drawer 1",
    "shelf 1",
    "shelf 2",
    "diningtable 1",
    "desk 1",
    "countertop 2",
    "garbagecan 1",
    "sidetable 1",
]
OBJECTS = {
    "place": ["book", "pen", "cd", "keychain", "remotecontrol", "vase", "candle"],
    "clean": ["mug", "plate", "knife", "soapbar", "cloth", "apple"],
    "heat": ["egg", "potato", "mug", "bread", "plate"],
    "cool": ["apple", "lettuce", "tomato", "cup", "bottle"],
    "examine": ["book", "cd", "pen", "keychain", "alarmclock"],
    "two": ["book", "pen", "cd", "candle", "keychain"],
}
FAMILIES = list(OBJECTS)
# Each kind of object has a usual place (mugs in one cabinet, pens in one drawer, ...), where it is
# most of the time; another hidden regularity that memory can carry from one episode to the next.
HOMES = {
    thing: random.Random(f"home-{thing}").choice([p for p in HIDING_PLACES if p.startswith(("cabinet", "drawer"))])
    for thing in sorted({t for things in OBJECTS.values() for t in things})
}
AT_HOME = 0.8
CLEANER, HEATER, COOLER, LAMP = "sinkbasin 1", "microwave 1", "fridge 1", "desklamp 1"
# What can be switched on ("turn on X"); doing so where it is not needed is harmless and useless.
SWITCHABLE = frozenset({"stoveburner 1", "microwave 1", "sinkbasin 1", "desklamp 1"})
TRANSFORMS = {"clean": "clean", "heat": "hot", "cool": "cool"}  # verb -> the state it gives


@dataclass(frozen=True)
class Rules:
    """The world's hidden rules: which device does each job, what must be switched on first, where things live."""

    devices: dict[str, str] = field(default_factory=lambda: {"clean": CLEANER, "heat": HEATER, "cool": COOLER})
    switch_on_first: frozenset[str] = frozenset()
    homes: dict[str, str] = field(default_factory=lambda: dict(HOMES))


@dataclass(frozen=True)
class Drift:
    """A change of the hidden rules, applied from a chosen episode on."""

    name: str
    description: str
    apply: Callable[[Rules], Rules]


def _new_homes(rules: Rules) -> Rules:
    closed_places = [p for p in HIDING_PLACES if p.startswith(("cabinet", "drawer"))]
    homes = {
        thing: random.Random(f"moved-home-{thing}").choice([p for p in closed_places if p != home])
        for thing, home in rules.homes.items()
    }
    return replace(rules, homes=homes)


DRIFTS = {
    "heater": Drift(
        "heater",
        "the microwave stops heating; the stove burner heats instead, once switched on",
        lambda r: replace(
            r, devices={**r.devices, "heat": "stoveburner 1"}, switch_on_first=r.switch_on_first | {"stoveburner 1"}
        ),
    ),
    "tap": Drift(
        "tap",
        "the sink basin cleans only once its tap is switched on",
        lambda r: replace(r, switch_on_first=r.switch_on_first | {CLEANER}),
    ),
    "homes": Drift("homes", "every kind of object gets a new usual place", _new_homes),
}
DEFAULT_RULES = Rules()


def drifted(names: list[str], rules: Rules = DEFAULT_RULES) -> Rules:
    """`rules` after the named drifts (see DRIFTS)."""
    for name in names:
        rules = DRIFTS[name].apply(rules)
    return rules


@dataclass(frozen=True)
class Task:
    family: str
    thing: str
    target: str

    @property
    def text(self) -> str:
        return {
            "place": f"put a {self.thing} in {self.target}",
            "clean": f"put a clean {self.thing} in {self.target}",
            "heat": f"put a hot {self.thing} in {self.target}",
            "cool": f"put a cool {self.thing} in {self.target}",
            "examine": f"examine the {self.thing} with the desklamp",
            "two": f"put two {self.thing} in {self.target}",
        }[self.family]


def receptacle_name(instance: str) -> str:
    return instance.rsplit(" ", 1)[0]


@dataclass
class World:
    """One episode's room: where everything is, what is open, what the agent holds."""

    task: Task
    contents: dict[str, list[str]]
    closed: set[str] = field(default_factory=lambda: set(CLOSED_AT_START))
    location: str | None = None
    holding: str | None = None
    states: dict[str, set[str]] = field(default_factory=dict)
    rules: Rules = DEFAULT_RULES
    switched_on: set[str] = field(default_factory=set)
    examined: bool = False
    steps: int = 0
    failed_actions: int = 0

    @classmethod
    def generate(cls, task: Task, seed: int, rules: Rules = DEFAULT_RULES) -> World:
        rng = random.Random(seed)
        contents: dict[str, list[str]] = {r: [] for r in RECEPTACLES}
        wanted = 2 if task.family == "two" else 1
        for number in range(1, wanted + 1):
            home = rules.homes[task.thing]
            place = (
                home
                if home != task.target and rng.random() < AT_HOME
                else rng.choice([p for p in HIDING_PLACES if p not in (task.target, home)])
            )
            contents[place].append(f"{task.thing} {number}")
        clutter = [t for family in OBJECTS.values() for t in family if t != task.thing]
        for number, thing in enumerate(rng.sample(sorted(set(clutter)), 6), start=1):
            contents[rng.choice(HIDING_PLACES)].append(f"{thing} {number}")
        return cls(task=task, contents=contents, rules=rules)

    # -- acting --------------------------------------------------------------------------

    def act(self, action: str) -> str:
        """Do one action; returns the observation. Every call costs a step."""
        self.steps += 1
        observation = self._dispatch(" ".join(action.strip().lower().split()))
        if observation == NOTHING:
            self.failed_actions += 1
        return observation

    def _dispatch(self, action: str) -> str:
        words = action.split()
        if action == "look":
            return f"You are at {self.location or 'the middle of the room'}."
        if action == "inventory":
            return f"You are carrying: {self.holding}." if self.holding else "You are not carrying anything."
        if action.startswith("go to "):
            return self._go(action[6:])
        if len(words) == 2 and words[0] in ("open", "close"):
            return NOTHING
        if words and words[0] in ("open", "close"):
            return self._open_close(words[0], " ".join(words[1:]))
        if words and words[0] == "take" and " from " in action:
            thing, place = action[5:].split(" from ", 1)
            return self._take(thing, place)
        if words and words[0] == "put" and " in/on " in action:
            thing, place = action[4:].split(" in/on ", 1)
            return self._put(thing, place)
        for verb, state in TRANSFORMS.items():
            if words and words[0] == verb and " with " in action:
                thing, place = action[len(verb) + 1 :].split(" with ", 1)
                return self._transform(thing, place, state, self.rules.devices[verb], verb)
        if action.startswith(("turn on ", "switch on ")):
            return self._switch_on(action.split(" ", 2)[2])
        if action.startswith("use "):
            return self._use(action[4:])
        return NOTHING

    def _go(self, place: str) -> str:
        if place not in self.contents:
            return NOTHING
        self.location = place
        if place in self.closed:
            return f"You arrive at {place}. The {place} is closed."
        return f"You arrive at {place}. {self._describe(place)}"

    def _describe(self, place: str) -> str:
        things = self.contents[place]
        return f"On the {place}, you see " + (", ".join(f"a {t}" for t in things) if things else "nothing") + "."

    def _open_close(self, verb: str, place: str) -> str:
        if place != self.location or place not in CLOSED_AT_START:
            return NOTHING
        if verb == "open":
            if place not in self.closed:
                return NOTHING
            self.closed.discard(place)
            return f"You open the {place}. {self._describe(place)}"
        if place in self.closed:
            return NOTHING
        self.closed.add(place)
        return f"You close the {place}."

    def _take(self, thing: str, place: str) -> str:
        if self.holding or place != self.location or place in self.closed or thing not in self.contents.get(place, []):
            return NOTHING
        self.contents[place].remove(thing)
        self.holding = thing
        return f"You pick up the {thing} from the {place}."

    def _put(self, thing: str, place: str) -> str:
        if self.holding != thing or place != self.location or place in self.closed:
            return NOTHING
        self.contents[place].append(thing)
        self.holding = None
        return f"You put the {thing} in/on the {place}."

    def _switch_on(self, place: str) -> str:
        if place != self.location or place not in SWITCHABLE:
            return NOTHING
        self.switched_on.add(place)
        return f"You turn on the {place}."

    def _transform(self, thing: str, place: str, state: str, device: str, verb: str) -> str:
        # The hidden rules: one device does the job, a closed one does nothing, and some must be switched on.
        if self.holding != thing or place != self.location or place != device or place in self.closed:
            return NOTHING
        if place in self.rules.switch_on_first and place not in self.switched_on:
            return NOTHING
        self.states.setdefault(thing, set()).add(state)
        return f"You {verb} the {thing} using the {place}."

    def _use(self, place: str) -> str:
        if place != LAMP or self.location != LAMP:
            return NOTHING
        if self.holding and receptacle_name(self.holding) == self.task.thing:
            self.examined = True
        return f"You turn on the {place}."

    # -- judging ---------------------------------------------------------------------------

    @property
    def solved(self) -> bool:
        task = self.task
        if task.family == "examine":
            return self.examined
        placed = [t for t in self.contents[task.target] if receptacle_name(t) == task.thing]
        needed = {"clean": "clean", "heat": "hot", "cool": "cool"}.get(task.family)
        if needed:
            placed = [t for t in placed if needed in self.states.get(t, set())]
        return len(placed) >= (2 if task.family == "two" else 1)

    @property
    def out_of_steps(self) -> bool:
        return self.steps >= STEP_BUDGET


def task_stream(count: int, seed: int) -> list[tuple[Task, int]]:
    """`count` tasks (with a world seed each), cycling through the families in a seeded order."""
    rng = random.Random(seed)
    tasks = []
    for index in range(count):
        family = FAMILIES[index % len(FAMILIES)] if index < len(FAMILIES) else rng.choice(FAMILIES)
        thing = rng.choice(OBJECTS[family])
        target = LAMP if family == "examine" else rng.choice(TARGETS)
        tasks.append((Task(family, thing, target), rng.randrange(1 << 30)))
    return tasks


def oracle_actions(world: World) -> list[str]:
    """A plan by someone who knows the rules and where things are (for tests)."""
    task = world.task
    actions: list[str] = []
    opened: set[str] = set()
    switched: set[str] = set()
    instances = sorted(
        t for place, things in world.contents.items() for t in things if receptacle_name(t) == task.thing
    )[: 2 if task.family == "two" else 1]
    for thing in instances:
        place = next(p for p, things in world.contents.items() if thing in things)
        actions.append(f"go to {place}")
        if place in CLOSED_AT_START and place not in opened:
            actions.append(f"open {place}")
            opened.add(place)
        actions.append(f"take {thing} from {place}")
        device = world.rules.devices.get(task.family)
        if device:
            actions.append(f"go to {device}")
            if device in CLOSED_AT_START and device not in opened:
                actions.append(f"open {device}")
                opened.add(device)
            if device in world.rules.switch_on_first and device not in switched:
                actions.append(f"turn on {device}")
                switched.add(device)
            verb = {"clean": "clean", "heat": "heat", "cool": "cool"}[task.family]
            actions.append(f"{verb} {thing} with {device}")
        if task.family == "examine":
            actions += [f"go to {LAMP}", f"use {LAMP}"]
            break
        actions.append(f"go to {task.target}")
        if task.target in CLOSED_AT_START and task.target not in opened:
            actions.append(f"open {task.target}")
            opened.add(task.target)
        actions.append(f"put {thing} in/on {task.target}")
    return actions


def routine_stream(count: int, seed: int, pool: int) -> list[tuple[Task, int]]:
    """`count` tasks drawn with repetition from `pool` recurring ones (each episode in a fresh room).

    An agent's work is mostly recurring chores; this is the stream in which memory of how a task
    was done, and of how it stopped working, is tested.
    """
    rng = random.Random(f"routine-{seed}")
    chores = [task for task, _ in task_stream(pool, seed)]
    return [(rng.choice(chores), rng.randrange(1 << 30)) for _ in range(count)]
