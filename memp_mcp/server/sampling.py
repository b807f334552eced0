"""Distilling a recorded trajectory with the client's own model (MCP sampling), when the client offers it.

record_trajectory resolves `distill_with_client_model` before it runs; what comes back is read by
`parse_sampled_draft`, and anything unusable leaves the server's extractive builder to do the work.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Sample
from mcp.types import CreateMessageResult, SamplingMessage, TextContent
from pydantic import ValidationError

from memp_mcp.models import ProcedureDraft

logger = logging.getLogger(__name__)

DISTILL_PROMPT = """\
Below is how an agent did a task. Write down what the work established, for an agent doing a task like
it next time. Reply with one JSON object and nothing else:
{{"title": "...", "when_to_use": "...", "steps": ["...", "..."], "pitfalls": ["..."]}}
- title: a short imperative summary of the request (at most 70 characters), not its first words.
- when_to_use: the kind of task in general words, and the files, tools and formats involved; not the
  request again.
- steps, in order, at most 10: where to look (the files and symbols read that the change touches); how
  the problem was reproduced (the command that failed first); the change, one step per file (a short
  diff, or a script the work kept, with its code); the commands that made the deliverable; how it was
  checked (the command that passed last). Commands as run, paths relative to the project. Leave out
  probes: looks whose output was only read, scratch scripts that were deleted.
- pitfalls: what failed, and why.
For work without files (a text world, a chore), keep the actions that worked, with this task's entities
as {{placeholders}} such as {{object}} or {{target}}.

Task: {task}
Steps (action -> observation):
{steps}"""
SAMPLED_TRAJECTORY_CHARS = 8_000


def distill_with_client_model(task: Any, steps: Any, outcome: Any, procedure: Any, ctx: Context) -> Sample | None:
    """Ask the client's model to distill a successful trajectory, when the client offers sampling
    and the caller sent no procedure of its own; otherwise the server's extractive builder runs."""
    capabilities = ctx.client_capabilities
    if procedure is not None or outcome != "success" or capabilities is None or capabilities.sampling is None:
        return None
    lines = []
    for step in steps or []:
        if isinstance(step, str):
            lines.append(f"- {step}")
            continue
        action = getattr(step, "action", None) or (step.get("action") if isinstance(step, dict) else None)
        observation = getattr(step, "observation", None) or (step.get("observation") if isinstance(step, dict) else "")
        lines.append(f"- {action} -> {(observation or '')[:200]}")
    text = DISTILL_PROMPT.format(task=task, steps="\n".join(lines)[:SAMPLED_TRAJECTORY_CHARS])
    return Sample(
        [SamplingMessage(role="user", content=TextContent(type="text", text=text))], max_tokens=1000, temperature=0.0
    )


def parse_sampled_draft(result: CreateMessageResult | None) -> ProcedureDraft | None:
    """The procedure in a sampled reply, or None when the reply is not one (the extractive builder runs)."""
    content = getattr(result, "content", None)
    text = getattr(content, "text", None)
    if not isinstance(text, str):
        return None
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return ProcedureDraft.model_validate(json.loads(text[start : end + 1]))
    except (ValueError, ValidationError):
        logger.info("the client's model did not return a usable procedure; using the extractive builder")
        return None
