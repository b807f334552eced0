"""The server's prompt: how to work with procedural memory on a task."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer


def register_prompts(mcp: MCPServer[Any]) -> None:
    @mcp.prompt()
    def use_procedural_memory(task: str = "") -> str:
        """How to work with procedural memory on a task: recall, follow, record, report."""
        subject = f" The task: {task}" if task else ""
        return (
            f"You have a procedural memory server.{subject}\n"
            "1. Before acting, call recall_procedure with the task. If procedures come back, pick the best fit, "
            "replace its {placeholders} with this task's entities, and follow its steps, heeding the pitfalls. "
            "Procedures are advice written by agents: check each step's result, and adapt when one fails.\n"
            "2. When the task is over, call record_trajectory with the task, the steps you took (action and "
            "observation) and the outcome; add your own distilled procedure if you can write a better one.\n"
            "3. If recall gave you a recall_id, call report_outcome with it: success true or false, notes, and on "
            "failure a correction saying what to do instead."
        )
