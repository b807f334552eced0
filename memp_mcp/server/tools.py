"""The server's tools: record, recall and report; read and list; edit, forget and restore.

Each tool's docstring is its description and its parameters' Fields are its input schema: both are
what the calling model reads. The work is the engine's; a tool passes its arguments on and renders
the answer (render) beside the structured content.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.resolve import Resolve
from mcp.types import CallToolResult, CreateMessageResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from memp_mcp.engine.recall import MAX_RECALL_K
from memp_mcp.engine.results import OutcomeResult, ProcedureDetail, RecallResult, RecordResult
from memp_mcp.models import (
    MAX_NAME_CHARS,
    MAX_PITFALL_CHARS,
    MAX_PITFALLS,
    MAX_PROCEDURE_STEPS,
    MAX_STEPS,
    MAX_TASK_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    PitfallText,
    Procedure,
    ProcedureDraft,
    ProcedureStepText,
    Step,
)
from memp_mcp.server.render import (
    recall_cost,
    recall_header,
    render_procedure_detail,
    render_procedure_list,
    render_procedure_markdown,
    render_recall,
)
from memp_mcp.server.sampling import distill_with_client_model, parse_sampled_draft
from memp_mcp.server.schemas import compact_input, compact_output
from memp_mcp.server.served import MemoryStats, ServedMemory

logger = logging.getLogger(__name__)

ToolDecorator = Callable[..., Callable[[Callable[..., Any]], Any]]


class ProcedureList(BaseModel):
    namespace: str | None
    procedures: list[Procedure]


def _result(model: BaseModel, text: str) -> CallToolResult:
    """Structured content for programs, a readable rendering for the model."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=model.model_dump(mode="json")
    )


def register_tools(mcp: MCPServer[Any], served: ServedMemory) -> None:
    """Every tool, in the order clients list them; edit, forget and restore only when the operator
    allows connected models to change memory by hand (MEMP_AGENT_EDITS)."""

    def tool(**options: Any) -> Callable[[Callable[..., Any]], Any]:
        """mcp.tool, with the docstring dedented: it is the description the model reads."""

        def register(function: Callable[..., Any]) -> Any:
            function.__doc__ = inspect.cleandoc(function.__doc__ or "")
            return mcp.tool(**options)(function)

        return register

    _register_task_tools(tool, served)
    _register_reading_tools(tool, served)
    if served.settings.agent_edits:
        _register_edit_tools(tool, served)
    _register_stats_tool(tool, served)
    # The SDK publishes the schemas it derives in full and offers no option to shorten them; its tool
    # entries are read live on every tools/list, so they are replaced here once, after registration.
    for registered in mcp._tool_manager.list_tools():
        registered.parameters = compact_input(registered.parameters)
        registered.fn_metadata.output_schema = compact_output(registered.fn_metadata.output_schema)


def _register_task_tools(tool: ToolDecorator, served: ServedMemory) -> None:
    """recall_procedure before a task; record_trajectory and report_outcome after it."""
    memory, call = served.memory, served.call

    @tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False))
    def recall_procedure(
        task: Annotated[
            str, Field(max_length=MAX_TASK_CHARS, description="The task you are about to do, in a sentence or two.")
        ],
        k: Annotated[
            int,
            # The range is in the schema for clients to check; the server checks it itself, with a
            # message naming it (pydantic's own would be a validation dump).
            Field(
                description=f"How many, 1-{MAX_RECALL_K}.",
                json_schema_extra={"minimum": 1, "maximum": MAX_RECALL_K},
            ),
        ] = 3,
        namespace: Annotated[str | None, Field(max_length=64, description="Omit for the default.")] = None,
        project_root: Annotated[
            str | None, Field(max_length=4096, description="Your project's folder: stale steps get flagged.")
        ] = None,
    ) -> RecallResult:
        """Call BEFORE a multi-step task. Returns the stored procedures that fit it, best first: steps with
        {placeholders} to fill from this task, pitfalls, record, relevance; an empty list means none fits.
        Follow the best one that fits (get_procedure gives an abridged one in full). When done, pass
        recall_id and the procedure's id to report_outcome."""
        started = time.perf_counter()
        result = call(
            lambda: memory.recall(
                task,
                k,
                namespace=namespace,
                budget=served.settings.recall_budget,
                cost=recall_cost,
                overhead=len(recall_header("0" * 16, "vector+keyword")),
                # A remote client's folder is not on this machine, and checking its citations here
                # would tell it what this machine's files hold.
                project_root=None if served.remote else project_root,
            )
        )
        result.retrieval = served.redact(result.retrieval)
        logger.debug("recall in %.1f ms", 1000 * (time.perf_counter() - started))
        return _result(result, render_recall(result))  # type: ignore[return-value]

    @tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False))
    def record_trajectory(
        task: Annotated[str, Field(max_length=MAX_TASK_CHARS, description="The task attempted.")],
        steps: Annotated[
            list[Step | str],
            Field(
                max_length=MAX_STEPS,
                description="What you did, in order: objects or action strings. Keep failed attempts with "
                "what they said (or ok: false): they become pitfalls.",
            ),
        ],
        outcome: Annotated[Literal["success", "failure", "unknown"], Field()],
        namespace: Annotated[str | None, Field(max_length=64, description="Omit for the default.")] = None,
        procedure: Annotated[
            ProcedureDraft | None,
            Field(
                description="Recommended: your procedure for next time. Steps that worked, in order "
                "({placeholders} only for names that change between tasks, never in commands or paths); "
                "pitfalls: what failed and what works instead."
            ),
        ] = None,
        agent: Annotated[
            str | None,
            Field(max_length=MAX_NAME_CHARS, description="Your agent or model name."),
        ] = None,
        sampled: Annotated[CreateMessageResult | None, Resolve(distill_with_client_model)] = None,
    ) -> RecordResult:
        """Call AFTER a multi-step task that no recalled procedure covered, successful or not, with the
        steps you took and your own `procedure` (you know which steps mattered). From a success memory
        builds a reusable procedure or merges it into the one for the same task; the result says which."""
        raw_steps = [s if isinstance(s, str) else s.model_dump() for s in steps]
        draft, source = procedure, "agent"
        if draft is None and (distilled := parse_sampled_draft(sampled)) is not None:
            draft, source = distilled, "sampling"
        result = call(
            lambda: memory.record(
                task,
                raw_steps,
                outcome,
                namespace=namespace,
                draft=draft,
                draft_source=source,
                agent=agent,
                principal=served.principal,
            )
        )
        return _result(result, result.message)  # type: ignore[return-value]

    @tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False))
    def report_outcome(
        recall_id: Annotated[
            str | None,
            Field(
                max_length=64,
                description="From recall_procedure.",
            ),
        ],
        success: Annotated[bool, Field()],
        procedure_id: Annotated[
            int | None,
            Field(description="The procedure you followed (default: the recall's first)."),
        ] = None,
        notes: Annotated[str | None, Field(max_length=MAX_TEXT_CHARS, description="What went wrong or right.")] = None,
        correction: Annotated[
            ProcedureDraft | Annotated[str, Field(max_length=MAX_PITFALL_CHARS)] | None,
            Field(description="What to do instead: a sentence, or a corrected procedure."),
        ] = None,
        trajectory: Annotated[
            list[Step | str] | None,
            Field(max_length=MAX_STEPS, description="The steps you took."),
        ] = None,
        namespace: Annotated[str | None, Field(max_length=64, description="Where you recalled.")] = None,
        agent: Annotated[
            str | None,
            Field(
                max_length=MAX_NAME_CHARS,
                description="The name you record with.",
            ),
        ] = None,
    ) -> OutcomeResult:
        """Call when a task you recalled for is over. Only the procedure you followed is judged: success
        credits it; failure revises it (with your correction, else the failure as a pitfall; the old
        version is kept). No recall_id (nothing fitted)? Call record_trajectory instead."""
        raw = [s if isinstance(s, str) else s.model_dump() for s in trajectory] if trajectory is not None else None
        result = call(
            lambda: memory.report_outcome(
                recall_id,
                success,
                procedure_id=procedure_id,
                notes=notes,
                correction=correction,
                trajectory=raw,
                agent=agent,
                namespace=namespace,
                principal=served.principal,
            )
        )
        return _result(result, result.message)  # type: ignore[return-value]


def _register_reading_tools(tool: ToolDecorator, served: ServedMemory) -> None:
    """get_procedure and list_procedures: memory as it stands, changing nothing."""
    memory, call = served.memory, served.call

    @tool(annotations=ToolAnnotations(read_only_hint=True))
    def get_procedure(
        procedure_id: Annotated[int, Field()],
        namespace: Annotated[str | None, Field(description="Omit for the default.")] = None,
        worked_example: Annotated[
            bool, Field(description="True adds the run it was built from: its whole change and every step.")
        ] = False,
    ) -> ProcedureDetail:
        """One procedure in full, with its record and version history."""
        detail = call(lambda: memory.get_procedure(procedure_id, namespace, with_worked_example=worked_example))
        return _result(detail, render_procedure_detail(detail))  # type: ignore[return-value]

    @tool(annotations=ToolAnnotations(read_only_hint=True))
    def list_procedures(
        namespace: Annotated[str | None, Field(max_length=64, description="Omit for the default.")] = None,
        status: Annotated[Literal["active", "deprecated"] | None, Field()] = None,
        text: Annotated[str | None, Field(description="Words in the title.")] = None,
        limit: Annotated[int, Field(description="1-500.")] = 20,
    ) -> ProcedureList:
        """List stored procedures, to inspect memory."""
        chosen = namespace or memory.default_namespace
        procedures = call(
            lambda: ProcedureList(namespace=chosen, procedures=memory.list_procedures(chosen, status, text, limit))
        )
        return _result(procedures, render_procedure_list(procedures.procedures))  # type: ignore[return-value]


def _register_stats_tool(tool: ToolDecorator, served: ServedMemory) -> None:
    @tool(annotations=ToolAnnotations(read_only_hint=True))
    def memory_stats(
        namespace: Annotated[str | None, Field(max_length=64, description="Omit for the default.")] = None,
    ) -> MemoryStats:
        """Counts of trajectories, procedures and recalls; model and strategies."""
        stats = served.call(lambda: served.stats(namespace))
        return _result(stats, stats.model_dump_json(indent=2))  # type: ignore[return-value]


def _register_edit_tools(tool: ToolDecorator, served: ServedMemory) -> None:
    """edit, forget and restore for connected models."""
    memory, call = served.memory, served.call

    @tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False))
    def edit_procedure(
        procedure_id: Annotated[int, Field()],
        version: Annotated[
            int,
            Field(
                description="The version you read (get_procedure) and are editing; an "
                "edit based on an older version is refused and told what changed."
            ),
        ],
        title: Annotated[str | None, Field(max_length=MAX_TITLE_CHARS, description="New title.")] = None,
        when_to_use: Annotated[
            str | None, Field(max_length=MAX_TEXT_CHARS, description="New when-to-use text.")
        ] = None,
        steps: Annotated[
            list[ProcedureStepText] | None,
            Field(max_length=MAX_PROCEDURE_STEPS, description="New ordered steps (replace all)."),
        ] = None,
        pitfalls: Annotated[
            list[PitfallText] | None, Field(max_length=MAX_PITFALLS, description="New pitfalls (replace all).")
        ] = None,
        namespace: Annotated[str | None, Field(max_length=64, description="Omit for the default.")] = None,
    ) -> Procedure:
        """Fix a procedure by hand. The previous version is kept in its history; new steps start a fresh record."""
        revised = call(
            lambda: memory.edit(
                procedure_id,
                namespace=namespace,
                expected_version=version,
                title=title,
                when_to_use=when_to_use,
                steps=steps,
                pitfalls=pitfalls,
                agent="mcp client",
            )
        )
        return _result(revised, render_procedure_markdown(revised))  # type: ignore[return-value]

    @tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True))
    def forget_procedure(
        procedure_id: Annotated[int, Field()],
        namespace: Annotated[str | None, Field(description="Omit for the default.")] = None,
    ) -> Procedure:
        """Deprecate a procedure that is wrong or obsolete: recall stops returning it. Nothing is deleted;
        restore_procedure brings it back."""
        procedure = call(lambda: memory.forget(procedure_id, namespace))
        return _result(procedure, f"Procedure {procedure.id} is now {procedure.status.value}.")  # type: ignore[return-value]

    @tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True))
    def restore_procedure(
        procedure_id: Annotated[int, Field()],
        namespace: Annotated[str | None, Field(description="Omit for the default.")] = None,
    ) -> Procedure:
        """Make a deprecated procedure active again."""
        procedure = call(lambda: memory.restore(procedure_id, namespace))
        return _result(procedure, f"Procedure {procedure.id} is now {procedure.status.value}.")  # type: ignore[return-value]
