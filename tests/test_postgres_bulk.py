"""The latency benchmark's bulk loader writes a PostgreSQL memory the normal store reads and writes."""

from __future__ import annotations

import random
from typing import Any

import psycopg

from memp_mcp.bench.postgres_bulk import build_bulk_database, bulk_task, stored_marker
from memp_mcp.bench.synthetic import paraphrase, synthetic_tasks
from memp_mcp.engine.memory import Memory
from memp_mcp.store.postgres import PostgresStore
from tests.conftest import FakeEmbedder

SIZE = 2_000
TARGETS = 200


def _count(url: str, table: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_a_bulk_loaded_database_is_read_and_written_by_the_store(postgres_url: str) -> None:
    embedder = FakeEmbedder()
    built = build_bulk_database(postgres_url, SIZE, embedder, seed=3, targets=TARGETS)

    assert (built.targets, built.bulk) == (TARGETS, SIZE - TARGETS)
    assert built.tasks == [item.task for item in synthetic_tasks(TARGETS, 3)]
    assert built.index_settings["m"] == "16" and built.index_settings["ef_construction"] == "64"
    assert {"COPY rows", "index procedure_keys_embedding", "index procedures_search"} <= set(built.phases)
    assert stored_marker(postgres_url) is not None
    counts = {t: _count(postgres_url, t) for t in ("trajectories", "procedures", "procedure_sources")}
    assert counts == {"trajectories": SIZE, "procedures": SIZE, "procedure_sources": SIZE}
    assert _count(postgres_url, "procedure_keys") == 2 * SIZE

    with PostgresStore(postgres_url) as store:
        assert store.integrity_problems() == []
        assert store.embedding_model() == (embedder.identity, embedder.dim)
        assert store.count_procedures() == SIZE
        memory = Memory(store, embedder)
        rng = random.Random(5)
        found = 0
        for task in built.tasks[:20]:
            recalled = memory.recall(paraphrase(rng, task), 3)
            assert recalled.recall_id is not None
            found += any(p.title.lower().startswith(task.lower()[:20]) for p in recalled.procedures)
        # The hashing stand-in matches words, not meaning: most paraphrases still find their task.
        assert found >= 15
        # A bulk procedure reads back whole: its trajectory, its source, its keys.
        bulk = store.get_procedure(TARGETS + 1)
        assert bulk.title.lower() == bulk_task(built.tasks[0], 0).lower()
        assert bulk.source_trajectory_ids == [TARGETS + 1]
        assert store.get_trajectory(TARGETS + 1).task == bulk_task(built.tasks[0], 0)
        assert len(store.keys(TARGETS + 1)) == 2
        # Recording a known task merges into it; a new one gets the next id after the loaded ones.
        target = next(synthetic_tasks(1, 3))
        steps: list[Any] = [s.model_dump(exclude_none=True) for s in target.steps]
        assert memory.record(target.task, steps, "success").action != "created"
        created = memory.record("water the office plants on the third floor", [{"action": "water plant 1"}], "success")
        assert created.action == "created" and created.procedure_id == SIZE + 1
        assert store.count_procedures() == SIZE + 1
    assert _count(postgres_url, "trajectories") == SIZE + 2


def test_bulk_tasks_are_distinct_and_keep_their_target() -> None:
    tasks = [bulk_task("restart the redis cache", i) for i in range(5_000)]
    assert len(set(tasks)) == len(tasks)
    assert all(t.startswith("restart the redis cache ") for t in tasks)
