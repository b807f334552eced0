"""A stand-in embedding model for quick benchmark runs and the tests: content words (and their compounds)
hashed into a small normalised vector. Texts sharing words are similar, unrelated texts near-orthogonal;
deterministic and fast, and no measure of retrieval quality."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from memp_mcp.text import compounds, keywords


class HashingEmbedder:
    """The Embedder interface over hashed content words (see the module's docstring)."""

    def __init__(self, dim: int = 128, identity: str | None = None) -> None:
        self._dim = dim
        self._identity = identity or f"bench-hashing-{dim}@1"

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
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
