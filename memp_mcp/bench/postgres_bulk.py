"""A PostgreSQL memory of up to a million procedures, built in minutes, for the latency benchmark.

Building a million procedures through the store with the real model would take hours (every key
embedded, every row inserted one by one). This loader writes the rows the store itself writes for a
recorded procedure (its trajectory, the procedure, its source link, its two search keys with vectors,
its keyword-search text) straight into PostgreSQL with COPY, one transaction per batch, with the
keyword (GIN) and vector (HNSW) indexes dropped during the load and built once after it.

What is real and what is synthetic:
- the targets: `targets` distinct tasks from the synthetic generator, each made into a procedure by
  the extractive builder (as `record` makes one), and their keys embedded with the real model. The
  timed recalls ask for these, by paraphrase, embedded by the server with the same model;
- the bulk: every other procedure takes a target's trajectory, steps and pitfalls, with a task of its
  own (the target's task told apart by a team, project or place, as the generator does past its
  plain tasks), and key vectors derived from the target's (see `_derived_vectors`), not embedded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

# The generator's own words, so a bulk task is told apart as the generator tells a repeated one apart.
from memp_mcp.bench.synthetic import _WORDS, SYNTHETIC_VERSION, SyntheticTask, synthetic_tasks
from memp_mcp.embedding import Embedder
from memp_mcp.engine.build import extract_procedure
from memp_mcp.engine.retrieve import key_text
from memp_mcp.models import Outcome
from memp_mcp.text import fts_document

NAMESPACE = "default"
# Targets embedded with the real model: enough distinct tasks that the recalls rarely repeat one
# (a few thousand take about a minute to embed on two cores).
DEFAULT_TARGETS = 5_000
# Procedures per COPY transaction: large enough that a round trip is nothing beside the rows,
# small enough that a failed batch costs little and progress moves.
BATCH = 10_000
# Settings of this session for the index builds. The HNSW graph of 2 million 384-dimension keys
# takes ~4 GB; built within maintenance_work_mem it never spills to the slower on-disk build. One
# parallel worker beside the leader: two processes on a two-core machine.
MAINTENANCE_WORK_MEM = "8GB"
PARALLEL_MAINTENANCE_WORKERS = 1
# pgvector's defaults, which the store's index uses (it sets neither).
HNSW_DEFAULTS = {"m": "16", "ef_construction": "64"}
# Indexes built after the load: maintained row by row during a COPY they cost far more than built once.
DEFERRED_INDEXES = ("procedures_search", "procedure_keys_embedding", "procedure_keys_by_text")
# How far a bulk key's vector lies from its target's: the norm of the noise added to the unit target
# vector, drawn per key. 0.45-0.85 puts the cosine to the target at 0.76-0.91, the range the real
# model gives a task and the same task for another team or place; nearer would make the bulk
# duplicates, farther would make it noise unlike any embedded text.
NOISE_RANGE = (0.45, 0.85)
_QUALIFIERS = ("for the {a} {b} team", "in the {a}-{b} project", "on {a}-{b}", "behind the {a} {b}")

Progress = Callable[[str, int, int], None]


@dataclass
class BulkBuild:
    """What was built: the targets' tasks (what recalls ask for), seconds per phase, index settings."""

    tasks: list[str]
    targets: int
    bulk: int
    phases: dict[str, float] = field(default_factory=dict)
    index_settings: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.phases.values())


@dataclass(frozen=True)
class _Target:
    item: SyntheticTask
    title: str
    when_to_use: str
    steps: list[str]
    pitfalls: list[str]
    trajectory: str  # its steps as the store writes them (JSON)


def marker(size: int, seed: int, targets: int, model: str) -> dict[str, Any]:
    """What a built database was built from: one built from the same is reusable."""
    return {
        "size": size,
        "seed": seed,
        "targets": targets,
        "model": model,
        "generator": SYNTHETIC_VERSION,
        "loader": 2,
    }


def build_bulk_database(
    url: str,
    size: int,
    embedder: Embedder,
    *,
    seed: int = 0,
    targets: int = DEFAULT_TARGETS,
    progress: Progress | None = None,
) -> BulkBuild:
    """Fill the empty memp-mcp database at `url` with `size` procedures, `targets` of them embedded."""
    import psycopg
    from pgvector.psycopg import register_vector

    from memp_mcp.store.postgres import PostgresStore

    targets = max(1, min(targets, size))
    phases: dict[str, float] = {}
    started = time.perf_counter()
    with PostgresStore(url) as store:  # the schema, migrated as the server would
        if store.count_procedures():
            raise ValueError(f"{store.location} is not empty")
        store.bind_embedding_model(embedder.identity, embedder.dim)
    phases["schema"] = time.perf_counter() - started

    started = time.perf_counter()
    chosen = _targets(targets, seed)
    texts = [t for target in chosen for t in (target.when_to_use, key_text(target.item.task))]
    vectors = _embed(embedder, texts, progress)
    phases["embed targets (real model)"] = time.perf_counter() - started

    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        definitions = _drop_deferred_indexes(conn)
        started = time.perf_counter()
        _load(conn, chosen, vectors, size, seed, progress)
        phases["COPY rows"] = time.perf_counter() - started
        settings = _build_indexes(conn, definitions, phases)
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        phases["VACUUM ANALYZE"] = time.perf_counter() - started
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('bench_bulk', %s)",
            (json.dumps(marker(size, seed, targets, embedder.identity)),),
        )
    return BulkBuild([t.item.task for t in chosen], targets, size - targets, phases, settings)


def target_tasks(count: int, seed: int) -> list[str]:
    """The targets' tasks of a database built with this count and seed (what the recalls ask for)."""
    return [item.task for item in synthetic_tasks(count, seed)]


def stored_marker(url: str) -> dict[str, Any] | None:
    """What the database at `url` was built from (see `marker`); None when it is missing, unfinished or
    was not built by this loader."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'bench_bulk'").fetchone()
    except psycopg.Error:
        return None
    return json.loads(row[0]) if row else None


def _targets(count: int, seed: int) -> list[_Target]:
    chosen = []
    for item in synthetic_tasks(count, seed):
        draft = extract_procedure(item.task, item.steps, Outcome.SUCCESS)
        chosen.append(
            _Target(
                item,
                draft.title,
                draft.when_to_use or draft.title,
                list(draft.steps),
                list(draft.pitfalls),
                json.dumps([s.model_dump(exclude_none=True) for s in item.steps]),
            )
        )
    return chosen


def _embed(embedder: Embedder, texts: list[str], progress: Progress | None) -> np.ndarray:
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(texts), 256):
        batch = texts[start : start + 256]
        out[start : start + len(batch)] = np.asarray(embedder.embed(batch), dtype=np.float32)
        if progress:
            progress("embedding target keys (real model)", start + len(batch), len(texts))
    return _unit(out)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _derived_vectors(rng: np.random.Generator, bases: np.ndarray) -> np.ndarray:
    """Unit vectors near `bases` (unit rows): each base plus a random direction scaled by NOISE_RANGE.

    Pure random vectors would spread evenly over the sphere, which no embedded text does and which
    is the HNSW graph's easiest case; vectors around the embedded targets keep the clusters (a domain,
    a task's variants) that the real model's vectors form and that a search has to find its way through.
    """
    noise = _unit(rng.standard_normal(bases.shape, dtype=np.float32))
    scale = rng.uniform(*NOISE_RANGE, size=(len(bases), 1)).astype(np.float32)
    return _unit(bases + scale * noise)


def bulk_task(target: str, index: int) -> str:
    """The task of bulk procedure `index` (0-based over the bulk), derived from its target's: distinct
    for every index, in the generator's own way of telling a repeated task apart."""
    pairs = len(_WORDS) * (len(_WORDS) - 1)
    pair, rest = index % pairs, index // pairs
    first = _WORDS[pair // (len(_WORDS) - 1)]
    others = [w for w in _WORDS if w != first]
    second = others[pair % (len(_WORDS) - 1)]
    form = _QUALIFIERS[rest % len(_QUALIFIERS)]
    number = rest // len(_QUALIFIERS) + 1
    qualifier = form.format(a=first, b=second)
    # Past the first round of every pair and form, a number keeps them apart.
    if number > 1:
        qualifier = f"{qualifier} {number}"
    return f"{target} {qualifier}"


def _load(
    conn: Any,
    chosen: list[_Target],
    target_vectors: np.ndarray,
    size: int,
    seed: int,
    progress: Progress | None,
) -> None:
    """COPY `size` procedures with their rows, one transaction per BATCH; ids 1..size in every table
    (keys 1..2*size), then the identity sequences continue past them."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    steps_json = [json.dumps(t.steps) for t in chosen]
    pitfalls_json = [json.dumps(t.pitfalls) for t in chosen]
    with conn.transaction():
        conn.execute(
            "INSERT INTO namespaces (name, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING", (NAMESPACE, now)
        )
    for start in range(0, size, BATCH):
        ids = range(start, min(size, start + BATCH))
        bases = np.fromiter((i % len(chosen) for i in ids), dtype=np.int64, count=len(ids))
        # Key 0 (when to use) and key 1 (the task), derived from the target's same key.
        derived = [_derived_vectors(rng, target_vectors[2 * bases + which]) for which in (0, 1)]
        with conn.transaction():
            rows = list(_rows(chosen, ids, bases, now))
            _copy(
                conn, "trajectories (id, namespace, task, steps_json, outcome, agent, created_at)", [r[0] for r in rows]
            )
            _copy(
                conn,
                "procedures (id, namespace, title, when_to_use, steps_json, pitfalls_json, source, author, "
                "exemplar_trajectory_id, support_count, created_at, updated_at, search_text)",
                [(*r[1], steps_json[b], pitfalls_json[b], *r[2]) for r, b in zip(rows, bases, strict=True)],
            )
            _copy(conn, "procedure_sources (procedure_id, trajectory_id)", [(i + 1, i + 1) for i in ids])
            keys = []
            for offset, (i, row) in enumerate(zip(ids, rows, strict=True)):
                real = i < len(chosen)
                for which, text in enumerate(row[3]):
                    vector = target_vectors[2 * i + which] if real else derived[which][offset]
                    keys.append((2 * i + which + 1, i + 1, NAMESPACE, True, text, vector))
            # Binary: a vector's text form costs ~0.8 ms to write, its binary form ~20 us.
            _copy(
                conn,
                "procedure_keys (id, procedure_id, namespace, active, text, embedding)",
                keys,
                binary=("int8", "int8", "text", "bool", "text", "vector"),
            )
        if progress:
            progress("loading procedures (COPY)", ids.stop, size)
    with conn.transaction():
        for table in ("trajectories", "procedures", "procedure_keys"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )


def _rows(chosen: list[_Target], ids: range, bases: np.ndarray, now: datetime) -> Iterator[tuple[Any, ...]]:
    """Per procedure: its trajectory row, the procedure's leading and trailing columns, its key texts."""
    for i, base in zip(ids, bases, strict=True):
        target = chosen[int(base)]
        if i < len(chosen):
            task, title, when_to_use = target.item.task, target.title, target.when_to_use
        else:
            task = bulk_task(target.item.task, i - len(chosen))
            title = task[:1].upper() + task[1:]
            when_to_use = f"Tasks like: {title}"
        keys = tuple(dict.fromkeys((when_to_use, key_text(task))))
        yield (
            (i + 1, NAMESPACE, task, target.trajectory, Outcome.SUCCESS.value, "synthetic", now),
            (i + 1, NAMESPACE, title, when_to_use),
            ("extractive", "synthetic", i + 1, 1, now, now, fts_document(title, when_to_use, *keys)),
            keys,
        )


def _copy(conn: Any, target: str, rows: Sequence[Sequence[Any]], binary: Sequence[str] = ()) -> None:
    """COPY `rows` into `target` (a table and its columns), in text, or in binary with these column types."""
    form = " (FORMAT BINARY)" if binary else ""
    with conn.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN{form}") as copy:
        if binary:
            copy.set_types(list(binary))
        for row in rows:
            copy.write_row(row)


def _drop_deferred_indexes(conn: Any) -> list[tuple[str, str]]:
    """Drop the indexes built after the load; their definitions, to build them again exactly."""
    found = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ANY(%s)",
        (list(DEFERRED_INDEXES),),
    ).fetchall()
    with conn.transaction():
        for name, _ in found:
            conn.execute(f"DROP INDEX {name}")
    return [(str(name), str(definition)) for name, definition in found]


def _build_indexes(conn: Any, definitions: list[tuple[str, str]], phases: dict[str, float]) -> dict[str, str]:
    """Build the dropped indexes (the vector one last), each timed; the HNSW build's settings."""
    conn.execute(f"SET maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
    conn.execute(f"SET max_parallel_maintenance_workers = {PARALLEL_MAINTENANCE_WORKERS}")
    ordered = sorted(definitions, key=lambda d: d[0] == "procedure_keys_embedding")
    for name, definition in ordered:
        started = time.perf_counter()
        conn.execute(definition)
        phases[f"index {name}"] = time.perf_counter() - started
    settings = dict(HNSW_DEFAULTS)
    row = conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'procedure_keys_embedding'").fetchone()
    for option in row[0] if row and row[0] else []:
        key, _, value = str(option).partition("=")
        settings[key] = value
    for name in ("maintenance_work_mem", "max_parallel_maintenance_workers"):
        settings[name] = str(conn.execute(f"SHOW {name}").fetchone()[0])
    return settings


def database_sizes(url: str) -> dict[str, Any]:
    """The database's size on disk, and each table's split between its rows (with TOAST) and indexes, in MB."""
    import psycopg

    mb = 1024.0 * 1024.0
    with psycopg.connect(url, autocommit=True) as conn:
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        tables = conn.execute(
            "SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
            "WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace "
            "ORDER BY pg_total_relation_size(c.oid) DESC"
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = current_schema()::regnamespace "
            "ORDER BY 2 DESC LIMIT 6"
        ).fetchall()
    return {
        "database_mb": round(float(total[0]) / mb, 1) if total else None,
        "tables": {str(r[0]): {"rows_mb": round(r[1] / mb, 1), "indexes_mb": round(r[2] / mb, 1)} for r in tables},
        "largest_indexes_mb": {str(r[0]): round(r[1] / mb, 1) for r in indexes},
    }


def warm_page_cache(url: str) -> float | None:
    """Read the database's files into the operating system's page cache, when the server runs on this
    machine and its data directory is readable from here: a server that has been serving a while has
    its working set (the HNSW graph above all) in memory, while a database just copied or restored is
    on disk, and a cold HNSW search reads ~300 pages (~70 ms against ~12 ms from the page cache at a
    million procedures). Returns the MB read, or None when the files are out of reach."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        try:
            directory = conn.execute("SHOW data_directory").fetchone()
        except psycopg.Error:  # only superusers and pg_read_all_settings members may see it
            return None
        files = conn.execute(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'i', 't') "
            "AND pg_relation_filepath(c.oid) IS NOT NULL"
        ).fetchall()
    if not directory:
        return None
    read = 0
    for (relative,) in files:
        base = Path(str(directory[0])) / str(relative)
        for segment in [base, *sorted(base.parent.glob(base.name + ".*"))]:
            try:
                with segment.open("rb") as handle:
                    while chunk := handle.read(1 << 22):
                        read += len(chunk)
            except OSError:
                if segment == base:
                    return None
    return round(read / (1024 * 1024), 1)


def server_settings(url: str) -> dict[str, str]:
    """The server's settings that bear on the figures."""
    import psycopg

    names = ("server_version", "shared_buffers", "work_mem", "effective_cache_size", "max_wal_size")
    with psycopg.connect(url, autocommit=True) as conn:
        found = {name: conn.execute(f"SHOW {name}").fetchone() for name in names}
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    settings = {name: str(row[0]) for name, row in found.items() if row}
    settings["pgvector"] = str(version[0]) if version else "none"
    return settings


def backend_memory(url: str) -> dict[str, float]:
    """When the server runs on this machine, the memory of the backends serving this database (the
    benchmark's server's connections), as /proc shows them: the largest peak RSS (shared buffers a
    backend touched count in it) and the sum of their private memory. Empty when not readable."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        pids = [
            int(r[0])
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        ]
    peaks, private = [], []
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        fields = {
            line.split(":")[0]: int(line.split()[1]) / 1024 for line in lines if line.startswith(("VmHWM", "RssAnon"))
        }
        peaks.append(fields.get("VmHWM", 0.0))
        private.append(fields.get("RssAnon", 0.0))
    if not peaks:
        return {}
    return {"pg_backend_peak_rss_mb": max(peaks), "pg_backends_private_mb": sum(private)}
