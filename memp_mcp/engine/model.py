"""The embedding model as the engine sees it: loaded in the background, bound to the database, its
missing vectors filled in."""

from __future__ import annotations

import logging
import threading

from memp_mcp.embedding import BackgroundEmbedder, Embedder
from memp_mcp.errors import EmbeddingModelMismatchError, StoreError
from memp_mcp.store import Store

logger = logging.getLogger(__name__)


class ModelBinding:
    """One model source over one store, and the last reason it could not be used."""

    def __init__(self, store: Store, embedder: Embedder | BackgroundEmbedder | None) -> None:
        self.store = store
        self.source = embedder if isinstance(embedder, BackgroundEmbedder) else BackgroundEmbedder(embedder=embedder)
        self.problem: str | None = None
        self.lock = threading.Lock()

    def get(self, wait: float | None = 0.0) -> Embedder | None:
        """The model, once loaded and bound to the database; None while loading or unusable.

        The database's model is read on every call (two rows of a small table), not remembered: another
        process may have run `reindex` with another model since, and vectors from this one would then
        land in the wrong space. Keys another process stored without a vector (no model there, or one
        still loading) are embedded here as soon as they are seen, not at the next restart.
        """
        model = self.source.get(wait)
        if model is None:
            return None
        with self.lock:
            try:
                self.store.check_embedding_model(model.identity, model.dim)
                if self.store.embedding_model() is None:
                    self.store.bind_embedding_model(model.identity, model.dim)
                if self.store.has_keys_without_vectors():
                    self._backfill(model)
            except EmbeddingModelMismatchError as exc:
                if self.problem != str(exc):
                    logger.warning("vector search is off: %s", exc)
                self.problem = str(exc)
                return None
            except StoreError as exc:
                # Cannot write the binding or the missing vectors now (read-only file, full
                # disk, a long lock): keywords for this call, try again on the next.
                logger.warning("vector search unavailable for now: %s", exc)
                return None
            self.problem = None
        return model

    def fits_database(self, model: Embedder | None) -> bool:
        """Inside a write: whether vectors from `model` still belong in this database."""
        return model is not None and self.store.embedding_model() == (model.identity, model.dim)

    def status(self) -> str:
        if self.problem:
            return f"unavailable: {self.problem}"
        return self.source.status

    def _backfill(self, model: Embedder) -> None:
        """Embed keys stored while the model was loading (or before any model was bound)."""
        while pending := self.store.keys_without_vectors(256):
            vectors = model.embed([text for _, text in pending])
            self.store.store_key_vectors([(key_id, v) for (key_id, _), v in zip(pending, vectors, strict=True)])
