"""Real Claude Code sessions played through the hooks as Claude Code plays them (`memp-mcp bench sessions`).

The folder holds `<family>/<variant>/{instruction.md, transcript.jsonl.gz}`: sessions of task families,
each variant the same kind of task with other inputs. Each session goes through SessionStart,
UserPromptSubmit (its instruction, the prompt the user typed) and Stop (its transcript), and:

- captured: every session, each in a memory of its own, leaves a procedure;
- plumbing: the share of those procedures' steps that are the client's bookkeeping (to-do lists,
  finding tools, loading skills), memp's own calls, JSON objects, base64 or one-line steps over 600
  characters (as `bench runs` counts them); a script kept as code on its lines is work, and the steps
  over 600 characters, code included, are counted apart (long steps);
- titles: the share of titles that are the prompt's first words;
- right first: the first variant of each family recorded, the others' instructions sent as new
  sessions' first prompts: the injected procedure is their family's;
- nothing given: leave one family out (the others' first variants recorded), its prompts get nothing;
  the same for the unrelated long prompts of `bench/data/session_prompts.json` (the floor for long
  instructions was set on them) and of `session_prompts_heldout.json` (never tuned on), reported apart;
- distill by the agent (MEMP_HOOK_DISTILL=agent): the share of sessions whose Stop would ask, the
  characters the ask adds, and those of the record_trajectory call that answers it, sized on the
  procedure each session built (the agent's own draft is of that order);
- key points given: of each later variant's keypoints.json, the share the injected text says beyond its
  prompt, beside nothing, the family's skills and the first variant's whole transcript (bench.keypoints);
- hook time: the prompt hook run as Claude Code runs it (one process per prompt, the warm server
  answering), p95; and a session's first prompt right after SessionStart started the server.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memp_mcp.bench.keypoints import LaterVariant, key_point_figures
from memp_mcp.bench.latency import percentile
from memp_mcp.bench.runs import is_probe
from memp_mcp.config import Settings, load_settings
from memp_mcp.embedding import Embedder
from memp_mcp.hooks.client import server_pid
from memp_mcp.hooks.handlers import DISTILL_CHANGING_TOOLS, DISTILL_MIN_CALLS, DISTILL_REASON, run_hook
from memp_mcp.hooks.transcript import SKIPPED_TOOLS, read_last_turn
from memp_mcp.store import open_store

NAMESPACE = "bench-sessions"
UNRELATED_PROMPTS = Path(__file__).parent / "data" / "session_prompts.json"
HELDOUT_PROMPTS = Path(__file__).parent / "data" / "session_prompts_heldout.json"
LONG_STEP_CHARS = 600
_BASE64 = re.compile(r"[A-Za-z0-9+/=]{200,}")
_PLUMBING_NAMES = re.compile(r"\b(?:" + "|".join(sorted(SKIPPED_TOOLS)) + r"):|\bmcp__\w+")
_PROCEDURE_ID = re.compile(r'<procedure id="(\d+)"')
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Session:
    family: str
    variant: str
    instruction: str
    transcript: Path


def load_sessions(folder: Path) -> list[Session]:
    """The sessions under `folder`, by family, variants in their natural order."""
    found = []
    for transcript in folder.glob("*/*/transcript.jsonl.gz"):
        variant = transcript.parent
        instruction = variant / "instruction.md"
        if instruction.is_file():
            found.append(
                Session(variant.parent.name, variant.name, instruction.read_text(encoding="utf-8"), transcript)
            )
    return sorted(found, key=lambda s: (s.family, _natural(s.variant)))


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class _ModelMemories:
    """One open store and a loaded model: what the warm server holds once ready."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = open_store(settings.db_path, None)

    @contextmanager
    def open(self, namespace: str) -> Iterator[Any]:
        from memp_mcp.engine.memory import memory_for

        yield memory_for(self.settings, self.store, self.embedder, namespace=namespace)

    def close(self) -> None:
        self.store.close()


def _settings(db: Path) -> Settings:
    return load_settings(environ={"MEMP_DB_PATH": str(db), "MEMP_HOOK_NAMESPACE": NAMESPACE, "MEMP_HOOK_SERVER": "0"})


def _event(name: str, session_id: str, transcript: Path, **fields: Any) -> bytes:
    payload = {
        "session_id": session_id,
        "transcript_path": str(transcript),
        "cwd": _session_cwd(transcript),
        "hook_event_name": name,
        **fields,
    }
    return json.dumps(payload).encode()


def _session_cwd(transcript: Path) -> str:
    """The folder the session ran in, as its transcript says (Claude Code sends it with every event)."""
    try:
        with transcript.open("rb") as handle:
            for raw in handle:
                entry = json.loads(raw)
                if isinstance(entry, dict) and isinstance(entry.get("cwd"), str) and entry["cwd"]:
                    return str(entry["cwd"])
    except (OSError, ValueError):
        pass
    return str(transcript.parent)


def _unpack(session: Session, workdir: Path) -> Path:
    path = workdir / "transcripts" / f"{session.family}--{session.variant}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(session.transcript, "rb") as source:
            path.write_bytes(source.read())
    return path


class Player:
    """Plays sessions into one memory through the hook handlers, with the model loaded."""

    def __init__(self, db: Path, embedder: Embedder, workdir: Path) -> None:
        db.parent.mkdir(parents=True, exist_ok=True)
        self.settings = _settings(db)
        self.memories = _ModelMemories(self.settings, embedder)
        self.workdir = workdir
        self.prompt_ms: list[float] = []

    def record(self, session: Session) -> int | None:
        """Play the whole session; the id of the procedure its trajectory went into, if any."""
        transcript = _unpack(session, self.workdir)
        sid = f"{session.family}-{session.variant}-record"
        self.prompt(session.instruction, sid, transcript)
        run_hook(_event("Stop", sid, transcript, stop_hook_active=False), self.settings, self.memories)
        store = self.memories.store
        trajectory = store.count_trajectories(NAMESPACE)
        for procedure in store.list_procedures(NAMESPACE, limit=1000):
            if trajectory in procedure.source_trajectory_ids:
                return procedure.id
        return None

    def prompt(self, text: str, session_id: str, transcript: Path) -> list[int]:
        """A new session's SessionStart and first prompt: the ids of the procedures injected, in order."""
        return injected_ids(self.injected(text, session_id, transcript))

    def injected(self, text: str, session_id: str, transcript: Path) -> str:
        """A new session's SessionStart and first prompt: the context the prompt hook adds ("" for none)."""
        run_hook(_event("SessionStart", session_id, transcript, source="startup"), self.settings, self.memories)
        started = time.perf_counter()
        reply = run_hook(_event("UserPromptSubmit", session_id, transcript, prompt=text), self.settings, self.memories)
        self.prompt_ms.append(1000 * (time.perf_counter() - started))
        return str(json.loads(reply)["hookSpecificOutput"]["additionalContext"]) if reply else ""

    def close(self) -> None:
        self.memories.close()


def injected_ids(context: str) -> list[int]:
    """The ids of the procedures an injected context holds, in order."""
    return [int(found) for found in _PROCEDURE_ID.findall(context)]


def _procedure_text(procedure: Any) -> str:
    """A stored procedure whole, as text: what its injection is cut from."""
    return "\n".join([procedure.title, procedure.when_to_use, *procedure.steps, *procedure.pitfalls])


def _is_plumbing(step: str) -> bool:
    text = step.strip()
    return (
        bool(_PLUMBING_NAMES.search(text))
        or text.startswith(("{", "["))
        or bool(_BASE64.search(text))
        or (len(text) > LONG_STEP_CHARS and "\n" not in text)
    )


def _first_words(title: str, prompt: str) -> bool:
    """Whether the title is the prompt's opening words (at least four of them), not a summary."""
    title_words = re.findall(r"\w+", title.lower().removesuffix("..."))
    prompt_words = re.findall(r"\w+", prompt.lower())
    return len(title_words) >= 4 and title_words[: min(8, len(title_words))] == prompt_words[: min(8, len(title_words))]


def _share(count: int, total: int) -> float | None:
    return round(count / total, 3) if total else None


def run_sessions_bench(
    folder: Path,
    workdir: Path,
    embedder: Embedder,
    *,
    unrelated: Sequence[str] = (),
    heldout: Sequence[str] = (),
    timing: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    sessions = load_sessions(folder)
    if not sessions:
        raise ValueError(f"{folder}: no <family>/<variant>/transcript.jsonl.gz with an instruction.md beside it")
    families = sorted({s.family for s in sessions})
    first = {f: next(s for s in sessions if s.family == f) for f in families}
    later = [s for s in sessions if first[s.family] is not s]
    tell = progress or (lambda *_: None)

    # Captured, plumbing, titles: each session in a memory of its own.
    captured, steps, plumbing, long_steps, probes, titles, first_words = 0, 0, 0, 0, 0, 0, 0
    missed: list[str] = []
    asked, answer_chars = 0, []
    for index, session in enumerate(sessions):
        player = Player(workdir / "capture" / f"{session.family}--{session.variant}.db", embedder, workdir)
        try:
            pid = player.record(session)
            if pid is None:
                missed.append(f"{session.family}/{session.variant}")
            else:
                captured += 1
                procedure = player.memories.store.get_procedure(pid)
                steps += len(procedure.steps)
                plumbing += sum(_is_plumbing(s) for s in procedure.steps)
                long_steps += sum(len(s.strip()) > LONG_STEP_CHARS for s in procedure.steps)
                probes += sum(is_probe(s) for s in procedure.steps)
                titles += 1
                first_words += _first_words(procedure.title, session.instruction)
                answer_chars.append(_draft_call_chars(session.instruction, procedure))
            asked += _would_ask(_unpack(session, workdir))
        finally:
            player.close()
        tell("capture", index + 1, len(sessions))

    # Right first: the first variant of each family recorded, the later ones prompt.
    player = Player(workdir / "all-first.db", embedder, workdir)
    owner: dict[int, str] = {}
    procedures: dict[str, str] = {}
    injected: dict[tuple[str, str], str] = {}
    right, given_other, sizes = 0, 0, []
    try:
        for family in families:
            pid = player.record(first[family])
            if pid is not None:
                owner[pid] = family
                procedures[family] = _procedure_text(player.memories.store.get_procedure(pid))
        for index, session in enumerate(later):
            transcript = _unpack(session, workdir)
            context = player.injected(session.instruction, f"{session.variant}-later", transcript)
            injected[(session.family, session.variant)] = context
            ids = injected_ids(context)
            right += bool(ids) and owner.get(ids[0]) == session.family
            given_other += bool(ids) and owner.get(ids[0]) != session.family
            if ids:
                sizes.append(len(context))
            tell("later prompts", index + 1, len(later))
        scratch = _unpack(first[families[0]], workdir)
        unrelated_given = sum(bool(player.prompt(text, f"unrelated-{i}", scratch)) for i, text in enumerate(unrelated))
        heldout_given = sum(bool(player.prompt(text, f"heldout-{i}", scratch)) for i, text in enumerate(heldout))
        prompt_ms = list(player.prompt_ms)
    finally:
        player.close()
    later_of_captured = [s for s in later if s.family in owner.values()]

    # Nothing given: each family left out in turn.
    left_out_prompts, left_out_given = 0, 0
    for index, family in enumerate(families):
        player = Player(workdir / f"without-{family}.db", embedder, workdir)
        try:
            for other in families:
                if other != family:
                    player.record(first[other])
            for session in (s for s in sessions if s.family == family):
                left_out_prompts += 1
                transcript = _unpack(session, workdir)
                left_out_given += bool(player.prompt(session.instruction, f"{session.variant}-lofo", transcript))
        finally:
            player.close()
        tell("leave one family out", index + 1, len(families))

    results: dict[str, Any] = {
        "sessions": len(sessions),
        "families": len(families),
        "captured": _share(captured, len(sessions)),
        "not_captured": missed,
        "plumbing_share_of_steps": _share(plumbing, steps),
        "long_steps_share": _share(long_steps, steps),
        "probe_or_long_line_share": _share(probes, steps),
        "steps": steps,
        "titles_first_words": _share(first_words, titles),
        "right_first": _share(right, len(later_of_captured)),
        "later_prompts": len(later_of_captured),
        "another_familys_first": given_other,
        "nothing_given_left_out": _share(left_out_prompts - left_out_given, left_out_prompts),
        "left_out_prompts": left_out_prompts,
        "nothing_given_unrelated": _share(len(unrelated) - unrelated_given, len(unrelated)),
        "unrelated_prompts": len(unrelated),
        "nothing_given_heldout": _share(len(heldout) - heldout_given, len(heldout)),
        "heldout_prompts": len(heldout),
        "distill_asked_share": _share(asked, len(sessions)),
        "distill_reason_chars": len(DISTILL_REASON.format(namespace=NAMESPACE)),
        "distill_answer_chars_mean": round(sum(answer_chars) / len(answer_chars)) if answer_chars else 0,
        "injected_chars": {"max": max(sizes, default=0), "mean": round(sum(sizes) / len(sizes)) if sizes else 0},
        "prompt_handler_ms_p95": round(percentile(prompt_ms, 0.95), 1) if prompt_ms else None,
    }
    results["key_points"] = key_point_figures(
        folder,
        [LaterVariant(s.family, s.variant, s.instruction, s.transcript.parent) for s in later],
        {family: session.transcript for family, session in first.items()},
        injected,
        procedures,
    )
    if timing:
        results["hook"] = _time_hook_processes(workdir / "all-first.db", [s.instruction for s in later], workdir)
    return results


def _would_ask(transcript: Path) -> bool:
    """Whether the Stop of this session asks the agent for its draft (see hooks.handlers._asks_to_distill)."""
    turn = read_last_turn(transcript)
    calls = turn.work_calls if turn is not None else []
    return len(calls) >= DISTILL_MIN_CALLS and any(call.name in DISTILL_CHANGING_TOOLS for call in calls)


def _draft_call_chars(task: str, procedure: Any) -> int:
    """The size of a record_trajectory call carrying this procedure as the agent's draft."""
    draft = {
        "title": procedure.title,
        "when_to_use": procedure.when_to_use,
        "steps": procedure.steps,
        "pitfalls": procedure.pitfalls,
    }
    # The steps are sent once, as the draft's (an agent may send its trajectory's too, which doubles them).
    call = {"task": " ".join(task.split())[:300], "outcome": "success", "procedure": draft}
    return len(json.dumps(call, ensure_ascii=False))


def load_unrelated_prompts(path: Path = UNRELATED_PROMPTS) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [str(p) for p in data["prompts"]]


# -- the prompt hook as a process, as Claude Code runs it ------------------------------------


def _hook_process(payload: bytes, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "memp_mcp.entry", "hook"],
        input=payload,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    return 1000 * (time.perf_counter() - started), done.stdout.decode("utf-8", "replace")


def _stop_server(db: Path) -> None:
    pid = server_pid(db)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        give_up = time.monotonic() + 10
        while server_pid(db) is not None and time.monotonic() < give_up:
            time.sleep(0.1)


def _wait_for(log: Path, text: str, seconds: float) -> bool:
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        if log.exists() and text in log.read_text(encoding="utf-8", errors="replace"):
            return True
        time.sleep(0.1)
    return False


def _time_hook_processes(db: Path, prompts: list[str], workdir: Path, rounds: int = 3) -> dict[str, Any]:
    """p95 of the prompt hook with the warm server answering; then, the server stopped, a SessionStart
    followed at once by the first prompt, and whether that prompt was answered as a warm one is."""
    env = {
        **os.environ,
        "MEMP_DB_PATH": str(db),
        "MEMP_HOOK_NAMESPACE": NAMESPACE,
        "MEMP_HOOK_SERVER": "1",
        "MEMP_LOG_LEVEL": "INFO",
    }
    transcript = workdir / "timing.jsonl"
    transcript.touch()
    log = db.parent / "hooks.log"
    warm: list[float] = []
    replies: dict[str, str] = {}
    first: list[float] = []
    first_same = 0
    try:
        _stop_server(db)
        log.unlink(missing_ok=True)
        _hook_process(_event("SessionStart", "timing", transcript, source="startup"), env)
        model_ready = _wait_for(log, "warm server recalls with", 120)
        for _ in range(rounds):
            for prompt in prompts:
                elapsed, reply = _hook_process(_event("UserPromptSubmit", "timing", transcript, prompt=prompt), env)
                warm.append(elapsed)
                replies[prompt] = _body(reply)
        for index, prompt in enumerate(prompts[:5]):
            _stop_server(db)
            _hook_process(_event("SessionStart", f"first-{index}", transcript, source="startup"), env)
            elapsed, reply = _hook_process(_event("UserPromptSubmit", f"first-{index}", transcript, prompt=prompt), env)
            first.append(elapsed)
            first_same += _body(reply) == replies[prompt]
    finally:
        _stop_server(db)
    startup = []
    for _ in range(10):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        startup.append(1000 * (time.perf_counter() - started))
    return {
        "python_startup_ms_p50": round(percentile(startup, 0.5), 1),
        "warm_ms_p50": round(percentile(warm, 0.5), 1),
        "warm_ms_p95": round(percentile(warm, 0.95), 1),
        "warm_with_model": model_ready,
        "first_after_session_start_ms_max": round(max(first), 1) if first else None,
        "first_after_session_start_same_as_warm": f"{first_same}/{len(first)}",
    }


def _body(reply: str) -> str:
    """The injected context without what changes from call to call (recall ids, relevance digits)."""
    if not reply.strip():
        return ""
    context = json.loads(reply)["hookSpecificOutput"]["additionalContext"]
    return re.sub(r'recall_id="[^"]*"|relevance="[0-9.]+"', "", context)
