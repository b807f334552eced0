"""The latency benchmark: database caching, and the whole command against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memp_mcp.bench.latency import _built_database, percentile
from memp_mcp.bench.synthetic import synthetic_tasks
from memp_mcp.models import Outcome
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder


def test_percentile_picks_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 1.0) == 100.0


def test_synthetic_tasks_are_distinct_beyond_what_the_vocabularies_combine() -> None:
    """Past a few thousand the plain combinations repeat; every task must still be a new one, or a
    database of N procedures would hold fewer distinct ones (a repeated task's record merges)."""
    tasks = [item.task for item in synthetic_tasks(25_000, 3)]
    assert len(set(tasks)) == len(tasks)
    assert tasks[:100] == [item.task for item in synthetic_tasks(100, 3)]  # a smaller size is a prefix


def test_a_cached_database_is_reused_for_the_same_size_seed_and_model(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, tasks, seconds = _built_database(30, 7, FakeEmbedder(), _folder(tmp_path, "a"), cache, None)
    assert seconds is not None
    with SQLiteStore(first) as store, store.transaction():
        store.add_trajectory("default", "a task the runs added", [], Outcome.SUCCESS, "bench")

    again, same_tasks, reused = _built_database(30, 7, FakeEmbedder(), _folder(tmp_path, "b"), cache, None)
    assert reused is None and same_tasks == tasks
    with SQLiteStore(again) as store:
        # A fresh copy of what was built, not of what an earlier run wrote to its copy.
        assert store.count_trajectories() == 30 and store.count_procedures() == 30

    other_model = FakeEmbedder(identity="fake-hashing@2")
    _, _, rebuilt = _built_database(30, 7, other_model, _folder(tmp_path, "c"), cache, None)
    assert rebuilt is not None


def test_an_unfinished_build_is_built_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _built_database(20, 1, FakeEmbedder(), _folder(tmp_path, "a"), cache, None)
    (cache / "latency-20-seed1.json").unlink()  # as if the build had been killed before its record
    _, _, seconds = _built_database(20, 1, FakeEmbedder(), _folder(tmp_path, "b"), cache, None)
    assert seconds is not None


@pytest.mark.real_model
@pytest.mark.slow
def test_latency_command_measures_a_real_server_and_ends_with_json(tmp_path: Path, real_model_dir: Path) -> None:
    env = {**os.environ, "MEMP_MODEL_CACHE_DIR": str(real_model_dir.parent)}
    command = [
        sys.executable,
        "-m",
        "memp_mcp.cli",
        "bench",
        "latency",
        "--procedures",
        "40",
        "--runs",
        "1",
        "--recalls",
        "10",
        "--records",
        "2",
        "--json",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])["sizes"]["40"]
    for key in (
        "recall_p50_ms",
        "recall_p95_ms",
        "recall_p99_ms",
        "record_p50_ms",
        "record_p95_ms",
        "report_p50_ms",
        "initialize_s",
        "first_recall_s",
        "peak_rss_mb",
    ):
        assert figures[key]["min"] <= figures[key]["median"] <= figures[key]["max"], key
    assert 0 < figures["recall_p50_ms"]["median"] <= figures["recall_p99_ms"]["median"]
    assert figures["initialize_s"]["median"] < figures["first_recall_s"]["median"]
    assert figures["build_s"] is not None and figures["db_mb_after_runs"] > 0

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["sizes"]["40"]["build_s"] is None


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def test_building_in_worker_processes_stores_what_building_in_one_does(tmp_path: Path) -> None:
    from memp_mcp.bench.synthetic import build_database

    def built(workers: int) -> tuple[list[str], list[tuple[str, ...]], list[tuple[str, ...]]]:
        with SQLiteStore(tmp_path / f"w{workers}.db") as store:
            store.bind_embedding_model("fake", 64)
            tasks = build_database(store, FakeEmbedder().embed, 300, seed=3, batch=64, workers=workers)
            procedures = store.list_procedures("default", None, None, 500, 0)
            rows = [(p.title, p.when_to_use, *p.steps, *p.pitfalls) for p in procedures]
            keys = [tuple(store.keys(p.id)) for p in procedures]
            # Every key has its vector, a family's too when it was embedded for an earlier batch.
            assert store.keys_without_vectors() == []
        return tasks, rows, keys

    one, two = built(0), built(2)
    assert one == two and len(one[1]) == 300
    # A task whose family lifted nothing is kept under one key, as record keeps it.
    assert {len(keys) for keys in one[2]} == {1, 2}
