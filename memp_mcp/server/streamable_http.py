"""The streamable-HTTP transport: which hosts may call, the bearer token, the body limit, and the bound sockets."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from mcp.server import MCPServer

from memp_mcp.config import Settings
from memp_mcp.errors import InvalidInputError
from memp_mcp.principals import Principal, load_token_file, principal_for
from memp_mcp.server.served import PRINCIPAL_SCOPE_KEY

logger = logging.getLogger(__name__)

# Who writes through the one shared MEMP_HTTP_TOKEN: everyone holding it is one principal.
SHARED_TOKEN_PRINCIPAL = "http-token"
# The HTTP transport refuses bodies larger than this (a record of MAX_STEPS long steps fits).
MAX_HTTP_BODY_BYTES = 8 * 1024 * 1024


def serve_http(settings: Settings, host: str, port: int, build: Callable[[], MCPServer[Any]]) -> None:
    """Serve the server `build` makes on host:port until the process is stopped. The address and the
    token are checked, and the port bound, before `build` opens the memory."""
    if not 1 <= port <= 65535:
        raise InvalidInputError(f"port {port} is not a TCP port; give one from 1 to 65535")
    # Read now, so a bad token file stops the server before it binds a port or opens the memory.
    principals = token_principals(settings)
    if not is_loopback(host) and not principals:
        if not settings.http_allow_no_token:
            raise InvalidInputError(
                f"refusing to serve on {host} without a token: anyone who can reach the port could read and "
                "rewrite the memory. Set MEMP_HTTP_TOKEN or a token file in MEMP_HTTP_TOKENS (clients send "
                "Authorization: Bearer <token>), or "
                "MEMP_HTTP_ALLOW_NO_TOKEN=1 if the network is trusted"
            )
        logger.warning("serving on %s without MEMP_HTTP_TOKEN, as MEMP_HTTP_ALLOW_NO_TOKEN allows", host)
    import uvicorn

    listeners = listening_sockets(bind_address(host), port)
    app = http_app(build(), settings, host, port)
    logger.info(
        "serving MCP on http://%s:%d/mcp", host if ":" not in host or host.startswith("[") else f"[{host}]", port
    )
    # Ctrl+C stops it gracefully, and that is a normal end.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(uvicorn.Config(app, log_level=settings.log_level.lower())).run(sockets=listeners)


def http_app(mcp: MCPServer[Any], settings: Settings, host: str, port: int) -> Any:
    """The streamable-HTTP ASGI app: DNS-rebinding protection, a body size limit, and the bearer token."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = allowed_hosts(host, port, settings.allowed_hosts)
    if hosts is None:
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    else:
        origins = [f"{scheme}://{name}" for name in hosts for scheme in ("http", "https")]
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
        )
    app = mcp.streamable_http_app(
        max_request_body_size=MAX_HTTP_BODY_BYTES, transport_security=security, host=bind_address(host)
    )
    principals = token_principals(settings)
    return BearerTokenMiddleware(app, principals) if principals else app


class BearerTokenMiddleware:
    """Refuses HTTP requests without `Authorization: Bearer <token>` of a known token (401; the scheme in
    any case, as RFC 9110 has it), and attaches the token's principal to the request for the tools.
    Lifespan events pass through."""

    def __init__(self, app: Any, principals: dict[str, Principal]) -> None:
        self.app = app
        self.principals = principals

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scheme, _, given = dict(scope.get("headers") or []).get(b"authorization", b"").strip().partition(b" ")
            principal = None
            if scheme.lower() == b"bearer":
                principal = principal_for(given.strip().decode("utf-8", "replace"), self.principals)
            if principal is None:
                body = b'{"error": "missing or wrong bearer token (set Authorization: Bearer <token>)"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            scope = {**scope, PRINCIPAL_SCOPE_KEY: principal}
        await self.app(scope, receive, send)


def token_principals(settings: Settings) -> dict[str, Principal]:
    """Each accepted token with its principal: the token file's (MEMP_HTTP_TOKENS), else the one
    MEMP_HTTP_TOKEN as principal 'http' with every namespace, else none (no token asked for)."""
    if settings.http_tokens_file is not None:
        return load_token_file(settings.http_tokens_file)
    if settings.http_token:
        return {settings.http_token: Principal(SHARED_TOKEN_PRINCIPAL)}
    return {}


_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_WILDCARDS = ("0.0.0.0", "::", "")


def bind_address(host: str) -> str:
    """The address to bind: a bracketed IPv6 literal ("[::1]", as in a URL) without its brackets."""
    host = host.strip()
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_loopback(host: str) -> bool:
    address = bind_address(host)
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int, configured: Sequence[str] = ()) -> list[str] | None:
    """Host header values the HTTP server answers, or None for any (the check off).

    `configured` (MEMP_ALLOWED_HOSTS) wins; "*" turns the check off. Otherwise: on loopback, the
    loopback names; on a wildcard address (0.0.0.0, ::), any host, since clients reach it by names and
    addresses the server cannot know (the token, required off loopback, keeps browsers out); on a
    hostname or address, that name and the loopback names. Each name is allowed bare and with the port.
    """
    if "*" in configured:
        return None
    address = bind_address(host)
    if configured:
        names = list(configured)
    elif address in _WILDCARDS:
        return None
    else:
        try:
            literal = ipaddress.ip_address(address)
            own = f"[{literal.compressed}]" if literal.version == 6 else literal.compressed
        except ValueError:
            own = address.lower()
        names = [own, *_LOOPBACK_NAMES] if not is_loopback(address) else list(_LOOPBACK_NAMES)
    allowed: list[str] = []
    for name in names:
        name = name.strip().lower()
        if name.count(":") > 1 and not name.startswith("["):
            name = f"[{name}]"  # an IPv6 address, as a Host header writes it
        has_port = "]:" in name if name.startswith("[") else ":" in name
        allowed += [name] if has_port else [name, f"{name}:{port}"]
    return list(dict.fromkeys(allowed))


def listening_sockets(address: str, port: int) -> list[socket.socket]:
    """One bound socket per address the host name resolves to (as asyncio's own server would bind:
    "localhost" on 127.0.0.1 and ::1, a wildcard on every interface, IPv6 sockets IPv6-only).

    Bound here, before anything else starts, so that a port already taken is one OSError for the
    caller to report: uvicorn would log it over several lines and exit on its own.
    """
    infos = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    bound: list[socket.socket] = []
    try:
        for family, kind, protocol, _, where in dict.fromkeys(infos):
            listener = socket.socket(family, kind, protocol)
            bound.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(where)
    except OSError:
        for listener in bound:
            listener.close()
        raise
    return bound
