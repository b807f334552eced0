"""`memp-mcp bench day`: sessions through the hooks with the warm server stopped and started, then checked."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from memp_mcp.bench.hook_day import run_hook_day
from tests.claude_code_session import Transcript

pytestmark = pytest.mark.slow

FAMILIES = {
    "release": "Release the shop to staging with the helm chart and check that the rollout finished",
    "certificates": "Rotate the staging TLS certificate of the shop's nginx and reload it without downtime",
}


def sessions_folder(root: Path) -> Path:
    """Two families of two variants each, as `bench sessions` reads them."""
    for family, instruction in FAMILIES.items():
        for variant in (1, 2):
            folder = root / family / f"{family}-{variant}"
            folder.mkdir(parents=True)
            (folder / "instruction.md").write_text(f"{instruction} (variant {variant})", encoding="utf-8")
            transcript = Transcript(folder / "t.jsonl", f"{family}-{variant}", root)
            transcript.prompt(instruction)
            # No file is cited: the benchmark's repository holds none, and a step citing a missing file is stale.
            transcript.tool("Bash", {"command": f"make {family} VARIANT={variant}"}, "done")
            transcript.tool("Bash", {"command": "python -m pytest tests -q"}, "12 passed in 0.40s")
            (folder / "transcript.jsonl.gz").write_bytes(gzip.compress(transcript.path.read_bytes()))
            transcript.path.unlink()
    return root


def test_a_day_through_the_hooks_keeps_the_file_sound_and_credits_what_it_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMP_EMBEDDINGS", "0")  # keyword recall: the figures do not need the model
    figures = run_hook_day(sessions_folder(tmp_path / "sessions"), tmp_path / "scratch", restart_every=1)
    assert figures["sessions"] == 4
    assert figures["warm_servers"] >= 3  # stopped after every session, started again by the next prompt
    assert figures["integrity"] == [] and figures["damage_mark"] is None and figures["deleted_wal_holders"] == 0
    assert figures["procedures"] == 2 and figures["trajectories"] == 4
    assert figures["given"] == figures["injected"] == 2  # each family's second variant got its procedure
    assert figures["credited"] == figures["injected_with_an_outcome"] == 2
    assert figures["tracebacks"] == 0 and figures["not_reported"] == 0
    json.dumps(figures)  # what --json prints
