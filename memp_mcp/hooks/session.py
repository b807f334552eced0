"""What a Claude Code session's hooks remember between events: one small JSON file per session.

The prompt hook writes the prompt (the session's task) and what it recalled and injected; the stop hook
reads it to record the turn under that task and report the outcome against that recall, and a session
start after a compaction to inject it again. The
files sit in `hook-sessions/` beside the database and are forgotten after STATE_MAX_AGE_SECONDS.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from memp_mcp.config import Settings
from memp_mcp.paths import private_folder, write_private_text

STATE_MAX_AGE_SECONDS = 14 * 24 * 3600


@dataclass
class SessionState:
    """What this session's hooks remember between events (one small JSON file per session)."""

    namespace: str | None = None
    task: str | None = None
    recall_id: str | None = None
    procedure_id: int | None = None
    injection: str | None = None
    recorded_prompt_id: str | None = None
    # MEMP_HOOK_DISTILL=agent: the stop hook asked the agent for its draft (once per session).
    distill_asked: bool = False
    # The memory was marked damaged and this session's context said so (once per session).
    damage_told: bool = False

    @classmethod
    def load(cls, path: Path) -> SessionState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return cls()

    def save(self, path: Path) -> None:
        # The prompt and what was injected for it: the owner's alone (paths.PRIVATE_FILE_MODE).
        private_folder(path.parent)
        write_private_text(path, json.dumps(asdict(self)))


def state_path(settings: Settings, session_id: object) -> Path:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(session_id or ""))[:100] or "unknown"
    return _states_folder(settings) / f"{name}.json"


def forget_old_states(settings: Settings) -> None:
    """Delete the states of sessions untouched for STATE_MAX_AGE_SECONDS."""
    folder = _states_folder(settings)
    if folder.is_dir():
        cutoff = time.time() - STATE_MAX_AGE_SECONDS
        for old in folder.glob("*.json"):
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)


def _states_folder(settings: Settings) -> Path:
    return settings.db_path.parent / "hook-sessions"
