"""Who is calling: principals, as authentication establishes them, and the namespaces each may use.

A principal is an identity the caller cannot choose by what it sends. Over stdio, in the hooks and
in the CLI it is the local account running memp-mcp. Over HTTP it is the principal the bearer token
belongs to, read from a token file (MEMP_HTTP_TOKENS):

    {"tokens": [
      {"token": "<secret>", "principal": "alice", "read": ["team", "alice"], "write": ["alice"]},
      {"token": "<secret>", "principal": "ci", "read": ["*"], "write": ["team"], "default": "team"}
    ]}

`read` and `write` list the namespaces the principal may use ("*": all); a namespace one may write
is one it may read. `default` is where its calls go when they name no namespace (else its first
writable one, else its first readable one). The `agent` argument of the tools stays a label shown
to readers; authorship, and every trust rule that asks "the same author?", use the principal.
"""

from __future__ import annotations

import getpass
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from memp_mcp.errors import InvalidInputError

ALL = "*"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and the namespaces it may read and write (None: all of them)."""

    name: str
    read: frozenset[str] | None = None
    write: frozenset[str] | None = None
    default: str | None = None

    def may_read(self, namespace: str) -> bool:
        return self.read is None or namespace in self.read or self.may_write(namespace)

    def may_write(self, namespace: str) -> bool:
        return self.write is None or namespace in self.write

    def default_namespace(self, server_default: str) -> str:
        """Where a call that names no namespace goes for this principal."""
        if self.default is not None:
            return self.default
        if self.may_write(server_default) or self.may_read(server_default):
            return server_default
        return next(iter(sorted(self.write or ()) or sorted(self.read or ())), server_default)


def local_principal() -> Principal:
    """The account running this process: every namespace is its own."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container): the uid itself
        name = f"uid-{os.getuid()}" if hasattr(os, "getuid") else "local"
    return Principal(f"local:{name}")


def _namespaces(value: object, where: str) -> frozenset[str] | None:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInputError(f"{where} must be a list of namespace names")
    return None if ALL in value else frozenset(value)


def load_token_file(path: Path) -> dict[str, Principal]:
    """Each token of the file at `path` with its principal. Raises InvalidInputError naming what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read the token file {path}: {exc.strerror}") from None
    except (ValueError, RecursionError):
        raise InvalidInputError(f"the token file {path} is not JSON") from None
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError(f'the token file {path} must hold {{"tokens": [...]}} with at least one token')
    principals: dict[str, Principal] = {}
    for number, entry in enumerate(entries, 1):
        where = f"{path}: token {number}"
        if not isinstance(entry, dict):
            raise InvalidInputError(f"{where} is not an object")
        token, name = entry.get("token"), entry.get("principal")
        if not isinstance(token, str) or len(token) < 16:
            raise InvalidInputError(f"{where}: 'token' must be a string of at least 16 characters")
        if not isinstance(name, str) or not name.strip() or name.startswith("local:"):
            raise InvalidInputError(f"{where}: 'principal' must be a name (not starting with 'local:')")
        if token in principals:
            raise InvalidInputError(f"{where}: the same token is listed twice")
        default = entry.get("default")
        if default is not None and not isinstance(default, str):
            raise InvalidInputError(f"{where}: 'default' must be a namespace name")
        principals[token] = Principal(
            name.strip(),
            read=_namespaces(entry.get("read"), f"{where}: 'read'"),
            write=_namespaces(entry.get("write"), f"{where}: 'write'"),
            default=default,
        )
    return principals


def principal_for(token: str, principals: dict[str, Principal]) -> Principal | None:
    """The principal `token` belongs to, compared in constant time against every listed token."""
    found = None
    for candidate, principal in principals.items():
        if hmac.compare_digest(candidate.encode(), token.encode()):
            found = principal
    return found
