"""A client nobody here wrote: the MCP Inspector CLI (npm) drives `memp-mcp serve` over stdio."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memp_mcp.config import default_cache_dir

INSPECTOR_VERSION = "2.12.0"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed (needed for the MCP Inspector)"),
]


@pytest.fixture(scope="module")
def inspector() -> Path:
    """The Inspector installed once per machine into the user cache (npm, pinned version)."""
    prefix = default_cache_dir() / "test-tools" / f"inspector-{INSPECTOR_VERSION}"
    binary = prefix / "node_modules" / ".bin" / "mcp-inspector"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.fail(f"npm could not install the MCP Inspector: {done.stderr[-2000:]}")
    return binary


def inspect(inspector: Path, tmp_path: Path, *args: str) -> dict[str, object]:
    server = [sys.executable, "-m", "memp_mcp.cli", "serve"]
    # The Inspector starts the server with a minimal environment of its own; settings go through -e.
    settings = {"MEMP_DB_PATH": str(tmp_path / "inspected.db"), "MEMP_EMBEDDINGS": "0", "MEMP_LOG_LEVEL": "WARNING"}
    env_args = [part for key, value in settings.items() for part in ("-e", f"{key}={value}")]
    done = subprocess.run(
        [str(inspector), "--cli", *env_args, *server, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_inspector_lists_tools_and_calls_the_three_main_ones(inspector: Path, tmp_path: Path) -> None:
    listed = inspect(inspector, tmp_path, "--method", "tools/list")
    names = {tool["name"] for tool in listed["tools"]}  # type: ignore[attr-defined, index]
    assert {"recall_procedure", "record_trajectory", "report_outcome"} <= names

    steps = json.dumps(
        [
            {"action": "go to shelf 1", "observation": "On the shelf 1, you see a mug 1."},
            {"action": "take mug 1 from shelf 1", "observation": "You pick up the mug 1."},
            {"action": "put mug 1 in/on desk 1", "observation": "You put the mug 1 in/on the desk 1."},
        ]
    )
    recorded = inspect(
        inspector,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "record_trajectory",
        "--tool-arg",
        "task=put a mug on the desk",
        "--tool-arg",
        f"steps={steps}",
        "--tool-arg",
        "outcome=success",
    )
    assert recorded["isError"] is False and recorded["structuredContent"]["action"] == "created"  # type: ignore[index]

    recalled = inspect(
        inspector,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "recall_procedure",
        "--tool-arg",
        "task=put the mug on the desk",
    )
    structured = recalled["structuredContent"]
    assert recalled["isError"] is False and structured["procedures"], recalled  # type: ignore[index]

    reported = inspect(
        inspector,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "report_outcome",
        "--tool-arg",
        f"recall_id={structured['recall_id']}",
        "--tool-arg",
        "success=true",
    )  # type: ignore[index]
    assert reported["isError"] is False, reported
    assert reported["structuredContent"]["credited_procedure_ids"] == [1]  # type: ignore[index]
