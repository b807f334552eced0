"""The data model: trajectories, procedures and recalls.

These pydantic models are the domain's vocabulary; the server reuses several of them as tool
input and output schemas, so field descriptions are written for the model that reads them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# Size limits: generous for real agent work, small enough that one call cannot bloat the file
# or stall the server. Documented in docs/tools.md.
MAX_TASK_CHARS = 2_000
MAX_STEPS = 500
MAX_ACTION_CHARS = 2_000  # a procedure's step, and an action as a transcript reader clips one
# A recorded action may be long (a heredoc writing a file): the trajectory keeps it whole, its step is abridged.
MAX_RECORDED_ACTION_CHARS = 200_000
# All the text of one trajectory (actions and observations): the limit that stops hostile input.
MAX_TRAJECTORY_CHARS = 4_000_000
MAX_OBSERVATION_CHARS = 20_000
MAX_PROCEDURE_STEPS = 60
MAX_PITFALLS = 30
MAX_TEXT_CHARS = 2_000
MAX_TITLE_CHARS = 200
MAX_STEP_CHARS = MAX_ACTION_CHARS  # an extracted step is an action
MAX_PITFALL_CHARS = 1_000
MAX_NAME_CHARS = 100  # agent and model names

ProcedureStepText = Annotated[str, Field(min_length=1, max_length=MAX_STEP_CHARS)]
PitfallText = Annotated[str, Field(min_length=1, max_length=MAX_PITFALL_CHARS)]


def nullable_as_type_list(schema: dict[str, Any], _model: type[BaseModel] | None = None) -> None:
    """Write each optional field of a model's JSON schema as `"type": [T, "null"]` instead of pydantic's
    `anyOf: [{"type": T}, {"type": "null"}]`: the same schema, which a client's validator checks with one
    type test instead of trying two subschemas and building an error for the branch that fails (the MCP
    Python client validates every result against the tool's output schema; a third of a recall's
    validation went on those errors)."""
    for field in schema.get("properties", {}).values():
        branches = field.get("anyOf")
        if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
            continue
        (typed,) = [b for b in branches if b != {"type": "null"}]
        if isinstance(typed.get("type"), str):
            del field["anyOf"]
            field.update({**typed, "type": [typed["type"], "null"]})


# For models sent as structured content: their optional fields in the compact form.
COMPACT_SCHEMA = ConfigDict(json_schema_extra=nullable_as_type_list)


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class ProcedureStatus(StrEnum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"


class Step(BaseModel):
    """One step of a trajectory: what the agent did and what it saw."""

    action: str = Field(
        min_length=1,
        max_length=MAX_RECORDED_ACTION_CHARS,
        description="The action or command, as issued (a tool call or shell line).",
    )
    observation: str | None = Field(
        default=None,
        max_length=MAX_OBSERVATION_CHARS,
        description="What came back: output, error, test summary (the end of a long output is enough).",
    )
    thought: str | None = Field(
        default=None,
        max_length=MAX_TEXT_CHARS,
        description="Why the agent did it, e.g. 'reproduce the bug' (optional).",
    )
    ok: bool | None = Field(
        default=None, description="false when the action was rejected or failed, true when it worked (optional)."
    )
    exit_code: int | None = Field(default=None, description="The command's exit code, for shell commands (optional).")


class ProcedureDraft(BaseModel):
    """A procedure written by the calling agent (or by sampling) for the memory to store."""

    title: str = Field(
        min_length=1,
        max_length=MAX_TITLE_CHARS,
        description="The task family in plain words, e.g. 'Fix a failing pytest test'.",
    )
    steps: list[ProcedureStepText] = Field(
        min_length=1,
        max_length=MAX_PROCEDURE_STEPS,
        description="The actions that worked, in order. Use {placeholders} only for names that change from task "
        "to task; keep commands, code and paths exact.",
    )
    when_to_use: str | None = Field(
        default=None, max_length=MAX_TEXT_CHARS, description="The family of tasks this procedure serves."
    )
    pitfalls: list[PitfallText] = Field(
        default_factory=list,
        max_length=MAX_PITFALLS,
        description="What failed and what to do instead.",
    )


class Trajectory(BaseModel):
    """A task as an agent actually did it, kept verbatim."""

    id: int
    namespace: str
    task: str
    steps: list[Step]
    outcome: Outcome
    score: float | None = None
    agent: str | None = None
    created_at: datetime


class ProcedureVersion(BaseModel):
    """A past state of a procedure, kept whenever it changes."""

    version: int
    title: str
    when_to_use: str
    steps: list[str]
    pitfalls: list[str]
    reason: str
    changed_by: str | None
    created_at: datetime
    success_count: int | None = Field(default=None, description="Successes reported while this version was current.")
    failure_count: int | None = Field(default=None, description="Failures reported while this version was current.")


class Procedure(BaseModel):
    """A reusable way of doing a family of tasks."""

    id: int
    namespace: str
    title: str
    when_to_use: str
    steps: list[str]
    pitfalls: list[str]
    status: ProcedureStatus
    version: int
    source: str = Field(description="Who wrote the steps: agent, sampling, extractive or trajectory.")
    author: str | None = Field(description="The agent or model that recorded the evidence.")
    source_trajectory_ids: list[int]
    exemplar_trajectory_id: int | None
    retrieved_count: int
    success_count: int = Field(description="Successes reported over all versions.")
    failure_count: int = Field(description="Failures reported over all versions.")
    support_count: int = Field(description="How many recorded trajectories back this procedure.")
    created_at: datetime
    updated_at: datetime
    version_success_count: int = Field(default=0, description="Successes since the steps last changed.")
    version_failure_count: int = Field(default=0, description="Failures since the steps last changed.")
    candidate_of: int | None = Field(
        default=None,
        description="Set on a candidate: the procedure whose steps it proposes to replace. Recall serves a "
        "candidate only once it has succeeded (or that procedure is retired).",
    )
    # Who recorded it, as authenticated (memp_mcp.principals); None: from before principals were kept.
    principal: str | None = Field(default=None, exclude=True)

    @property
    def provisional(self) -> bool:
        """Not yet trusted: the current steps have no reported success."""
        return self.version_success_count == 0

    @property
    def success_rate(self) -> float | None:
        """The current version's success rate: a corrected procedure is judged on its own record."""
        judged = self.version_success_count + self.version_failure_count
        return self.version_success_count / judged if judged else None


class RecallEvent(BaseModel):
    """Which procedures one recall returned, so an outcome report can credit exactly those."""

    id: str
    namespace: str
    task: str
    procedure_ids: list[int]
    strategy: str
    created_at: datetime
    reported: bool
    success: bool | None
    # The version of each of procedure_ids when it was served (None: logged before versions were kept).
    procedure_versions: list[int] | None = None


class NamespaceStats(BaseModel):
    namespace: str
    trajectories: int
    procedures_active: int
    procedures_deprecated: int
    recalls: int


class SkillDocument(BaseModel):
    """An Agent Skill kept whole: what its SKILL.md said and the files beside it, so that an export
    writes back the folder that was imported. `folder` is where it sat under the imported folder (its
    name for a skill imported on its own); `files` maps a path inside the skill folder to its bytes,
    base64-encoded; `body` is the Markdown after the frontmatter, exactly as written."""

    name: str
    folder: str
    frontmatter: dict[str, Any]
    body: str
    files: dict[str, str] = Field(default_factory=dict)

    def digest(self) -> str:
        """The same skill imported twice has the same digest (the frontmatter's memp- metadata aside)."""
        import hashlib
        import json

        metadata = {k: v for k, v in (self.frontmatter.get("metadata") or {}).items() if not str(k).startswith("memp-")}
        frontmatter = {**self.frontmatter, "metadata": metadata}
        payload = json.dumps([self.name, frontmatter, self.body, self.files], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode("utf-8", "surrogateescape")).hexdigest()


class LoggedEvent(BaseModel):
    """One entry of `memp-mcp log`: what memory gave or recorded, and why."""

    id: int
    namespace: str
    kind: str
    task: str
    recall_id: str | None
    arm: str | None
    summary: str
    detail: dict[str, Any]
    created_at: datetime


class TaskArm(BaseModel):
    """One task memory was asked about: whether memory was given (arm 'memory') or withheld ('holdout'),
    and the outcome recorded for it (None until one is known)."""

    namespace: str
    arm: str
    success: bool | None
    tool_calls: int
    turns: int
