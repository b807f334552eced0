"""The first recall on a machine without the model and without a network: keywords at once, one line
saying what to do, none of fastembed's own retries (3 s, then 9 s, an ERROR line each) or log lines."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memp_mcp import embedding
from memp_mcp.config import load_settings
from memp_mcp.embedding import hub_reachable, resolve_embedder
from memp_mcp.engine.memory import Memory
from memp_mcp.errors import ModelError
from memp_mcp.model_fetch import minilm_dir
from memp_mcp.store import SQLiteStore

# Nothing listens on the discard port of this machine: the index and the hub refuse at once.
UNREACHABLE = "http://127.0.0.1:9"
PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXIES and not k.startswith("MEMP_")}
    return {
        **env,
        "MEMP_MODEL_CACHE_DIR": str(tmp_path / "models"),  # empty: no model pulled
        "MEMP_PACKAGE_INDEX": f"{UNREACHABLE}/simple",
        "HF_ENDPOINT": UNREACHABLE,
        "MEMP_DB_PATH": str(tmp_path / "memory.db"),
    }


def test_the_offline_first_recall_answers_by_keywords_with_one_line_on_what_to_do(tmp_path: Path) -> None:
    Memory(SQLiteStore(tmp_path / "memory.db"), None).record(
        "fix the TTL store expiry at the deadline", ["pytest tests/test_cache.py -q", "pytest -q"], "success"
    )
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.cli", "recall", "fix the TTL store expiry at the deadline"],
        env=offline_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "pytest tests/test_cache.py -q" in done.stdout  # recalled, by keywords
    said = [line for line in done.stderr.splitlines() if not line.startswith("namespace ")]
    # fastembed's hub attempt logged "ERROR ... Could not download model" before each of its retries.
    assert len(said) == 1 and "memp-mcp model pull" in said[0] and "cannot be reached" in said[0], said
    assert "fastembed" not in done.stderr and "ERROR" not in done.stderr


def test_an_unreachable_hub_leaves_fastembed_its_cache_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []

    def from_fastembed(name: str, cache_dir: Path, timeout: float, *, cache_only: bool = False) -> Any:
        asked.append(cache_only)
        raise ModelError(f"{name} not cached")

    monkeypatch.setattr(embedding.FastEmbedEmbedder, "from_fastembed", from_fastembed)
    monkeypatch.setattr(embedding, "hub_reachable", lambda timeout: False)
    settings = load_settings({"model_cache_dir": tmp_path / "models"}, environ={})
    with pytest.raises(ModelError, match="model pull"):
        resolve_embedder(settings, allow_download=False)
    assert asked == [True]


def test_the_hub_probe_follows_hf_endpoint_and_trusts_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", UNREACHABLE)
    assert not hub_reachable(1.0)
    with socket.socket() as listener:  # a hub that takes connections
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        assert hub_reachable(1.0)
    # Through a proxy the hub may well be reachable where a direct connection is not: fastembed decides.
    monkeypatch.setenv("HF_ENDPOINT", UNREACHABLE)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert hub_reachable(1.0)


@pytest.mark.real_model
def test_a_pulled_model_loads_without_any_network(
    real_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "models"
    cache.mkdir()
    minilm_dir(cache).symlink_to(real_model_dir, target_is_directory=True)
    reached: list[object] = []

    def no_network(*args: object, **kwargs: object) -> Any:
        reached.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    embedder = resolve_embedder(load_settings({"model_cache_dir": cache}, environ={}))
    assert embedder.dim == 384 and reached == []
