"""A Claude Code session transcript (JSONL) as the client writes it, built entry by entry for tests."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any


class Transcript:
    """Appends transcript lines: prompts, tool calls with their results, and the client's other entries."""

    def __init__(self, path: Path, session_id: str, cwd: Path, model: str = "claude-sonnet-4-5") -> None:
        self.path = path
        self.session_id = session_id
        self.cwd = str(cwd)
        self.model = model
        self._parent: str | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def _write(self, entry: dict[str, Any]) -> str:
        entry_id = str(uuid.uuid4())
        full = {
            "parentUuid": self._parent,
            "isSidechain": False,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session_id,
            "version": "2.0.14",
            "gitBranch": "main",
            "uuid": entry_id,
            "timestamp": "2026-11-25T10:00:00.000Z",
            **entry,
        }
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(full) + "\n")
        self._parent = entry_id
        return entry_id

    def prompt(self, text: str) -> str:
        return self._write({"type": "user", "message": {"role": "user", "content": text}})

    def say(self, text: str) -> None:
        self._write({"type": "assistant", "message": self._assistant([{"type": "text", "text": text}])})

    def tool(self, name: str, tool_input: dict[str, Any], result: str, *, is_error: bool = False) -> None:
        call_id = "toolu_" + uuid.uuid4().hex[:24]
        self._write(
            {
                "type": "assistant",
                "message": self._assistant([{"type": "tool_use", "id": call_id, "name": name, "input": tool_input}]),
            }
        )
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id, "content": result}
        if is_error:
            block["is_error"] = True
        self._write(
            {"type": "user", "message": {"role": "user", "content": [block]}, "toolUseResult": {"stdout": result}}
        )

    def noise(self) -> None:
        """Entries a real transcript has between turns, which the reader must step over."""
        self._write(
            {"type": "user", "isMeta": True, "message": {"role": "user", "content": "Caveat: local commands below."}}
        )
        self._write({"type": "user", "message": {"role": "user", "content": "<command-name>/clear</command-name>"}})
        self._write({"type": "system", "subtype": "stop_hook_summary", "hookCount": 1, "content": "hooks ran"})
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write('{"type": "file-history-snapshot", "messageId": "x", "snapshot": {}}\n')
            handle.write("{not json at all\n")

    def _assistant(self, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": "msg_" + uuid.uuid4().hex[:20],
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": "tool_use" if content[0]["type"] == "tool_use" else "end_turn",
            "usage": {"input_tokens": 1200, "output_tokens": 80},
        }
