"""Several `memp-mcp serve --transport streamable-http` processes on one PostgreSQL database, with
clients spread across them recording and recalling at once."""

from __future__ import annotations

import pytest

from memp_mcp.bench.multi_server import run_multi_server, task_of
from memp_mcp.store.postgres import PostgresStore


def test_generated_tasks_are_distinct_to_keyword_search() -> None:
    tasks = {task_of(client, n)[0] for client in range(20) for n in range(50)}
    assert len(tasks) == 1000
    assert all(word.isalpha() for task in tasks for word in task.split())


@pytest.mark.slow
def test_servers_sharing_a_database_lose_nothing_and_see_each_others_writes(postgres_url: str) -> None:
    env = {"MEMP_DATABASE_URL": postgres_url, "MEMP_EMBEDDINGS": "0", "MEMP_LOG_LEVEL": "WARNING"}
    figures = run_multi_server(env, servers=3, clients=6, writes=5, token="s3cret")
    print(f"multi-server: {figures.as_dict()}")
    assert figures.errors == []
    assert (figures.writes, figures.recalls) == (30, 30)
    assert figures.missing_trajectories == 0
    assert figures.unseen_procedures == 0
    assert figures.cross_server_recalls > 0
    assert figures.cross_server_recalls_found == figures.cross_server_recalls
    with PostgresStore(postgres_url) as store:
        assert store.count_trajectories() == 30
        assert store.count_procedures() == 30
        assert store.integrity_problems() == []
