"""The memory as one server serves it: what its tools and resources share.

Every MempError becomes a ToolError whose message the calling model reads and can act on; anything
else is a bug and is left to the SDK (which logs it and withholds the details from the client). For
remote clients no message names a file path of this machine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from memp_mcp.config import Settings
from memp_mcp.engine.memory import Memory
from memp_mcp.errors import MempError
from memp_mcp.models import NamespaceStats
from memp_mcp.principals import Principal

M = TypeVar("M", bound=BaseModel)

# The principal of the request being served, where authentication established one (an HTTP token of
# the token file); None: the memory's own (the local account). Set around each tool call and resource
# read by MempServer (app.py), from the request the transport attached.
CALLER: ContextVar[Principal | None] = ContextVar("memp_caller", default=None)
# The scope key under which the HTTP token check leaves the request's principal (streamable_http.py).
PRINCIPAL_SCOPE_KEY = "memp.principal"
# Tools that write to the namespace they are given; every other tool reads it.
WRITING_TOOLS = frozenset(
    {"record_trajectory", "report_outcome", "edit_procedure", "forget_procedure", "restore_procedure"}
)


def principal_of(request: Any) -> Principal | None:
    """The principal the HTTP token check attached to `request` (a Starlette request), if any."""
    scope = getattr(request, "scope", None)
    found = scope.get(PRINCIPAL_SCOPE_KEY) if isinstance(scope, Mapping) else None
    return found if isinstance(found, Principal) else None


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

    @property
    def principal(self) -> str | None:
        """Who the current request writes as, for the trust rules (None: the memory's own principal)."""
        caller = CALLER.get()
        return caller.name if caller is not None else None

    def namespace(self, given: str | None, *, write: bool) -> str | None:
        """The namespace a call of the current principal goes to: `given`, or the principal's default.

        Raises ToolError when the principal may not read (or, with `write`, write) it. The message is
        the same whether the namespace exists or not, so a refusal reveals nothing of other principals'.
        """
        caller = CALLER.get()
        if caller is None:
            return given
        namespace = given if given is not None else caller.default_namespace(self.memory.default_namespace)
        allowed = caller.may_write(namespace) if write else caller.may_read(namespace)
        if not allowed:
            raise ToolError(
                f"namespace '{namespace}' is not open to you for {'writing' if write else 'reading'}; "
                "use one your token was given (memory_stats lists them), or omit namespace for your default"
            )
        return namespace

    def call(self, action: Callable[[], M]) -> M:
        """`action`'s result, or its MempError as a ToolError for the calling model."""
        try:
            return action()
        except MempError as exc:
            raise ToolError(self.redact(str(exc))) from None

    def stats(self, namespace: str | None) -> MemoryStats:
        memory = self.memory
        caller = CALLER.get()
        return MemoryStats(
            stats=memory.stats(namespace),
            namespaces=[n for n in memory.store.namespaces() if caller is None or caller.may_read(n)],
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
