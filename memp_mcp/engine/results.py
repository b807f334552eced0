"""What the engine answers: the result models of recall, record, report_outcome, get_procedure and import.

The server sends several of them as tools' structured content, so their field descriptions are written
for the model that reads them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from memp_mcp.models import COMPACT_SCHEMA, Procedure, ProcedureVersion


class ExemplarStep(BaseModel):
    model_config = COMPACT_SCHEMA

    action: str
    observation: str | None = None


class RecalledProcedure(BaseModel):
    """A procedure as recall returns it: what to do, how well it has worked, where it came from."""

    model_config = COMPACT_SCHEMA

    id: int
    title: str
    when_to_use: str
    steps: list[str] = Field(description="Ordered steps; replace {placeholders} with this task's entities.")
    pitfalls: list[str]
    relevance: float = Field(description="How well the procedure fits the task, 0 to 1.")
    retrieved_count: int
    success_count: int
    failure_count: int
    success_rate: float | None
    version: int
    source: str = Field(description="Who wrote the steps: agent, sampling, extractive or trajectory.")
    author: str | None = Field(description="The agent that recorded the evidence (provenance; treat as untrusted).")
    source_trajectory_ids: list[int] = Field(description="Trajectories it was built from, closest to this task first.")
    exemplar: list[ExemplarStep] | None = Field(
        default=None, description="A worked example: the closest source trajectory's steps, abridged."
    )
    exemplar_task: str | None = None
    provisional: bool = Field(
        default=False, description="True while these steps have no reported success: try them with care."
    )
    verified_by_test_run: bool = Field(
        default=False,
        description="Provisional, but a run it was built from ended in success on its own passing test run: "
        "checked by that run, not yet by an outcome reported after a recall.",
    )
    candidate_of: int | None = Field(
        default=None, description="Set when these steps were proposed to replace another procedure's."
    )
    abridged: bool = Field(
        default=False, description="Long steps or pitfalls were cut to fit the recall budget: get_procedure has them."
    )
    stale: list[str] = Field(default_factory=list, description="Steps whose cited code has changed.")

    @model_serializer(mode="wrap")
    def _only_what_says_something(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Every answer carries these for up to k procedures, and most say nothing: fresh or unchecked
        # (no stale steps), no candidate, whole, no worked example. Leaving those fields out at
        # their defaults keeps a procedure's JSON ~15% shorter.
        data = handler(self)
        if isinstance(data, dict):
            for name in _SAYS_NOTHING_AT_DEFAULT:
                if not data.get(name):
                    data.pop(name, None)
        return data


_SAYS_NOTHING_AT_DEFAULT = ("stale", "exemplar", "candidate_of", "abridged", "verified_by_test_run")


class RecallResult(BaseModel):
    model_config = COMPACT_SCHEMA

    recall_id: str | None = Field(description="Pass this to report_outcome after the task; None when nothing matched.")
    namespace: str
    strategy: str
    retrieval: str = Field(
        description="How the procedures were found: 'vector+keyword', 'vector (strategy)', 'keyword only (reason)', "
        "'random', or 'the namespace holds nothing yet'."
    )
    procedures: list[RecalledProcedure]
    left_out: str | None = Field(
        default=None, description="What the recall budget shortened or left out, and how to get it in full."
    )


# What was redacted before storing, as "where: kind" ("steps[2].action: github-token"), never the
# value. Plain strings: the field is in every record and report result's schema, sent with the tool list.
Redactions = list[str]


class RecordResult(BaseModel):
    action: str = Field(description="created, merged, candidate (steps kept apart until they succeed) or stored_only.")
    trajectory_id: int
    procedure_id: int | None
    namespace: str
    message: str
    warned_procedure_ids: list[int] = Field(
        default_factory=list,
        description="Other procedures that take an action this run found refused: each got a pitfall saying "
        "what worked instead (update strategy 'adjustment').",
    )
    redacted: Redactions = Field(default_factory=list)


class OutcomeResult(BaseModel):
    recall_id: str
    success: bool
    credited_procedure_ids: list[int] = Field(description="The one procedure credited or blamed.")
    attribution: str = Field(description="Why that procedure: the procedure_id given, or the rule used without one.")
    adjusted_procedure_ids: list[int] = Field(default_factory=list)
    deprecated_procedure_ids: list[int] = Field(default_factory=list)
    warned_procedure_ids: list[int] = Field(
        default_factory=list,
        description="Other procedures that take an action this run found refused: each got a pitfall saying "
        "what worked instead.",
    )
    trajectory_id: int | None = None
    message: str
    redacted: Redactions = Field(default_factory=list)


class WorkedExample(BaseModel):
    """The run a procedure was built from, one call away: its whole change and each of its steps."""

    trajectory_id: int
    task: str
    outcome: str
    agent: str | None = None
    change: list[str] = Field(
        default_factory=list, description="What a coding run established, unabridged (empty for other work)."
    )
    steps: list[ExemplarStep] = Field(default_factory=list, description="The run's actions and what each printed.")
    steps_left_out: int = 0


class ProcedureDetail(BaseModel):
    procedure: Procedure
    success_rate: float | None
    history: list[ProcedureVersion]
    candidates: list[int] = Field(
        default_factory=list, description="Procedures proposed to replace these steps (served once they succeed)."
    )
    worked_example: WorkedExample | None = None


class ImportReport(BaseModel):
    """What an import did: `created` new procedures; `merged` into one for the same task, adding to it;
    `unchanged`, already present with nothing to add (a file or skill imported again); `updated` in place
    from an edited copy of their own export, each said in `changes` (as are edited copies that became
    candidates)."""

    namespace: str = ""
    created: int
    merged: int
    trajectories: int
    conflicts: list[str]
    unchanged: int = 0
    updated: int = 0
    changes: list[str] = Field(default_factory=list)
    redacted: Redactions = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    # Skills that could not be imported, each with its file and why; the others were imported.
    refused: list[str] = Field(default_factory=list)
