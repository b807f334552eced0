"""The server's resources: a procedure as Markdown, and the memory's statistics."""

from __future__ import annotations

import json
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError

from memp_mcp.errors import NotFoundError
from memp_mcp.server.render import render_procedure_markdown
from memp_mcp.server.served import ServedMemory


def register_resources(mcp: MCPServer[Any], served: ServedMemory) -> None:
    @mcp.resource("memp://procedures/{procedure_id}", mime_type="text/markdown")
    def procedure_markdown(procedure_id: str) -> str:
        """A procedure rendered as Markdown."""
        try:
            namespace = served.namespace(None, write=False)
            return render_procedure_markdown(served.memory.get_procedure(int(procedure_id), namespace).procedure)
        except (ValueError, NotFoundError, ToolError):
            # Not found is the client's to act on (-32602 with the URI), not a server fault (-32603).
            raise ResourceNotFoundError(f"no procedure with id {procedure_id}") from None

    @mcp.resource("memp://stats", mime_type="application/json")
    def stats_resource() -> str:
        """Memory statistics for the default namespace."""
        return json.dumps(served.stats(None).model_dump(mode="json"), indent=2)
