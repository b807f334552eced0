"""Retrieve: find the procedures that fit a task.

Strategies (the paper's ablations plus the default):
- `hybrid`: candidates from vector KNN over each procedure's keys and from FTS5 keyword search,
  kept when their cosine reaches a calibrated floor (or their words show they fit), ranked by cosine
  with a boost from the request's keywords where a key holds enough of them, re-ranked by a
  smoothed utility prior from outcome statistics;
- `query`: cosine similarity of the task embedding only;
- `avefact`: the paper's AveFact, the average over the task's keywords of each keyword's best
  similarity to a procedure's keys;
- `random`: any active procedures, for the ablation baseline.

This module scores; it does not write. The engine records the recall.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from memp_mcp.config import Settings
from memp_mcp.embedding import Embedder
from memp_mcp.models import Procedure
from memp_mcp.store import Store
from memp_mcp.text import code_words, compounds, fts_terms, keywords, names, stem, without_names, words


@dataclass(frozen=True)
class RetrievalTuning:
    """Weights and thresholds; the defaults were tuned on the benchmark's tuning sets (see docs/benchmarks.md)."""

    # How many candidates each retriever contributes before scoring (at least k). 20 and 40 give
    # the same figures on the public benchmark; fewer candidates scan and load less.
    candidates: int = 20
    # Ranking: vector_weight * cosine + (1 - vector_weight) * keyword coverage, per key, where the
    # coverage counts only when the key holds at least `keyword_boost_share` of the request's
    # keywords. One word in common with a long request ("cup" in "warm up my coffee cup and return
    # it to the espresso maker") is chance, and used to lift a procedure that shares it above a
    # rewording of the right task that shares none.
    vector_weight: float = 0.6
    keyword_boost_share: float = 0.25
    # Whether a procedure fits at all is decided on the semantic score alone (the best cosine of
    # its keys), so a rewording that shares no word with the stored task is judged as fairly as
    # one that repeats it. The floor is calibrated, not chosen: it is the 90th percentile of the
    # best cosine that tasks no procedure serves reach (the benchmark's unrelated tuning set,
    # `memp-mcp bench retrieval` prints it), so nine unrelated tasks in ten get nothing. It
    # belongs to the model: all-MiniLM-L6-v2's cosines are lower than many models'.
    semantic_floor: float = 0.37
    # A long instruction (hundreds to thousands of characters, as people paste into a coding agent) is
    # judged against a higher floor: its boilerplate ("you are a ... engineer", "write the output to
    # /root/...") lifts its cosine with any other long task. Calibrated on the real Claude Code sessions
    # (`memp-mcp bench sessions`): instructions of one family reach 0.78 and more with each other; those
    # of different families at most 0.26, and 22 long prompts of other kinds at most 0.43 (p90 of all
    # 0.22). The short tasks of the other benchmarks have at most 13 keywords: they keep `semantic_floor`.
    long_task_terms: int = 20
    long_task_floor: float = 0.5
    # A candidate with a key holding at least this share of the task's keywords fits whatever its
    # cosine: names the model does not know (a library, an error code) still find their procedure.
    keyword_fit: float = 0.8
    # A candidate under the floor also fits on the words of its whole text (title, the tasks it
    # served, its steps), when they hold at least `steps_evidence_terms` of the request's keywords: a
    # request worded after what the agent did ("upload the wheel with twine") rather than after the
    # stored task ("Publish a release to PyPI"). The more of the keywords they hold, the lower the
    # cosine needed: the floor with none, down in a straight line to `steps_evidence_cosine` at
    # `steps_evidence_share` of them (see `_evidence_bar`). Pitfalls are not read: they name actions
    # that failed, and in the household benchmark counting their words let in procedures of other
    # tasks. Only the `steps_evidence_candidates` closest candidates with at least that cosine are
    # read, so this costs a bounded load; one word in common is never enough.
    steps_evidence_share: float = 0.5
    steps_evidence_terms: int = 2
    steps_evidence_cosine: float = 0.2
    steps_evidence_candidates: int = 10
    # Keyword-only mode (no model): the share of the task's keywords a procedure must contain.
    keyword_floor: float = 0.5
    # The utility prior multiplies relevance by 1 +/- this, from the smoothed success rate.
    utility_weight: float = 0.1
    # A procedure nothing verified (built from runs whose outcome no test or command decided, with no
    # reported success yet) is ranked as if this much less relevant: below a verified one that fits as well.
    unverified_penalty: float = 0.1


def tuning_for(settings: Settings) -> RetrievalTuning:
    """The defaults, with the relevance floor the settings name (one calibrated for their model). The
    lowest cosine the words-under-the-floor rule reads moves with it, the same distance under the
    floor: 0.2 is all-MiniLM-L6-v2's, about the median best cosine of an unrelated task."""
    if settings.relevance_floor is None:
        return RetrievalTuning()
    defaults = RetrievalTuning()
    below = defaults.semantic_floor - defaults.steps_evidence_cosine
    return dataclasses.replace(
        defaults,
        semantic_floor=settings.relevance_floor,
        steps_evidence_cosine=max(0.0, settings.relevance_floor - below),
        long_task_floor=settings.relevance_floor + defaults.long_task_floor - defaults.semantic_floor,
    )


# Keyword search reads the posting list of every term it looks for, so its cost grows with how many
# procedures hold those terms. In a memory larger than this, it looks for the task's rarest terms
# only, as many as fit in the posting budget: rare terms (a name, an identifier, an error code) are
# what keyword search adds to the vector side, while common ones cost most and tell least. With no
# term rare enough, the vector side alone finds the candidates (both are scored the same way).
SELECTIVE_SEARCH_MIN_CORPUS = 2_000
KEYWORD_POSTINGS_BUDGET = 2_000
# How long a term's document frequency (and the memory's size) is reused: they change slowly, and a
# stale count only changes which very common words a keyword search skips.
TERM_STATISTICS_TTL_SECONDS = 300.0


@dataclass
class Scored:
    procedure: Procedure
    relevance: float
    score: float
    # The procedure's source trajectories, the one whose task is closest to the query first.
    ranked_sources: list[int]
    # What the relevance floor judged, where that is not `relevance`: hybrid ranks by cosine blended
    # with the words of a key, but decides whether a procedure fits on its cosine (see `_semantic`).
    fit: float | None = None


def utility_prior(procedure: Procedure, weight: float) -> float:
    """1 for a procedure never judged; up to 1 + weight for one that always works."""
    return utility_prior_from(procedure.success_count, procedure.failure_count, weight)


def utility_prior_from(successes: int, failures: int, weight: float) -> float:
    """The utility prior from outcome counts. Laplace smoothing ((s + 1) / (s + f + 2)) keeps one
    early failure from burying a new procedure."""
    rate = (successes + 1) / (successes + failures + 2)
    return 1.0 + weight * (2.0 * rate - 1.0)


def _unit(vector: Sequence[float] | bytes) -> np.ndarray:
    array = np.frombuffer(vector, dtype=np.float32) if isinstance(vector, bytes) else np.asarray(vector, np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


def _cosines(query: np.ndarray, keyed: dict[int, list[tuple[str, bytes]]]) -> dict[int, dict[str, float]]:
    """Cosine of the (unit) query with every key vector of every candidate, in one matrix product."""
    flat = [(pid, text, blob) for pid, keys in keyed.items() for text, blob in keys]
    if not flat:
        return {}
    matrix = np.frombuffer(b"".join(blob for _, _, blob in flat), dtype=np.float32).reshape(len(flat), -1)
    norms = np.linalg.norm(matrix, axis=1)
    scores = (matrix @ query) / np.where(norms == 0, 1.0, norms)
    result: dict[int, dict[str, float]] = {}
    for (pid, text, _), score in zip(flat, scores.tolist(), strict=True):
        result.setdefault(pid, {})[text] = score
    return result


def vocabulary(text: str) -> frozenset[str]:
    """Stemmed words and joined pairs of a text."""
    tokens = words(text)
    stems = {stem(t) for t in tokens}
    return frozenset(stems | {stem(c) for c in compounds(tokens)})


# Cached for key texts: short, and read again by every recall that meets their procedure.
_vocabulary = functools.lru_cache(maxsize=65_536)(vocabulary)
# Steps and titles, read by the steps check (`_fitting_on_steps`) of every recall that meets their
# procedure under the floor: stemming them afresh was a third of a small recall's own work. Only
# short parts are kept (a step of 2,000 distinct words would hold ~90 KB of stems).
_short_part_vocabulary = functools.lru_cache(maxsize=16_384)(vocabulary)
PART_VOCABULARY_CACHED_CHARS = 400


def _part_vocabulary(text: str) -> frozenset[str]:
    return _short_part_vocabulary(text) if len(text) <= PART_VOCABULARY_CACHED_CHARS else vocabulary(text)


def procedure_vocabulary(procedure: Procedure) -> frozenset[str]:
    """The stemmed words of a procedure's title, when-to-use and steps, from the parts' cache."""
    parts = [procedure.title, procedure.when_to_use, *procedure.steps]
    return frozenset().union(*(_part_vocabulary(part) for part in parts))


def query_terms(task: str) -> list[str]:
    """The task's keywords, with adjacent pairs joined when the pair is the way a name is spelt."""
    return [stem(w) for w in keywords(task)]


@functools.lru_cache(maxsize=65_536)
def _cached_coverage(terms: tuple[str, ...], document: str) -> float:
    return keyword_coverage(terms, document)


def keyword_coverage(terms: Sequence[str], document: str) -> float:
    """The share of `terms` found in `document`; a term split in the query ("desk lamp") counts
    when the document spells it joined ("desklamp")."""
    return share_found(terms, _vocabulary(document))


def share_found(terms: Sequence[str], vocabulary: frozenset[str]) -> float:
    """The share of `terms` in a text's `vocabulary` (see `keyword_coverage`)."""
    if not terms:
        return 0.0
    joined = {a + b for a, b in itertools.pairwise(terms)} & vocabulary
    found = 0
    for index, term in enumerate(terms):
        if (
            term in vocabulary
            or (index + 1 < len(terms) and term + terms[index + 1] in joined)
            or (index > 0 and terms[index - 1] + term in joined)
        ):
            found += 1
    return found / len(terms)


def shared_words(task_names: Sequence[tuple[str, list[str]]], vocabulary: frozenset[str]) -> list[str]:
    """The words of a task (its `names`: "render_table" is one) that a text's `vocabulary` holds."""
    return [name for name, found in task_names if share_found([stem(w) for w in found], vocabulary) > 0]


class TermStatistics:
    """The store's document frequencies and size, each reused for a while (thread-safe)."""

    def __init__(self, store: Store, ttl: float = TERM_STATISTICS_TTL_SECONDS) -> None:
        self._store = store
        self._ttl = ttl
        self._lock = threading.Lock()
        self._frequencies: dict[str, tuple[int, float]] = {}
        self._size: tuple[int, float] = (0, -ttl)

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """Each term's document frequency; the ones not known recently are asked of the store at once."""
        now = time.monotonic()
        with self._lock:
            known = {t: self._frequencies.get(t) for t in terms}
        fresh = {t: c[0] for t, c in known.items() if c is not None and now - c[1] < self._ttl}
        missing = [t for t in dict.fromkeys(terms) if t not in fresh]
        if missing:
            # Only whether a term's postings fit the keyword budget matters (see _selective_terms), so
            # counting stops just past it: a common word's count costs a visit to each of its rows.
            counted = self._store.document_frequencies(missing, at_most=KEYWORD_POSTINGS_BUDGET + 1)
            with self._lock:
                if len(self._frequencies) > 50_000:
                    self._frequencies.clear()
                self._frequencies.update({t: (counted.get(t, 0), now) for t in missing})
            fresh.update({t: counted.get(t, 0) for t in missing})
        return fresh

    def indexed_count(self) -> int:
        now = time.monotonic()
        if now - self._size[1] >= self._ttl:
            self._size = (self._store.indexed_count(), now)
        return self._size[0]


class Retriever:
    """Scores a store's procedures for a task with one strategy."""

    def __init__(self, store: Store, tuning: RetrievalTuning | None = None, seed: int | None = None) -> None:
        self.store = store
        self.tuning = tuning or RetrievalTuning()
        self._rng = random.Random(seed)
        self._statistics = TermStatistics(store)
        self._lock = threading.Lock()
        self._embedder_thread: ThreadPoolExecutor | None = None

    def retrieve(
        self,
        task: str,
        namespace: str,
        k: int,
        strategy: str,
        embedder: Embedder | None,
        words_under_floor: bool = True,
    ) -> list[Scored]:
        """The best k procedures for `task`. `words_under_floor`: whether a candidate the model scores
        under the floor may still fit on the words of its whole text (hybrid's `_fitting_on_steps`); a
        caller that offers procedures nobody asked for (the prompt hook) gives only what reaches it."""
        if strategy == "random":
            ids = self.store.random_procedures(namespace, k, self._rng)
            return [Scored(p, 0.0, 0.0, p.source_trajectory_ids) for p in self.store.get_procedures(ids)]
        if embedder is None:
            return self._keyword_only(task, namespace, k)
        if strategy == "query":
            return self._by_cosine(task, namespace, k, embedder.embed([task])[0])
        if strategy == "avefact":
            return self._avefact(task, namespace, k, embedder.embed([task])[0], embedder)
        # The model reads the task in another thread (onnxruntime lets go of the interpreter) while this
        # one runs the keyword search, which does not need the vector: at 100,000 procedures the two took
        # ~4 and ~2.4 ms one after the other.
        embedding = self._embedding_thread().submit(embedder.embed, [task])
        found_by_words = self._keyword_candidates(task, namespace, max(k, self.tuning.candidates))
        return self._hybrid(task, namespace, k, embedding.result()[0], found_by_words, embedder, words_under_floor)

    # -- strategies ----------------------------------------------------------------------

    def _embedding_thread(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._embedder_thread is None:
                self._embedder_thread = ThreadPoolExecutor(1, thread_name_prefix="query-embedding")
            return self._embedder_thread

    def _keyword_candidates(self, task: str, namespace: str, wanted: int) -> list[int]:
        selected = self._selective_terms(task)
        return [pid for pid, _ in self.store.keyword_search(namespace, selected, wanted)] if selected else []

    def _hybrid(
        self,
        task: str,
        namespace: str,
        k: int,
        query_vector: list[float],
        found_by_words: list[int],
        embedder: Embedder,
        words_under_floor: bool,
    ) -> list[Scored]:
        tuning = self.tuning
        wanted = max(k, tuning.candidates)
        ids = [pid for pid, _ in self.store.vector_search(namespace, query_vector, wanted)]
        ids = list(dict.fromkeys(ids + found_by_words))
        terms = tuple(query_terms(task))
        tuning = self._for_length(tuning, terms)
        # Each key (a task the procedure served, or its family) is scored by cosine blended with
        # keyword coverage; a procedure is as relevant as its best key. Candidates are scored from
        # their keys alone, and only the best k are loaded in full.
        keyed = self.store.keys_with_vectors(ids)
        cosines = _cosines(_unit(query_vector), keyed)
        key_scores = {pid: self._blend(by_text, terms) for pid, by_text in cosines.items()}
        relevance = {pid: max(scores.values()) for pid, scores in key_scores.items() if scores}
        task_names = names(task)
        semantic, one_name, read = self._semantic(task, terms, task_names, cosines, keyed, embedder, tuning)
        fitting = self._fitting(cosines, semantic, one_name, terms, tuning)
        loaded = self._fitting_on_steps(cosines, set(fitting), terms, task_names, tuning) if words_under_floor else {}
        fitting += list(loaded)
        loaded = {**read, **loaded}
        unverified = self.store.unverified(fitting)
        scores = {
            pid: relevance[pid]
            * utility_prior_from(successes, failures, tuning.utility_weight)
            * (1.0 - tuning.unverified_penalty if pid in unverified else 1.0)
            for pid, (successes, failures) in self.store.outcome_counts(fitting).items()
        }
        best = sorted(scores, key=lambda pid: (-scores[pid], pid))[:k]
        missing = [pid for pid in best if pid not in loaded]
        by_id = {**loaded, **{p.id: p for p in self.store.get_procedures(missing)}} if missing else loaded
        procedures = [by_id[pid] for pid in best if pid in by_id]
        tasks = self._source_tasks(procedures)
        return [
            Scored(p, relevance[p.id], scores[p.id], _rank_sources(p, key_scores[p.id], tasks), semantic[p.id])
            for p in procedures
        ]

    def _by_cosine(self, task: str, namespace: str, k: int, query_vector: list[float]) -> list[Scored]:
        ids = [pid for pid, _ in self.store.vector_search(namespace, query_vector, max(k, self.tuning.candidates))]
        procedures = self.store.get_procedures(ids)
        cosines = _cosines(_unit(query_vector), self.store.keys_with_vectors(ids))
        tasks = self._source_tasks(procedures)
        scored = []
        for procedure in procedures:
            cosine, sources = self._key_scores(procedure, cosines.get(procedure.id, {}), tasks)
            scored.append(Scored(procedure, cosine, cosine, sources))
        return _best(scored, k)

    def _avefact(
        self, task: str, namespace: str, k: int, query_vector: list[float], embedder: Embedder
    ) -> list[Scored]:
        terms = keywords(task)[:12]
        if not terms:
            return self._by_cosine(task, namespace, k, query_vector)
        term_matrix = np.vstack([_unit(v) for v in embedder.embed(terms)])
        ids = [pid for pid, _ in self.store.vector_search(namespace, query_vector, max(k, self.tuning.candidates))]
        procedures = self.store.get_procedures(ids)
        keyed = self.store.keys_with_vectors(ids)
        cosines = _cosines(_unit(query_vector), keyed)
        tasks = self._source_tasks(procedures)
        scored = []
        for procedure in procedures:
            keys = keyed.get(procedure.id, [])
            if not keys:
                continue
            key_matrix = np.vstack([_unit(blob) for _, blob in keys])
            # For each task keyword, its best similarity to any key; averaged over the keywords.
            average = float((term_matrix @ key_matrix.T).max(axis=1).mean())
            _, sources = self._key_scores(procedure, cosines.get(procedure.id, {}), tasks)
            scored.append(Scored(procedure, average, average, sources))
        return _best(scored, k)

    def _keyword_only(self, task: str, namespace: str, k: int) -> list[Scored]:
        """No model: FTS5 candidates, scored by keyword coverage, floor on coverage."""
        search_terms = fts_terms(task)
        if not search_terms:
            return []
        ids = [pid for pid, _ in self.store.keyword_search(namespace, search_terms, max(k, self.tuning.candidates))]
        terms = query_terms(task)
        texts = self.store.procedure_texts(ids)
        procedures = self.store.get_procedures(ids)
        tasks = self._source_tasks(procedures)
        unverified = self.store.unverified(ids)
        task_names = names(task)
        scored = []
        for procedure in procedures:
            text = texts.get(procedure.id, "")
            coverage = keyword_coverage(terms, text)
            # Half of a two-word prompt ("fix tablewright"), or the two halves of one name
            # ("render_table"), is one word in common: no evidence.
            if coverage < self.tuning.keyword_floor or len(shared_words(task_names, _vocabulary(text))) < 2:
                continue
            sources = sorted(
                procedure.source_trajectory_ids,
                key=lambda tid: -keyword_coverage(terms, tasks.get(tid, "")),
            )
            score = coverage * utility_prior(procedure, self.tuning.utility_weight)
            if procedure.id in unverified:
                score *= 1.0 - self.tuning.unverified_penalty
            scored.append(Scored(procedure, coverage, score, sources))
        return _best(scored, k)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _for_length(tuning: RetrievalTuning, terms: Sequence[str]) -> RetrievalTuning:
        """The tuning for a task this long: a long instruction's floor is `long_task_floor`, and words
        are no evidence under it (the words-under-the-floor rule reads nothing below the floor): a long
        instruction shares enough of its generic words ("write", "file", "output", "root") with any
        procedure's steps to pass that rule, which let a cover letter and a Go file watcher, both long
        prompts of other kinds, be given a dependency audit's procedure."""
        if len(terms) < tuning.long_task_terms or tuning.long_task_floor <= tuning.semantic_floor:
            return tuning
        return dataclasses.replace(
            tuning, semantic_floor=tuning.long_task_floor, steps_evidence_cosine=tuning.long_task_floor
        )

    def _semantic(
        self,
        task: str,
        terms: tuple[str, ...],
        task_names: Sequence[tuple[str, list[str]]],
        cosines: dict[int, dict[str, float]],
        keyed: dict[int, list[tuple[str, bytes]]],
        embedder: Embedder,
        tuning: RetrievalTuning,
    ) -> tuple[dict[int, float], set[int], dict[int, Procedure]]:
        """Each candidate's semantic score, which the floor judges, and the candidates whose keys share
        a single word with the task, that word a name in the project's code (`code_words`). The score
        is the best cosine of its keys, unless the candidate shares one name and the task without it
        scores under `steps_evidence_cosine` (about the median best cosine of an unrelated task): then
        that score. A project's procedures all name its package and its main functions, and the model
        scores a request naming one of them close to every procedure that does (a bug fix naming
        `render_table`: 0.47 with a docs page about it, 0.14 without the name), so a name in common
        must not be what carries a procedure over the floor. An ordinary word is left alone: in "no
        space left on device" it is the meaning. Only candidates that would fit on their cosine or on
        a key's words are looked at again (their text loaded, and returned, the task embedded without
        the name)."""
        semantic = {pid: max(by_text.values()) for pid, by_text in cosines.items() if by_text}
        name_words = dict(task_names)
        one_word: dict[int, str] = {}
        for pid, by_text in cosines.items():
            if not by_text or (
                semantic[pid] < tuning.semantic_floor
                and max(_cached_coverage(terms, text) for text in by_text) < tuning.keyword_fit
            ):
                continue
            shared = shared_words(task_names, frozenset().union(*(_vocabulary(text) for text in by_text)))
            if len(shared) == 1:
                one_word[pid] = shared[0]
        if not one_word:
            return semantic, set(), {}
        read = {p.id: p for p in self.store.get_procedures(list(one_word))}
        written_in_task = code_words(task)
        one_name: dict[int, str] = {}
        for procedure in read.values():
            name = one_word[procedure.id]
            written = written_in_task | code_words(" ".join([procedure.title, *procedure.steps]))
            if written.intersection(name_words[name]):
                one_name[procedure.id] = name
        masked = {name: without_names(task, {name}) for name in set(one_name.values())}
        wanted = sorted({text for text in masked.values() if text})
        vectors = dict(zip(wanted, embedder.embed(wanted), strict=True)) if wanted else {}
        for pid, name in one_name.items():
            text = masked[name]
            rest = _cosines(_unit(vectors[text]), {pid: keyed[pid]}).get(pid) if text else None
            without = max(rest.values()) if rest else 0.0
            if without < tuning.steps_evidence_cosine:
                semantic[pid] = without
        return semantic, set(one_name), read

    def _fitting(
        self,
        cosines: dict[int, dict[str, float]],
        semantic: dict[int, float],
        one_name: set[int],
        terms: tuple[str, ...],
        tuning: RetrievalTuning,
    ) -> list[int]:
        """The candidates whose semantic score reaches the floor, or one of whose keys holds nearly all
        the task's keywords, unless all it shares is one name ("render_table" alone)."""
        return [
            pid
            for pid, by_text in cosines.items()
            if by_text
            and (
                semantic[pid] >= tuning.semantic_floor
                or (
                    pid not in one_name and max(_cached_coverage(terms, text) for text in by_text) >= tuning.keyword_fit
                )
            )
        ]

    def _fitting_on_steps(
        self,
        cosines: dict[int, dict[str, float]],
        fitting: set[int],
        terms: tuple[str, ...],
        task_names: Sequence[tuple[str, list[str]]],
        tuning: RetrievalTuning,
    ) -> dict[int, Procedure]:
        """The candidates under the floor whose whole text holds enough of the request's words for
        their cosine (see `RetrievalTuning.steps_evidence_share`), loaded. Words, not keywords,
        are counted: the two halves of "render_table" are one word in common."""
        if len(task_names) < tuning.steps_evidence_terms:
            return {}
        # The raw cosine: the rule asks for two words in common, so one name cannot carry it alone.
        best_cosine = {
            pid: max(by_text.values())
            for pid, by_text in cosines.items()
            if by_text and pid not in fitting and max(by_text.values()) >= tuning.steps_evidence_cosine
        }
        below = sorted(best_cosine, key=lambda pid: (-best_cosine[pid], pid))[: tuning.steps_evidence_candidates]
        if not below:
            return {}
        kept = {}
        for procedure in self.store.get_procedures(below):
            # The words of each part (title, tasks, steps) in one set: a part's vocabulary is cached,
            # and a pair of words never joins across two parts.
            words_of = frozenset().union(
                _part_vocabulary(procedure.title),
                *(_vocabulary(text) for text in cosines[procedure.id]),
                *(_part_vocabulary(step) for step in procedure.steps),
            )
            share = share_found(terms, words_of)
            if len(shared_words(task_names, words_of)) >= tuning.steps_evidence_terms and best_cosine[
                procedure.id
            ] >= _evidence_bar(tuning, share):
                kept[procedure.id] = procedure
        return kept

    def _selective_terms(self, task: str) -> list[str]:
        """The task's search terms, rarest first while their postings fit the budget (all of them in a
        small memory); empty when even the rarest is too common to be worth a keyword search."""
        terms = fts_terms(task)
        if self._statistics.indexed_count() < SELECTIVE_SEARCH_MIN_CORPUS:
            return terms
        frequency = self._statistics.document_frequencies(terms)
        chosen: set[str] = set()
        postings = 0
        for term in sorted(terms, key=lambda t: frequency[t]):
            # A term counted as found nowhere costs nothing to look up, and the count may be older
            # than the procedure that now has it.
            postings += frequency[term]
            if postings > KEYWORD_POSTINGS_BUDGET:
                break
            chosen.add(term)
        return [t for t in terms if t in chosen]

    def _source_tasks(self, procedures: Sequence[Procedure]) -> dict[int, str]:
        return self.store.trajectory_tasks([tid for p in procedures for tid in p.source_trajectory_ids])

    def _key_scores(
        self, procedure: Procedure, cosines: dict[str, float], tasks: dict[int, str]
    ) -> tuple[float, list[int]]:
        """The procedure's best key cosine, and its sources ordered by their task's key cosine."""
        return max(cosines.values(), default=0.0), _rank_sources(procedure, cosines, tasks)

    def _blend(self, cosines: dict[str, float], terms: tuple[str, ...]) -> dict[str, float]:
        """Each key's cosine blended with the keyword coverage of its text, where that is enough to count."""
        weight, least = self.tuning.vector_weight, self.tuning.keyword_boost_share
        blended = {}
        for text, cosine in cosines.items():
            coverage = _cached_coverage(terms, text)
            blended[text] = weight * cosine + (1 - weight) * (coverage if coverage >= least else 0.0)
        return blended


def _evidence_bar(tuning: RetrievalTuning, share: float) -> float:
    """The cosine a candidate under the floor needs when its text holds `share` of the request's
    keywords: the floor with none, falling in a straight line to `steps_evidence_cosine` at
    `steps_evidence_share`, and no lower past it."""
    fall = (tuning.semantic_floor - tuning.steps_evidence_cosine) * min(1.0, share / tuning.steps_evidence_share)
    return tuning.semantic_floor - fall


def _rank_sources(procedure: Procedure, key_scores: dict[str, float], tasks: dict[int, str]) -> list[int]:
    """The procedure's source trajectories, the one whose task key scores best first."""
    return sorted(procedure.source_trajectory_ids, key=lambda tid: -key_scores.get(key_text(tasks.get(tid, "")), -1.0))


def key_text(task: str) -> str:
    """How a task is stored as a search key: one line, lower case, no trailing full stop.

    Two trajectories whose tasks have the same key text are the same task (their procedures merge).
    """
    return " ".join(task.split()).rstrip(" .").lower()


def search_keys(family: str, task: str) -> list[str]:
    """The texts a recorded task is found by: its family (entities lifted) and its own key text, the
    task's last; one when the family lifted nothing (most coding tasks), since a second copy of the
    same text would cost an embedding, a stored vector and a search row for nothing."""
    own = key_text(task)
    return [own] if key_text(family) == own else [family, own]


def _best(scored: list[Scored], k: int) -> list[Scored]:
    scored.sort(key=lambda s: (-s.score, s.procedure.id))
    return scored[:k]
