"""Every request over stdio gets an answer, even one whose JSON the SDK cannot read."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.test_server import keyword_env

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}


def read_reply(process: subprocess.Popen[bytes], seconds: float = 30.0) -> dict[str, Any]:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if selector.select(deadline - time.monotonic()):
                line = process.stdout.readline()
                assert line, "the server closed its output"
                reply: dict[str, Any] = json.loads(line)
                if "id" in reply:
                    return reply
    raise AssertionError(f"no reply within {seconds} s")


def test_a_lone_surrogate_in_a_request_gets_an_error_reply_and_the_server_goes_on(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "memp_mcp.cli", "serve"],
        env=keyword_env(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdin is not None and process.stderr is not None

        def send(line: str) -> None:
            assert process.stdin is not None
            process.stdin.write(line.encode() + b"\n")
            process.stdin.flush()

        send(json.dumps(INITIALIZE))
        assert read_reply(process)["id"] == 1
        send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        # What a client sends when it cuts a string between the two halves of an emoji.
        send(
            '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "recall_procedure", '
            '"arguments": {"task": "deploy the \\ud83d"}}}'
        )
        reply = read_reply(process)
        assert reply["id"] == 2 and "lone surrogate" in reply["error"]["message"]
        send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "tools/call",
                    "params": {"name": "recall_procedure", "arguments": {"task": "deploy the \U0001f680"}},
                }
            )
        )
        assert read_reply(process)["id"] == 3
        process.stdin.close()
        process.wait(30)
        assert "unreadable request" in process.stderr.read().decode()
