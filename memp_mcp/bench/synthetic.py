"""Synthetic but realistic memory contents for the latency benchmark.

Tasks and trajectories from several domains (household, software, data, operations, office),
with varied phrasing, entity names and step lists of realistic length, so that the vector index,
the full-text index and the merge check see the variety a real user's memory has.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from memp_mcp.engine.build import extract_procedure
from memp_mcp.models import Outcome, ProcedureDraft, Step

# Bump when the generator or the build changes what a seed produces, so cached databases are rebuilt.
SYNTHETIC_VERSION = 3
# Family keys whose vectors a build keeps between batches (a few hundred occur; a bound all the same).
MAX_REMEMBERED_FAMILIES = 20_000

_DOMAINS: dict[str, dict[str, list[str]]] = {
    "household": {
        "verbs": ["put", "clean and put", "heat and put", "cool and put", "examine", "move", "bring"],
        "things": [
            "mug",
            "soapbar",
            "apple",
            "egg",
            "plate",
            "knife",
            "book",
            "cellphone",
            "pillow",
            "lettuce",
            "tomato",
            "spraybottle",
            "keychain",
            "remotecontrol",
            "candle",
            "cloth",
            "vase",
            "pen",
        ],
        "places": [
            "cabinet",
            "drawer",
            "countertop",
            "fridge",
            "microwave",
            "shelf",
            "desk",
            "sofa",
            "bed",
            "garbagecan",
            "sinkbasin",
            "diningtable",
            "dresser",
            "armchair",
            "sidetable",
        ],
        "actions": [
            "go to {place} {n}",
            "open {place} {n}",
            "take {thing} {n} from {place} {n}",
            "put {thing} {n} in/on {place} {n}",
            "close {place} {n}",
            "examine {thing} {n}",
            "use desklamp {n}",
            "clean {thing} {n} with sinkbasin {n}",
        ],
    },
    "software": {
        "verbs": [
            "fix the failing test in",
            "add logging to",
            "upgrade the dependencies of",
            "profile",
            "refactor",
            "add type hints to",
            "release a new version of",
            "write docs for",
        ],
        "things": [
            "the payments service",
            "the auth module",
            "the CLI",
            "the web frontend",
            "the parser",
            "the billing worker",
            "the search API",
            "the mobile app",
            "the data importer",
        ],
        "places": ["the monorepo", "the staging branch", "the main branch", "a feature branch"],
        "actions": [
            "git checkout -b fix-{n}",
            "pytest -x tests/test_{word}.py",
            "rg '{word}' src/",
            "edit src/{word}.py",
            "git commit -am 'fix {word}'",
            "pip install -U {word}",
            "python -m {word} --help",
            "git push origin fix-{n}",
            "open a pull request",
        ],
    },
    "data": {
        "verbs": ["clean", "deduplicate", "join", "aggregate", "export", "validate", "load", "chart"],
        "things": [
            "the sales table",
            "customer records",
            "the events log",
            "invoices",
            "survey answers",
            "sensor readings",
            "the product catalog",
            "support tickets",
        ],
        "places": ["into parquet", "into the warehouse", "as CSV", "into a dashboard", "for the weekly report"],
        "actions": [
            "SELECT count(*) FROM {word}",
            "df = pd.read_csv('{word}.csv')",
            "df.drop_duplicates()",
            "df.groupby('{word}').sum()",
            "COPY {word} TO '/tmp/{word}.csv'",
            "df.to_parquet('{word}.pq')",
            "check nulls in {word}",
            "plot {word} by week",
        ],
    },
    "operations": {
        "verbs": [
            "rotate the certificates of",
            "restart",
            "scale up",
            "back up",
            "upgrade",
            "debug a 502 on",
            "add monitoring to",
            "move to a new host",
        ],
        "things": [
            "the nginx proxy",
            "the postgres cluster",
            "the redis cache",
            "the kafka brokers",
            "the build runners",
            "the VPN gateway",
            "the object store",
        ],
        "places": ["in production", "in staging", "in the EU region", "on the edge nodes"],
        "actions": [
            "ssh {word}-{n}",
            "systemctl status {word}",
            "journalctl -u {word} -n 200",
            "kubectl get pods -n {word}",
            "kubectl rollout restart deploy/{word}",
            "certbot renew --cert-name {word}",
            "df -h",
            "curl -I https://{word}.internal",
        ],
    },
    "office": {
        "verbs": ["schedule", "summarise", "file", "answer", "book", "prepare", "archive"],
        "things": [
            "the quarterly review",
            "the travel expenses",
            "the onboarding notes",
            "the vendor contract",
            "the team offsite",
            "the hiring loop",
            "the board deck",
        ],
        "places": ["for next week", "in the shared drive", "with finance", "before Friday"],
        "actions": [
            "open calendar",
            "search mail for '{word}'",
            "create folder {word}",
            "draft reply about {word}",
            "attach {word}.pdf",
            "send invite to {word} team",
            "move {word} to archive",
        ],
    },
}
_WORDS = [
    "alpha",
    "orders",
    "users",
    "metrics",
    "ledger",
    "catalog",
    "gateway",
    "worker",
    "session",
    "report",
    "invoice",
    "cache",
    "backup",
    "search",
    "profile",
    "upload",
    "billing",
    "events",
    "audit",
    "config",
]
_OBSERVATIONS = [
    "Done. {n} items affected.",
    "OK",
    "You see a {word} {n} and a {word} {m}.",
    "Nothing happens.",
    "warning: {word} is deprecated; use {word}2 instead",
    "3 passed, 1 skipped in 0.{n}s",
    "Error: {word} not found",
    "The {word} {n} is closed.",
    "You pick up the {word} {n}.",
    "HTTP/1.1 200 OK content-length: {n}{m}",
    "{n} rows returned",
]


@dataclass(frozen=True)
class SyntheticTask:
    domain: str
    task: str
    steps: list[Step]


def _task(rng: random.Random, domain: str) -> str:
    vocabulary = _DOMAINS[domain]
    thing = rng.choice(vocabulary["things"])
    place = rng.choice(vocabulary["places"])
    verb = rng.choice(vocabulary["verbs"])
    if domain == "household":
        return f"{verb} a {thing} in the {place}" if "put" in verb else f"{verb} the {thing} near the {place}"
    detail = rng.choice(["", " quickly", " safely", " for the audit", " again", f" (ticket {rng.randint(100, 99999)})"])
    return f"{verb} {thing} {place}{detail}"


def _steps(rng: random.Random, domain: str, task: str) -> list[Step]:
    vocabulary = _DOMAINS[domain]
    words = [w for w in task.split() if len(w) > 3] or _WORDS
    steps = []
    for _ in range(rng.randint(8, 20)):
        fill = {
            "place": rng.choice(vocabulary["places"]).split()[-1],
            "thing": rng.choice(words),
            "word": rng.choice(_WORDS + words),
            "n": rng.randint(1, 9),
            "m": rng.randint(1, 9),
        }
        action = rng.choice(vocabulary["actions"]).format(**fill)
        observation = " ".join(rng.choice(_OBSERVATIONS).format(**fill) for _ in range(rng.randint(1, 4)))
        steps.append(Step(action=action, observation=observation))
    return steps


def synthetic_tasks(count: int, seed: int = 0) -> Iterator[SyntheticTask]:
    """`count` distinct tasks with trajectories; deterministic for a seed.

    The domains' vocabularies give a few thousand plain tasks; past that a task that came up before
    is told apart by what it is for (a component, a team, a place), as a large memory's tasks are.
    Repeats would make N procedures fewer distinct ones: a record of a task already known merges.
    """
    rng = random.Random(seed)
    domains = list(_DOMAINS)
    seen: set[str] = set()
    for _ in range(count):
        domain = rng.choice(domains)
        task = _task(rng, domain)
        while task in seen:
            task = f"{task} {_qualifier(rng)}"
        seen.add(task)
        yield SyntheticTask(domain, task, _steps(rng, domain, task))


def _qualifier(rng: random.Random) -> str:
    first, second = rng.sample(_WORDS, 2)
    form = rng.choice(["for the {a} {b} team", "in the {a}-{b} project", "on {a}-{n}", "behind the {a} {b}"])
    return form.format(a=first, b=second, n=rng.randint(1, 99))


def paraphrase(rng: random.Random, task: str) -> str:
    """A query an agent might send for a stored task: reordered, shortened or reworded."""
    forms = [
        task,
        f"how do I {task}",
        f"{task} (like last time)",
        " ".join(task.split()[: max(3, len(task.split()) - 2)]),
        task.replace("the ", "").replace(" a ", " one "),
    ]
    return rng.choice(forms)


def build_database(
    memory_store: object,
    embed: Callable[[list[str]], list[list[float]]] | None,
    count: int,
    seed: int = 0,
    namespace: str = "default",
    progress: Callable[[int], None] | None = None,
    batch: int = 256,
    workers: int | None = None,
) -> list[str]:
    """Fill a store with `count` procedures (each with its trajectory); returns their tasks.

    Each procedure is what `record` would store (the extractive builder's, under the keys record
    keeps), written straight to the store a batch per transaction. The builder runs in `workers`
    processes (default: one per core for 2,000 procedures or more, none under) while this process
    embeds and writes the batches before: building is pure Python, so only processes use a second core.
    """
    from memp_mcp.store import SQLiteStore

    assert isinstance(memory_store, SQLiteStore)
    store = memory_store
    tasks: list[str] = []

    # A family key ("put a {object} in the {target}") comes back batch after batch: embedded once.
    families: dict[str, list[float]] = {}

    def write(items: list[SyntheticTask], drafted: list[tuple[ProcedureDraft, list[str]]]) -> None:
        unique = [t for t in dict.fromkeys(text for _, keys in drafted for text in keys) if t not in families]
        embedded = dict(zip(unique, embed(unique), strict=True)) if embed else {}
        for _, keys in drafted:
            if len(keys) > 1 and keys[0] in embedded and len(families) < MAX_REMEMBERED_FAMILIES:
                families[keys[0]] = embedded[keys[0]]
        with store.transaction():
            for item, (draft, keys) in zip(items, drafted, strict=True):
                trajectory_id = store.add_trajectory(namespace, item.task, item.steps, Outcome.SUCCESS, "synthetic")
                store.add_procedure(
                    namespace,
                    draft.title,
                    draft.when_to_use or draft.title,
                    draft.steps,
                    draft.pitfalls,
                    "extractive",
                    "synthetic",
                    [trajectory_id],
                    trajectory_id,
                    [(text, embedded.get(text) or families.get(text)) for text in keys],
                )
        if progress:
            progress(len(items))

    def batches() -> Iterator[list[SyntheticTask]]:
        pending: list[SyntheticTask] = []
        for item in synthetic_tasks(count, seed):
            tasks.append(item.task)
            pending.append(item)
            if len(pending) >= batch:
                yield pending
                pending = []
        if pending:
            yield pending

    if workers is None:
        workers = (os.cpu_count() or 1) if count >= 2000 else 0
    if workers <= 0:
        for items in batches():
            write(items, drafted_batch(items))
        return tasks
    # spawn, not fork: this process holds the model's threads, which a forked child would inherit stuck.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        waiting: deque[tuple[list[SyntheticTask], Future[list[tuple[ProcedureDraft, list[str]]]]]] = deque()
        for items in batches():
            waiting.append((items, pool.submit(drafted_batch, items)))
            if len(waiting) > 2 * workers:  # enough queued to keep the workers busy while a batch is written
                done, future = waiting.popleft()
                write(done, future.result())
        while waiting:
            done, future = waiting.popleft()
            write(done, future.result())
    return tasks


def drafted_batch(items: list[SyntheticTask]) -> list[tuple[ProcedureDraft, list[str]]]:
    """Each task's procedure as the extractive builder makes it, and the search keys record would store
    (the task's family and its own text, one when they are the same). Runs in a worker process."""
    from memp_mcp.engine.build import abstract_task
    from memp_mcp.engine.retrieve import search_keys

    return [
        (extract_procedure(i.task, i.steps, Outcome.SUCCESS), search_keys(abstract_task(i.task, i.steps), i.task))
        for i in items
    ]
