"""The SQLite store: round trips, vector and keyword search, versions, status, migrations,
model binding, concurrency, and refusing files it must not touch."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from memp_mcp.errors import EmbeddingModelMismatchError, InvalidInputError, NotFoundError, SchemaTooNewError, StoreError
from memp_mcp.models import Outcome, ProcedureStatus, Step
from memp_mcp.store import SQLiteStore, Store, driver, migrations, postgres_migrations
from memp_mcp.store import sqlite as sqlite_module
from memp_mcp.text import fts_terms

from .conftest import FakeEmbedder

# The shared store tests run on both backends; tests of SQLite's own files and plans say so.
pytestmark = pytest.mark.backends("sqlite", "postgresql")

NS = "default"

TASKS = {
    "mug": "put a clean mug on the coffee machine",
    "lamp": "examine the book under the desk lamp",
    "apple": "heat an apple with the microwave and put it in the fridge",
}


def _add(store: SQLiteStore, embedder: FakeEmbedder | None, task: str, namespace: str = NS) -> int:
    """A trajectory and the procedure built from it, keyed by the task text (with a vector if given)."""
    vector = embedder.embed([task])[0] if embedder else None
    with store.transaction():
        trajectory_id = store.add_trajectory(
            namespace, task, [Step(action=f"do {task}", observation="done")], Outcome.SUCCESS, agent="tester"
        )
        return store.add_procedure(
            namespace,
            title=f"How to {task}",
            when_to_use=task,
            steps=[f"go and {task}"],
            pitfalls=[],
            source="agent",
            author="tester",
            source_trajectory_ids=[trajectory_id],
            exemplar_trajectory_id=trajectory_id,
            keys=[(task, vector)],
        )


def _second_store(store: Store) -> Store:
    """Another store on the same database, as another process would open it."""
    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path)
    from memp_mcp.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url)


def _bound(store: SQLiteStore, embedder: FakeEmbedder) -> dict[str, int]:
    store.bind_embedding_model(embedder.identity, embedder.dim)
    return {name: _add(store, embedder, task) for name, task in TASKS.items()}


# -- round trips ---------------------------------------------------------------------------


def test_trajectory_round_trip(store: SQLiteStore) -> None:
    steps = [
        Step(action="go to countertop 1", observation="You see a mug 1.", thought="the mug is usually here"),
        Step(action="take mug 1 from countertop 1"),
    ]
    with store.transaction():
        trajectory_id = store.add_trajectory("proj-a", "put a mug on the shelf", steps, Outcome.FAILURE, "gpt", 0.25)
    got = store.get_trajectory(trajectory_id)
    assert got.id == trajectory_id
    assert got.namespace == "proj-a"
    assert got.task == "put a mug on the shelf"
    assert got.steps == steps
    assert got.outcome is Outcome.FAILURE
    assert (got.agent, got.score) == ("gpt", 0.25)
    assert store.namespaces() == ["proj-a"]
    assert store.count_trajectories("proj-a") == 1
    assert store.count_trajectories("other") == 0
    with pytest.raises(NotFoundError):
        store.get_trajectory(trajectory_id + 100)


def test_procedure_round_trip(store: SQLiteStore) -> None:
    with store.transaction():
        t1 = store.add_trajectory(NS, "put a mug on the shelf", [Step(action="a")], Outcome.SUCCESS)
        t2 = store.add_trajectory(NS, "put a cup on the shelf", [Step(action="b")], Outcome.SUCCESS)
        procedure_id = store.add_procedure(
            NS,
            title="Put {object} on {receptacle}",
            when_to_use="moving an object onto a receptacle",
            steps=["go to {object}", "take {object}", "put {object} on {receptacle}"],
            pitfalls=["check the shelf is reachable"],
            source="agent",
            author="claude",
            source_trajectory_ids=[t1, t2],
            exemplar_trajectory_id=t1,
            keys=[("put a mug on the shelf", None), ("moving an object onto a receptacle", None)],
        )
    got = store.get_procedure(procedure_id)
    assert got.title == "Put {object} on {receptacle}"
    assert got.steps == ["go to {object}", "take {object}", "put {object} on {receptacle}"]
    assert got.pitfalls == ["check the shelf is reachable"]
    assert got.status is ProcedureStatus.ACTIVE
    assert got.version == 1
    assert (got.source, got.author) == ("agent", "claude")
    assert got.source_trajectory_ids == [t1, t2]
    assert got.exemplar_trajectory_id == t1
    assert got.support_count == 2
    assert (got.retrieved_count, got.success_count, got.failure_count) == (0, 0, 0)
    assert store.keys(procedure_id) == ["put a mug on the shelf", "moving an object onto a receptacle"]
    assert [p.id for p in store.get_procedures([procedure_id, 999])] == [procedure_id]
    with pytest.raises(NotFoundError):
        store.get_procedure(999)


def test_writes_outside_a_transaction_are_refused(store: SQLiteStore) -> None:
    with pytest.raises(RuntimeError, match="transaction"):
        store.add_trajectory(NS, "task", [Step(action="a")], Outcome.SUCCESS)
    assert store.count_trajectories() == 0


def test_write_outside_transaction_refused_while_another_thread_is_in_one(store: SQLiteStore) -> None:
    """The transaction belongs to the thread that opened it, not to the whole store."""
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def holder() -> None:
        with store.transaction():
            store.add_trajectory(NS, "held", [Step(action="a")], Outcome.SUCCESS)
            inside.set()
            release.wait(5)

    def intruder() -> None:
        try:
            store.add_trajectory(NS, "intruder", [Step(action="a")], Outcome.SUCCESS)
        except RuntimeError as exc:
            errors.append(exc)

    first = threading.Thread(target=holder)
    first.start()
    assert inside.wait(5)
    second = threading.Thread(target=intruder)
    second.start()
    second.join(5)
    release.set()
    first.join(5)
    assert len(errors) == 1
    assert store.count_trajectories() == 1


def test_failed_transaction_leaves_nothing(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    kept = _add(store, fake_embedder, TASKS["mug"])
    with pytest.raises(ZeroDivisionError), store.transaction():
        trajectory_id = store.add_trajectory(NS, TASKS["lamp"], [Step(action="a")], Outcome.SUCCESS)
        store.add_procedure(
            "other-ns",
            "t",
            TASKS["lamp"],
            ["s"],
            [],
            "agent",
            None,
            [trajectory_id],
            trajectory_id,
            [(TASKS["lamp"], fake_embedder.embed([TASKS["lamp"]])[0])],
        )
        store.set_status(kept, ProcedureStatus.DEPRECATED)
        1 / 0  # noqa: B018
    assert store.count_trajectories() == 1
    assert store.count_procedures() == 1
    assert store.namespaces() == [NS]
    assert store.get_procedure(kept).status is ProcedureStatus.ACTIVE
    assert store.integrity_problems() == []
    # The store is usable afterwards.
    _add(store, fake_embedder, TASKS["apple"])
    assert store.count_procedures() == 2


# -- search --------------------------------------------------------------------------------


def test_vector_search_ranks_the_matching_procedure_first(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    ids = _bound(store, fake_embedder)
    for name, task in TASKS.items():
        hits = store.vector_search(NS, fake_embedder.embed([task])[0], k=3)
        assert hits[0][0] == ids[name]
        assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
        assert all(hits[0][1] > score for _, score in hits[1:])
    # A paraphrase sharing words still finds the right one first.
    hits = store.vector_search(NS, fake_embedder.embed(["the desk lamp and the book"])[0], k=3)
    assert hits[0][0] == ids["lamp"]
    # Another namespace sees nothing.
    assert store.vector_search("elsewhere", fake_embedder.embed([TASKS["mug"]])[0], k=3) == []


def test_vector_search_best_key_wins_and_k_is_respected(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    ids = _bound(store, fake_embedder)
    extra = "slice a tomato with a knife"
    with store.transaction():
        assert store.add_keys(ids["apple"], [(extra, fake_embedder.embed([extra])[0])]) == 1
        # The same key again is not new.
        assert store.add_keys(ids["apple"], [(extra, fake_embedder.embed([extra])[0])]) == 0
    hits = store.vector_search(NS, fake_embedder.embed([extra])[0], k=1)
    assert len(hits) == 1
    assert hits[0][0] == ids["apple"]
    # A large k is capped to what sqlite-vec accepts instead of failing.
    assert {pid for pid, _ in store.vector_search(NS, fake_embedder.embed([extra])[0], k=5000)} == set(ids.values())


def test_vector_of_wrong_dimension_is_refused(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    _bound(store, fake_embedder)
    with pytest.raises(InvalidInputError, match="dimensions"):
        store.vector_search(NS, [0.1] * (fake_embedder.dim + 1), k=3)
    with pytest.raises(InvalidInputError, match="dimensions"), store.transaction():
        _add(store, None, "a task without a vector")
        key_id = store.keys_without_vectors()[0][0]
        store.store_key_vectors([(key_id, [0.1] * 3)])


def test_keyword_search_finds_by_words(store: SQLiteStore) -> None:
    ids = {name: _add(store, None, task) for name, task in TASKS.items()}
    query = fts_terms("where is the coffee machine?")
    assert query
    hits = store.keyword_search(NS, query, k=5)
    assert [pid for pid, _ in hits] == [ids["mug"]]
    assert hits[0][1] > 0
    # Compounds: "desklamp" written as one word finds "desk lamp".
    query = fts_terms("look at the desklamp")
    assert query
    assert [pid for pid, _ in store.keyword_search(NS, query, k=5)] == [ids["lamp"]]
    # Porter stemming: "heating apples" finds "heat an apple".
    query = fts_terms("heating apples")
    assert query
    assert store.keyword_search(NS, query, k=5)[0][0] == ids["apple"]
    assert store.keyword_search("elsewhere", query, k=5) == []


@pytest.mark.parametrize(
    "hostile",
    [
        '"AND (',
        "NEAR(",
        "*",
        "'; DROP TABLE procedures; --",
        'title: mug OR body:"',
        "mug* AND NOT ^lamp",
        "NEAR(mug lamp, 2) \" ' ` \\ ) (",
        "{body} : - + ^",
        "ÄÖÜ 中文 \u0000 emoji 🙂",
    ],
)
def test_keyword_search_with_hostile_text_does_not_raise(store: SQLiteStore, hostile: str) -> None:
    mug = _add(store, None, TASKS["mug"])
    query = fts_terms(hostile + " coffee")
    assert query
    assert store.keyword_search(NS, query, k=5)[0][0] == mug
    store.keyword_search(NS, fts_terms(hostile), k=5)
    assert store.count_procedures() == 1
    assert store.integrity_problems() == []


def test_document_frequencies_count_the_procedures_holding_each_term(store: SQLiteStore) -> None:
    for task in TASKS.values():
        _add(store, None, task)
    assert store.document_frequencies(["coffee", "put", "zebra"]) == {"coffee": 1, "put": 2, "zebra": 0}
    assert store.document_frequencies([]) == {}
    # Counted only up to a bound when one is given.
    assert store.document_frequencies(["coffee", "put"], at_most=1) == {"coffee": 1, "put": 1}
    assert store.indexed_count() == 3


def test_keyword_search_reads_query_syntax_as_plain_words(store: SQLiteStore) -> None:
    mug = _add(store, None, TASKS["mug"])
    found = store.keyword_search(NS, ['"AND (', "NOT", "coffee", "mug* OR"], k=5)
    assert [pid for pid, _ in found] == [mug]
    assert store.keyword_search(NS, ['"AND (', "*"], k=5) == []


def test_keyword_search_reads_operator_words_as_words(store: SQLiteStore) -> None:
    """Terms that are operators in some query language ("or", "and", "not", "NEAR") are words like
    any other, whether they come alone, together or beside ordinary words."""
    ids = {name: _add(store, None, task) for name, task in TASKS.items()}
    plain = store.keyword_search(NS, ["heat", "apple"], k=5)
    assert plain and plain[0][0] == ids["apple"]
    for terms in (["or", "heat", "and", "apple", "not"], ["heat", "OR", "or", "apple", "NEAR", "AND"]):
        assert [pid for pid, _ in store.keyword_search(NS, terms, k=5)] == [pid for pid, _ in plain]
    assert store.keyword_search(NS, ["or", "not", "NEAR"], k=5) == []
    assert store.keyword_search(NS, ["not", "coffee"], k=5)[0][0] == ids["mug"]


def test_list_procedures_text_filter_is_literal(store: SQLiteStore) -> None:
    ids = {name: _add(store, None, task) for name, task in TASKS.items()}
    assert [p.id for p in store.list_procedures(NS, text="desk lamp")] == [ids["lamp"]]
    assert store.list_procedures(NS, text="%") == []
    assert store.list_procedures(NS, text="_") == []


def test_procedures_with_step_words_finds_active_ones_of_the_namespace_holding_the_words(store: SQLiteStore) -> None:
    ids = {name: _add(store, None, task) for name, task in TASKS.items()}
    other = _add(store, None, TASKS["apple"], namespace="elsewhere")
    # Steps are "go and <task>": one word required, then any one of the others.
    assert store.procedures_with_step_words(NS, "HEAT", ["fridge", "nothing"]) == [ids["apple"]]
    assert store.procedures_with_step_words(NS, "heat", ["lamp"]) == []
    assert store.procedures_with_step_words(NS, "clean", []) == [ids["mug"]]
    assert sorted(store.procedures_with_step_words(NS, "the", ["coffee", "desk"])) == sorted([ids["mug"], ids["lamp"]])
    assert store.procedures_with_step_words("elsewhere", "heat", []) == [other]
    with store.transaction():
        store.set_status(ids["apple"], ProcedureStatus.DEPRECATED)
    assert store.procedures_with_step_words(NS, "heat", []) == []
    # Words are words, never patterns.
    for word in ("%", "_", "he%t", "", "caf\u00e9"):
        with pytest.raises(InvalidInputError):
            store.procedures_with_step_words(NS, word, [])


# -- versions and status -------------------------------------------------------------------


def test_revise_procedure_keeps_the_previous_version(store: SQLiteStore) -> None:
    procedure_id = _add(store, None, TASKS["mug"])
    before = store.get_procedure(procedure_id)
    with store.transaction():
        after = store.revise_procedure(
            procedure_id,
            reason="failed when the mug was dirty",
            changed_by="claude",
            steps=["rinse the mug", "put the mug on the coffee machine"],
            pitfalls=["a dirty mug is refused"],
        )
    assert after.version == 2
    assert after.steps == ["rinse the mug", "put the mug on the coffee machine"]
    assert after.pitfalls == ["a dirty mug is refused"]
    assert after.title == before.title
    [old] = store.versions(procedure_id)
    assert old.version == 1
    assert old.steps == before.steps
    assert old.pitfalls == before.pitfalls
    assert (old.reason, old.changed_by) == ("failed when the mug was dirty", "claude")
    # Step text is not indexed for keyword search (only what the procedure is for is).
    rinse = fts_terms("rinse")
    assert rinse
    assert store.keyword_search(NS, rinse, k=5) == []
    with store.transaction():
        third = store.revise_procedure(procedure_id, reason="retitle", changed_by=None, title="Barista routine")
    assert third.version == 3
    assert [v.version for v in store.versions(procedure_id)] == [1, 2]
    assert store.versions(procedure_id)[1].steps == after.steps
    # A revised title is searchable at once.
    barista = fts_terms("barista")
    assert barista
    assert [pid for pid, _ in store.keyword_search(NS, barista, k=5)] == [procedure_id]


def test_deprecated_procedures_leave_search_and_come_back(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    ids = _bound(store, fake_embedder)
    vector = fake_embedder.embed([TASKS["mug"]])[0]
    query = fts_terms(TASKS["mug"])
    assert query
    assert store.vector_search(NS, vector, k=3)[0][0] == ids["mug"]
    with store.transaction():
        store.set_status(ids["mug"], ProcedureStatus.DEPRECATED)
    assert ids["mug"] not in {pid for pid, _ in store.vector_search(NS, vector, k=3)}
    assert ids["mug"] not in {pid for pid, _ in store.keyword_search(NS, query, k=5)}
    assert store.procedures_with_key(NS, TASKS["mug"]) == []
    assert store.count_procedures(NS, ProcedureStatus.DEPRECATED) == 1
    assert store.get_procedure(ids["mug"]).status is ProcedureStatus.DEPRECATED
    with store.transaction():
        store.set_status(ids["mug"], ProcedureStatus.ACTIVE)
    assert store.vector_search(NS, vector, k=3)[0][0] == ids["mug"]
    assert store.keyword_search(NS, query, k=5)[0][0] == ids["mug"]
    assert store.integrity_problems() == []
    with pytest.raises(NotFoundError), store.transaction():
        store.set_status(12345, ProcedureStatus.DEPRECATED)


def test_recall_events_and_stats(store: SQLiteStore) -> None:
    procedure_id = _add(store, None, TASKS["mug"])
    with store.transaction():
        store.add_recall_event("r1", NS, TASKS["mug"], [procedure_id], "hybrid")
    event = store.get_recall_event("r1")
    assert event.procedure_ids == [procedure_id]
    assert not event.reported
    with store.transaction():
        store.mark_recall_reported("r1", success=False)
        store.bump_stats(procedure_id, failed=1)
    assert store.get_recall_event("r1").success is False
    got = store.get_procedure(procedure_id)
    assert (got.retrieved_count, got.failure_count) == (1, 1)
    with store.transaction():
        store.bump_stats(procedure_id, succeeded=3)
    assert store.outcome_counts([procedure_id, 999]) == {procedure_id: (3, 1)}

    stats = store.stats(NS)
    assert (stats.trajectories, stats.procedures_active, stats.recalls) == (1, 1, 1)
    with pytest.raises(NotFoundError):
        store.get_recall_event("nope")


def test_a_recall_event_counts_each_procedure_it_returned_once(store: SQLiteStore) -> None:
    first, second, untouched = (_add(store, None, TASKS[name]) for name in ("mug", "apple", "lamp"))
    with store.transaction():
        store.add_recall_event("r2", NS, TASKS["mug"], [first, second], "hybrid")
        store.add_recall_event("r3", NS, TASKS["mug"], [second], "hybrid")
    counts = {pid: store.get_procedure(pid).retrieved_count for pid in (first, second, untouched)}
    assert counts == {first: 1, second: 2, untouched: 0}


def test_integrity_problems_empty_after_normal_use_and_detects_drift(
    store: SQLiteStore, fake_embedder: FakeEmbedder
) -> None:
    ids = _bound(store, fake_embedder)
    with store.transaction():
        store.revise_procedure(ids["lamp"], reason="r", changed_by=None, steps=["read the book"])
        store.set_status(ids["apple"], ProcedureStatus.DEPRECATED)
        store.add_keys(ids["mug"], [("another key", None)])
    assert store.integrity_problems() == []
    with store.transaction():
        if isinstance(store, SQLiteStore):
            store._execute("DELETE FROM procedure_fts WHERE rowid = ?", (ids["mug"],))
        else:  # a key that still looks active after its procedure was deprecated
            store._modify("UPDATE procedure_keys SET active = TRUE WHERE procedure_id = %s", (ids["apple"],))
    assert any(("full-text" in problem or "disagree" in problem) for problem in store.integrity_problems())


# -- embedding model binding and reindex ------------------------------------------------


def test_model_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SQLiteStore(path) as first:
        first.bind_embedding_model("model-a", 64)
        first.bind_embedding_model("model-a", 64)  # the same model again is fine
        assert first.embedding_model() == ("model-a", 64)
    with SQLiteStore(path) as second:
        with pytest.raises(EmbeddingModelMismatchError, match="model-a"):
            second.bind_embedding_model("model-b", 64)
        with pytest.raises(EmbeddingModelMismatchError):
            second.bind_embedding_model("model-a", 32)
        assert second.embedding_model() == ("model-a", 64)


def test_reindex_replaces_vectors_and_rebinds(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    ids = _bound(store, fake_embedder)
    with store.transaction():
        store.set_status(ids["apple"], ProcedureStatus.DEPRECATED)
    other = FakeEmbedder(dim=32, identity="fake-other@2")
    progress: list[tuple[int, int]] = []
    count = store.reindex(
        other.identity, other.dim, other.embed, progress=lambda d, t: progress.append((d, t)), batch_size=2
    )
    assert count == 3
    assert progress == [(2, 3), (3, 3)]
    assert store.embedding_model() == (other.identity, other.dim)
    vectors = store.key_vectors(list(ids.values()))
    assert all(len(v) == 32 for vs in vectors.values() for v in vs)
    assert vectors[ids["mug"]][0] == pytest.approx(other.embed([TASKS["mug"]])[0], abs=1e-6)
    assert store.vector_search(NS, other.embed([TASKS["lamp"]])[0], k=3)[0][0] == ids["lamp"]
    # Deprecated procedures stay out of search after a reindex.
    assert ids["apple"] not in {p for p, _ in store.vector_search(NS, other.embed([TASKS["apple"]])[0], k=3)}
    assert store.keys_without_vectors() == []
    assert store.integrity_problems() == []
    with pytest.raises(EmbeddingModelMismatchError):
        store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    store.bind_embedding_model(other.identity, other.dim)


def test_failed_reindex_keeps_the_old_model(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    ids = _bound(store, fake_embedder)

    def broken(texts: list[str]) -> list[list[float]]:
        raise OSError("model crashed")

    with pytest.raises(OSError, match="model crashed"):
        store.reindex("fake-other@2", 32, broken)
    assert store.embedding_model() == (fake_embedder.identity, fake_embedder.dim)
    assert store.vector_search(NS, fake_embedder.embed([TASKS["mug"]])[0], k=1)[0][0] == ids["mug"]


def test_reindex_lets_other_processes_write_while_it_embeds(
    store: SQLiteStore, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _bound(store, fake_embedder)
    monkeypatch.setattr(driver, "BUSY_TIMEOUT_SECONDS", 0.5)
    other = FakeEmbedder(dim=32, identity="fake-other@2")
    added: list[int] = []

    def slow_embed(texts: list[str]) -> list[list[float]]:
        if not added:  # another process records a procedure meanwhile
            with _second_store(store) as second:
                added.append(_add(second, None, "water the plant with the can"))
        return other.embed(texts)

    assert store.reindex(other.identity, other.dim, slow_embed) == 3
    assert store.embedding_model() == (other.identity, other.dim)
    # The key added during the reindex has no vector yet (the engine backfills those), none from the old model.
    assert [text for _, text in store.keys_without_vectors()] == ["water the plant with the can"]
    assert set(store.key_vectors([*ids.values(), *added])) == set(ids.values())
    assert store.integrity_problems() == []


def test_keys_added_before_binding_are_embedded_later(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    procedure_id = _add(store, None, TASKS["lamp"])
    assert store.vector_search(NS, fake_embedder.embed([TASKS["lamp"]])[0], k=1) == []
    store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    pending = store.keys_without_vectors()
    assert [text for _, text in pending] == [TASKS["lamp"]]
    vectors = fake_embedder.embed([text for _, text in pending])
    store.store_key_vectors([(key_id, v) for (key_id, _), v in zip(pending, vectors, strict=True)])
    assert store.keys_without_vectors() == []
    assert store.vector_search(NS, fake_embedder.embed([TASKS["lamp"]])[0], k=1)[0][0] == procedure_id


# -- migrations ----------------------------------------------------------------------------


def test_new_database_is_at_the_latest_schema(store: SQLiteStore) -> None:
    latest = migrations.LATEST_VERSION if isinstance(store, SQLiteStore) else postgres_migrations.LATEST_VERSION
    assert store.schema_version() == latest


def test_older_schema_is_upgraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    extra = (
        migrations.LATEST_VERSION + 1,
        "add_notes",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n"
        "-- a comment line; with a semicolon\n"
        "CREATE INDEX notes_by_body ON notes(body);",
    )
    # The database as the current release writes it, with data in it.
    with SQLiteStore(path) as old:
        _add(old, None, TASKS["mug"])
        assert old.schema_version() == migrations.LATEST_VERSION
    # A newer release with one more migration opens it and upgrades it in place.
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*migrations.MIGRATIONS, extra])
    monkeypatch.setattr(sqlite_module, "LATEST_VERSION", extra[0])
    with SQLiteStore(path) as upgraded:
        assert upgraded.schema_version() == extra[0]
        assert upgraded.count_procedures() == 1
        with upgraded.transaction():
            upgraded._execute("INSERT INTO notes (body) VALUES ('x')")
    with SQLiteStore(path) as again:  # applied once, not twice
        assert again.schema_version() == extra[0]


def test_empty_schema_migrations_is_upgraded_from_zero(tmp_path: Path) -> None:
    """A file holding only an empty schema_migrations table (version 0) gets every migration."""
    path = tmp_path / "zero.db"
    conn = driver.connect(path)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    conn.close()
    with SQLiteStore(path) as upgraded:
        assert upgraded.schema_version() == migrations.LATEST_VERSION
        _add(upgraded, None, TASKS["lamp"])
        assert upgraded.count_procedures() == 1


def test_failed_migration_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "half.db"
    with SQLiteStore(path):
        pass
    broken = (migrations.LATEST_VERSION + 1, "broken", "CREATE TABLE fine (x INTEGER);\nTHIS IS NOT SQL")
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    monkeypatch.setattr(sqlite_module, "LATEST_VERSION", broken[0])
    with pytest.raises(StoreError):
        SQLiteStore(path)
    monkeypatch.undo()
    with SQLiteStore(path) as reopened:
        assert reopened.schema_version() == migrations.LATEST_VERSION
        assert reopened._execute("SELECT name FROM sqlite_master WHERE name = 'fine'").fetchone() is None


def _make_too_new(path: Path, journal_mode: str) -> None:
    with SQLiteStore(path) as store:
        _add(store, None, TASKS["mug"])
        with store.transaction():
            store._execute("INSERT INTO schema_migrations VALUES (999, 'from_the_future', '2030-01-01')")
    conn = driver.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    conn.close()


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_schema_too_new_is_refused_and_left_unchanged(tmp_path: Path, journal_mode: str) -> None:
    path = tmp_path / "future.db"
    _make_too_new(path, journal_mode)
    before = path.read_bytes()
    with pytest.raises(SchemaTooNewError, match="999"):
        SQLiteStore(path)
    assert path.read_bytes() == before


# -- files the store must refuse ------------------------------------------------------------


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="directory"):
        SQLiteStore(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_location_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreError, match=str(locked)):
            SQLiteStore(locked / "memory.db")
        with pytest.raises(StoreError):
            SQLiteStore(locked / "sub" / "memory.db")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_corrupt_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(random.Random(7).randbytes(64 * 1024))
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a memp-mcp database or is corrupt"):
        SQLiteStore(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.db"]


def test_text_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="corrupt"):
        SQLiteStore(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("journal_mode", ["DELETE", "WAL"])
def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path: Path, journal_mode: str) -> None:
    path = tmp_path / "other.db"
    conn = driver.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a memp-mcp one"):
        SQLiteStore(path)
    assert path.read_bytes() == before
    conn = driver.connect(path)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["customers"]
    conn.close()


def test_empty_file_becomes_a_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with SQLiteStore(path) as store:
        assert store.schema_version() == migrations.LATEST_VERSION


# -- concurrency --------------------------------------------------------------------------


def test_two_stores_on_one_file_write_at_once(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    path = tmp_path / "shared.db"
    per_thread = 40
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    written: dict[int, list[int]] = {0: [], 1: []}

    def writer(number: int) -> None:
        try:
            barrier.wait(5)
            with SQLiteStore(path) as store:  # both open (and migrate) at once too
                store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
                for i in range(per_thread):
                    written[number].append(_add(store, fake_embedder, f"writer {number} task {i} fetch a mug"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with SQLiteStore(path) as store:
        assert store.count_trajectories() == 2 * per_thread
        assert store.count_procedures() == 2 * per_thread
        assert sorted(written[0] + written[1]) == sorted(p.id for p in store.list_procedures(limit=1000))
        assert store.integrity_problems() == []


def test_opening_waits_for_another_connections_write_lock(tmp_path: Path) -> None:
    """Switching a new file to WAL needs an exclusive lock, and SQLite does not wait for it on its own:
    a second process opening the file while the first holds a write lock must wait, not fail."""
    path = tmp_path / "busy.db"
    other = driver.connect(path)  # a new file, still in rollback-journal mode
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        with SQLiteStore(path) as store:
            assert store.schema_version() == migrations.LATEST_VERSION
    finally:
        release.join()
        other.close()


def test_one_store_shared_by_threads(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            for i in range(15):
                _add(store, fake_embedder, f"thread {number} item {i}")
                store.vector_search(NS, fake_embedder.embed([f"thread {number}"])[0], k=3)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert store.count_procedures() == 60
    assert store.integrity_problems() == []


@pytest.mark.backends("sqlite")
def test_same_task_lookup_starts_from_the_key_text_index(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    # Walking every procedure of the namespace instead took ~250 ms per record at 100,000 procedures.
    ids = _bound(store, fake_embedder)
    assert store.procedures_with_key(NS, TASKS["mug"]) == [ids["mug"]]
    sql = (
        "SELECT p.id FROM procedure_keys k CROSS JOIN procedures p ON p.id = k.procedure_id "
        "WHERE k.text = ? AND p.namespace = ? AND p.status = 'active' ORDER BY p.id"
    )
    plan = " ".join(str(row[-1]) for row in store._execute("EXPLAIN QUERY PLAN " + sql, ("x", NS)).fetchall())
    assert "procedure_keys_by_text" in plan


def test_a_database_from_before_full_text_merges_keeps_its_keyword_search_in_fewer_segments(tmp_path: Path) -> None:
    from memp_mcp.store.sqlite.dialect import split_sql

    with SQLiteStore(tmp_path / "old.db") as store:
        # As before the merges' migration: FTS5's own merge setting, one segment added per write.
        store._execute("INSERT INTO procedure_fts (procedure_fts, rank) VALUES ('automerge', 4)")
        for n in range(40):
            _add(store, None, f"deploy service {n} to the staging cluster with helm")
        found = store.keyword_search(NS, ["deploy", "helm", "service"], 10)
        stored = store._execute("SELECT COUNT(*) FROM procedure_fts_data").fetchone()[0]
        for statement in split_sql(migrations.M007_FULLTEXT_MERGES):
            store._execute(statement)
        assert store.keyword_search(NS, ["deploy", "helm", "service"], 10) == found
        assert store._execute("SELECT COUNT(*) FROM procedure_fts_data").fetchone()[0] < stored
        _add(store, None, "deploy the search service with helm")
        assert len(store.keyword_search(NS, ["search"], 10)) == 1


def test_a_long_trajectory_is_kept_compressed_and_read_back_whole(tmp_path: Path) -> None:
    steps = [
        Step(action=f"pytest -x tests/test_{n}.py", observation=f"FAILED test_{n} - AssertionError: " + "x != y " * 40)
        for n in range(30)
    ]
    with SQLiteStore(tmp_path / "memory.db") as store:
        with store.transaction():
            long_id = store.add_trajectory("default", "fix the failing tests", steps, Outcome.SUCCESS)
            short_id = store.add_trajectory("default", "look", [Step(action="ls")], Outcome.SUCCESS)
        raw = dict(store._execute("SELECT id, steps_json FROM trajectories").fetchall())
        assert isinstance(raw[long_id], bytes) and len(raw[long_id]) * 5 < len(str([s.model_dump() for s in steps]))
        assert isinstance(raw[short_id], str)  # short ones stay readable text
        assert store.get_trajectory(long_id).steps == steps
        # What `memp-mcp scan` reads (every stored text) sees the steps, not the compressed bytes.
        scanned = next(r for r in store.stored_rows() if r.table == "trajectories" and r.key == (long_id,))
        assert scanned.values["steps_json"][3]["action"] == "pytest -x tests/test_3.py"


def test_a_new_database_uses_8k_pages_and_an_older_file_keeps_its_own(tmp_path: Path) -> None:
    import sqlite3

    with SQLiteStore(tmp_path / "new.db") as store:
        assert store._execute("PRAGMA page_size").fetchone()[0] == 8192
    # A file made with 4 KB pages (SQLite's default, and every earlier release's) is opened as it is.
    legacy = tmp_path / "legacy.db"
    raw = sqlite3.connect(legacy)
    raw.execute("PRAGMA page_size = 4096")
    raw.execute("VACUUM")
    raw.close()
    with SQLiteStore(legacy) as store:
        assert store._execute("PRAGMA page_size").fetchone()[0] == 4096
        assert store.namespaces() == []
