"""The retrieval benchmark: metric definitions, and a smoke run on a slice with the real model."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from memp_mcp.bench.retrieval import load_dataset, query_metrics, run_benchmark
from memp_mcp.embedding import FastEmbedEmbedder

# Beside the repository, as in CI; MEMP_BENCH_DATASET points elsewhere (a worktree's checkout).
DATASET = Path(
    os.environ.get(
        "MEMP_BENCH_DATASET", Path(__file__).resolve().parents[2] / "shared" / "datasets" / "proced_mem_bench"
    )
)


def test_metrics_follow_the_benchmark_definitions() -> None:
    relevance = {"a": 10.0, "b": 6.0, "c": 8.0}
    figures = query_metrics(["x", "a", "y", "b"], relevance)
    # AP over the relevant retrieved: (1/2 + 2/4) / 2; conventional AP@10 divides by R = 3.
    assert figures["map"] == pytest.approx(0.5)
    assert figures["ap@10"] == pytest.approx(1.0 / 3)
    assert figures["p@1"] == 0.0 and figures["p@5"] == pytest.approx(2 / 5)
    # Gains min(3, int(score / 3.33)): a -> 3, b -> 1; ideal order is the retrieved gains sorted.
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    idcg = 3 / math.log2(2) + 1 / math.log2(3)
    assert figures["ndcg@10"] == pytest.approx(dcg / idcg)
    assert query_metrics([], relevance)["map"] == 0.0


needs_dataset = pytest.mark.skipif(
    not DATASET.is_dir(), reason=f"benchmark data not found at {DATASET} (../shared/datasets/proced_mem_bench)"
)


@needs_dataset
def test_dataset_loads_with_observations_shifted_to_their_actions() -> None:
    trajectories, queries = load_dataset(DATASET)
    assert len(trajectories) == 336 and len(queries) == 40
    first = trajectories[0]
    # The observation of action i is the state the next pair starts from.
    assert first.steps[0].observation == first.states[1]
    assert first.steps[-1].observation is None


@needs_dataset
@pytest.mark.real_model
def test_benchmark_slice_runs_and_hybrid_beats_random(real_embedder: FastEmbedEmbedder, real_model_dir: Path) -> None:
    results = run_benchmark(
        DATASET,
        real_embedder,
        strategies=["hybrid", "random"],
        model_dir=real_model_dir,
        limit_trajectories=120,
        limit_queries=15,
    )
    hybrid, random_ = results["strategies"]["hybrid"], results["strategies"]["random"]
    assert results["counts"]["trajectories"] == 120
    assert set(hybrid) >= {"map", "ap@10", "p@1", "p@5", "ndcg@10", "tiers"}
    assert hybrid["map"] > random_["map"] + 0.3
    assert hybrid["map"] >= results["baselines"]["task-only cosine"]["map"] - 0.05
    # Every own set is reported, each judged one with the plain-cosine baseline beside the default.
    sets = results["sets"]
    assert {
        "coding and operations (tuning)",
        "coding and operations (held out)",
        "non-English",
        "unrelated (held out)",
        "unrelated, sharing a word with coding work (held out)",
    } <= set(sets)
    assert any(name.startswith("household paraphrases") for name in sets)
    for name, figures in sets.items():
        methods = figures["methods"]
        if figures["unrelated"]:
            assert 0.0 <= methods["memp hybrid"]["empty"] <= 1.0, name
        else:
            assert {"memp hybrid", "plain cosine"} <= set(methods), name
            assert set(methods["plain cosine"]) >= {"map", "p@1", "ndcg@10", "answered"}, name
    assert 0.0 < results["calibrated_floor"] < 1.0
