"""Latency through the protocol: what an agent pays to use the memory, at N procedures.

For each size N a database is built once (synthetic procedures, embedded with the real model),
then `memp-mcp serve` is started over stdio several times; each run measures the time from
process start to the `initialize` answer and to the first recall (model load included), then
recall, record_trajectory and report_outcome latencies, the server's peak RSS and the database
size. Figures are medians over runs, with min and max to show the machine's noise.

Given a PostgreSQL server, each size is measured there too, in the same run: the SQLite database
built for that size is copied into a new PostgreSQL database (store.transfer, so both hold the
same rows and vectors), the servers run on it with MEMP_DATABASE_URL, and it is dropped after.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

from memp_mcp.bench.postgres_bulk import DEFAULT_TARGETS
from memp_mcp.bench.synthetic import SYNTHETIC_VERSION, build_database, paraphrase, synthetic_tasks
from memp_mcp.embedding import Embedder
from memp_mcp.store import SQLiteStore

# From this size on, a PostgreSQL database is built by the bulk loader (building it through SQLite
# with every procedure embedded takes ~16 minutes per 100,000).
BULK_FROM = 200_000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _server_pid(marker: str) -> int | None:
    """The pid of the server process whose command line or environment names `marker` (Linux /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes() and b"serve" in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except OSError:
            continue
    return None


def _peak_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _db_size_mb(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
    return total / (1024 * 1024)


async def _one_run(
    database: dict[str, str],
    tasks: list[str],
    env: dict[str, str],
    recalls: int,
    records: int,
    seed: int,
    probe: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One server run on `database` (MEMP_DB_PATH or MEMP_DATABASE_URL and its value); `probe` adds
    figures read while the server still runs (a database server's memory)."""
    from mcp import Client, StdioServerParameters

    rng = random.Random(seed)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "memp_mcp.cli", "serve"], env={**os.environ, **env, **database}
    )
    started = time.perf_counter()
    async with Client(params) as client:
        initialized = time.perf_counter() - started
        first = await client.call_tool("recall_procedure", {"task": paraphrase(rng, rng.choice(tasks)), "k": 3})
        first_recall = time.perf_counter() - started
        if first.is_error:
            raise RuntimeError(f"recall failed: {first.content}")
        pid = _server_pid(next(iter(database.values())))
        recall_ms: list[float] = []
        recall_ids: list[str] = []
        for _ in range(recalls):
            query = paraphrase(rng, rng.choice(tasks))
            t0 = time.perf_counter()
            result = await client.call_tool("recall_procedure", {"task": query, "k": 3})
            recall_ms.append(1000 * (time.perf_counter() - t0))
            if result.is_error:
                raise RuntimeError(f"recall failed: {result.content}")
            recall_id = (result.structured_content or {}).get("recall_id")
            if recall_id:
                recall_ids.append(recall_id)
        record_ms: list[float] = []
        for item in synthetic_tasks(records, seed + 1000):
            arguments = {
                "task": item.task,
                "steps": [s.model_dump(exclude_none=True) for s in item.steps],
                "outcome": "success",
            }
            t0 = time.perf_counter()
            result = await client.call_tool("record_trajectory", arguments)
            record_ms.append(1000 * (time.perf_counter() - t0))
            if result.is_error:
                raise RuntimeError(f"record failed: {result.content}")
        report_ms: list[float] = []
        for index, recall_id in enumerate(recall_ids[:records]):
            t0 = time.perf_counter()
            result = await client.call_tool("report_outcome", {"recall_id": recall_id, "success": index % 4 != 0})
            report_ms.append(1000 * (time.perf_counter() - t0))
            if result.is_error:
                raise RuntimeError(f"report failed: {result.content}")
        rss = _peak_rss_mb(pid)
        probed = probe() if probe else {}
    return {
        "initialize_s": initialized,
        "first_recall_s": first_recall,
        "recall_p50_ms": percentile(recall_ms, 0.50),
        "recall_p95_ms": percentile(recall_ms, 0.95),
        "recall_p99_ms": percentile(recall_ms, 0.99),
        "record_p50_ms": percentile(record_ms, 0.50),
        "record_p95_ms": percentile(record_ms, 0.95),
        "report_p50_ms": percentile(report_ms, 0.50),
        "peak_rss_mb": rss,
        # The machine's 1-minute load average as the run ends: on a shared machine, what the times mean.
        "load_average": os.getloadavg()[0],
        **probed,
    }


def _copy_database(source: Path, target: Path) -> None:
    """Copy a closed database with its write-ahead log, if one was left (it holds committed data)."""
    shutil.copyfile(source, target)
    wal = source.with_name(source.name + "-wal")
    if wal.is_file():
        shutil.copyfile(wal, target.with_name(target.name + "-wal"))


def _built_database(
    size: int,
    seed: int,
    embedder: Embedder,
    folder: Path,
    cache_dir: Path | None,
    on_build: Callable[[int, int], None] | None,
) -> tuple[Path, list[str], float | None]:
    """A database of `size` synthetic procedures in `folder`, its tasks, and the build time.

    With `cache_dir`, a database built before for the same size, seed and model is copied from there
    instead of built again (building 100,000 takes about half an hour); a build that did not finish
    leaves no record and is built again. The copy is what the runs write to, so the cached one stays
    as built.
    """
    db = folder / f"latency-{size}.db"
    record = {"size": size, "seed": seed, "model": embedder.identity, "generator": SYNTHETIC_VERSION}
    cached = cache_dir / f"latency-{size}-seed{seed}.db" if cache_dir else None
    marker = cached.with_suffix(".json") if cached else None
    if cached and marker and marker.is_file() and cached.is_file():
        try:
            reusable = json.loads(marker.read_text()) == record
        except ValueError:
            reusable = False
        if reusable:
            _copy_database(cached, db)
            return db, [item.task for item in synthetic_tasks(size, seed)], None
    target = cached or db
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        for stale in cached.parent.glob(cached.name + "*"):
            stale.unlink()
    store = SQLiteStore(target)
    store.bind_embedding_model(embedder.identity, embedder.dim)
    built = 0
    started = time.perf_counter()

    def tick(n: int) -> None:
        nonlocal built
        built += n
        if on_build:
            on_build(built, size)

    tasks = build_database(store, embedder.embed, size, seed, progress=tick)
    seconds = time.perf_counter() - started
    store.close()
    if cached and marker:
        marker.write_text(json.dumps(record))
        _copy_database(cached, db)
    return db, tasks, seconds


def run_latency(
    sizes: list[int],
    embedder: Embedder,
    *,
    env: dict[str, str],
    runs: int = 3,
    recalls: int = 200,
    records: int = 50,
    seed: int = 0,
    workdir: Path | None = None,
    cache_dir: Path | None = None,
    database_url: str | None = None,
    bulk_from: int = BULK_FROM,
    targets: int = DEFAULT_TARGETS,
    on_build: Callable[[int, int], None] | None = None,
    on_run: Callable[[int, int, dict[str, Any]], None] | None = None,
    on_phase: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Build (or reuse from `cache_dir`) each database, then measure `runs` server runs; figures per size.

    With `database_url` (a PostgreSQL server where this user may create databases), the same
    figures on PostgreSQL go under results["postgresql"]["sizes"]. A size of `bulk_from` or more is
    measured on PostgreSQL only, on a database the bulk loader builds there (memp_mcp.bench.postgres_bulk:
    `targets` procedures embedded with the real model, the rest derived from them); with `cache_dir`
    that database is kept on the server and reused.
    """
    results: dict[str, Any] = {"runs": runs, "recalls_per_run": recalls, "records_per_run": records, "sizes": {}}
    if database_url:
        results["postgresql"] = {"sizes": {}}
    with tempfile.TemporaryDirectory(prefix="memp-latency-", dir=workdir) as tmp:
        for size in sizes:
            if database_url and size >= bulk_from:
                results["postgresql"]["sizes"][str(size)] = _postgres_bulk_figures(
                    database_url,
                    size,
                    embedder,
                    env,
                    runs,
                    recalls,
                    records,
                    seed,
                    targets,
                    cache_dir is not None,
                    on_phase,
                    on_run,
                )
                continue
            db, tasks, build_seconds = _built_database(size, seed, embedder, Path(tmp), cache_dir, on_build)
            if database_url:
                with _postgres_copy(db, database_url, size) as (url, size_of):
                    size_mb = size_of()
                    per_run = _runs({"MEMP_DATABASE_URL": url}, tasks, env, runs, recalls, records, seed, size, on_run)
                    summary = _summary(per_run, None, size_mb, size_of())
                results["postgresql"]["sizes"][str(size)] = summary
            size_mb = _db_size_mb(db)
            per_run = _runs({"MEMP_DB_PATH": str(db)}, tasks, env, runs, recalls, records, seed, size, on_run)
            results["sizes"][str(size)] = _summary(per_run, build_seconds, size_mb, _db_size_mb(db))
            for leftover in db.parent.glob(db.name + "*"):
                leftover.unlink()
    return results


def _runs(
    database: dict[str, str],
    tasks: list[str],
    env: dict[str, str],
    runs: int,
    recalls: int,
    records: int,
    seed: int,
    size: int,
    on_run: Callable[[int, int, dict[str, Any]], None] | None,
    probe: Callable[[], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    per_run = []
    for run in range(runs):
        figures = anyio.run(_one_run, database, tasks, env, recalls, records, seed + run, probe)
        per_run.append(figures)
        if on_run:
            on_run(size, run, figures)
    return per_run


def _summary(
    per_run: list[dict[str, Any]], build_seconds: float | None, mb_before: float, mb_after: float
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "build_s": None if build_seconds is None else round(build_seconds, 1),
        "db_mb_before_runs": round(mb_before, 1),
    }
    for key in per_run[0]:
        values = [r[key] for r in per_run if r[key] is not None]
        if values:
            summary[key] = {
                "median": round(statistics.median(values), 3),
                "min": round(min(values), 3),
                "max": round(max(values), 3),
            }
    summary["db_mb_after_runs"] = round(mb_after, 1)
    return summary


@contextmanager
def _postgres_copy(db: Path, server_url: str, size: int) -> Iterator[tuple[str, Callable[[], float]]]:
    """A new PostgreSQL database holding a copy of the SQLite `db`: its URL and a function giving its
    size in MB. Dropped afterwards."""
    import psycopg

    from memp_mcp.bench.postgres import scratch_database
    from memp_mcp.store.postgres import PostgresStore
    from memp_mcp.store.transfer import copy_sqlite_to_postgres

    def size_mb(url: str) -> float:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return float(row[0]) / (1024 * 1024) if row else float("nan")

    with scratch_database(server_url, f"latency_{size}") as url:
        with SQLiteStore(db) as source, PostgresStore(url) as target:
            copy_sqlite_to_postgres(source, target)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        yield url, lambda: size_mb(url)


def _postgres_bulk_figures(
    server_url: str,
    size: int,
    embedder: Embedder,
    env: dict[str, str],
    runs: int,
    recalls: int,
    records: int,
    seed: int,
    targets: int,
    keep: bool,
    on_phase: Callable[[str, int, int], None] | None,
    on_run: Callable[[int, int, dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """Runs on a bulk-loaded PostgreSQL database of `size` procedures: the figures with the build's
    phases, the HNSW settings, the database's size on disk and the server's memory.

    With `keep`, the built database stays on the server (memp_latency_bulk_<size>_<seed>) and a later
    run with the same size, seed, targets and model reuses it; the runs then write to a copy of it
    (CREATE DATABASE ... TEMPLATE), so it stays as built.
    """
    from memp_mcp.bench.postgres import scratch_database
    from memp_mcp.bench.postgres_bulk import (
        backend_memory,
        build_bulk_database,
        database_sizes,
        marker,
        server_settings,
        stored_marker,
        target_tasks,
        warm_page_cache,
    )

    build: dict[str, Any] = {}

    def built_in(url: str) -> list[str]:
        made = build_bulk_database(url, size, embedder, seed=seed, targets=targets, progress=on_phase)
        build.update(
            build_s=round(made.seconds, 1),
            phases_s={name: round(seconds, 1) for name, seconds in made.phases.items()},
            hnsw=made.index_settings,
            targets=made.targets,
            bulk=made.bulk,
        )
        return made.tasks

    with contextlib.ExitStack() as stack:
        if keep:
            kept = _server_database(server_url, f"memp_latency_bulk_{size}_{seed}")
            if stored_marker(kept) == marker(size, seed, targets, embedder.identity):
                tasks = target_tasks(targets, seed)
                build.update(build_s=None, reused=True)
            else:
                _recreate_database(server_url, kept)
                tasks = built_in(kept)
            url = stack.enter_context(scratch_database(server_url, f"latency_{size}", template=kept))
        else:
            url = stack.enter_context(scratch_database(server_url, f"latency_{size}"))
            tasks = built_in(url)
        before = database_sizes(url)
        warmed = warm_page_cache(url)
        per_run = _runs(
            {"MEMP_DATABASE_URL": url},
            tasks,
            env,
            runs,
            recalls,
            records,
            seed,
            size,
            on_run,
            lambda: backend_memory(url),
        )
        summary = _summary(per_run, build.get("build_s"), before["database_mb"], database_sizes(url)["database_mb"])
        summary.update(
            build=build,
            disk=before,
            server=server_settings(url),
            page_cache_warmed_mb=warmed,
            corpus={
                "real": f"{targets:,} target procedures: synthetic tasks built by the extractive builder, their keys "
                "embedded with the real model; the recalls are paraphrases of their tasks, embedded by the server",
                "synthetic": f"{size - targets:,} bulk procedures: a target's steps and trajectory under a task of "
                "their own, key vectors derived from the target's (its vector plus noise, normalised)",
            },
        )
    return summary


def _server_database(server_url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


def _recreate_database(server_url: str, url: str) -> None:
    from urllib.parse import urlsplit

    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
