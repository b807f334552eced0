"""What redaction costs: false redactions on real development work, and the time it adds.

- False redactions: the share of real steps (SWE-agent runs' steps; Claude Code sessions' tool calls,
  prompts and instructions) in which anything was replaced. That data holds no credentials, so every
  replacement there is a false one; each is listed by kind with the words around it.
- Record: the redaction pass over a 50-step trajectory (task and steps, as `Memory.record` runs it),
  p50/p95 over windows of the real runs.
- Stop hook: reading the last turn of a 2 MB transcript into steps and the engine's pass over them,
  with and without redaction; the difference is what redaction adds.
- Times are the process's CPU time (time.process_time), which other processes on a busy machine do
  not inflate.
- Import: the first redaction in a process loads detect-secrets' plugins (the warm server pays it once).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from memp_mcp.bench.latency import percentile
from memp_mcp.engine.scrub import Scrubber
from memp_mcp.models import Step
from memp_mcp.redact import redact

STEPS_PER_RECORD = 50
TRANSCRIPT_BYTES = 2_000_000


def _swe_runs(datasets: Path) -> list[dict[str, Any]]:
    path = datasets / "swe_trajectories" / "django.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _session_lines(datasets: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for transcript in sorted((datasets / "claude_code_sessions").glob("*/*/transcript.jsonl.gz")):
        with gzip.open(transcript, "rt", encoding="utf-8") as handle:
            yield transcript.parent.name, [json.loads(line) for line in handle if line.strip()]


def _session_texts(lines: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(what, text) for each prompt, tool call and tool result of a session."""
    for line in lines:
        content = (line.get("message") or {}).get("content")
        if isinstance(content, str):
            yield "prompt", content
            continue
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_use":
                yield "tool call", "\n".join(str(v) for v in (block.get("input") or {}).values())
            elif block.get("type") == "tool_result":
                result = block.get("content")
                if isinstance(result, list):
                    result = "\n".join(str(b.get("text", "")) for b in result if isinstance(b, dict))
                yield "tool result", str(result or "")


def _context(original: str, redacted: str) -> str:
    """The words around the first replacement, on one line (what was taken is shown as its placeholder)."""
    at = redacted.find("<redacted:")
    if at < 0:
        at = redacted.find("<private:")
    return " ".join(redacted[max(0, at - 60) : at + 60].split())


def false_redactions(datasets: Path) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    examples: list[str] = []
    swe_steps = swe_hit = 0
    for run in _swe_runs(datasets):
        for step in run["steps"]:
            swe_steps += 1
            hit = False
            for text in (step.get("action") or "", step.get("observation") or ""):
                redacted = redact(text)
                if redacted.kinds:
                    hit = True
                    kinds.update(redacted.kinds)
                    examples.append(f"swe {run['id']}: {_context(text, redacted.text)}")
            swe_hit += hit
    session_texts = session_hit = 0
    for name, lines in _session_lines(datasets):
        for what, text in _session_texts(lines):
            session_texts += 1
            redacted = redact(text)
            if redacted.kinds:
                session_hit += 1
                kinds.update(redacted.kinds)
                examples.append(f"session {name} {what}: {_context(text, redacted.text)}")
    instructions = sorted((datasets / "claude_code_sessions").glob("*/*/instruction.md"))
    instruction_hit = 0
    for path in instructions:
        redacted = redact(path.read_text(encoding="utf-8"))
        if redacted.kinds:
            instruction_hit += 1
            kinds.update(redacted.kinds)
            examples.append(f"instruction {path.parent.name}: {_context('', redacted.text)}")
    # Not looked at while the detectors were tuned: published skills for the same families.
    skills = sorted((datasets / "claude_code_sessions" / "skills").rglob("SKILL.md"))
    skill_hit = 0
    for path in skills:
        redacted = redact(path.read_text(encoding="utf-8"))
        if redacted.kinds:
            skill_hit += 1
            kinds.update(redacted.kinds)
            examples.append(f"skill {path.parent.name}: {_context('', redacted.text)}")
    return {
        "skills": len(skills),
        "skills_redacted": skill_hit,
        "swe_steps": swe_steps,
        "swe_steps_redacted": swe_hit,
        "session_texts": session_texts,
        "session_texts_redacted": session_hit,
        "instructions": len(instructions),
        "instructions_redacted": instruction_hit,
        "kinds": dict(kinds),
        "examples": examples[:20],
    }


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(samples, 0.5), 3),
        "p95": round(percentile(samples, 0.95), 3),
        "n": len(samples),
    }


def record_pass(datasets: Path) -> dict[str, Any]:
    """The engine's redaction pass over each 50-step window of the real runs, timed."""
    samples: list[float] = []
    sizes: list[int] = []
    for run in _swe_runs(datasets):
        # As sent: a step over the record's limits is still a step whose text is redacted.
        steps = [
            Step.model_construct(action=s.get("action") or "", observation=s.get("observation"), thought=None)
            for s in run["steps"]
        ]
        for start in range(0, max(1, len(steps) - STEPS_PER_RECORD + 1), STEPS_PER_RECORD // 2):
            window = steps[start : start + STEPS_PER_RECORD]
            sizes.append(sum(len(s.action) + len(s.observation or "") for s in window))
            began = time.process_time()
            scrub = Scrubber()
            scrub.text("task", run["task"])
            scrub.steps("steps", window)
            samples.append((time.process_time() - began) * 1000)
    return {"ms": _ms(samples), "chars_p50": int(percentile([float(s) for s in sizes], 0.5))}


def _big_transcript(datasets: Path, folder: Path) -> Path:
    """One turn of real tool calls, repeated from the real sessions until the file holds 2 MB."""
    from memp_mcp.hooks.transcript import read_last_turn  # noqa: F401  (the reader this shape is for)

    calls: list[str] = []
    first_prompt: str | None = None
    for _, lines in _session_lines(datasets):
        for line in lines:
            content = (line.get("message") or {}).get("content")
            if isinstance(content, str):
                first_prompt = first_prompt or json.dumps(line)
            elif isinstance(content, list) and any(b.get("type") in ("tool_use", "tool_result") for b in content):
                calls.append(json.dumps(line))
    path = folder / "transcript.jsonl"
    size = 0
    with path.open("w", encoding="utf-8") as handle:
        handle.write((first_prompt or "") + "\n")
        while size < TRANSCRIPT_BYTES:
            for call in calls:
                handle.write(call + "\n")
                size += len(call) + 1
                if size >= TRANSCRIPT_BYTES:
                    break
    return path


def stop_hook_pass(datasets: Path, folder: Path, repeats: int = 20) -> dict[str, Any]:
    """The Stop hook's reading of a 2 MB transcript and the engine's pass, with and without redaction."""
    import memp_mcp.hooks.transcript as transcript

    path = _big_transcript(datasets, folder)

    def timed(redactor: Callable[..., Any], engine_pass: bool) -> float:
        original = getattr(transcript, "redact")  # noqa: B009
        setattr(transcript, "redact", redactor)  # noqa: B010  (the reader's redaction, switched off)
        try:
            began = time.process_time()
            turn = transcript.read_last_turn(path)
            assert turn is not None
            steps = transcript.turn_steps(turn)
            if engine_pass:
                scrub = Scrubber()
                scrub.text("task", transcript.turn_task(turn))
                scrub.steps("steps", steps)
            return (time.process_time() - began) * 1000
        finally:
            setattr(transcript, "redact", original)  # noqa: B010

    class _Unchanged:
        def __init__(self, text: str, known: Any = None) -> None:
            self.text = text
            self.values: dict[str, str] = {}

    # Interleaved, one of each at a time, so that a busy moment of the machine falls on both.
    with_redaction: list[float] = []
    without: list[float] = []
    for _ in range(repeats):
        with_redaction.append(timed(redact, engine_pass=True))
        without.append(timed(_Unchanged, engine_pass=False))
    turn = transcript.read_last_turn(path)
    added = [a - b for a, b in zip(with_redaction, without, strict=True)]
    return {
        "bytes": path.stat().st_size,
        "steps": len(transcript.turn_steps(turn)) if turn else 0,
        "with_ms": _ms(with_redaction),
        "without_ms": _ms(without),
        "added_ms": _ms(added),
        # Fastest against fastest: the runs the machine's load touched least.
        "added_best_ms": round(min(with_redaction) - min(without), 3),
    }


def first_use_ms() -> float:
    """What the first redaction in a fresh process costs once the engine is loaded (plugins imported)."""
    code = (
        "import time, memp_mcp.engine.memory, memp_mcp.redact as r\n"
        "t = time.process_time(); r.redact('export TOKEN=ghp_' + 'a' * 36)\n"
        "print((time.process_time() - t) * 1000)"
    )
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)]
    runs += [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)]
    return round(min(runs), 1)


def run_redaction_bench(datasets: Path, folder: Path) -> dict[str, Any]:
    redact("warm up the detectors: ghp_" + "a" * 36)
    return {
        "false_redactions": false_redactions(datasets),
        "record_50_steps": record_pass(datasets),
        "stop_hook_2mb": stop_hook_pass(datasets, folder),
        "first_use_ms": first_use_ms(),
    }
