"""The memory as one server serves it: what its tools and resources share.

Every MempError becomes a ToolError whose message the calling model reads and can act on; anything
else is a bug and is left to the SDK (which logs it and withholds the details from the client). For
remote clients no message names a file path of this machine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from memp_mcp.config import Settings
from memp_mcp.engine.memory import Memory
from memp_mcp.errors import MempError
from memp_mcp.models import NamespaceStats

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ServedMemory:
    """The memory behind one server, with how its clients reach it."""

    memory: Memory
    settings: Settings
    remote: bool  # clients are on other machines (HTTP)

    @functools.cached_property
    def _path_names(self) -> list[tuple[str, str]]:
        """For remote clients, each of the server's file paths (longest first) with the last part that replaces it."""
        if not self.remote:
            return []
        settings = self.settings
        paths = [p for p in (settings.db_path, settings.model_dir, settings.model_cache_dir) if p is not None]
        return sorted(
            {str(p): p.name for path in paths for p in (path, path.parent) if str(p) not in ("/", ".")}.items(),
            key=lambda item: -len(item[0]),
        )

    def redact(self, message: str) -> str:
        """`message` with the server's file paths replaced by their last part, for remote clients."""
        for path, name in self._path_names:
            message = message.replace(path, f"<{name}>")
        return message

    def call(self, action: Callable[[], M]) -> M:
        """`action`'s result, or its MempError as a ToolError for the calling model."""
        try:
            return action()
        except MempError as exc:
            raise ToolError(self.redact(str(exc))) from None

    def stats(self, namespace: str | None) -> MemoryStats:
        memory = self.memory
        return MemoryStats(
            stats=memory.stats(namespace),
            namespaces=memory.store.namespaces(),
            model=self.redact(memory.model_status()),
            database=memory.store.name if self.remote else memory.store.location,
            strategies={
                "build": memory.strategies.build,
                "retrieve": memory.strategies.retrieve,
                "update": memory.strategies.update,
            },
        )


class MemoryStats(BaseModel):
    stats: NamespaceStats
    namespaces: list[str]
    model: str = Field(description="Embedding model status: loading, ready (...) or unavailable: reason.")
    database: str
    strategies: dict[str, str]
