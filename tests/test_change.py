"""A coding run becomes what it established: the change per file, the reproduction, the check, where to look."""

from __future__ import annotations

from pathlib import Path

from memp_mcp.engine.build import extract_procedure
from memp_mcp.engine.change import coding_steps
from memp_mcp.engine.inputs import check_steps
from memp_mcp.engine.memory import Memory
from memp_mcp.hooks.transcript import ToolCall
from memp_mcp.models import Outcome, Step
from memp_mcp.server.render import render_procedure_detail
from memp_mcp.store import SQLiteStore
from tests.conftest import FakeEmbedder

OK = "<returncode>0</returncode>\n<output>\n</output>"
SCRIPT = "import csv\nrows = [r for r in csv.reader(open('in.csv'))]\nopen('out.csv', 'w').write(str(len(rows)))"
PATCH = (
    "diff --git a/pkg/core.py b/pkg/core.py\nindex 1..2 100644\n--- a/pkg/core.py\n+++ b/pkg/core.py\n"
    "@@ -1,3 +1,3 @@\n def limit(total, cap):\n-    return total < cap\n+    return total <= cap\n \n"
)


def _steps(*pairs: tuple[str, str | None]) -> list[Step]:
    return [Step(action=action, observation=observation) for action, observation in pairs]


def test_a_script_written_run_and_kept_is_the_change_with_its_content_and_probes_go() -> None:
    steps = coding_steps(
        _steps(
            ("Bash: head -3 in.csv", "a,b\n1,2"),
            ("Bash: python3 -c \"import csv; print(next(csv.reader(open('in.csv'))))\"", "['a', 'b']"),
            (f"Write: make_report.py\n{SCRIPT}", "File created successfully"),
            ("Bash: python3 make_report.py", ""),
            ("Read: out.csv", "1"),
        )
    )
    assert steps == [
        "Look at in.csv",
        f"Create make_report.py:\n{SCRIPT}",
        "Run `python3 make_report.py`",
        "Check: look at out.csv",
    ]


def test_a_scratch_script_written_run_and_deleted_is_a_probe() -> None:
    steps = coding_steps(
        _steps(
            ("Write: probe.py\nprint(open('in.csv').read()[:80])", "File created successfully"),
            ("Bash: python3 probe.py", "a,b"),
            ("Bash: rm probe.py", ""),
            ("Edit: app.py: replace 'LIMIT = 1' with 'LIMIT = 2'", "The file has been updated."),
        )
    )
    assert steps == ["Change app.py:\n@@\n-LIMIT = 1\n+LIMIT = 2"]


def test_edits_of_one_file_are_its_net_change_an_edit_of_an_edit_folded_in() -> None:
    steps = coding_steps(
        _steps(
            ("Edit: app.py: replace 'def run():\\n    pass' with 'def run():\\n    go(1)'", "updated"),
            ("Edit: app.py: replace 'go(1)' with 'go(2)'", "updated"),
            ("Edit: app.py: replace 'import os' with 'import os\\nimport sys'", "updated"),
        )
    )
    assert steps == ["Change app.py:\n@@\n def run():\n-    pass\n+    go(2)\n@@\n import os\n+import sys"]


def test_another_agents_final_patch_is_the_change_and_its_scratch_scripts_and_debugging_go() -> None:
    steps = coding_steps(
        _steps(
            ("grep -n 'def limit' pkg/core.py", "<returncode>0</returncode>\n<output>\n1:def limit(total, cap):"),
            ("cat <<'EOF' > check.py\nfrom pkg.core import limit\nprint(limit(2, 2))\nEOF", OK),
            ("python3 check.py", "<returncode>0</returncode>\n<output>\nFalse\n</output>"),
            ("sed -i '2a\\    print(\"DEBUG\", total)' pkg/core.py", OK),
            ("sed -i 's/total < cap/total <= cap/' pkg/core.py", OK),
            ("sed -i '/DEBUG/d' pkg/core.py", OK),
            ("python3 check.py", "<returncode>0</returncode>\n<output>\nTrue\n</output>"),
            ("python3 -m pytest tests/test_core.py -q", "<returncode>0</returncode>\n<output>\n3 passed\n</output>"),
            ("rm check.py", OK),
            ("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached", PATCH),
        )
    )
    assert steps is not None
    assert steps[0] == "Look at pkg/core.py; search for 'def limit'"
    assert steps[1].startswith("Reproduce first: `python3 check.py` (before the change), with a throwaway check.py:")
    assert steps[2] == "Change pkg/core.py:\n@@ -1,3 +1,3 @@\n def limit(total, cap):\n-    return total < cap\n" + (
        "+    return total <= cap\n "
    )
    assert steps[3] == "Check: `python3 -m pytest tests/test_core.py -q` passes"
    assert len(steps) == 4 and not any("sed -i" in step or "DEBUG" in step for step in steps)


def test_a_patch_cut_short_keeps_the_files_its_visible_part_misses() -> None:
    cut = PATCH.rsplit("\n", 3)[0]  # the observation was clipped inside the hunk
    steps = coding_steps(
        _steps(
            ("sed -i 's/total < cap/total <= cap/' pkg/core.py", OK),
            ("sed -i 's/0.2/0.25/' pkg/rates.py", OK),
            ("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached", cut),
        )
    )
    assert steps is not None
    assert steps[0].startswith("Change pkg/core.py:\n@@ -1,3 +1,3 @@")
    assert steps[1] == "Change pkg/rates.py: `sed -i 's/0.2/0.25/' pkg/rates.py`"


def test_files_moved_into_place_are_the_work_one_step_for_a_run_of_moves() -> None:
    steps = coding_steps(
        _steps(
            ("Bash: ls /data/all", "a.pdf b.pdf c.pdf"),
            ("Bash: mkdir -p /data/physics /data/music", ""),
            ("Bash: mv /data/all/a.pdf /data/physics/", ""),
            ("Bash: mv /data/all/b.pdf /data/music/", ""),
            ("Bash: mv /data/all/c.pdf /data/music/", ""),
            ("Bash: ls /data/physics /data/music", "a.pdf\nb.pdf c.pdf"),
        )
    )
    assert steps == [
        "Look at /data/all",
        "Run `mkdir -p /data/physics /data/music`",
        "Run `mv /data/all/a.pdf /data/physics/` (and 2 more `mv` like it)",
        "Check: look at /data/physics, /data/music",
    ]


def test_a_run_that_changes_no_file_is_left_to_the_general_rules() -> None:
    household = _steps(("go to countertop 1", "You see a mug 1."), ("take mug 1 from countertop 1", "You pick up"))
    assert coding_steps(household) is None
    draft = extract_procedure("put a mug in the coffeemachine", household, Outcome.SUCCESS)
    assert draft.steps == ["go to countertop 1", "take {object} from countertop 1"]


def test_the_builder_writes_a_coding_change_relative_to_the_project_root_without_placeholders() -> None:
    steps = check_steps(
        [
            {"action": "Read: /repo/src/mug.py", "observation": "MUG = 1"},
            {"action": "Edit: /repo/src/mug.py: replace 'MUG = 1' with 'MUG = 2'", "observation": "updated"},
            {"action": "Bash: cd /repo && pytest -q", "observation": "3 passed"},
        ]
    )
    draft = extract_procedure("change the mug constant in mug.py", steps, Outcome.SUCCESS, root="/repo")
    assert draft.steps == [
        "Look at src/mug.py",
        "Change src/mug.py:\n@@\n-MUG = 1\n+MUG = 2",
        "Check: `pytest -q` passes",
    ]


# -- what the transcript reader keeps, and the run one call away ------------------------------------


def test_the_transcript_reader_keeps_what_was_written_and_each_edit_whole_with_secrets_out() -> None:
    from memp_mcp.hooks.transcript import call_step

    key = "AKIA" + "ABCDEFGHIJ234567"  # an AWS access key id shape, split so no scanner flags this file
    written = call_step(
        ToolCall("Write", {"file_path": "/r/fill.py", "content": f"KEY = '{key}'\nprint('filled')\n"}, answered=True)
    )
    assert written.action.startswith("Write: /r/fill.py\nKEY = '") and "print('filled')" in written.action
    assert key not in written.action
    edited = call_step(
        ToolCall(
            "MultiEdit",
            {"file_path": "/r/a.py", "edits": [{"old_string": "x  = 1", "new_string": "x = 2"}, {"new_string": "y"}]},
            answered=True,
        )
    )
    assert edited.action == "MultiEdit: /r/a.py: replace 'x  = 1' with 'x = 2'; replace '' with 'y'"


def test_get_procedure_gives_the_run_behind_a_procedure_on_request(tmp_path: Path) -> None:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), FakeEmbedder())
    long_body = "\n".join(f"ROW_{n} = {n}" for n in range(400))
    steps = [
        {"action": f"Write: make_rows.py\n{long_body}", "observation": "File created successfully"},
        {"action": "Bash: python3 make_rows.py", "observation": "wrote 400 rows"},
    ]
    result = memory.record("generate the rows table", steps, "success")
    assert result.procedure_id is not None
    plain = memory.get_procedure(result.procedure_id)
    assert plain.worked_example is None and "characters) cut here" in plain.procedure.steps[0]
    detail = memory.get_procedure(result.procedure_id, with_worked_example=True)
    example = detail.worked_example
    assert example is not None and example.trajectory_id == result.trajectory_id
    assert example.change[0] == f"Create make_rows.py:\n{long_body}"  # the change whole, not abridged
    assert [s.observation for s in example.steps] == ["File created successfully", "wrote 400 rows"]
    shown = render_procedure_detail(detail)
    assert "## Worked example" in shown and "ROW_399 = 399" in shown and "wrote 400 rows" in shown


def test_show_worked_example_prints_the_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from memp_mcp.cli import app

    db = tmp_path / "m.db"
    memory = Memory(SQLiteStore(db), FakeEmbedder())
    steps = [{"action": "Edit: a.py: replace 'A = 1' with 'A = 2'", "observation": "updated"}]
    procedure_id = memory.record("raise A", steps, "success").procedure_id
    memory.store.close()
    show = ["show", str(procedure_id), "--db", str(db), "--namespace", "default"]
    out = CliRunner().invoke(app, [*show, "--worked-example"])
    assert out.exit_code == 0, out.output
    assert "## Worked example (trajectory #1, success)" in out.output and "-A = 1" in out.output
    assert "## Worked example" not in CliRunner().invoke(app, show).output


def test_a_line_of_looks_and_print_only_snippets_is_a_probe_even_with_separators_in_its_quotes() -> None:
    probe = "Bash: wc -c r.json && python3 -c \"import json; d=json.load(open('r.json')); print(len(d))\""
    writes = "Bash: python3 -c \"import json; json.dump({}, open('out.json', 'w'))\""
    steps = coding_steps(
        _steps((probe, "2 r.json\n1"), (writes, ""), ("Edit: a.py: replace 'A = 1' with 'A = 2'", "updated"))
    )
    assert steps == [f"Run `{writes.removeprefix('Bash: ')}`", "Change a.py:\n@@\n-A = 1\n+A = 2"]


def test_a_recall_of_coding_work_sends_no_worked_example_its_run_is_one_call_away(tmp_path: Path) -> None:
    memory = Memory(SQLiteStore(tmp_path / "m.db"), FakeEmbedder())
    steps = [
        {"action": "Bash: cat app.py", "observation": "LIMIT = 1"},
        {"action": "Edit: app.py: replace 'LIMIT = 1' with 'LIMIT = 2'", "observation": "updated"},
        {"action": "Bash: pytest -q", "observation": "3 passed"},
    ]
    memory.record("raise the app limit to two", steps, "success")
    (recalled,) = memory.recall("raise the app limit to two").procedures
    assert recalled.steps[1] == "Change app.py:\n@@\n-LIMIT = 1\n+LIMIT = 2"
    assert recalled.exemplar is None


def test_what_the_agent_said_before_its_calls_is_the_approach_in_its_own_words() -> None:
    steps = [
        Step(action="Read: src/conf.py", observation="...", thought="Let me look at the config."),
        Step(
            action="Edit: src/conf.py: replace 'RETRIES = 1' with 'RETRIES = 3'",
            observation="updated",
            thought="Now I have it. The client gives up after one retry because RETRIES is 1. "
            "I'll raise `RETRIES` to 3 so transient errors are retried:",
        ),
    ]
    built = coding_steps(steps)
    assert built is not None
    assert built[0] == (
        "Approach: The client gives up after one retry because RETRIES is 1. "
        "Raise `RETRIES` to 3 so transient errors are retried."
    )
    assert built[1:] == ["Look at src/conf.py", "Change src/conf.py:\n@@\n-RETRIES = 1\n+RETRIES = 3"]


def test_the_transcript_reader_keeps_the_agents_words_before_a_call_as_its_thought_redacted() -> None:
    from memp_mcp.hooks.transcript import call_step

    key = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"  # a GitHub token shape, split for scanners
    call = ToolCall("Bash", {"command": "pytest -q"}, "3 passed", answered=True, said=f"Run the tests with {key}.")
    step = call_step(call)
    assert step.thought is not None and step.thought.startswith("Run the tests with ") and key not in step.thought
    assert call_step(ToolCall("Bash", {"command": "ls"}, "a", answered=True)).thought is None


def test_files_given_the_same_change_are_one_step_that_shows_it_once() -> None:
    same = "replace '@Inject Config config' with '@Inject(useInput = false) Config config'"
    steps = coding_steps(
        _steps(
            (f"Edit: src/a/First.java: {same}", "updated"),
            (f"Edit: src/b/Second.java: {same}", "updated"),
            ("Edit: src/c/Other.java: replace 'int x = 1;' with 'int x = 2;'", "updated"),
        )
    )
    assert steps == [
        "Change src/a/First.java, src/b/Second.java (the same change in each):\n@@\n"
        "-@Inject Config config\n+@Inject(useInput = false) Config config",
        "Change src/c/Other.java:\n@@\n-int x = 1;\n+int x = 2;",
    ]


def test_a_file_whose_part_of_the_final_diff_was_cut_off_is_still_named() -> None:
    cut = PATCH + "diff --git a/tests/test_core.py b/tests/test_core.py\nindex 3..4 100644\n"
    steps = coding_steps(
        _steps(
            ("sed -i 's/total < cap/total <= cap/' pkg/core.py", OK),
            ("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached", cut),
        )
    )
    assert steps is not None and steps[0].startswith("Change pkg/core.py:\n@@ -1,3 +1,3 @@")
    assert steps[1] == "Change tests/test_core.py (the rest of the patch is in the source trajectory)"


def test_a_turn_that_wrote_many_large_files_is_kept_within_what_a_record_accepts(tmp_path: Path) -> None:
    from memp_mcp.engine.inputs import check_steps
    from memp_mcp.hooks.transcript import MAX_TURN_CHARS, read_last_turn, turn_steps
    from tests.claude_code_session import Transcript

    transcript = Transcript(tmp_path / "t.jsonl", "s1", tmp_path)
    transcript.prompt("generate the fixtures")
    for n in range(80):
        content = f"# fixture {n}\n" + "ROW = 'x' * 80\n" * 2_600  # about 39,000 characters each
        transcript.tool("Write", {"file_path": f"/r/fixture_{n}.py", "content": content}, "File created")
    turn = read_last_turn(transcript.path)
    assert turn is not None
    steps = turn_steps(turn)
    assert len(steps) == 80 and all(s.action.startswith("Write: /r/fixture_") for s in steps)
    assert sum(len(s.action) + len(s.observation or "") for s in steps) <= MAX_TURN_CHARS
    check_steps([s.model_dump() for s in steps])  # accepted: no size error


def test_a_command_keeps_what_it_does_without_what_only_shaped_its_output() -> None:
    from memp_mcp.engine.change import tidy_command

    assert tidy_command('mkdir -p out/js out/css && echo "dirs created"') == "mkdir -p out/js out/css"
    assert tidy_command("mvn package -DskipTests 2>&1 | tail -30") == "mvn package -DskipTests"
    assert tidy_command("pytest -q | grep FAIL") == "pytest -q | grep FAIL"  # a filter that decides stays
    assert tidy_command('cp a b && echo "size $(wc -c < b)"') == 'cp a b && echo "size $(wc -c < b)"'


def test_a_snippet_whose_output_goes_to_a_file_made_that_file_it_is_no_probe() -> None:
    made = "Bash: python3 -c \"import json; print(json.dumps({'rows': 3}))\" > summary.json"
    steps = coding_steps(_steps((made, ""), ("Edit: a.py: replace 'A = 1' with 'A = 2'", "updated")))
    assert steps == [f"Run `{made.removeprefix('Bash: ')}`", "Change a.py:\n@@\n-A = 1\n+A = 2"]
