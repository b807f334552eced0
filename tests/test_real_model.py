"""The engine and the CLI with the real all-MiniLM-L6-v2 model (fetched from PyPI wheels)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memp_mcp.embedding import FastEmbedEmbedder
from memp_mcp.engine.memory import Memory
from memp_mcp.store import SQLiteStore
from tests.test_memory import CLEAN_SOAP, HEAT_EGG

pytestmark = pytest.mark.real_model


def test_paraphrase_is_recalled_and_unrelated_task_gets_nothing(
    tmp_path: Path, real_embedder: FastEmbedEmbedder
) -> None:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), real_embedder)
    soap = memory.record("put a clean soapbar in cabinet", CLEAN_SOAP, "success")
    memory.record("heat some egg and put it in garbagecan", HEAT_EGG, "success")
    found = memory.recall("wash the bar of soap and store it in the cupboard", k=2)
    assert found.retrieval == "vector+keyword"
    assert found.procedures and found.procedures[0].id == soap.procedure_id
    assert memory.recall("renew the TLS certificate of the production web server").procedures == []
    assert memory.store.integrity_problems() == []


def test_cli_smoke_records_and_recalls_with_the_real_model(tmp_path: Path, real_model_dir: Path) -> None:
    env = {**os.environ, "MEMP_MODEL_CACHE_DIR": str(real_model_dir.parent), "MEMP_DB_PATH": str(tmp_path / "x.db")}
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.cli", "smoke"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "recalled for a paraphrase" in done.stdout and done.stdout.rstrip().endswith("ok")


def test_a_process_that_ends_while_the_model_loads_exits_cleanly(tmp_path: Path, real_model_dir: Path) -> None:
    """The model loads on a thread; ending the process while that thread is inside onnxruntime used
    to abort it at interpreter shutdown ("terminate called without an active exception", exit 134),
    as `memp-mcp edit` did when the editor closed within a second."""
    env = {**os.environ, "MEMP_MODEL_CACHE_DIR": str(real_model_dir.parent)}
    script = (
        "import sys, time\n"
        "from memp_mcp.config import load_settings\n"
        "from memp_mcp.embedding import BackgroundEmbedder\n"
        "BackgroundEmbedder(load_settings({}))\n"
        "time.sleep(float(sys.argv[1]))\n"
    )
    for delay in ("0.2", "0.4", "0.6", "0.8", "1.0", "1.2", "1.4", "1.7", "2.0"):
        ended = subprocess.run([sys.executable, "-c", script, delay], capture_output=True, text=True, env=env)
        assert ended.returncode == 0 and "terminate called" not in ended.stderr, (delay, ended.stderr[-500:])
