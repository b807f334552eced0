"""`memp-mcp bench sessions`: real Claude Code sessions through the hooks, and the key points a later
variant of a family is given beside what a skill or the first session's whole transcript would give.

Registered on `bench` beside the others (memp_mcp.cli.bench is long enough); memp_mcp.bench.sessions
and memp_mcp.bench.keypoints do the work.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from memp_mcp.cli.bench import JsonFiguresOption, _progress_bars, bench_app
from memp_mcp.cli.common import console, fail, settings_with


@bench_app.command("sessions")
def bench_sessions(
    folder: Annotated[Path, typer.Argument(help="<family>/<variant>/{instruction.md, transcript.jsonl.gz}")],
    fake_embedder: Annotated[
        bool, typer.Option("--fake-embedder", help="A hashing embedder instead of the model (fast, for tests).")
    ] = False,
    timing: Annotated[bool, typer.Option(help="Time the prompt hook as a process with the warm server.")] = True,
    as_json: JsonFiguresOption = False,
) -> None:
    """Claude Code sessions played through the hooks: captured, right procedure first, nothing given when
    nothing fits, plumbing, titles, injected size, hook time, and the later variants' key points given."""
    from memp_mcp.bench.hashing import HashingEmbedder
    from memp_mcp.bench.sessions import HELDOUT_PROMPTS, load_unrelated_prompts, run_sessions_bench
    from memp_mcp.embedding import Embedder, resolve_embedder

    if not folder.is_dir():
        fail(f"{folder}: not a folder")
    embedder: Embedder = HashingEmbedder() if fake_embedder else resolve_embedder(settings_with(), allow_download=False)
    with tempfile.TemporaryDirectory(prefix="memp-bench-sessions-") as scratch, _progress_bars() as progress:
        try:
            results = run_sessions_bench(
                folder,
                Path(scratch),
                embedder,
                unrelated=load_unrelated_prompts(),
                heldout=load_unrelated_prompts(HELDOUT_PROMPTS),
                timing=timing and not fake_embedder,
                progress=progress,
            )
        except ValueError as exc:
            fail(str(exc))
    console.print(_figures_table(results))
    if results["not_captured"]:
        console.print("not captured: " + ", ".join(results["not_captured"]))
    key_points = results["key_points"]
    if key_points["variants"]:
        console.print(_key_points_table(key_points))
        for line in _best_skills(key_points):
            console.print(f"best skills, {line}")
    else:
        console.print("key points: no later variant has a keypoints.json with a key point beyond its prompt")
    if as_json:
        print(json.dumps(results))


def _figures_table(results: dict[str, Any]) -> Table:
    table = Table(title=f"Claude Code sessions ({results['sessions']} in {results['families']} families)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")

    def share(key: str) -> str:
        value = results[key]
        return "n/a" if value is None else f"{100 * value:.0f}%"

    table.add_row("captured (left a procedure)", share("captured"), ">= 90%")
    table.add_row(f"right procedure first ({results['later_prompts']} later prompts)", share("right_first"), ">= 85%")
    table.add_row(
        f"nothing given, family left out ({results['left_out_prompts']} prompts)",
        share("nothing_given_left_out"),
        ">= 90%",
    )
    table.add_row(
        f"nothing given, unrelated prompts ({results['unrelated_prompts']})", share("nothing_given_unrelated"), ""
    )
    table.add_row(
        f"nothing given, held-out unrelated prompts ({results['heldout_prompts']})",
        share("nothing_given_heldout"),
        "",
    )
    table.add_row(f"plumbing share of steps ({results['steps']} steps)", share("plumbing_share_of_steps"), "<= 2%")
    table.add_row("steps that are probes, or one line over 600 characters", share("probe_or_long_line_share"), "<= 2%")
    table.add_row("steps over 600 characters, scripts kept as code included", share("long_steps_share"), "")
    table.add_row("titles that are the prompt's first words", share("titles_first_words"), "<= 10%")
    chars = results["injected_chars"]
    table.add_row("injected chars mean/max", f"{chars['mean']}/{chars['max']}", "<= 2,000")
    table.add_row(
        "MEMP_HOOK_DISTILL=agent: sessions asked, chars asked, chars of the answer (mean)",
        f"{share('distill_asked_share')}, {results['distill_reason_chars']}, {results['distill_answer_chars_mean']}",
        "<= 600 asked",
    )
    table.add_row("prompt handler p95 ms (in process, model loaded)", str(results["prompt_handler_ms_p95"]), "")
    if "hook" in results:
        hook = results["hook"]
        table.add_row(
            "prompt hook p50/p95 ms warm (a process per prompt)",
            f"{hook['warm_ms_p50']:.0f}/{hook['warm_ms_p95']:.0f}",
            "<= 250",
        )
        table.add_row(
            "first prompt after SessionStart: max ms, answered as warm",
            f"{hook['first_after_session_start_ms_max']:.0f}, {hook['first_after_session_start_same_as_warm']}",
            "",
        )
        table.add_row("an empty Python process p50 ms (this machine, now)", f"{hook['python_startup_ms_p50']:.0f}", "")
    return table


def _key_points_table(figures: dict[str, Any]) -> Table:
    table = Table(
        title=(
            f"Later variants' key points given ({figures['key_points']} key points of {figures['variants']} "
            f"variants; {figures['said_by_prompt']} said by the prompt alone, not counted)"
        ),
        caption=(
            f"covered: {figures['covered_share']:.0%} (at least {figures['min_terms']}) of a key point's terms "
            f"beyond its prompt in one passage of {figures['passage_words']} words; nothing injected is 0 by "
            "construction; other transcripts: other families' first transcripts (chance)"
        ),
    )
    columns = {
        "nothing": "nothing",
        "memp": "memp injects",
        "memp_procedure": "memp's procedure",
        "best_model_written": "best model skill",
        "human_authored": "best human skill",
        "transcript": "first transcript",
        "other_transcripts": "others' transcripts",
    }
    table.add_column("family")
    table.add_column("variants", justify="right")
    for title in columns.values():
        table.add_column(title, justify="right")

    for family, row in figures["families"].items():
        table.add_row(family, str(row["variants"]), *(_percent(row.get(key)) for key in columns))
    overall = figures["overall"]
    table.add_row("overall", str(figures["variants"]), *(_percent(overall.get(key)) for key in columns))
    return table


def _percent(value: float | dict[str, Any] | None) -> str:
    """A coverage as a percentage; a skill's ({skill, coverage}) by its coverage."""
    share = value["coverage"] if isinstance(value, dict) else value
    return "n/a" if share is None else f"{100 * share:.0f}%"


def _best_skills(figures: dict[str, Any]) -> list[str]:
    """Which skill each family's skill columns are."""
    lines = []
    for family, row in figures["families"].items():
        model, human = row["best_model_written"], row["human_authored"]
        named = [f"{model['source']}/{model['skill']}" if model else "no model-written skill"]
        named.append(f"human_authored/{human['skill']}" if human else "no human-authored skill")
        lines.append(f"{family}: " + ", ".join(named))
    return lines
