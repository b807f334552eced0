"""Where a hook event's Memory comes from: opened fresh per event, or kept open by the warm server.

A hook process opens the store for its one event and recalls by keywords (loading the model would
cost about a second per prompt). The warm server keeps one store open and loads the model in the
background, recalling by keywords until it is ready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from memp_mcp.config import Settings

logger = logging.getLogger(__name__)


class Memories(Protocol):
    """Where an event's Memory comes from: fresh per event, or kept open by the warm server."""

    def open(self, namespace: str) -> AbstractContextManager[Any]: ...


class FreshMemories:
    """A Memory per event, closed after it: what a hook process uses (keyword recall, no model)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @contextmanager
    def open(self, namespace: str) -> Iterator[Any]:
        from memp_mcp.engine.memory import memory_for
        from memp_mcp.store import open_store

        store = open_store(self.settings.db_path, self.settings.database_url)
        memory = memory_for(self.settings, store, None, namespace=namespace)
        try:
            yield memory
        finally:
            memory.store.close()


class KeptMemories:
    """One open store and, once loaded, the embedding model: what the warm server uses between events."""

    def __init__(self, settings: Settings, *, model_wait: float = 0.0) -> None:
        self.settings = settings
        self.model_wait = model_wait
        self._lock = threading.Lock()
        self._store: Any = None
        self._model: Any = None
        self._settled = threading.Event()

    def _opened_store(self) -> Any:
        from memp_mcp.store import open_store

        if self._store is None:
            self._store = open_store(self.settings.db_path, self.settings.database_url)
        return self._store

    def load_model(self) -> None:
        """Load the model, bind it and embed keys stored without vectors, then recall with it."""
        try:
            self._load_model()
        finally:
            self._settled.set()

    def _load_model(self) -> None:
        from memp_mcp.embedding import resolve_embedder
        from memp_mcp.engine.memory import memory_for
        from memp_mcp.errors import MempError

        if not self.settings.embeddings:
            return
        try:
            model = resolve_embedder(self.settings, allow_download=False)
            with self._lock:
                store = self._opened_store()
            # Bound (and backfilled) off the lock, so prompts keep their keyword answers meanwhile.
            if memory_for(self.settings, store, model, namespace="default").embedder(0.0) is None:
                logger.warning("the model does not fit this database; the warm server stays on keywords")
                return
        except MempError as exc:
            logger.warning("the warm server stays on keyword recall: %s", exc)
            return
        with self._lock:
            self._model = model
        logger.info("warm server recalls with %s", model.identity)

    @contextmanager
    def open(self, namespace: str) -> Iterator[Any]:
        from memp_mcp.engine.memory import memory_for

        self._settled.wait(self.model_wait)  # the first prompt after a start recalls as later ones do
        with self._lock:
            # A new Memory per event: binding the model on first use embeds the keys that hook
            # processes recorded without vectors since the last event, so vector search sees them.
            yield memory_for(self.settings, self._opened_store(), self._model, namespace=namespace)
