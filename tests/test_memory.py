"""The engine under each strategy, on small hand-made cases (fake embedder, real store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from memp_mcp.embedding import BackgroundEmbedder
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.strategies import Strategies
from memp_mcp.errors import InvalidInputError, NotFoundError, ReadOnlyNamespaceError
from memp_mcp.models import ProcedureDraft, ProcedureStatus
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder

CLEAN_SOAP = [
    {"action": "go to countertop 1", "observation": "On the countertop 1, you see a soapbar 1."},
    {"action": "take soapbar 1 from countertop 1", "observation": "You pick up the soapbar 1."},
    {"action": "clean soapbar 1 with bathtub 1", "observation": "Nothing happens."},
    {"action": "go to sinkbasin 1", "observation": "On the sinkbasin 1, you see nothing."},
    {"action": "clean soapbar 1 with sinkbasin 1", "observation": "You clean the soapbar 1."},
    {"action": "go to cabinet 1", "observation": "The cabinet 1 is open."},
    {"action": "put soapbar 1 in/on cabinet 1", "observation": "You put the soapbar 1 in/on the cabinet 1."},
]
HEAT_EGG = [
    {"action": "go to fridge 1", "observation": "The fridge 1 is closed."},
    {"action": "open fridge 1", "observation": "You open the fridge 1. You see an egg 1."},
    {"action": "take egg 1 from fridge 1", "observation": "You pick up the egg 1."},
    {"action": "go to microwave 1", "observation": "The microwave 1 is closed."},
    {"action": "heat egg 1 with microwave 1", "observation": "You heat the egg 1."},
    {"action": "go to garbagecan 1", "observation": "On the garbagecan 1, you see nothing."},
    {"action": "put egg 1 in/on garbagecan 1", "observation": "You put the egg 1 in/on the garbagecan 1."},
]

# The engine on each store backend (tests that open their own SQLite file run on SQLite only).
pytestmark = pytest.mark.backends("sqlite", "postgresql")


def memory_for(store: SQLiteStore, **strategies: str) -> Memory:
    return Memory(store, FakeEmbedder(), strategies=Strategies(**strategies))  # type: ignore[arg-type]


def test_record_builds_a_procedure_and_recall_finds_it(store: SQLiteStore) -> None:
    memory = memory_for(store)
    recorded = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success", agent="agent-a")
    assert recorded.action == "created" and recorded.procedure_id is not None
    memory.record("heat some egg and put it in garbagecan", HEAT_EGG, "success")

    recalled = memory.recall("put a clean soapbar in the cabinet please", k=3)
    assert recalled.recall_id is not None
    best = recalled.procedures[0]
    assert best.id == recorded.procedure_id
    assert "clean {object} with sinkbasin 1" in best.steps
    assert best.author == "agent-a" and best.source == "extractive"
    assert best.source_trajectory_ids == [recorded.trajectory_id]
    assert best.exemplar is not None and best.exemplar[0].action == "go to countertop 1"
    assert store.get_procedure(best.id).retrieved_count == 1
    assert store.integrity_problems() == []


def test_relevance_floor_returns_nothing_for_an_unrelated_task(store: SQLiteStore) -> None:
    memory = memory_for(store)
    memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    result = memory.recall("configure the kubernetes ingress certificate rotation")
    assert result.procedures == [] and result.recall_id is None


def test_duplicates_of_the_same_task_merge(store: SQLiteStore) -> None:
    memory = memory_for(store)
    first = memory.record("put a clean soapbar in cabinet.", CLEAN_SOAP, "success")
    shorter = [s for s in CLEAN_SOAP if "bathtub" not in s["action"]]
    second = memory.record("Put a clean soapbar in cabinet", shorter, "success")
    other = memory.record("heat some egg and put it in garbagecan", HEAT_EGG, "success")
    assert second.action == "merged" and second.procedure_id == first.procedure_id
    assert other.action == "created"
    merged = store.get_procedure(first.procedure_id or 0)
    assert merged.support_count == 2
    assert sorted(merged.source_trajectory_ids) == sorted([first.trajectory_id, second.trajectory_id])
    assert store.count_procedures("default") == 2


def test_an_agent_draft_wins_over_the_extractive_steps(store: SQLiteStore) -> None:
    memory = memory_for(store)
    first = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    draft = ProcedureDraft(title="Clean then store", steps=["find {object}", "rinse at the sink", "store it"])
    second = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success", draft=draft)
    assert second.action == "merged"
    procedure = store.get_procedure(first.procedure_id or 0)
    assert procedure.steps == draft.steps and procedure.source == "agent" and procedure.version == 2


def test_failure_after_recall_adjusts_with_a_new_version_and_pitfall(store: SQLiteStore) -> None:
    memory = memory_for(store)
    created = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    recalled = memory.recall("put a clean soapbar in cabinet")
    failed_run = [
        {"action": "go to cabinet 1", "observation": "The cabinet 1 is closed."},
        {"action": "put soapbar 1 in/on cabinet 1", "observation": "Nothing happens."},
    ]
    outcome = memory.report_outcome(
        recalled.recall_id or "", False, notes="the cabinet was closed", trajectory=failed_run
    )
    assert outcome.adjusted_procedure_ids == [created.procedure_id]
    detail = memory.get_procedure(created.procedure_id or 0)
    assert detail.procedure.version == 2 and detail.procedure.failure_count == 1
    assert any("cabinet was closed" in p for p in detail.procedure.pitfalls)
    assert any("did not work" in p for p in detail.procedure.pitfalls)
    assert [v.version for v in detail.history] == [1]
    assert detail.history[0].pitfalls != detail.procedure.pitfalls
    with pytest.raises(InvalidInputError, match="already has a reported outcome"):
        memory.report_outcome(recalled.recall_id or "", True)


def test_a_correction_draft_replaces_the_steps(store: SQLiteStore) -> None:
    memory = memory_for(store)
    created = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    recalled = memory.recall("put a clean soapbar in cabinet")
    fix = ProcedureDraft(title="t", steps=["open {target} first", "put {object} in/on {target}"], pitfalls=["open it"])
    memory.report_outcome(recalled.recall_id or "", False, correction=fix)
    procedure = store.get_procedure(created.procedure_id or 0)
    assert procedure.steps == fix.steps and "open it" in procedure.pitfalls


def test_outcomes_of_steps_since_corrected_count_for_the_version_followed_not_the_correction(
    store: SQLiteStore,
) -> None:
    memory = memory_for(store)
    created = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    procedure_id = created.procedure_id or 0
    # Three agents recall the first version; a fourth corrects it before they report.
    followed_old = [memory.recall("put a clean soapbar in cabinet").recall_id or "" for _ in range(3)]
    corrector = memory.recall("put a clean soapbar in cabinet").recall_id or ""
    fix = ProcedureDraft(title="t", steps=["open {target} first", "put {object} in/on {target}"])
    memory.report_outcome(corrector, False, correction=fix)
    for recall_id in followed_old:
        outcome = memory.report_outcome(recall_id, False)
        assert "you followed version 1" in outcome.message and outcome.adjusted_procedure_ids == []
    corrected = store.get_procedure(procedure_id)
    assert corrected.status == ProcedureStatus.ACTIVE and corrected.steps == fix.steps
    assert (corrected.version, corrected.version_success_count, corrected.version_failure_count) == (2, 0, 0)
    assert corrected.failure_count == 4
    first = memory.get_procedure(procedure_id).history[0]
    assert (first.version, first.failure_count) == (1, 4)


def test_validation_strategy_does_not_adjust(store: SQLiteStore) -> None:
    memory = memory_for(store, update="validation")
    created = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    recalled = memory.recall("put a clean soapbar in cabinet")
    outcome = memory.report_outcome(recalled.recall_id or "", False, notes="failed")
    assert outcome.adjusted_procedure_ids == []
    assert store.get_procedure(created.procedure_id or 0).version == 1
    assert memory.record("heat some egg", HEAT_EGG, "failure").action == "stored_only"


def test_vanilla_strategy_builds_from_failures_too(store: SQLiteStore) -> None:
    memory = memory_for(store, update="vanilla")
    assert memory.record("heat some egg", HEAT_EGG, "failure").action == "created"


def test_trajectory_build_strategy_keeps_actions_verbatim(store: SQLiteStore) -> None:
    memory = memory_for(store, build="trajectory")
    created = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    procedure = store.get_procedure(created.procedure_id or 0)
    assert procedure.steps == [s["action"] for s in CLEAN_SOAP] and procedure.source == "trajectory"


def test_repeated_failure_deprecates_and_restore_brings_it_back(store: SQLiteStore) -> None:
    memory = memory_for(store, update="validation")
    created = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    deprecated: list[int] = []
    for attempt in range(3):
        recalled = memory.recall("put a clean soapbar in cabinet")
        assert recalled.procedures, f"procedure vanished after {attempt} failures"
        deprecated = memory.report_outcome(recalled.recall_id or "", False).deprecated_procedure_ids
        assert bool(deprecated) == (attempt == 2)
    assert deprecated == [created.procedure_id]
    assert store.get_procedure(created.procedure_id or 0).status == ProcedureStatus.DEPRECATED
    assert memory.recall("put a clean soapbar in cabinet").procedures == []
    memory.restore(created.procedure_id or 0)
    assert memory.recall("put a clean soapbar in cabinet").procedures[0].id == created.procedure_id


def test_success_outweighs_failure_in_the_utility_prior(store: SQLiteStore) -> None:
    memory = memory_for(store)
    # The better procedure is the newer one, so id order alone would rank it second.
    bad = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    good = memory.record("put a clean soapbar in drawer", CLEAN_SOAP, "success")
    with store.transaction():
        store.bump_stats(good.procedure_id or 0, succeeded=5)
        store.bump_stats(bad.procedure_id or 0, failed=1, succeeded=1)
    ranked = memory.recall("put a clean soapbar", k=2).procedures
    assert [p.id for p in ranked] == [good.procedure_id, bad.procedure_id]


def test_keyword_only_mode_without_a_model(store: SQLiteStore) -> None:
    memory = Memory(store, BackgroundEmbedder(None))
    memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    memory.record("heat some egg and put it in garbagecan", HEAT_EGG, "success")
    result = memory.recall("clean the soap bar, then into the cabinet")
    assert result.retrieval.startswith("keyword only")
    assert [p.title for p in result.procedures][:1] == ["Put a clean {object} in {target}"]
    assert memory.recall("fly a kite").procedures == []


def test_keys_recorded_before_the_model_get_vectors_later(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    Memory(store, BackgroundEmbedder(None)).record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    assert store.keys_without_vectors()
    memory = Memory(store, FakeEmbedder())
    assert memory.recall("put a clean soapbar in cabinet").retrieval == "vector+keyword"
    assert store.keys_without_vectors() == []
    assert store.integrity_problems() == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.record("", CLEAN_SOAP, "success"), "task must be a non-empty"),
        (lambda m: m.record("x" * 3000, CLEAN_SOAP, "success"), "at most 2000"),
        (lambda m: m.record("t", [{"action": "a"}] * 10_000, "success"), "too many"),
        (lambda m: m.record("t", [{"action": "a", "observation": "o" * 5_000_000}], "success"), "steps\\[0\\]"),
        (lambda m: m.record("t", [{"observation": "no action"}], "success"), "steps\\[0\\].action"),
        (lambda m: m.record("t", CLEAN_SOAP, "maybe"), "outcome must be"),
        (lambda m: m.record("t", CLEAN_SOAP, "success", namespace="bad name!"), "namespace"),
        (lambda m: m.recall("t", k=0), "k must be"),
        (lambda m: m.recall("t", k=10**6), "k must be"),
        (lambda m: m.report_outcome("nope", True), "no recall with id"),
        (lambda m: m.get_procedure(999), "no procedure with id 999"),
        (lambda m: m.edit(1), "nothing to change|no procedure"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_writes_nothing(
    store: SQLiteStore, call: object, message: str
) -> None:
    memory = memory_for(store)
    before = store.count_trajectories()
    with pytest.raises((InvalidInputError, NotFoundError), match=message):
        call(memory)  # type: ignore[operator]
    assert store.count_trajectories() == before


def test_full_text_syntax_in_a_task_is_just_text(store: SQLiteStore) -> None:
    memory = memory_for(store)
    memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    for hostile in ['"AND (', "NEAR(soapbar cabinet", "soap* OR cabinet:", "'; DROP TABLE procedures; --"]:
        memory.recall(hostile)
        memory.record(hostile, CLEAN_SOAP, "success")
    assert store.integrity_problems() == []


def test_unknown_namespace_recalls_nothing(store: SQLiteStore) -> None:
    memory = memory_for(store)
    memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    assert memory.recall("put a clean soapbar in cabinet", namespace="elsewhere").procedures == []


def test_read_only_namespace_refuses_writes(store: SQLiteStore) -> None:
    memory = Memory(store, FakeEmbedder(), read_only_namespaces=frozenset({"library"}))
    with pytest.raises(ReadOnlyNamespaceError, match="read-only"):
        memory.record("t", CLEAN_SOAP, "success", namespace="library")
    assert store.count_trajectories() == 0


def test_edit_keeps_history_and_forget_hides(store: SQLiteStore) -> None:
    memory = memory_for(store)
    created = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    pid = created.procedure_id or 0
    edited = memory.edit(pid, steps=["a", "b"], agent="reviewer")
    assert edited.steps == ["a", "b"] and edited.version == 2
    assert memory.get_procedure(pid).history[0].changed_by == "reviewer"
    memory.forget(pid)
    assert memory.list_procedures(status="active") == []
    assert [p.id for p in memory.list_procedures(status="deprecated")] == [pid]


def test_keyword_search_looks_only_for_rare_terms_in_a_large_memory(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import memp_mcp.engine.retrieve as retrieve

    memory = memory_for(store)
    topics = (
        "sales budget hiring travel legal audit payroll roadmap security pricing marketing support "
        "inventory shipping training compliance benefits research design quality"
    ).split()
    for topic in topics:
        memory.record(f"put the {topic} report in the shared drive", HEAT_EGG, "success")
    assert store.count_procedures() == len(topics)
    memory.record("put the quarterly invoice in the shared drive", HEAT_EGG, "success")
    monkeypatch.setattr(retrieve, "SELECTIVE_SEARCH_MIN_CORPUS", 10)
    monkeypatch.setattr(retrieve, "KEYWORD_POSTINGS_BUDGET", 5)
    terms = memory.retriever._selective_terms("put the quarterly invoice in the shared drive")
    # "put", "shared" and "drive" are in every procedure; the rare words are what a search needs.
    assert "quarterly" in terms and "invoice" in terms
    assert "shared" not in terms and "drive" not in terms and "put" not in terms
    # Only common words: none is searched (a joined pair found nowhere may be), and the vector side
    # still finds the procedure.
    assert not {"put", "shared", "drive"} & set(memory.retriever._selective_terms("put it in the shared drive"))
    # A word found nowhere (yet) costs nothing and stays: a count cached before a procedure used it
    # must not hide that procedure.
    assert "zx81" in memory.retriever._selective_terms("file the zx81 report in the shared drive")
    found = memory.recall("put the quarterly invoice in the shared drive", k=1).procedures
    assert found and found[0].title.lower().startswith("put the quarterly invoice")


def test_a_record_searches_the_in_memory_index_not_a_scan_of_the_file(tmp_path: Path) -> None:
    # Inside its write a record searches twice (the merge check, the lesson's neighbours). The in-memory
    # index is only read there, never loaded, so a record that left it behind had sqlite-vec scan
    # every key instead (~16 ms at 200,000 keys): the record brings it up to date before its write.
    with SQLiteStore(tmp_path / "memory.db") as store:
        memory = memory_for(store)
        for n in range(40):
            memory.record(f"put a clean soapbar {n} in cabinet", CLEAN_SOAP, "success")
        memory.recall("put a clean soapbar in cabinet")
        for n in range(40, 80):
            memory.record(f"heat an egg {n} and put it in the garbagecan", HEAT_EGG, "success")
        statements: list[str] = []
        execute = store._execute

        def spy(sql: str, *args: object, **kwargs: object) -> object:
            statements.append(sql)
            return execute(sql, *args, **kwargs)  # type: ignore[arg-type]

        store._execute = spy  # type: ignore[method-assign,assignment]
        memory.record("heat an egg 99 and put it in the garbagecan", HEAT_EGG, "success")
    assert statements and not any("embedding MATCH" in sql for sql in statements)
