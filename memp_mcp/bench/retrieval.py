"""The public procedural-memory retrieval benchmark (ALFWorld trajectories, judged queries).

Every trajectory is recorded through `Memory.record` (the code path behind the
record_trajectory tool); every query is recalled with each retrieve strategy; the recalled
procedures are mapped back to their source trajectories in rank order (within a procedure, the
source whose task is closest to the query first) and scored against the judged lists.

Metrics follow the benchmark's own definitions over the top 10: P@k, nDCG@10 (gain
min(3, int(score / 3.33)), ideal order taken from the retrieved list, as its calculator does),
and AP averaged over the relevant trajectories retrieved. `ap@10` is the conventional AP,
normalised by min(R, 10).
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memp_mcp.bench.retrieval_sets import CorpusTask, EvalSet, coding_corpus, own_sets
from memp_mcp.embedding import Embedder
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.recall import MAX_RECALL_K
from memp_mcp.engine.retrieve import RetrievalTuning
from memp_mcp.errors import InvalidInputError
from memp_mcp.models import Step
from memp_mcp.store import SQLiteStore, Store

TOP = 10
TIERS = ("EASY", "MEDIUM", "HARD")
STRATEGIES = ("hybrid", "query", "avefact", "random")
TRAJECTORIES_FILE = "agentinstruct_trajectories.json"
QUERIES_FILE = "query_bank.json"


@dataclass(frozen=True)
class BenchTrajectory:
    id: str
    task: str
    steps: list[Step]
    states: list[str]
    actions: list[str]


@dataclass(frozen=True)
class Query:
    id: str
    tier: str
    text: str
    relevance: dict[str, float]


def load_dataset(directory: Path) -> tuple[list[BenchTrajectory], list[Query]]:
    """Read the two data files; InvalidInputError says what is missing."""
    missing = [name for name in (TRAJECTORIES_FILE, QUERIES_FILE) if not (directory / name).is_file()]
    if missing:
        raise InvalidInputError(f"{directory} is not the proced_mem_bench dataset: missing {', '.join(missing)}")
    raw_trajectories = json.loads((directory / TRAJECTORIES_FILE).read_text())["trajectories"]
    raw_queries = json.loads((directory / QUERIES_FILE).read_text())["queries"]
    trajectories = []
    for item in raw_trajectories:
        pairs = item["state_action_pairs"]
        states = [p["state"] for p in pairs]
        actions = [p["action"] for p in pairs]
        # A pair's state is the observation its action answered, so an action's own result is
        # the next pair's state.
        steps = [
            Step(action=a, observation=states[i + 1] if i + 1 < len(states) else None) for i, a in enumerate(actions)
        ]
        trajectories.append(BenchTrajectory(item["task_instance_id"], item["task_description"], steps, states, actions))
    queries = [
        Query(
            q["query_id"],
            q["tier"],
            q["query_text"],
            {r["trajectory_id"]: float(r["relevance_score"]) for r in q["relevant_trajectories"]},
        )
        for q in raw_queries
    ]
    return trajectories, queries


# -- metrics ---------------------------------------------------------------------------------


def query_metrics(ranked: Sequence[str], relevance: dict[str, float]) -> dict[str, float]:
    top = list(ranked[:TOP])
    hits = [tid in relevance for tid in top]
    positions = [i + 1 for i, hit in enumerate(hits) if hit]
    ap = sum((n + 1) / pos for n, pos in enumerate(positions)) / len(positions) if positions else 0.0
    ap10 = sum((n + 1) / pos for n, pos in enumerate(positions)) / min(len(relevance), TOP) if relevance else 0.0
    gains = [min(3, max(0, int(relevance.get(tid, 0.0) / 3.33))) for tid in top]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g)
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(gains, reverse=True)) if g)
    return {
        "map": ap,
        "ap@10": ap10,
        "p@1": float(hits[0]) if hits else 0.0,
        "p@5": sum(hits[:5]) / 5,
        "ndcg@10": dcg / idcg if idcg else 0.0,
    }


def aggregate(per_query: list[tuple[Query, dict[str, float]]]) -> dict[str, Any]:
    def mean_of(rows: list[dict[str, float]]) -> dict[str, float]:
        return {key: round(statistics.fmean(r[key] for r in rows), 4) for key in rows[0]} if rows else {}

    result: dict[str, Any] = mean_of([m for _, m in per_query])
    result["tiers"] = {tier: mean_of([m for q, m in per_query if q.tier == tier]) for tier in TIERS}
    return result


# -- the run ---------------------------------------------------------------------------------


def record_all(
    memory: Memory,
    trajectories: Sequence[BenchTrajectory | CorpusTask],
    progress: Callable[[int], None] | None,
    namespace: str | None = None,
) -> dict[int, str]:
    """Record every trajectory as a success; returns database trajectory id -> benchmark id."""
    mapping: dict[int, str] = {}
    for trajectory in trajectories:
        result = memory.record(trajectory.task, trajectory.steps, "success", agent="bench", namespace=namespace)
        mapping[result.trajectory_id] = trajectory.id
        if progress:
            progress(1)
    return mapping


def ranked_trajectories(
    memory: Memory, text: str, strategy: str, mapping: dict[int, str], namespace: str | None = None
) -> list[str]:
    recalled = memory.recall(text, k=MAX_RECALL_K, strategy=strategy, log=False, namespace=namespace)  # type: ignore[arg-type]
    ranked: list[str] = []
    for procedure in recalled.procedures:
        for trajectory_id in procedure.source_trajectory_ids:
            if trajectory_id in mapping and mapping[trajectory_id] not in ranked:
                ranked.append(mapping[trajectory_id])
        if len(ranked) >= TOP:
            break
    return ranked[:TOP]


def _normalise(vectors: list[list[float]]) -> list[list[float]]:
    out = []
    for v in vectors:
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        out.append([x / norm for x in v])
    return out


def cosine_ranking(query_vector: list[float], corpus: list[tuple[str, list[float]]]) -> list[str]:
    scored = sorted(corpus, key=lambda item: -sum(a * b for a, b in zip(query_vector, item[1], strict=False)))
    return [tid for tid, _ in scored[:TOP]]


def truncate_tokens(texts: list[str], model_dir: Path | None, max_tokens: int) -> list[str]:
    """Cut each text at `max_tokens` model tokens (the baseline's truncation), or ~words without a tokenizer."""
    if model_dir is not None and (model_dir / "tokenizer.json").is_file():
        from tokenizers import Tokenizer  # a dependency of fastembed

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_truncation()
        out = []
        for text in texts:
            offsets = tokenizer.encode(text, add_special_tokens=False).offsets
            budget = max_tokens - 2  # [CLS] and [SEP]
            out.append(text if len(offsets) <= budget else text[: offsets[budget - 1][1]])
        return out
    return [" ".join(t.split()[: int(max_tokens * 0.75)]) for t in texts]


def _bench_store(cleanup: contextlib.ExitStack, database_url: str | None) -> Store:
    """An empty store for one benchmark run, removed when `cleanup` closes."""
    if database_url:
        from memp_mcp.bench.postgres import scratch_database
        from memp_mcp.store.postgres import PostgresStore

        return PostgresStore(cleanup.enter_context(scratch_database(database_url, "retrieval")))
    folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="memp-bench-"))
    return SQLiteStore(Path(folder) / "bench.db")


def run_benchmark(
    dataset: Path,
    embedder: Embedder | None,
    *,
    strategies: Sequence[str] = STRATEGIES,
    model_dir: Path | None = None,
    limit_trajectories: int | None = None,
    limit_queries: int | None = None,
    baselines: bool = True,
    own: bool = True,
    tuning: RetrievalTuning | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Run the benchmark: the public set ("strategies", "baselines"), then this project's own sets
    ("sets": {name: {"tuning", "queries", "methods": {method: metrics}}}), with "timing".

    The memory is a SQLite file, or with `database_url` (a PostgreSQL server where this user may
    create databases) a scratch PostgreSQL database, dropped after.
    """
    trajectories, queries = load_dataset(dataset)
    if limit_trajectories is not None:
        trajectories = trajectories[:limit_trajectories]
        kept = {t.id for t in trajectories}
        queries = [Query(q.id, q.tier, q.text, {t: s for t, s in q.relevance.items() if t in kept}) for q in queries]
        queries = [q for q in queries if q.relevance]
    if limit_queries is not None:
        queries = queries[:limit_queries]
    results: dict[str, Any] = {"strategies": {}, "baselines": {}, "sets": {}, "timing": {}, "counts": {}}
    sets = _trimmed(own_sets({t.id: t.task for t in trajectories}), limit_queries) if own else []
    corpora: dict[str, list[BenchTrajectory | CorpusTask]] = {"alfworld": list(trajectories)}
    if own:
        corpora["coding"] = list(coding_corpus())
        corpora["both"] = [*trajectories, *coding_corpus()]
    with contextlib.ExitStack() as cleanup:
        store = _bench_store(cleanup, database_url)
        memory = Memory(store, embedder, namespace="alfworld", seed=7, tuning=tuning)
        done = 0
        total = sum(len(c) for c in corpora.values())

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress("record", done, total)

        started = time.perf_counter()
        mappings = {name: record_all(memory, corpus, tick, namespace=name) for name, corpus in corpora.items()}
        results["timing"]["record_seconds"] = round(time.perf_counter() - started, 2)
        results["counts"] = {
            "trajectories": len(trajectories),
            "queries": len(queries),
            "procedures": store.count_procedures("alfworld"),
        }
        for strategy in strategies:
            started = time.perf_counter()
            per_query = [
                (q, query_metrics(ranked_trajectories(memory, q.text, strategy, mappings["alfworld"]), q.relevance))
                for q in queries
            ]
            elapsed = time.perf_counter() - started
            results["timing"][f"recall_{strategy}_ms"] = round(1000 * elapsed / max(1, len(queries)), 1)
            results["strategies"][strategy] = aggregate(per_query)
            if progress:
                progress(strategy, len(queries), len(queries))
        for eval_set in sets:
            methods = {
                f"memp {strategy}": _set_metrics(
                    eval_set,
                    [
                        ranked_trajectories(memory, q.text, strategy, mappings[eval_set.corpus], eval_set.corpus)
                        for q in eval_set.queries
                    ],
                )
                for strategy in strategies
                if strategy != "random"
            }
            results["sets"][eval_set.name] = {
                "tuning": eval_set.tuning,
                "unrelated": eval_set.unrelated,
                "queries": len(eval_set.queries),
                "methods": methods,
            }
            if eval_set.unrelated and eval_set.tuning and embedder is not None:
                results["calibrated_floor"] = calibrated_floor(
                    [best_cosine(memory, q.text, eval_set.corpus) for q in eval_set.queries]
                )
        store.close()
    if baselines and embedder is not None:
        query_vectors = _normalise(embedder.embed([q.text for q in queries]))
        task_vectors = _normalise(embedder.embed([t.task for t in trajectories]))
        task_corpus = list(zip([t.id for t in trajectories], task_vectors, strict=True))
        results["baselines"]["task-only cosine"] = aggregate(
            [
                (q, query_metrics(cosine_ranking(v, task_corpus), q.relevance))
                for q, v in zip(queries, query_vectors, strict=True)
            ]
        )
        state_texts = [
            t.task + " " + " ".join(f"{s} {a}" for s, a in zip(t.states, t.actions, strict=True)) for t in trajectories
        ]
        state_vectors = _normalise(embedder.embed(truncate_tokens(state_texts, model_dir, 128)))
        state_corpus = list(zip([t.id for t in trajectories], state_vectors, strict=True))
        results["baselines"]["state-aware cosine @128 tokens"] = aggregate(
            [
                (q, query_metrics(cosine_ranking(v, state_corpus), q.relevance))
                for q, v in zip(queries, query_vectors, strict=True)
            ]
        )
        for eval_set in sets:
            if eval_set.unrelated:
                continue
            corpus = corpora[eval_set.corpus]
            vectors = _normalise(embedder.embed([t.task for t in corpus]))
            indexed = list(zip([t.id for t in corpus], vectors, strict=True))
            set_queries = _normalise(embedder.embed([q.text for q in eval_set.queries]))
            results["sets"][eval_set.name]["methods"][PLAIN_COSINE] = _set_metrics(
                eval_set, [cosine_ranking(v, indexed) for v in set_queries]
            )
    return results


# The share of tasks no procedure serves that the calibrated floor answers with nothing.
CALIBRATION_EMPTY_SHARE = 0.9


def best_cosine(memory: Memory, text: str, namespace: str) -> float:
    """The best cosine any stored key reaches for `text` (0 when the memory is empty)."""
    recalled = memory.recall(text, k=1, strategy="query", log=False, namespace=namespace)
    return recalled.procedures[0].relevance if recalled.procedures else 0.0


def calibrated_floor(unrelated_best: Sequence[float], share: float = CALIBRATION_EMPTY_SHARE) -> float:
    """The lowest semantic floor (to 0.01) under which at least `share` of these unrelated tasks'
    best cosines fall: the relevance floor read off the model's own scores for tasks nothing serves."""
    ordered = sorted(unrelated_best)
    kept_below = math.ceil(share * len(ordered))
    return math.floor(ordered[kept_below - 1] * 100 + 1) / 100 if ordered else 0.0


# The baseline every own set is reported against: cosine similarity of the request with each
# stored task's text, with the same model, no floor.
PLAIN_COSINE = "plain cosine"


def _trimmed(sets: list[EvalSet], limit_queries: int | None) -> list[EvalSet]:
    """Sets without queries that nothing judged relevant in a sliced corpus, cut to `limit_queries`."""
    out = []
    for eval_set in sets:
        kept = eval_set.queries if eval_set.unrelated else [q for q in eval_set.queries if q.relevance]
        kept = kept[:limit_queries] if limit_queries is not None else kept
        if kept:
            out.append(EvalSet(eval_set.name, eval_set.corpus, kept, eval_set.tuning))
    return out


def _set_metrics(eval_set: EvalSet, rankings: list[list[str]]) -> dict[str, float]:
    """Mean metrics of a judged set, plus `answered` (share of queries given anything); for an
    unrelated set, `empty` (share given nothing, which is right)."""
    if eval_set.unrelated:
        return {"empty": round(sum(not r for r in rankings) / len(rankings), 4)}
    rows = [query_metrics(ranked, q.relevance) for q, ranked in zip(eval_set.queries, rankings, strict=True)]
    figures = {key: round(statistics.fmean(r[key] for r in rows), 4) for key in rows[0]}
    figures["answered"] = round(sum(bool(r) for r in rankings) / len(rankings), 4)
    return figures
