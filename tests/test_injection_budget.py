"""The prompt hook's injected context holds INJECTION_CHARS (docs/claude-code.md says 2,000) whatever the
procedures: the whole text counts, the framing and the reporting line included."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from memp_mcp.engine.results import RecalledProcedure
from memp_mcp.server.render import INJECTION_CHARS, render_injection

# Text as agents store it: any script, markup that tries to close the block, backticks, line breaks.
_PIECES = st.sampled_from(
    ["word", "é", "日本語", "🙂", "\u0301", "</procedure>", "<procedure", "```", "`" * 12, "\n", "\t", " ", '"']
)
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=30)), max_size=60).map("".join)
_LONG = st.one_of(_TEXT, st.builds(lambda piece, n: piece * n, _PIECES | st.just("x"), st.integers(1, 4000)))


def _procedure(pid: int, title: str, steps: list[str], pitfalls: list[str], **more: Any) -> RecalledProcedure:
    fields: dict[str, Any] = {
        "id": pid,
        "title": title,
        "when_to_use": title,
        "steps": steps,
        "pitfalls": pitfalls,
        "relevance": 0.5,
        "retrieved_count": 1,
        "success_count": 0,
        "failure_count": 3,
        "success_rate": 0.0,
        "version": 1,
        "source": "agent",
        "author": "claude-code/claude-sonnet-4-5",
        "source_trajectory_ids": [1],
        "provisional": True,
        **more,
    }
    return RecalledProcedure(**fields)


_PROCEDURES = st.builds(
    _procedure,
    pid=st.integers(1, 10**9),
    title=_LONG,
    steps=st.lists(_LONG, min_size=1, max_size=40),
    pitfalls=st.lists(_LONG, max_size=12),
    stale=st.lists(_LONG, max_size=5),
    author=_LONG,
    source=_LONG,
)


@settings(max_examples=300, deadline=None)
@given(procedures=st.lists(_PROCEDURES, min_size=1, max_size=3), namespace=st.text(min_size=1, max_size=64))
def test_the_whole_injection_holds_its_budget(procedures: list[RecalledProcedure], namespace: str) -> None:
    text = render_injection(procedures, "0123456789abcdef", namespace)
    assert len(text) <= INJECTION_CHARS
    # Whatever it had to leave out, what it keeps is whole: the best procedure in a closed block, then
    # how to report on it.
    assert text.count("</procedure>") == len(re.findall(r'<procedure id="\d+"', text)) >= 1
    assert text.endswith("on the procedural-memory server.")


def test_a_long_script_as_the_last_step_is_cut_to_fit_rather_than_overflowing() -> None:
    # The last step used to be added whatever its length, and a script's lines were not clipped.
    script = "\n".join(f"sed -i 's/old/new/' src/file_{n}.py " + "z" * 400 for n in range(20))
    procedure = _procedure(1, "fix the cache", ["look at src/cache.py", script], [])
    text = render_injection([procedure], "r1", "default")
    assert len(text) <= INJECTION_CHARS
    assert "1. look at src/cache.py" in text and "sed -i 's/old/new/' src/file_0.py" in text


def test_a_procedure_whose_first_step_is_a_long_script_is_still_injected() -> None:
    script = "\n".join(f"echo line {n} " + "y" * 400 for n in range(30))
    procedure = _procedure(4, "regenerate the fixtures", [script, "pytest -q"], ["p " * 100] * 5)
    text = render_injection([procedure], "r1", "default")
    assert len(text) <= INJECTION_CHARS
    assert '<procedure id="4"' in text and "echo line 0" in text and "more lines]" in text


def test_nothing_is_injected_when_no_procedure_fits() -> None:
    procedure = _procedure(2, "fix the cache", ["look at src/cache.py"], [])
    # Not the head and the reporting line around no procedure at all.
    assert render_injection([procedure], "r1", "default", budget=300) == ""
