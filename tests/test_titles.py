"""A procedure's title says what the task is, and its when-to-use the situation it serves.

The prompts here are written for these tests: each states one rule of engine/titles.py in a wording
of its own. The check over the development prompts skips when the shared datasets are absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memp_mcp.engine.mentions import mentioned
from memp_mcp.engine.titles import TITLE_CHARS, WHEN_TO_USE_CHARS, title_from_task, when_to_use_from_task

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.mark.parametrize(
    ("task", "title"),
    [
        ("We need to generate a weekly report of failed logins.", "Generate a weekly report of failed logins"),
        ("I want to find the largest file in the repository.", "Find the largest file in the repository"),
        ("I'd like you to rename the config keys to snake case.", "Rename the config keys to snake case"),
        ("Can you sort the invoices by due date?", "Sort the invoices by due date"),
        ("Could you please help me translate the menu into Spanish?", "Translate the menu into Spanish"),
        ("Task: fix the flaky upload test", "Fix the flaky upload test"),
        ("Please add a dark mode toggle to the settings page.", "Add a dark mode toggle to the settings page"),
        ("Your task is to port the parser to Kotlin.", "Port the parser to Kotlin"),
        ("Help me write a changelog for the release.", "Write a changelog for the release"),
        ("Let's rewrite the install script in Python.", "Rewrite the install script in Python"),
        ("Kindly summarise the meeting notes for the team.", "Summarise the meeting notes for the team"),
    ],
)
def test_a_lead_in_goes_and_the_request_is_said_in_the_imperative(task: str, title: str) -> None:
    assert title_from_task(task) == title


@pytest.mark.parametrize(
    ("task", "title"),
    [
        (
            "Suppose you are a medieval scribe and you need to copy the charter into modern English.",
            "Copy the charter into modern English",
        ),
        ("You are a senior reviewer. Review the diff for race conditions.", "Review the diff for race conditions"),
        (
            "As a data engineer, you are tasked with cleaning the sales table before the audit.",
            "Clean the sales table before the audit",
        ),
        ("Act as a travel agent. Plan a three-day trip to Lisbon.", "Plan a three-day trip to Lisbon"),
    ],
)
def test_role_play_is_no_part_of_the_title(task: str, title: str) -> None:
    assert title_from_task(task) == title


def test_the_sentence_that_asks_is_the_title_not_the_context_before_it() -> None:
    task = (
        "The sensor readings are copied into the archive every hour, one folder per station.\n"
        "Count the readings per station and plot the totals."
    )
    assert title_from_task(task) == "Count the readings per station and plot the totals"


def test_a_conditional_lead_in_or_a_constraint_is_not_the_request() -> None:
    task = "If you need to restart the database, ask first. Migrate the users table to the new schema."
    assert title_from_task(task) == "Migrate the users table to the new schema"
    assert title_from_task("Write a parser for the log format. Make sure it handles empty lines.") == (
        "Write a parser for the log format"
    )
    # Getting ready is not the task when a request follows.
    assert title_from_task("You must first read the spec. Then implement the lexer in Haskell.") == (
        "Implement the lexer in Haskell"
    )


def test_a_request_that_points_back_names_what_it_points_at() -> None:
    task = "The nightly backup job deletes the newest archive instead of the oldest. Fix this bug."
    assert title_from_task(task) == "Fix this bug: The nightly backup job deletes the newest archive"


def test_headings_code_and_lists_are_context_but_a_heading_that_names_the_task_is_the_title() -> None:
    notes = (
        "# Project notes\n\n```bash\nls -la /srv\n```\n\n- the cache is cold\n- deploys are frozen\n\n"
        "Summarise the notes into a status update for the manager."
    )
    assert title_from_task(notes) == "Summarise the notes into a status update for the manager"
    named = "# Task: Fix the session timeout\n\nUsers are signed out after five minutes instead of thirty."
    assert title_from_task(named) == "Fix the session timeout"
    assert title_from_task(" ".join(named.split())) == "Fix the session timeout"  # as a hook sends it


def test_a_lead_in_before_a_numbered_list_makes_its_first_item_the_request() -> None:
    task = "An old release of the mail relay accepts unauthenticated senders.\n\nYou need to:\n1. Patch the relay\n"
    assert title_from_task(task) == "Patch the relay"


def test_a_last_word_that_an_issue_template_uses_as_a_heading_stays_in_a_request() -> None:
    assert title_from_task("Write a summary") == "Write a summary"
    assert title_from_task("Please explain the problem") == "Explain the problem"
    assert title_from_task("Loader drops the last row Description") == "Loader drops the last row"


def test_an_issue_that_states_a_problem_keeps_its_title_line() -> None:
    issue = (
        "Calendar export crashes when an event title contains an emoji\n"
        "Steps to reproduce: create an event and export it to calendar.json. Please fix the encoder."
    )
    assert title_from_task(issue) == "Calendar export crashes when an event title contains an emoji"
    assert when_to_use_from_task(issue) == (
        "When fixing a problem like: Calendar export crashes when an event title contains an emoji; involves JSON."
    )


def test_a_long_request_is_cut_where_a_phrase_ends_within_the_limit() -> None:
    task = (
        "Please implement a command-line tool that watches a folder and uploads every new file to object storage "
        "with retries and exponential backoff."
    )
    title = title_from_task(task)
    assert title == "Implement a command-line tool that watches a folder"
    assert len(title) <= TITLE_CHARS
    # An aside in brackets goes first when the request is too long.
    aside = "Use Chart.js (version 4, the UMD build) to draw the monthly revenue for every region of the company."
    assert title_from_task(aside) == "Use Chart.js to draw the monthly revenue"


@pytest.mark.parametrize(
    "task",
    [
        "put a clean mug in the coffeemachine",
        "heat some egg and put it in microwave.",
        "examine the alarmclock with the desklamp",
        "Your task is to: put a cool tomato in fridge.",
    ],
)
def test_a_one_line_household_task_keeps_its_words_and_says_nothing_more(task: str) -> None:
    title = title_from_task(task)
    said = task.removeprefix("Your task is to: ").rstrip(".")
    assert title == said[:1].upper() + said[1:]
    # Nothing to add: the builder's default, which the renderer leaves out as restating the title.
    assert when_to_use_from_task(task) == f"Tasks like: {title}"


@pytest.mark.parametrize(
    "task",
    [
        "Metti una saponetta pulita nell'armadietto",
        "Положи два брелока для ключей в комод",
        "비누를 깨끗이 씻어서 캐비닛에 넣으세요",
        "Coloque uma caneca quente na cafeteira",
    ],
)
def test_a_one_line_task_in_another_language_keeps_its_words(task: str) -> None:
    assert title_from_task(task) == task
    assert when_to_use_from_task(task) == f"Tasks like: {task}"


def test_a_long_task_in_another_language_is_clipped_at_its_first_clause() -> None:
    italian = (
        "Scrivi uno script che rinomina le foto secondo la data di scatto; poi carica tutto sul server di "
        "backup e manda un riepilogo al gruppo."
    )
    assert title_from_task(italian) == "Scrivi uno script che rinomina le foto secondo la data di scatto"
    assert when_to_use_from_task(italian) == f"Tasks like: {title_from_task(italian)}"
    chinese = "请把这个模块里的所有同步函数改写成异步版本\uff0c" * 6
    assert 0 < len(title_from_task(chinese)) <= TITLE_CHARS
    assert len(when_to_use_from_task(chinese)) <= WHEN_TO_USE_CHARS


def test_the_when_to_use_says_the_kind_of_task_and_what_it_involves_not_the_prompt() -> None:
    task = (
        "You are a security engineer. Given a lockfile, you need to audit the dependencies for known "
        "vulnerabilities with trivy.\n\nThe lockfile is `/app/package-lock.json`. Write the findings to "
        "`/app/findings.csv`, one row per advisory."
    )
    when = when_to_use_from_task(task)
    assert when == (
        "When asked to audit the dependencies for known vulnerabilities with trivy; "
        "involves trivy, package-lock.json, CSV."
    )
    assert len(when) <= WHEN_TO_USE_CHARS


def test_the_when_to_use_leaves_out_what_only_this_task_has() -> None:
    task = "You need to sort more than 300 scanned receipts into 12 folders by vendor (see the list below)."
    assert when_to_use_from_task(task) == "When asked to sort scanned receipts into folders by vendor."
    # Durations and sizes are not counts: they say what is asked.
    assert when_to_use_from_task("Please make the cache expire after 5 minutes of idling in all 3 services.") == (
        "When asked to make the cache expire after 5 minutes of idling in all services."
    )


def test_a_name_that_is_also_a_word_is_a_tool_only_as_its_users_spell_it() -> None:
    assert mentioned("go to the kitchen and put the mug in the sink") == []
    assert mentioned("Go to the settings page and enable the flag") == []
    assert mentioned("Port the rate limiter to Go and benchmark it against the Rust one") == ["Go", "Rust"]
    assert mentioned("Convert the slides (.pptx) and notes.md into one PDF") == ["PPTX", "Markdown", "PDF"]
    fenced = "Rebuild the image:\n```bash\ncd /srv/app\nsudo terraform apply -auto-approve\n```"
    assert mentioned(fenced) == ["Bash", "Terraform"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_any_text_gets_a_title_and_a_when_to_use_within_their_limits(task: str) -> None:
    title = title_from_task(task)
    when = when_to_use_from_task(task)
    assert 0 < len(title) <= TITLE_CHARS
    assert len(when) <= WHEN_TO_USE_CHARS


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            "you need to please the a of in for with and that which write fix sort files data report , . : ; "
            "# - 1. ``` ( ) Python CSV /root/x.csv We I want Task: Your task is to".split(" ")
        ),
        max_size=120,
    )
)
def test_any_english_like_text_keeps_its_title_within_the_limit(tokens: list[str]) -> None:
    task = " ".join(tokens)
    assert 0 < len(title_from_task(task)) <= TITLE_CHARS
    assert len(when_to_use_from_task(task)) <= WHEN_TO_USE_CHARS


def _development_prompts() -> list[str]:
    prompts = [path.read_text() for path in sorted(DATASETS.glob("claude_code_sessions/*/*/instruction.md"))]
    runs = DATASETS / "swe_trajectories" / "django.jsonl"
    if runs.is_file():
        prompts += [json.loads(line)["task"] for line in runs.read_text().splitlines() if line.strip()]
    return prompts


@pytest.mark.skipif(not _development_prompts(), reason=f"development prompts not found under {DATASETS}")
def test_the_development_prompts_get_titles_within_the_limit_that_are_not_their_first_words() -> None:
    prompts = _development_prompts()
    first_words = 0
    for prompt in prompts:
        title, when = title_from_task(prompt), when_to_use_from_task(prompt)
        assert len(title) <= TITLE_CHARS and len(when) <= WHEN_TO_USE_CHARS, (title, when)
        opening = " ".join(prompt.split()[:8]).lower()
        first_words += len(prompt) > 300 and opening.startswith(" ".join(title.split()[:6]).lower())
        assert " ".join(prompt.split())[:150] not in when  # the prompt is not said again
    long_prompts = sum(len(p) > 300 for p in prompts)
    assert first_words <= 0.1 * long_prompts
