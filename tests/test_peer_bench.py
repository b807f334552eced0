"""The side-by-side with mcp-server-qdrant: the figures read from /proc, the answer's bytes, the
targets' verdicts, and the whole command against a small stand-in for the peer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from memp_mcp.bench.peer import answer_bytes, folder_mb, judge
from memp_mcp.bench.process import (
    MARKER_VARIABLE,
    cpu_seconds,
    cpu_seconds_of_stat,
    innermost,
    peak_rss_mb,
    server_pid,
)

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads Linux's /proc")


def test_cpu_is_user_plus_system_counted_after_a_command_name_with_spaces_and_parentheses() -> None:
    # Fields 14 (utime) and 15 (stime) are 250 and 50 ticks; the name would shift a naive split.
    line = "4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 900 0 3 0 250 50 7 8 20 0 3 0 100 0 0\n"
    assert cpu_seconds_of_stat(line, 100) == pytest.approx(3.0)


@linux_only
def test_cpu_of_this_process_agrees_with_what_the_process_says_it_used() -> None:
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    read = cpu_seconds(os.getpid())
    times = os.times()
    assert read is not None
    assert read == pytest.approx(times.user + times.system, abs=0.05)
    assert (peak_rss_mb(os.getpid()) or 0) > 1


def test_answer_bytes_count_utf8_text_and_compact_structured_content() -> None:
    with_structure = SimpleNamespace(content=[SimpleNamespace(text="café")], structured_content={"a": "é", "b": [1]})
    assert answer_bytes(with_structure) == len("café".encode()) + len('{"a":"é","b":[1]}'.encode()) == 5 + 18
    text_only = SimpleNamespace(content=[SimpleNamespace(text="ab"), SimpleNamespace()], structured_content=None)
    assert answer_bytes(text_only) == 2


def test_targets_are_met_at_the_bound_and_missed_past_it() -> None:
    peer = {"query_p50_ms": 9.0, "query_p95_ms": 12.0, "answer_bytes_p50": 1000.0, "peak_rss_mb": 388.0}
    memp = {"query_p50_ms": 9.0, "query_p95_ms": 12.1, "answer_bytes_p50": 1500.0, "peak_rss_mb": 390.0}
    verdicts = judge({**memp, "disk_mb": 2.0}, {**peer, "disk_mb": 3.0})
    assert {key: v["met"] for key, v in verdicts.items()} == {
        "query_p50_ms": True,
        "query_p95_ms": False,
        "answer_bytes_p50": True,
        "peak_rss_mb": False,
        "disk_mb": True,
    }
    assert verdicts["answer_bytes_p50"]["rule"] == "<= 1.5x peer" and verdicts["disk_mb"]["rule"] == "<= peer"
    assert judge({**memp, "answer_bytes_p50": 1501.0}, peer)["answer_bytes_p50"]["met"] is False
    assert judge({**memp, "peak_rss_mb": None}, peer)["peak_rss_mb"]["met"] is None  # not measured: no verdict
    assert judge(memp, peer)["disk_mb"]["met"] is None


def test_the_server_is_the_innermost_marked_process() -> None:
    assert innermost({100: 1, 101: 100}) == 101  # a wrapper (100) and the server it started
    assert innermost({100: 1}) == 100
    assert innermost({}) is None


@linux_only
def test_a_server_started_through_a_wrapper_is_found_by_its_marker() -> None:
    marker = uuid.uuid4().hex
    # The trailing `true` keeps the shell from exec-ing its last command: the server is its child.
    found = None
    wrapper = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" -c "import time; time.sleep(30)"; true'],
        env={**os.environ, MARKER_VARIABLE: marker},
    )
    try:
        for _ in range(100):
            found = server_pid(marker)
            if found is not None and found != wrapper.pid:
                break
            time.sleep(0.05)
        assert found is not None and found != wrapper.pid
        parent = Path(f"/proc/{found}/stat").read_text().rsplit(")", 1)[1].split()[1]
        assert parent == str(wrapper.pid)
        assert server_pid(uuid.uuid4().hex) is None
    finally:
        if found is not None and found != wrapper.pid:
            os.kill(found, signal.SIGKILL)
        wrapper.kill()
        wrapper.wait()


def test_disk_counts_a_sqlite_file_with_its_log_and_every_file_under_a_folder(tmp_path: Path) -> None:
    (tmp_path / "m.db").write_bytes(b"x" * 1024 * 1024)
    (tmp_path / "m.db-wal").write_bytes(b"x" * 512 * 1024)
    (tmp_path / "other.db").write_bytes(b"x" * 4096)
    assert folder_mb(tmp_path / "m.db") == pytest.approx(1.5)
    nested = tmp_path / "q" / "collection" / "bench"
    nested.mkdir(parents=True)
    (nested / "storage.sqlite").write_bytes(b"x" * 1024 * 1024)
    (tmp_path / "q" / "meta.json").write_bytes(b"x" * 1024 * 1024)
    assert folder_mb(tmp_path / "q") == pytest.approx(2.0)


FAKE_PEER = '''
"""A stand-in for mcp-server-qdrant: the same two tools, documents kept in a file under
QDRANT_LOCAL_PATH, and found by shared words."""

import json
import os
from pathlib import Path

from mcp.server import MCPServer

folder = Path(os.environ["QDRANT_LOCAL_PATH"])
folder.mkdir(parents=True, exist_ok=True)
documents = folder / "documents.jsonl"
limit = int(os.environ.get("QDRANT_SEARCH_LIMIT", "10"))
server = MCPServer("fake-qdrant")


@server.tool(name="qdrant-store")
def store(information: str) -> str:
    with documents.open("a") as out:
        out.write(json.dumps(information) + "\\n")
    return f"Remembered: {information}"


@server.tool(name="qdrant-find")
def find(query: str) -> list[str]:
    kept = [json.loads(line) for line in documents.read_text().splitlines()] if documents.exists() else []
    words = set(query.lower().split())
    ranked = sorted(kept, key=lambda d: -len(words & set(d.lower().split())))
    return [f"<entry><content>{d}</content></entry>" for d in ranked[:limit]]


if __name__ == "__main__":
    server.run()
'''


@linux_only
@pytest.mark.slow
def test_bench_peer_prints_every_row_with_its_verdict_and_ends_with_json(tmp_path: Path) -> None:
    script = tmp_path / "fake_qdrant.py"
    script.write_text(textwrap.dedent(FAKE_PEER))
    # Started through a shell script, as a peer installed elsewhere may be: the figures must still be the
    # server's (a shell's peak RSS is a few MB).
    launcher = tmp_path / "fake-qdrant"
    launcher.write_text(f'#!/bin/sh\n"{sys.executable}" "{script}"\nexit $?\n')
    launcher.chmod(0o755)
    env = {**os.environ, "MEMP_EMBEDDINGS": "0", "COLUMNS": "200"}  # a table row on one line
    command = [sys.executable, "-m", "memp_mcp.cli", "bench", "peer", "--peer-command", str(launcher)]
    command += ["--size", "20", "--runs", "2", "--queries", "8", "--stores", "3", "--calm-load", "1000", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    figures = results["sizes"]["20"]
    keys = {
        "initialize_s",
        "first_query_s",
        "query_p50_ms",
        "query_p95_ms",
        "cpu_per_query_ms",
        "answer_bytes_p50",
        "store_p50_ms",
        "store_p95_ms",
        "peak_rss_mb",
        "disk_mb",
    }
    for name in ("memp", "peer"):
        assert set(figures[name]) == keys
        assert all(figures[name][key] is not None for key in keys), figures[name]
        assert figures[name]["initialize_s"] < figures[name]["first_query_s"]
        assert figures[name]["disk_mb"] > 0 and figures[name]["answer_bytes_p50"] > 0
    assert figures["peer"]["peak_rss_mb"] > 10  # the Python server, not the shell that started it
    assert [run["order"] for run in figures["runs"]] == [["memp", "peer"], ["peer", "memp"]]
    assert all(len(run["load"]) == 2 and run["waited_s"] < 5 for run in figures["runs"])
    assert figures["answer_bytes_ratio"] == pytest.approx(
        figures["memp"]["answer_bytes_p50"] / figures["peer"]["answer_bytes_p50"], abs=0.01
    )
    assert set(figures["targets"]) == {"query_p50_ms", "query_p95_ms", "answer_bytes_p50", "peak_rss_mb", "disk_mb"}
    assert all(verdict["met"] in (True, False) for verdict in figures["targets"].values())
    table = done.stdout
    for row in ("query p50 ms", "store a doc p95 ms", "CPU per query ms", "answer bytes p50", "disk MB"):
        assert row in table
    assert "met" in table or "missed" in table
    assert "run 2 (peer then memp) load" in table.replace("\n", " ")


def test_bench_peer_refuses_an_empty_command_and_bad_counts() -> None:
    from typer.testing import CliRunner

    from memp_mcp.cli import app

    assert CliRunner().invoke(app, ["bench", "peer", "--peer-command", "  "]).exit_code == 2
    assert CliRunner().invoke(app, ["bench", "peer", "--runs", "0"]).exit_code == 2


@pytest.mark.slow
def test_a_peer_that_will_not_start_stops_the_comparison_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "MEMP_EMBEDDINGS": "0"}
    for peer in ("/bin/false", str(tmp_path / "nowhere")):
        command = [sys.executable, "-m", "memp_mcp.cli", "bench", "peer", "--peer-command", peer]
        command += ["--size", "5", "--runs", "1", "--queries", "2", "--stores", "1"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "the comparison stopped" in done.stderr and "Traceback" not in done.stderr


def test_the_peer_is_given_the_task_with_the_actions_that_did_it() -> None:
    from memp_mcp.bench.peer import peer_document
    from memp_mcp.bench.synthetic import synthetic_tasks

    item = next(synthetic_tasks(1, seed=4))
    lines = peer_document(item).split("\n")
    assert lines[0] == item.task and len(lines) == len(item.steps) + 1
    assert lines[1] == f"1. {item.steps[0].action}"
