"""The coding-agent corpus through the MCP server: what the builder kept, and what a recall costs.

Every case of bench/coding_corpus.py is recorded with record_trajectory over an in-memory MCP
client (as an agent would), together with agent-written procedures at the size limits; the built
procedures are read back with get_procedure; then each case's task and its rewording are
recalled with k=3 and the answer's size is measured as the client receives it (text rendering
plus structured content, compact JSON).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from memp_mcp.bench.coding_corpus import CORPUS, long_procedure
from memp_mcp.config import load_settings
from memp_mcp.embedding import Embedder
from memp_mcp.engine.build import REPRODUCES_NOTE, placeholders_in_literal_text
from memp_mcp.engine.memory import Memory
from memp_mcp.engine.verdict import Verdict, verdict
from memp_mcp.models import Step
from memp_mcp.store import SQLiteStore

LONG_PROCEDURE_TOPICS = ("billing", "search", "checkout")


def answer_size(result: Any) -> int:
    """Characters a tool result carries: its text blocks plus its structured content as compact JSON."""
    text = sum(len(getattr(block, "text", "")) for block in result.content)
    return text + len(json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False))


async def run_coding_benchmark(embedder: Embedder | None, k: int = 3) -> dict[str, Any]:
    """Per-case build figures and recall sizes (see the module docstring)."""
    from mcp import Client

    from memp_mcp.server.app import build_server

    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings({"db_path": Path(folder) / "coding.db"}, environ={})
        memory = Memory(SQLiteStore(settings.db_path), embedder)
        async with Client(build_server(settings, memory=memory), raise_exceptions=True) as client:
            cases = []
            for case in CORPUS:
                recorded = await client.call_tool(
                    "record_trajectory", {"task": case.task, "steps": case.steps, "outcome": "success"}
                )
                data: dict[str, Any] = recorded.structured_content or {}
                detail = await client.call_tool("get_procedure", {"procedure_id": data["procedure_id"]})
                procedure = (detail.structured_content or {})["procedure"]
                steps = [Step(action=s) if isinstance(s, str) else Step.model_validate(s) for s in case.steps]
                failed = [s for s in steps if verdict(s) != Verdict.WORKED]
                kept_failed = [
                    s for s in procedure["steps"] if s.endswith(REPRODUCES_NOTE)
                ]  # failed runs kept on purpose: the reproduction
                texts = [procedure["title"], procedure["when_to_use"], *procedure["steps"], *procedure["pitfalls"]]
                cases.append(
                    {
                        "case": case.name,
                        "actions": len(steps),
                        "steps_kept": len(procedure["steps"]),
                        "matches_expected": procedure["steps"] == case.expected_steps,
                        "failed_actions": len(failed),
                        "failed_kept_as_reproduction": len(kept_failed),
                        "failed_kept_otherwise": _failed_kept(steps, procedure["steps"]),
                        "pitfalls": len(procedure["pitfalls"]),
                        "placeholders_in_code": sum(len(placeholders_in_literal_text(t)) for t in texts),
                        "placeholders_anywhere": sum(t.count("{") for t in texts),
                    }
                )
            for topic in LONG_PROCEDURE_TOPICS:
                await client.call_tool(
                    "record_trajectory",
                    {
                        "task": f"profile the {topic} service under load",
                        "outcome": "success",
                        "steps": ["hey -n 1000 http://localhost:8000/"],
                        "procedure": long_procedure(topic),
                    },
                )
            recalls: list[dict[str, Any]] = []
            queries = [(c.name, c.task) for c in CORPUS] + [(c.name + " (reworded)", c.reworded) for c in CORPUS]
            queries += [(f"long {t}", f"profile the {t} service under load") for t in LONG_PROCEDURE_TOPICS]
            for name, query in queries:
                result = await client.call_tool("recall_procedure", {"task": query, "k": k})
                data = result.structured_content or {}
                recalls.append(
                    {
                        "query": name,
                        "chars": answer_size(result),
                        "procedures": len(data.get("procedures") or []),
                        "left_out": data.get("left_out"),
                    }
                )
    return {
        "cases": cases,
        "recalls": recalls,
        "largest_recall_chars": max(r["chars"] for r in recalls),
        "budget": settings.recall_budget,
        "model": embedder.identity if embedder is not None else "none (keyword retrieval)",
    }


def _failed_kept(steps: list[Step], kept: list[str]) -> int:
    """Failed actions found among the kept steps that are not there as a later run that worked."""
    worked = {" ".join(s.action.split()) for s in steps if verdict(s) == Verdict.WORKED}
    failed = {" ".join(s.action.split()) for s in steps if verdict(s) != Verdict.WORKED}
    return sum(1 for step in kept if step in failed and step not in worked)
