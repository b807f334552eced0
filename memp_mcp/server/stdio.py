"""The stdio transport: the SDK's, plus an answer for every request it cannot read."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_PARAMS, ErrorData, JSONRPCError
from pydantic import ValidationError

logger = logging.getLogger(__name__)

UNREADABLE_REQUEST = (
    "the request is not valid JSON text: {reason}. A lone surrogate escape such as \\ud800 comes from a "
    "string cut inside a character (an emoji split in two); send whole characters"
)


async def serve_stdio(mcp: MCPServer[Any]) -> None:
    """Serve over stdin and stdout, answering every request, even one the SDK cannot read.

    The SDK drops a line it cannot parse (a lone surrogate escape, which some clients produce when
    they cut a string inside an emoji, is one) without a reply, and the client waits until it times
    out; here such a request gets a JSON-RPC error with its id.
    """
    from mcp.server.stdio import stdio_server

    server = mcp._lowlevel_server  # the SDK's own run_stdio_async does the same, without the filter
    async with stdio_server() as (read_stream, write_stream):
        readable_send, readable = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def answer_unreadable() -> None:
            async with readable_send:
                async for item in read_stream:
                    if isinstance(item, Exception):
                        await _answer_unreadable(item, write_stream)
                    else:
                        await readable_send.send(item)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(answer_unreadable)
            await server.run(readable, write_stream, server.create_initialization_options())


async def _answer_unreadable(error: Exception, write_stream: Any) -> None:
    problems = error.errors() if isinstance(error, ValidationError) else []
    raw = problems[0].get("input") if problems else None
    reason = str(problems[0].get("msg")) if problems else str(error)
    try:
        request = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        request = None
    request_id = request.get("id") if isinstance(request, dict) else None
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        logger.warning("ignored an unreadable message that is not a request: %s", reason)
        return
    logger.warning("answered an unreadable request with an error: %s", reason)
    error_data = ErrorData(code=INVALID_PARAMS, message=UNREADABLE_REQUEST.format(reason=reason))
    reply = JSONRPCError(jsonrpc="2.0", id=request_id, error=error_data)
    await write_stream.send(SessionMessage(reply))
