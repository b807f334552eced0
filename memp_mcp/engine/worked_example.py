"""The raw run behind a procedure, for when its short steps are not enough.

A procedure keeps what the work established, abridged to stay short in a recall; the run it was built
from is stored whole (redacted at record time). On request, `get_procedure` and `show` give that run:
the change unabridged (engine/change.py, for coding work) and every step with the head of what it
printed, within a bound so that one call never answers megabytes.
"""

from __future__ import annotations

from memp_mcp.engine.change import coding_steps
from memp_mcp.engine.results import ExemplarStep, WorkedExample
from memp_mcp.models import Trajectory

# Bounds of one answer: each action, each observation's head, and the steps' text in all.
ACTION_CHARS = 4_000
OBSERVATION_CHARS = 400
EXAMPLE_CHARS = 60_000


def worked_example(trajectory: Trajectory) -> WorkedExample:
    """The run as an example: its change whole, then its steps in order while they fit EXAMPLE_CHARS."""
    steps: list[ExemplarStep] = []
    used = 0
    for step in trajectory.steps:
        action = _clip(step.action, ACTION_CHARS)
        observation = _clip(step.observation, OBSERVATION_CHARS) if step.observation else None
        size = len(action) + len(observation or "")
        if used + size > EXAMPLE_CHARS:
            break
        steps.append(ExemplarStep(action=action, observation=observation))
        used += size
    return WorkedExample(
        trajectory_id=trajectory.id,
        task=trajectory.task,
        outcome=trajectory.outcome.value,
        agent=trajectory.agent,
        change=coding_steps(trajectory.steps) or [],
        steps=steps,
        steps_left_out=len(trajectory.steps) - len(steps),
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 40] + f" [... {len(text) - limit + 40} characters more]"
