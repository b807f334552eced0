"""Settings, in one place.

Every setting has a default, can be set by a `MEMP_*` environment variable, and can be
overridden by a CLI flag. Nothing else in the package reads the environment, except the prompt
hook's fast path (memp_mcp.hooks.client.client_environment), which must not import pydantic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from memp_mcp.errors import InvalidInputError
from memp_mcp.paths import APP_NAME as APP_NAME  # re-exported: the settings' home of these names
from memp_mcp.paths import default_cache_dir, default_db_path
from memp_mcp.paths import default_data_dir as default_data_dir

BuildStrategy = Literal["trajectory", "script", "proceduralization"]
RetrieveStrategy = Literal["hybrid", "query", "avefact", "random"]
UpdateStrategy = Literal["vanilla", "validation", "adjustment"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

# The model fetched from PyPI wheels when nothing else is configured (see memp_mcp.model_fetch).
DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


# A recall answer's size in characters (structured content and text together). A client hands its model
# one of the two renderings (some, Claude Code among them, the structured content; others the text), so about
# 2,500 characters reach the model: the best procedure or two in full, the rest named in `left_out` for
# get_procedure. 8,000 gave three, and answers twice the size of a plain vector search's k=10.
DEFAULT_RECALL_BUDGET = 5_000
MIN_RECALL_BUDGET = 3_000  # the top procedure always fits, abridged to its first steps


class Settings(BaseModel):
    """The resolved configuration of one memp-mcp process."""

    model_config = {"frozen": True, "extra": "forbid"}

    db_path: Path = Field(default_factory=default_db_path)
    # A PostgreSQL database (with pgvector) shared by several servers; when set, db_path is unused.
    database_url: str | None = None
    namespace: str = "default"
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    # A directory holding a fastembed-compatible ONNX model (model.onnx + tokenizer files).
    model_dir: Path | None = None
    # Where `model pull` puts the model it assembles from PyPI wheels.
    model_cache_dir: Path = Field(default_factory=lambda: default_cache_dir() / "models")
    # Set to False to skip embeddings entirely (keyword retrieval only).
    embeddings: bool = True
    # Seconds to wait for fastembed's own download before falling back; its hub may be unreachable.
    hub_timeout: float = Field(default=8.0, gt=0)
    package_index: str = "https://pypi.org/simple"
    build_strategy: BuildStrategy = "proceduralization"
    retrieve_strategy: RetrieveStrategy = "hybrid"
    update_strategy: UpdateStrategy = "adjustment"
    # The cosine a procedure's best key must reach for hybrid recall to return it. Unset: the
    # floor calibrated for all-MiniLM-L6-v2; another model needs its own, which `memp-mcp bench
    # retrieval` prints (calibrated on tasks no procedure serves).
    relevance_floor: float | None = Field(default=None, ge=-1.0, le=1.0)
    # Namespaces no client may write to (a shared, curated library).
    read_only_namespaces: frozenset[str] = frozenset()
    http_token: str | None = None
    # A JSON file of tokens, each with its principal and namespaces (memp_mcp.principals); replaces
    # http_token when set.
    http_tokens_file: Path | None = None
    # Host header values the HTTP server answers (DNS-rebinding protection); empty: derived from the
    # bind address (see server.allowed_hosts). "*" turns the check off.
    allowed_hosts: tuple[str, ...] = ()
    # Serving HTTP beyond loopback without a token needs this said explicitly.
    http_allow_no_token: bool = False
    # Whether connected models may edit, forget and restore procedures (the tools exist only then). Off by
    # default: a model changes memory through report_outcome, whose corrections go through the update
    # strategy and start a fresh record, while an edit would keep the old version's reputation.
    agent_edits: bool = False
    # Characters one recall may return, its structured content and text rendering together.
    recall_budget: int = Field(default=DEFAULT_RECALL_BUDGET, ge=MIN_RECALL_BUDGET, le=1_000_000)
    log_level: LogLevel = "INFO"
    # The share of tasks memory is withheld from, to measure what it brings (`memp-mcp stats --uplift`).
    holdout: float = Field(default=0.0, ge=0.0, le=1.0)
    # Claude Code hooks: False makes `memp-mcp hook` do nothing; the namespace they use instead
    # of the project's own (see memp_mcp.project).
    hooks: bool = True
    hook_namespace: str | None = None
    # Whether prompt hooks may start and use a warm server (see memp_mcp.hooks.warm_server).
    hook_server: bool = True
    # "agent": the Stop hook asks the agent, once per session that did work, to record its own draft of
    # the procedure (its model distils; no API key). "off": the hook extracts one from the transcript.
    hook_distill: Literal["off", "agent"] = "off"
    # Which SQLite library opens the file (memp_mcp.store.driver reads MEMP_SQLITE_DRIVER itself, once per
    # process; it is here so that a value it would refuse fails every command up front, and is listed).
    sqlite_driver: Literal["auto", "sqlean", "sqlite3"] = "auto"

    @field_validator("namespace")
    @classmethod
    def _namespace_is_plain(cls, value: str) -> str:
        return validate_namespace(value)

    @field_validator("hook_namespace")
    @classmethod
    def _hook_namespace_is_plain(cls, value: str | None) -> str | None:
        return None if value is None else validate_namespace(value)

    @field_validator("db_path", "model_dir", "model_cache_dir")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        # "~" is not expanded by the shell in a JSON client config (Claude Desktop's `env`).
        return None if value is None else value.expanduser()

    @field_validator("database_url")
    @classmethod
    def _is_postgresql_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a PostgreSQL URL, postgresql://user:password@host:5432/database")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("read_only_namespaces", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, (list, tuple, set, frozenset)):
            return frozenset(validate_namespace(str(part)) for part in value)
        return value


def validate_namespace(value: str) -> str:
    """Namespaces are short identifiers: ASCII letters, digits, '-', '_', '.', '/'."""
    cleaned = value.strip()
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./")
    if not cleaned or len(cleaned) > 64 or not set(cleaned) <= allowed:
        raise InvalidInputError(
            f"namespace {value!r} is not valid: use 1-64 characters from the ASCII letters a-z and A-Z, "
            "the digits and '-', '_', '.', '/'"
        )
    return cleaned


# Environment variable -> settings field.
ENV_VARS: dict[str, str] = {
    "MEMP_DB_PATH": "db_path",
    "MEMP_SQLITE_DRIVER": "sqlite_driver",
    "MEMP_DATABASE_URL": "database_url",
    "MEMP_NAMESPACE": "namespace",
    "MEMP_EMBEDDING_MODEL": "embedding_model",
    "MEMP_MODEL_DIR": "model_dir",
    "MEMP_MODEL_CACHE_DIR": "model_cache_dir",
    "MEMP_EMBEDDINGS": "embeddings",
    "MEMP_HUB_TIMEOUT": "hub_timeout",
    "MEMP_PACKAGE_INDEX": "package_index",
    "MEMP_BUILD_STRATEGY": "build_strategy",
    "MEMP_RETRIEVE_STRATEGY": "retrieve_strategy",
    "MEMP_UPDATE_STRATEGY": "update_strategy",
    "MEMP_RELEVANCE_FLOOR": "relevance_floor",
    "MEMP_READ_ONLY_NAMESPACES": "read_only_namespaces",
    "MEMP_HTTP_TOKEN": "http_token",
    "MEMP_HTTP_TOKENS": "http_tokens_file",
    "MEMP_ALLOWED_HOSTS": "allowed_hosts",
    "MEMP_HTTP_ALLOW_NO_TOKEN": "http_allow_no_token",
    "MEMP_AGENT_EDITS": "agent_edits",
    "MEMP_RECALL_BUDGET": "recall_budget",
    "MEMP_LOG_LEVEL": "log_level",
    "MEMP_HOLDOUT": "holdout",
    "MEMP_HOOKS": "hooks",
    "MEMP_HOOK_NAMESPACE": "hook_namespace",
    "MEMP_HOOK_SERVER": "hook_server",
    "MEMP_HOOK_DISTILL": "hook_distill",
}


# Never echoed back in error messages.
_SECRET_FIELDS = frozenset({"http_token", "database_url"})


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, with `overrides` (CLI flags; None values ignored) on top.

    Raises InvalidInputError naming the variable or flag when a value is not acceptable.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    # Where each value came from, so an error names the thing the user has to change.
    origin: dict[str, str] = {}
    for var, field in ENV_VARS.items():
        raw = env.get(var)
        if raw is not None and raw != "":
            values[field] = raw
            origin[field] = f"environment variable {var}" + ("" if field in _SECRET_FIELDS else f"={raw!r}")
    for field, value in (overrides or {}).items():
        if value is not None:
            values[field] = value
            origin[field] = f"option {field}" + ("" if field in _SECRET_FIELDS else f"={value!r}")
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{field} (from {origin.get(field, 'the defaults')}): {message}")
        raise InvalidInputError("invalid settings: " + "; ".join(problems)) from None
