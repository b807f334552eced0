"""What callers send, checked and normalised: every refusal is an InvalidInputError saying what to send instead.

Record, recall, report_outcome, edit and import all check their inputs here, so one value is held to
one limit whichever way it arrives.
"""

from __future__ import annotations

from pydantic import ValidationError

from memp_mcp.errors import InvalidInputError
from memp_mcp.models import (
    MAX_NAME_CHARS,
    MAX_STEPS,
    MAX_TASK_CHARS,
    MAX_TRAJECTORY_CHARS,
    Outcome,
    ProcedureDraft,
    Step,
)


def check_id(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**63:
        raise InvalidInputError(f"procedure id must be a positive integer (as list_procedures shows); got {value!r}")
    return value


def check_task(task: object) -> str:
    if not isinstance(task, str) or not task.strip():
        raise InvalidInputError("task must be a non-empty description of what the agent is doing")
    if len(task) > MAX_TASK_CHARS:
        raise InvalidInputError(f"task is {len(task)} characters; at most {MAX_TASK_CHARS} (summarise it)")
    return " ".join(task.split())


def check_agent(agent: object) -> str | None:
    if agent is None:
        return None
    if not isinstance(agent, str) or len(agent) > MAX_NAME_CHARS:
        raise InvalidInputError(f"agent must be a name of at most {MAX_NAME_CHARS} characters")
    return " ".join(agent.split()) or None


def check_outcome(outcome: object) -> Outcome:
    try:
        return Outcome(str(outcome))
    except ValueError:
        raise InvalidInputError(f"outcome must be 'success', 'failure' or 'unknown'; got {outcome!r}") from None


def check_steps(steps: object) -> list[Step]:
    """Steps as Step models; a plain string is an action whose result was not recorded."""
    if not isinstance(steps, list | tuple):
        raise InvalidInputError("steps must be a list of {action, observation?, ok?, exit_code?} objects or strings")
    if len(steps) > MAX_STEPS:
        raise InvalidInputError(
            f"{len(steps)} steps is too many: at most {MAX_STEPS} per trajectory (keep the last ones)"
        )
    parsed = []
    size = 0
    for index, step in enumerate(steps):
        try:
            if isinstance(step, str):
                step = {"action": step}
            parsed.append(step if isinstance(step, Step) else Step.model_validate(step))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "step"
            raise InvalidInputError(f"steps[{index}].{where}: {error['msg']}") from None
        last = parsed[-1]
        size += len(last.action) + len(last.observation or "") + len(last.thought or "")
        if size > MAX_TRAJECTORY_CHARS:
            raise InvalidInputError(
                f"the trajectory's text passes {MAX_TRAJECTORY_CHARS:,} characters at steps[{index}]; "
                "send the steps that did the work, or shorten their observations"
            )
    return parsed


def check_draft(draft: ProcedureDraft) -> ProcedureDraft:
    try:
        return ProcedureDraft.model_validate(dict(draft))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InvalidInputError(f"procedure.{where}: {error['msg']}") from None
