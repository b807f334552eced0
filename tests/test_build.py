"""The extractive builder: what it keeps, drops and lifts."""

from __future__ import annotations

from memp_mcp.engine.build import (
    abstract_task,
    extract_procedure,
    lift,
    placeholders_in_literal_text,
    task_entities,
    useful_actions,
)
from memp_mcp.models import Outcome, Step


def steps(*pairs: tuple[str, str]) -> list[Step]:
    return [Step(action=a, observation=o) for a, o in pairs]


def test_failed_and_no_op_actions_are_dropped() -> None:
    kept = useful_actions(
        steps(
            ("look", "You are in a room."),
            ("take mug 1 from desk 1", "Nothing happens."),
            ("go to desk 1", "On the desk 1 you see a mug 1."),
            ("take mug 1 from desk 1", "You pick up the mug 1."),
        )
    )
    assert kept == ["go to desk 1", "take mug 1 from desk 1"]


def test_loops_and_wandering_are_dropped() -> None:
    kept = useful_actions(
        steps(
            ("go to drawer 1", "The drawer 1 is closed."),
            ("go to drawer 2", "The drawer 2 is closed."),
            ("go to drawer 1", "The drawer 1 is closed."),
            ("open drawer 1", "You open the drawer 1. You see a key 1."),
        )
    )
    # The first visit to drawer 1 leads straight to another move; the repeat is a loop.
    assert kept == ["go to drawer 2", "open drawer 1"] or kept == ["open drawer 1"]
    assert "go to drawer 1" not in kept[1:]


def test_entities_are_lifted_into_placeholders_including_split_compounds() -> None:
    trajectory = steps(
        ("go to countertop 1", "You see a mug 1."),
        ("take mug 1 from countertop 1", "You pick up the mug 1."),
        ("go to coffeemachine 1", "You see nothing."),
        ("put mug 1 in/on coffeemachine 1", "You put the mug 1 in/on the coffeemachine 1."),
    )
    assert task_entities("put a mug in the coffee machine", [s.action for s in trajectory]) == [
        "mug",
        "coffee machine",
    ]
    draft = extract_procedure("put a mug in the coffee machine", trajectory, Outcome.SUCCESS)
    assert draft.steps[-1] == "put {object} in/on {target}"
    assert "take {object} from countertop 1" in draft.steps
    assert draft.title == "Put a {object} in the {target}"
    assert abstract_task("put a mug in the coffee machine", trajectory) == "put a {object} in the {target}"


def test_failed_actions_become_pitfalls_and_a_failed_run_says_so() -> None:
    trajectory = steps(("heat egg 1 with fridge 1", "Nothing happens."), ("heat egg 1 with microwave 1", "You heat."))
    draft = extract_procedure("heat an egg", trajectory, Outcome.FAILURE)
    assert draft.steps == ["heat {object} with microwave 1"]
    assert any("fridge 1" in p and "did not work" in p for p in draft.pitfalls)
    assert "failed" in draft.pitfalls[0]


def test_a_trajectory_with_nothing_useful_still_gives_a_valid_draft() -> None:
    draft = extract_procedure("do something", steps(("dance", "Nothing happens.")), Outcome.SUCCESS)
    assert len(draft.steps) == 1 and draft.steps[0].startswith("(no successful action")


def test_placeholders_never_go_inside_quotes_paths_code_or_command_lines() -> None:
    assert lift("take mug 1 from desk 1, then echo 'mug 1' into mug/notes.txt", ["mug"]) == (
        "take {object} from desk 1, then echo 'mug 1' into mug/notes.txt"
    )
    assert lift("grep -n mug 1 src/cups.py", ["mug"]) == "grep -n mug 1 src/cups.py"
    assert lift("replace `cup.mug` with cup_mug in the mug 2 handler", ["mug"]) == (
        "replace `cup.mug` with cup_mug in the {object} handler"
    )
    assert placeholders_in_literal_text("cat src/{object}/store.py") == ["object"]
    assert placeholders_in_literal_text("take {object} from desk 1") == []


def test_a_word_that_also_appears_in_code_is_not_an_entity() -> None:
    actions = ["take deadline 1 from desk 1", "apply_patch store.py: replace 'item.deadline < now' with 'x <= now'"]
    assert task_entities("fix the deadline check", actions) == []
    assert task_entities("fix the deadline check", actions[:1]) == ["deadline"]


def test_ordinary_words_of_a_coding_task_stay_words() -> None:
    actions = ["edit pyproject.toml: add httpx to the dependencies table", "pip install -e ."]
    assert task_entities("add httpx to the dependencies table", actions) == []


def test_rejected_is_an_action_error_as_a_harness_says_it_not_as_a_programs_output_says_it() -> None:
    from memp_mcp.engine.verdict import Verdict, verdict

    def judged(observation: str) -> Verdict:
        return verdict(Step(action="python3 check.py", observation=observation))

    assert judged("PASS: http://foo/bar@example.com was rejected") == Verdict.WORKED
    assert judged("3 invalid inputs rejected as expected") == Verdict.WORKED
    assert judged("The tool use was rejected (eg. if it was a file edit)") == Verdict.ACTION_ERROR
    assert judged("Your edit was rejected: the file changed on disk") == Verdict.ACTION_ERROR
