"""What only the PostgreSQL store does: pgvector set up on a new database, schema checks, text
PostgreSQL cannot hold, and writers in several stores (as in several servers) at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from memp_mcp.config import load_settings
from memp_mcp.engine.memory import Memory, open_memory
from memp_mcp.errors import SchemaTooNewError, StoreError
from memp_mcp.models import Outcome, Step
from memp_mcp.store import open_store, postgres_migrations
from memp_mcp.store.postgres import PostgresStore, redacted
from tests.conftest import FakeEmbedder
from tests.test_store import _add

NS = "default"

SOAP = [
    {"action": "take soapbar 1 from countertop 1", "observation": "You pick up the soapbar 1."},
    {"action": "clean soapbar 1 with sinkbasin 1", "observation": "You clean the soapbar 1."},
    {"action": "put soapbar 1 in/on cabinet 1", "observation": "You put the soapbar 1 in/on the cabinet 1."},
]


@pytest.fixture
def pg(postgres_url: str) -> Iterator[PostgresStore]:
    with PostgresStore(postgres_url) as opened:
        yield opened


def _sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def test_pgvector_is_enabled_on_a_database_that_lacks_it(postgres_server: Any) -> None:
    _sql(postgres_server.get_uri(), "CREATE DATABASE memp_bare TEMPLATE template0")
    url = postgres_server.get_uri(database="memp_bare")
    assert _sql(url, "SELECT 1 FROM pg_extension WHERE extname = 'vector'") == []
    with PostgresStore(url) as store:
        assert store.schema_version() == postgres_migrations.LATEST_VERSION
    assert _sql(url, "SELECT 1 FROM pg_extension WHERE extname = 'vector'") == [(1,)]


def test_schema_too_new_is_refused_and_left_unchanged(postgres_url: str) -> None:
    with PostgresStore(postgres_url):
        pass
    _sql(postgres_url, "INSERT INTO schema_migrations VALUES (999, 'from_the_future', now())")
    with pytest.raises(SchemaTooNewError, match="upgrade memp-mcp"):
        PostgresStore(postgres_url)
    assert _sql(postgres_url, "SELECT MAX(version) FROM schema_migrations") == [(999,)]


def test_a_database_of_another_application_is_refused(postgres_url: str) -> None:
    _sql(postgres_url, "CREATE TABLE procedures (id int, body text)")
    with pytest.raises(StoreError, match="not a memp-mcp database"):
        PostgresStore(postgres_url)
    assert _sql(postgres_url, "SELECT to_regclass('schema_migrations')") == [(None,)]


def test_an_unreachable_server_is_a_clear_error_without_the_password(tmp_path: Any) -> None:
    url = f"postgresql://memp:s3cret@/memp?host={tmp_path}&connect_timeout=2"
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as raised:
        PostgresStore(url)
    assert "s3cret" not in str(raised.value)
    assert redacted("postgresql://memp:s3cret@db:5432/memp") == "postgresql://memp:***@db:5432/memp"


def test_text_postgresql_cannot_hold_is_stored_with_a_replacement_character(pg: PostgresStore) -> None:
    with pg.transaction():
        trajectory_id = pg.add_trajectory(
            NS,
            "read a\x00binary file",
            [Step(action="cat x", observation="\x00\x01")],
            Outcome.SUCCESS,
            agent="agent\ud800",
        )
    stored = pg.get_trajectory(trajectory_id)
    assert stored.task == "read a\ufffdbinary file"
    assert stored.steps[0].observation == "\ufffd\x01"
    assert stored.agent == "agent\ufffd"


def test_writers_in_several_stores_at_once_lose_nothing(postgres_url: str, fake_embedder: FakeEmbedder) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(3)]
    stores[0].bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    failures: list[BaseException] = []

    def write(store: PostgresStore, worker: int) -> None:
        try:
            for n in range(8):
                task = f"task {worker} number {n}"
                with store.transaction():
                    tid = store.add_trajectory(NS, task, [Step(action="a")], Outcome.SUCCESS)
                    store.add_procedure(
                        NS, task, task, ["s"], [], "agent", None, [tid], tid, [(task, fake_embedder.embed([task])[0])]
                    )
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(store, i)) for i, store in enumerate(stores) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert failures == []
        for store in stores:  # every store sees every other's writes
            assert store.count_procedures(NS) == 48
            assert store.count_trajectories(NS) == 48
        assert stores[0].integrity_problems() == []
    finally:
        for store in stores:
            store.close()


def test_the_same_task_recorded_by_two_servers_at_once_makes_one_procedure(postgres_url: str) -> None:
    """The merge check and the insert run under the writers' lock, so two servers that record the same
    task at the same moment build one procedure backed by both trajectories, not two."""
    memories = [Memory(PostgresStore(postgres_url), FakeEmbedder()) for _ in range(2)]
    memories[0].embedder(wait=5)
    start = threading.Barrier(2)
    results: list[Any] = []

    def record(memory: Memory) -> None:
        start.wait(10)
        results.append(memory.record("put a clean soapbar in the cabinet", SOAP, "success"))

    threads = [threading.Thread(target=record, args=(m,)) for m in memories]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert sorted(r.action for r in results) == ["created", "merged"]
        store = memories[1].store
        assert store.count_procedures(NS) == 1
        [procedure] = store.list_procedures(NS)
        assert procedure.support_count == 2
        assert len(procedure.source_trajectory_ids) == 2
    finally:
        for memory in memories:
            memory.store.close()


def test_the_database_url_setting_selects_postgresql(postgres_url: str, tmp_path: Any) -> None:
    settings = load_settings(environ={"MEMP_DATABASE_URL": postgres_url, "MEMP_DB_PATH": str(tmp_path / "x.db")})
    memory = open_memory(settings, embedder=FakeEmbedder())
    try:
        assert isinstance(memory.store, PostgresStore)
        assert memory.record("put a clean soapbar in the cabinet", SOAP, "success").action == "created"
    finally:
        memory.store.close()
    assert not (tmp_path / "x.db").exists()
    with open_store(tmp_path / "x.db", postgres_url) as store:  # type: ignore[attr-defined]
        assert store.count_procedures() == 1


def _everything(store: Any) -> dict[str, Any]:
    """Every row a store holds, as models and plain values, for comparing two stores."""
    procedures = store.list_procedures(None, None, None, 1000)
    ids = [p.id for p in procedures]
    trajectory_ids = sorted({t for p in procedures for t in p.source_trajectory_ids})
    return {
        "model": store.embedding_model(),
        "namespaces": store.namespaces(),
        "procedures": [p.model_dump() for p in procedures],
        "versions": {i: [v.model_dump() for v in store.versions(i)] for i in ids},
        "keys": {i: sorted(keys) for i, keys in store.keys_with_vectors(ids).items()},
        "texts": store.procedure_texts(ids),
        "trajectories": [store.get_trajectory(t).model_dump() for t in trajectory_ids],
        "trajectory_count": store.count_trajectories(),
        "stats": [store.stats(ns).model_dump() for ns in store.namespaces()],
    }


def test_migrate_moves_a_sqlite_memory_into_postgresql_with_nothing_lost(postgres_url: str, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from memp_mcp.cli import app
    from memp_mcp.store import SQLiteStore
    from tests.test_memory import CLEAN_SOAP, HEAT_EGG

    path = tmp_path / "memory.db"
    memory = Memory(SQLiteStore(path), FakeEmbedder())
    soap = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success", agent="agent-a")
    memory.record("heat some egg and put it in garbagecan", HEAT_EGG, "success", agent="agent-b")
    memory.record("heat an egg for the garbagecan", HEAT_EGG, "success", namespace="team")
    recalled = memory.recall("clean the soapbar and put it in the cabinet", 2)
    assert recalled.recall_id is not None
    memory.report_outcome(
        recalled.recall_id, False, notes="the cabinet was locked", correction="open the cabinet first"
    )
    assert soap.procedure_id is not None
    memory.forget(soap.procedure_id)
    memory.restore(soap.procedure_id)
    later = memory.recall("heat some egg and put it in the garbagecan", 1)
    egg_id = later.procedures[0].id
    memory.forget(egg_id)
    before = _everything(memory.store)
    event = memory.store.get_recall_event(recalled.recall_id)
    memory.store.close()

    result = CliRunner().invoke(app, ["migrate", "--db", str(path), "--to", postgres_url])
    assert result.exit_code == 0, result.output
    assert "procedures: 3" in result.output

    # The copy is analysed at once: the planner must not meet 100,000 rows it knows nothing of.
    analysed = _sql(
        postgres_url,
        "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL AND relname IN "
        "('procedures', 'procedure_keys', 'trajectories') ORDER BY relname",
    )
    assert [r[0] for r in analysed] == ["procedure_keys", "procedures", "trajectories"]
    with PostgresStore(postgres_url) as moved:
        assert _everything(moved) == before
        assert moved.get_recall_event(recalled.recall_id) == event
        assert moved.integrity_problems() == []
        after = Memory(moved, FakeEmbedder())
        found = after.recall("clean the soapbar and put it in the cabinet", 2)
        assert [p.id for p in found.procedures][:1] == [soap.procedure_id]
        assert after.recall("heat some egg and put it in the garbagecan", 1).procedures == []  # it stays forgotten
        # New rows continue after the copied ids.
        added = after.record("water the plant with the can", [{"action": "water plant 1"}], "success")
        assert added.procedure_id is not None and added.procedure_id > max(p["id"] for p in before["procedures"])

    again = CliRunner().invoke(app, ["migrate", "--db", str(path), "--to", postgres_url])
    assert again.exit_code == 2
    assert "already holds a memory" in again.output


def test_integrity_check_reports_a_missing_vector_index_only_when_keys_have_vectors(
    pg: PostgresStore, postgres_url: str, fake_embedder: FakeEmbedder
) -> None:
    pg.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    _add(pg, None, "a task recorded before the model loaded")
    _sql(postgres_url, "DROP INDEX procedure_keys_embedding")
    assert pg.integrity_problems() == []
    _add(pg, fake_embedder, "a task with its vector")
    assert pg.integrity_problems() == ["the vector index (HNSW) is missing"]


def test_words_the_statistics_show_far_past_the_bound_are_not_counted(pg: PostgresStore, postgres_url: str) -> None:
    for index in range(40):
        _add(pg, None, f"deploy service {index} to staging" + (" with a rollback plan" if index % 2 else ""))
    assert pg.document_frequencies(["deploy", "rollback", "zebra"], at_most=5) == {
        "deploy": 5,
        "rollback": 5,
        "zebra": 0,
    }
    assert pg._surely_common(5) == []  # never analysed: every word is counted
    _sql(postgres_url, "ANALYZE procedures")
    pg._common_lexemes.clear()
    common = pg._surely_common(5)
    assert {"deploy", "rollback"} <= set(common) and "zebra" not in common and "None" not in common
    # The same answers, from the statistics for the common words; a bound they do not pass is counted.
    assert pg.document_frequencies(["deploy", "rollback", "zebra"], at_most=5) == {
        "deploy": 5,
        "rollback": 5,
        "zebra": 0,
    }
    assert pg.document_frequencies(["deploy", "rollback"], at_most=100) == {"deploy": 40, "rollback": 20}
    # Read off the statistics, not counted: once "rollback" is gone from the text, only a count sees it.
    _sql(postgres_url, "UPDATE procedures SET search_text = replace(search_text, 'rollback', 'zzz')")
    assert pg.document_frequencies(["rollback"], at_most=5) == {"rollback": 5}
    assert pg.document_frequencies(["rollback"]) == {"rollback": 0}


def test_keyword_statistics_keep_ten_thousand_lexemes(pg: PostgresStore, postgres_url: str) -> None:
    # With the default 1,000, a large memory's statistics stop at lexemes of ~0.3% of rows, and every
    # word rarer than that but past the count bound is counted row by row (see migration 6).
    target = _sql(
        postgres_url,
        "SELECT attstattarget FROM pg_attribute WHERE attrelid = 'procedures'::regclass AND attname = 'search'",
    )
    assert target == [(1000,)]
