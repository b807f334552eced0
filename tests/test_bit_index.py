"""The in-memory binary index, and the store keeping it in step with the database."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

import memp_mcp.store.sqlite.binary_codes as sqlite_store
from memp_mcp.models import ProcedureStatus
from memp_mcp.store import SQLiteStore
from memp_mcp.store.bit_index import BitIndex
from memp_mcp.store.sqlite.vectors import COARSE_OVERSAMPLING
from tests.conftest import FakeEmbedder
from tests.test_store import NS, _add

THINGS = (
    "mug apple pen key lamp book vase egg plate knife sponge towel candle pillow remote soap "
    "bowl cup fork spoon glass kettle watch phone wallet scarf glove sock shoe hat"
).split()

# -- the index alone -----------------------------------------------------------------------


def _hamming(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("code_bytes", [48, 5])
def test_nearest_matches_a_brute_force_hamming_ranking(code_bytes: int) -> None:
    rng = random.Random(code_bytes)
    codes = [rng.randbytes(code_bytes) for _ in range(3000)]  # past the initial capacity: it must grow
    namespaces = [rng.choice(["a", "b"]) for _ in codes]
    index = BitIndex(code_bytes)
    for start in range(0, len(codes), 700):
        ids = list(range(start + 1, min(start + 700, len(codes)) + 1))
        index.add(ids, namespaces[start : start + 700], codes[start : start + 700], [True] * len(ids))
    query = rng.randbytes(code_bytes)
    inactive = set(rng.sample(range(1, len(codes) + 1), 300))
    index.set_inactive([*sorted(inactive), 999_999])  # an id it does not hold is ignored
    expected = sorted(
        (key_id for key_id in range(1, len(codes) + 1) if namespaces[key_id - 1] == "a" and key_id not in inactive),
        key=lambda key_id: (_hamming(codes[key_id - 1], query), key_id),
    )
    assert index.nearest("a", query, 25) == expected[:25]
    assert index.nearest("a", query, 10_000) == expected
    assert index.nearest("nowhere", query, 5) == []
    index.set_inactive([])
    assert len(index.nearest("a", query, 10_000)) == namespaces.count("a")


def test_ids_must_grow_and_codes_must_fit() -> None:
    index = BitIndex(48)
    index.add([5], ["a"], [bytes(48)], [True])
    with pytest.raises(ValueError, match="must grow"):
        index.add([5], ["a"], [bytes(48)], [True])
    with pytest.raises(ValueError, match="47 bytes"):
        index.add([6], ["a"], [bytes(47)], [True])
    assert index.size == 1 and index.last_key_id == 5


def test_nearest_by_cosine_ranks_procedures_by_their_nearest_key() -> None:
    rng = np.random.default_rng(3)
    count, dim = 1500, 16  # past the initial capacity: vectors must grow with the codes
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors[7] = 0.0  # a zero vector has no direction: cosine 0, never an error
    procedures = [int(p) for p in rng.integers(1, 400, size=count)]  # several keys per procedure
    namespaces = [str(rng.choice(["a", "b"])) for _ in range(count)]
    index = BitIndex(2, dim, max_vectors=count)
    for start in range(0, count, 600):
        end = min(start + 600, count)
        index.add(
            list(range(start + 1, end + 1)),
            namespaces[start:end],
            [bytes(2)] * (end - start),
            [True] * (end - start),
            procedures[start:end],
            [v.tobytes() for v in vectors[start:end]],
        )
    inactive = set(range(1, count + 1, 5))
    index.set_inactive(sorted(inactive))
    query = rng.standard_normal(dim).astype(np.float32)
    cosines = vectors @ query / np.maximum(np.linalg.norm(vectors, axis=1) * np.linalg.norm(query), 1e-30)
    best: dict[int, tuple[float, int]] = {}
    for key_id in range(1, count + 1):
        if namespaces[key_id - 1] != "a" or key_id in inactive:
            continue
        candidate = (float(cosines[key_id - 1]), -key_id)
        best[procedures[key_id - 1]] = max(best.get(procedures[key_id - 1], candidate), candidate)
    expected = [-key for _, key in sorted(best.values(), reverse=True)]
    assert index.holds_vectors
    assert index.nearest_by_cosine("a", query, 20) == expected[:20]
    assert index.nearest_by_cosine("a", query, 10_000) == expected
    assert index.nearest_by_cosine("nowhere", query, 5) == []


def test_an_index_past_its_vector_bound_lets_the_vectors_go() -> None:
    index = BitIndex(2, 16, max_vectors=3)
    one = np.ones(16, dtype=np.float32).tobytes()
    index.add([1, 2], ["a", "a"], [bytes(2)] * 2, [True] * 2, [1, 2], [one, one])
    assert index.holds_vectors and index.nearest_by_cosine("a", np.ones(16), 5) == [1, 2]
    index.add([3, 4], ["a", "a"], [bytes(2)] * 2, [True] * 2, [3, 4], [one, one])
    assert not index.holds_vectors
    with pytest.raises(ValueError, match="no float vectors"):
        index.nearest_by_cosine("a", np.ones(16), 5)
    assert index.nearest("a", bytes(2), 5) == [1, 2, 3, 4]  # the binary codes still answer


# -- kept in step by the store ---------------------------------------------------------------


@pytest.fixture(params=["exact", "coarse"], autouse=True)
def search_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test of the store's index runs both ways: a small file's exact search over the float
    vectors held in memory, and the binary codes' coarse search that a large file gets."""
    if request.param == "coarse":
        monkeypatch.setattr(sqlite_store, "EXACT_SEARCH_MAX_KEYS", 0)
    return str(request.param)


def _search(store: SQLiteStore, embedder: FakeEmbedder, task: str, k: int = 3) -> list[int]:
    return [pid for pid, _ in store.vector_search(NS, embedder.embed([task])[0], k)]


def _in_memory(store: SQLiteStore) -> bool:
    return store._bits is not None and store._bits_ready


@pytest.fixture
def two_stores(tmp_path: Path, fake_embedder: FakeEmbedder) -> tuple[SQLiteStore, SQLiteStore]:
    """Two connections to one file, as two server processes would have."""
    first = SQLiteStore(tmp_path / "shared.db")
    first.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    second = SQLiteStore(tmp_path / "shared.db")
    return first, second


def test_in_memory_search_answers_as_sqlite_vec_does(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    tasks = [f"put the {thing} in the {place}" for thing in ("mug", "apple", "pen", "key") for place in ("box", "bin")]
    for task in tasks:
        _add(store, fake_embedder, task)
    query = fake_embedder.embed(["put a pen in the bin"])[0]
    with store.transaction():  # inside a transaction sqlite-vec answers
        from_sqlite_vec = store.vector_search(NS, query, k=5)
    from_memory = store.vector_search(NS, query, k=5)
    assert _in_memory(store)
    assert from_memory == from_sqlite_vec
    assert len(from_memory) == 5


def test_keys_written_by_another_process_are_found(
    two_stores: tuple[SQLiteStore, SQLiteStore], fake_embedder: FakeEmbedder
) -> None:
    reader, writer = two_stores
    mug = _add(writer, fake_embedder, "put a clean mug on the coffee machine")
    assert _search(reader, fake_embedder, "put a clean mug on the coffee machine") == [mug]
    assert _in_memory(reader)
    lamp = _add(writer, fake_embedder, "examine the book under the desk lamp")
    assert _search(reader, fake_embedder, "examine the book under the desk lamp")[0] == lamp
    with writer.transaction():
        writer.set_status(lamp, ProcedureStatus.DEPRECATED)
    assert lamp not in _search(reader, fake_embedder, "examine the book under the desk lamp")


def test_a_reindex_elsewhere_reloads_the_vectors(
    two_stores: tuple[SQLiteStore, SQLiteStore], fake_embedder: FakeEmbedder
) -> None:
    reader, writer = two_stores
    ids = _written_and_seen(reader, writer, fake_embedder)
    # The same model name and size, different vectors: the reader's coarse search must now agree
    # with that of a process that opened the file after the reindex.
    rotated = _Rotated(fake_embedder)
    writer.reindex(fake_embedder.identity, fake_embedder.dim, rotated.embed)
    fresh = _assert_agrees_with_a_new_process(reader, rotated)
    assert _in_memory(reader) and _in_memory(fresh)
    assert _search(reader, rotated, "put the egg away", k=1) == [ids["egg"]]


def test_keys_backfilled_later_are_found(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    early = _add(store, None, "put a clean mug on the coffee machine")  # recorded before the model was ready
    later = _add(store, fake_embedder, "examine the book under the desk lamp")
    assert _search(store, fake_embedder, "put a clean mug on the coffee machine") == [later]
    missing = store.keys_without_vectors()
    store.store_key_vectors([(key_id, fake_embedder.embed([text])[0]) for key_id, text in missing])
    assert _search(store, fake_embedder, "put a clean mug on the coffee machine")[0] == early


def test_a_rolled_back_key_never_enters_the_index(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    for thing in THINGS:
        _add(store, fake_embedder, f"put the {thing} away")
    _search(store, fake_embedder, "anything")
    with pytest.raises(RuntimeError), store.transaction():
        ghost = _add(store, fake_embedder, "wash the ghost plate")
        assert _search(store, fake_embedder, "wash the ghost plate")[0] == ghost
        raise RuntimeError("the write fails after the search")
    # The next key takes the rolled-back key's id; the index must hold the new key's code, or the
    # coarse search (3 keys of 31 for k=1) would look for it under the ghost's.
    real = _add(store, fake_embedder, "heat an apple in the microwave")
    assert _search(store, fake_embedder, "heat an apple in the microwave", k=1) == [real]


def test_a_large_index_loads_in_the_background_while_sqlite_vec_answers(
    store: SQLiteStore, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BIT_INDEX_BATCH", 4)
    store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    ids = {thing: _add(store, fake_embedder, f"put the {thing} away") for thing in THINGS}
    first = _search(store, fake_embedder, "put the kettle away")
    assert first and first[0] == ids["kettle"]
    deadline = time.monotonic() + 10
    while not _in_memory(store):
        assert time.monotonic() < deadline, "the background load did not finish"
        time.sleep(0.01)
    assert store._bits is not None and store._bits.size == 30
    # Coarse ties among these short codes may break differently from sqlite-vec; the best must not.
    assert _search(store, fake_embedder, "put the kettle away")[0] == ids["kettle"]


def _written_and_seen(reader: SQLiteStore, writer: SQLiteStore, embedder: FakeEmbedder) -> dict[str, int]:
    """THINGS written by one process, and searched once by the other (its index is loaded)."""
    ids = {thing: _add(writer, embedder, f"put the {thing} away") for thing in THINGS}
    assert _search(reader, embedder, "put the egg away", k=1) == [ids["egg"]]
    return ids


def _assert_agrees_with_a_new_process(reader: SQLiteStore, embedder: _Rotated) -> SQLiteStore:
    """The reader's coarse search gives what a process opening the file now gives; returns that one."""
    fresh = SQLiteStore(reader.path)
    queries = [np.asarray(v, dtype=np.float32).tobytes() for v in embedder.embed([f"{t} away" for t in THINGS])]
    assert [reader._nearest_keys_in_memory(NS, q, 1, 3, reader.embedding_model()) for q in queries] == [
        fresh._nearest_keys_in_memory(NS, q, 1, 3, fresh.embedding_model()) for q in queries
    ]
    return fresh


class _Rotated:
    """The fake embedder's vectors, permuted: the same model name and size, different vectors."""

    def __init__(self, base: FakeEmbedder) -> None:
        self.base = base
        self.order = np.random.default_rng(0).permutation(base.dim)

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [list(np.asarray(v)[self.order]) for v in self.base.embed(texts)]


def test_deprecated_keys_do_not_crowd_out_active_ones(store: SQLiteStore, fake_embedder: FakeEmbedder) -> None:
    store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    retired = [_add(store, fake_embedder, "put the mug in the box") for _ in range(3)]
    active = _add(store, fake_embedder, "put the mug in the bin")
    assert _search(store, fake_embedder, "put the mug in the box", k=1) in ([retired[0]], [retired[1]], [retired[2]])
    with store.transaction():
        for procedure_id in retired:
            store.set_status(procedure_id, ProcedureStatus.DEPRECATED)
    # k=1 searches 3 keys coarsely: the three retired ones are nearest, and must not take those places.
    assert _search(store, fake_embedder, "put the mug in the box", k=1) == [active]
    with store.transaction():
        store.set_status(retired[1], ProcedureStatus.ACTIVE)
    assert _search(store, fake_embedder, "put the mug in the box", k=1) == [retired[1]]


def test_changes_made_without_this_code_still_reach_the_index(
    two_stores: tuple[SQLiteStore, SQLiteStore], fake_embedder: FakeEmbedder
) -> None:
    reader, writer = two_stores
    ids = _written_and_seen(reader, writer, fake_embedder)
    rotated = _Rotated(fake_embedder)
    # Raw SQL, as another program (or an older release) might write: the schema's triggers mark it.
    with writer.transaction():
        for key_id, text in writer._execute("SELECT id, text FROM procedure_keys").fetchall():
            writer._execute(
                "UPDATE procedure_keys SET vector = ? WHERE id = ?",
                (np.asarray(rotated.embed([text])[0], dtype=np.float32).tobytes(), key_id),
            )
        writer._execute("UPDATE procedures SET status = 'deprecated' WHERE id = ?", (ids["egg"],))
    _assert_agrees_with_a_new_process(reader, rotated)
    egg = np.asarray(rotated.embed(["egg away"])[0], dtype=np.float32).tobytes()
    assert ids["egg"] not in (reader._nearest_keys_in_memory(NS, egg, 30, 30, reader.embedding_model()) or [])


def test_a_failed_load_is_retried_and_sqlite_vec_answers_meanwhile(
    store: SQLiteStore, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    ids = {thing: _add(store, fake_embedder, f"put the {thing} away") for thing in THINGS}
    real_load = store._load_bits
    failures = [1]

    def flaky_load(index: BitIndex) -> bool:
        if failures:
            failures.pop()
            raise store._errors[0]("database is locked")
        return real_load(index)

    monkeypatch.setattr(store, "_load_bits", flaky_load)
    assert _search(store, fake_embedder, "put the kettle away")[0] == ids["kettle"]
    assert not _in_memory(store)
    assert _search(store, fake_embedder, "put the kettle away")[0] == ids["kettle"]
    assert _in_memory(store)


def test_a_write_transaction_reads_the_index_with_the_keys_it_has_not_seen(
    store: SQLiteStore, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.bind_embedding_model(fake_embedder.identity, fake_embedder.dim)
    ids = {thing: _add(store, fake_embedder, f"put the {thing} away") for thing in THINGS}
    _search(store, fake_embedder, "anything")
    knn_queries: list[str] = []
    execute = store._execute

    def counting(sql: str, params: tuple[object, ...] = ()) -> object:
        if "MATCH vec_quantize_binary" in sql:
            knn_queries.append(sql)
        return execute(sql, params)

    monkeypatch.setattr(store, "_execute", counting)
    with store.transaction():
        assert _search(store, fake_embedder, "put the kettle away", k=1) == [ids["kettle"]]
        new = _add(store, fake_embedder, "wash the muddy boots")
        assert _search(store, fake_embedder, "wash the muddy boots", k=1) == [new]
        assert knn_queries == []  # answered from memory, the uncommitted key included
        store.set_status(ids["kettle"], ProcedureStatus.DEPRECATED)
        assert ids["kettle"] not in _search(store, fake_embedder, "put the kettle away", k=3)
        assert knn_queries  # a status changed: sqlite-vec answers until the index catches up
    assert store._bits is not None and store._bits.last_key_id < new  # nothing uncommitted went in


# -- exact below the bound, coarse above it ----------------------------------------------------

MISLEADING_DIM = 64
# More decoys than the coarse search rescores for k=1, so it cannot reach the nearest procedure.
DECOYS = COARSE_OVERSAMPLING + 2


class _Table:
    """Vectors set by the test, one per text: binary codes that agree with the query's signs whose
    cosine is far from it, and one with the query's direction whose signs differ in places."""

    identity = "table@1"
    dim = MISLEADING_DIM

    def __init__(self) -> None:
        query = np.ones(MISLEADING_DIM, dtype=np.float32)
        self.vectors: dict[str, np.ndarray] = {"the request": query}
        # Cosine 0.87 with the request, 16 of 64 signs flipped (a Hamming distance of 16).
        self.vectors["the nearest procedure"] = np.where(np.arange(MISLEADING_DIM) < 16, -0.01, 1.0)
        for i in range(DECOYS):
            # Every sign the request's (Hamming distance 0), cosine 0.13: one dimension dominates.
            decoy = np.full(MISLEADING_DIM, 0.01, dtype=np.float32)
            decoy[20 + i] = 100.0
            self.vectors[f"decoy {i}"] = decoy

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[text].astype(np.float32).tolist() for text in texts]


def _misleading_memory(store: SQLiteStore) -> tuple[_Table, int, list[int]]:
    table = _Table()
    store.bind_embedding_model(table.identity, table.dim)
    nearest = _add(store, table, "the nearest procedure")  # type: ignore[arg-type]
    decoys = [_add(store, table, f"decoy {i}") for i in range(DECOYS)]  # type: ignore[arg-type]
    return table, nearest, decoys


def test_a_small_memory_returns_the_nearest_procedure_where_binary_codes_mislead(
    tmp_path: Path, search_path: str
) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    table, nearest, decoys = _misleading_memory(store)
    query = table.embed(["the request"])[0]
    found = store.vector_search(NS, query, 1)
    assert _in_memory(store)
    if search_path == "exact":
        assert found == [(nearest, pytest.approx(0.866, abs=0.01))]
    else:
        # Above the bound the binary codes decide which keys are rescored (COARSE_OVERSAMPLING of
        # them for k=1): the decoys, whose signs all agree with the request. The exact search avoids it.
        assert found[0][0] in decoys


def _reader_and_writer(tmp_path: Path, table: _Table) -> tuple[SQLiteStore, SQLiteStore]:
    reader = SQLiteStore(tmp_path / "shared.db")
    reader.bind_embedding_model(table.identity, table.dim)
    return reader, SQLiteStore(tmp_path / "shared.db")


def test_a_procedure_another_process_adds_is_found_by_the_exact_search(tmp_path: Path, search_path: str) -> None:
    if search_path == "coarse":
        pytest.skip("the binary codes rank the decoys first here (see above)")
    table = _Table()
    reader, writer = _reader_and_writer(tmp_path, table)
    decoys = [_add(writer, table, f"decoy {i}") for i in range(DECOYS)]  # type: ignore[arg-type]
    query = table.embed(["the request"])[0]
    assert reader.vector_search(NS, query, 1)[0][0] in decoys
    assert reader._bits is not None and reader._bits.holds_vectors
    nearest = _add(writer, table, "the nearest procedure")  # type: ignore[arg-type]
    assert [pid for pid, _ in reader.vector_search(NS, query, 1)] == [nearest]
    with writer.transaction():
        writer.set_status(nearest, ProcedureStatus.DEPRECATED)
    assert reader.vector_search(NS, query, 1)[0][0] in decoys


def test_a_memory_growing_past_the_bound_falls_back_to_the_binary_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, search_path: str
) -> None:
    if search_path == "coarse":
        pytest.skip("starts below the bound")
    monkeypatch.setattr(sqlite_store, "EXACT_SEARCH_MAX_KEYS", 4)
    table = _Table()
    reader, writer = _reader_and_writer(tmp_path, table)
    nearest = _add(writer, table, "the nearest procedure")  # type: ignore[arg-type]
    decoys = [_add(writer, table, f"decoy {i}") for i in range(3)]  # type: ignore[arg-type]
    query = table.embed(["the request"])[0]
    assert [pid for pid, _ in reader.vector_search(NS, query, 1)] == [nearest]
    assert reader._bits is not None and reader._bits.holds_vectors
    # Another process's keys take the file past the bound: the reader sees them, lets its float
    # vectors go, and searches by binary code (where the decoys, every sign agreeing, win).
    decoys += [_add(writer, table, f"decoy {i}") for i in range(3, DECOYS)]  # type: ignore[arg-type]
    found = [pid for pid, _ in reader.vector_search(NS, query, 1)]
    assert reader._bits is not None and not reader._bits.holds_vectors
    assert found[0] in decoys
    # A process opening the file now holds no float vectors from the start, and answers alike.
    fresh = SQLiteStore(tmp_path / "shared.db")
    assert [pid for pid, _ in fresh.vector_search(NS, query, 1)] == found
    assert fresh._bits is not None and not fresh._bits.holds_vectors
