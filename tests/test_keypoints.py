"""The key-point coverage of `bench sessions` (memp_mcp.bench.keypoints): what counts as a key point's
content, what covers it, and the figures on the development sessions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from memp_mcp.bench.keypoints import (
    HUMAN_AUTHORED,
    PASSAGE_WORDS,
    LaterVariant,
    Passages,
    content_terms,
    key_point_figures,
    needed,
    transcript_text,
    variant_key_points,
)
from memp_mcp.bench.sessions import load_sessions

SESSIONS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "claude_code_sessions"
PROMPT = "Audit package-lock.json for HIGH and CRITICAL vulnerabilities with trivy and write the CSV report."


def coverage(key_point: str, given: str, prompt: str = PROMPT) -> float:
    return variant_key_points("audit", "audit-2", [key_point], prompt).coverage(given)


def test_a_key_point_the_prompt_already_says_is_counted_for_no_one() -> None:
    scored = variant_key_points(
        "audit", "audit-2", ["Write the CSV report of the trivy vulnerabilities", "Scan --offline-scan"], PROMPT
    )
    assert scored.said_by_prompt == 1 and len(scored.counted) == 1
    # The one left is judged on what the prompt does not say.
    assert scored.coverage("scan it with --offline-scan") == 1.0
    assert scored.coverage("scan it, write the CSV report") == 0.0


def test_words_a_key_point_shares_with_the_prompt_do_not_cover_it() -> None:
    key_point = "Run trivy on package-lock.json offline with --skip-db-update and the cached database"
    # Everything below repeats the prompt's words and says nothing of what the session learned.
    assert coverage(key_point, "trivy package-lock.json vulnerabilities CSV report trivy audit") == 0.0
    assert coverage(key_point, "trivy fs package-lock.json --skip-db-update --cache-dir cache: the database") == 1.0


def test_a_key_point_whose_distinctive_terms_are_given_is_covered_through_their_stems() -> None:
    key_point = "Parsed the JSON results and extracted CVSS scores, preferring NVD over GHSA."
    assert coverage(key_point, "parse each result; extract the CVSS score from nvd, else ghsa") == 1.0
    assert coverage(key_point, "read the file") == 0.0


def test_stopwords_and_one_letter_words_are_no_terms() -> None:
    terms = content_terms("Check that it is there before and after the scan, a b c")
    assert terms.stems == {"check", "scan"} and not terms.code
    # A key point of nothing but function words and the prompt's words is not counted.
    assert variant_key_points("audit", "audit-2", ["It was done for the trivy report"], PROMPT).counted == ()


def test_code_tokens_are_one_term_each_and_said_only_whole() -> None:
    terms = content_terms(
        "Patched SamplerResource.java for 0.20.0 (CVE-2021-25646): pass -DskipTests and ./build.sh, e.g. twice"
    )
    assert terms.code == {"samplerresource.java", "0.20.0", "cve-2021-25646", "-dskiptests", "./build.sh"}
    assert terms.stems == {"patch", "pass", "twice"}
    assert content_terms("read the titles/abstracts of papers/all/").code == {"papers/all"}
    key_point = "Pinned the version 0.20.0 with -Dcheckstyle.skip=true"
    assert coverage(key_point, "built 0.20.01 with -Dcheckstyle.skip=truex") == 0.0
    assert coverage(key_point, "mvn package -Dcheckstyle.skip=true (druid 0.20.0)") == 1.0


def test_how_many_terms_cover_a_key_point() -> None:
    assert [needed(n) for n in (1, 2, 3, 4, 5, 10)] == [1, 2, 2, 2, 3, 5]


def test_terms_scattered_over_a_long_text_do_not_cover_what_one_passage_would() -> None:
    key_point = "Recursively reject empty string keys before deserializing"
    filler = " ".join(f"filler{n}" for n in range(PASSAGE_WORDS))
    assert coverage(key_point, f"reject {filler} empty {filler} recursive {filler} keys") == 0.0
    assert coverage(key_point, f"{filler} walk the tree recursively and reject empty keys {filler}") == 1.0


def test_nothing_injected_covers_nothing() -> None:
    assert coverage("Scan offline with --offline-scan using the cached database", "") == 0.0
    assert Passages("").passages  # an empty text is one empty passage, not an error


def test_a_transcript_reads_as_its_messages_thinking_tool_calls_and_results(tmp_path: Path) -> None:
    lines = [
        {"type": "user", "message": {"role": "user", "content": "the prompt"}},
        {
            "type": "assistant",
            "message": {
                "content": [
                    {"type": "thinking", "thinking": "first think"},
                    {"type": "text", "text": "then say"},
                    {"type": "tool_use", "name": "Bash", "input": {"command": "trivy --version", "n": 1}},
                ]
            },
        },
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "content": [{"type": "text", "text": "Version: 0.50.1"}]}]},
        },
        "not a line of the shape",
    ]
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode()))
    assert transcript_text(path).split("\n") == [
        "the prompt",
        "first think",
        "then say",
        "Bash",
        "trivy --version",
        "Version: 0.50.1",
    ]


def write_dataset(root: Path) -> list[LaterVariant]:
    """One family, a first variant (its transcript) and a later one with two key points; skills of three sources."""
    later = root / "audit" / "audit-2"
    later.mkdir(parents=True)
    key_points = ["Scan offline with --offline-scan and --skip-db-update", "Sort the rows by CVSS score descending"]
    (later / "keypoints.json").write_text(json.dumps([{"key_point": k, "reason": "r"} for k in key_points]))
    first = root / "audit" / "audit-1"
    first.mkdir(parents=True)
    said = "trivy fs --offline-scan --skip-db-update\nthen the rows sorted by CVSS score, descending"
    line = {"type": "assistant", "message": {"content": [{"type": "text", "text": said}]}}
    (first / "transcript.jsonl.gz").write_bytes(gzip.compress((json.dumps(line) + "\n").encode()))
    skills = {
        ("b1-model", "scan"): "Run trivy with --offline-scan --skip-db-update.",
        ("b2-model", "sort"): "Sort by CVSS score, descending. Also scan with --offline-scan and --skip-db-update.",
        (HUMAN_AUTHORED, "csv"): "Sort the rows: CVSS score descending.",
        ("b1-model", "other-family-skill"): "nothing of this family",
    }
    for (source, name), text in skills.items():
        family = "other" if name == "other-family-skill" else "audit"
        (root / "skills" / source / family / name).mkdir(parents=True)
        (root / "skills" / source / family / name / "SKILL.md").write_text(text)
    return [LaterVariant("audit", "audit-2", PROMPT, later)]


def test_the_figures_compare_each_text_on_the_same_key_points(tmp_path: Path) -> None:
    later = write_dataset(tmp_path)
    figures = key_point_figures(
        tmp_path,
        later,
        {"audit": tmp_path / "audit" / "audit-1" / "transcript.jsonl.gz"},
        {("audit", "audit-2"): "Scan with --offline-scan and --skip-db-update."},
        {"audit": "Title: audit\nSort the rows by CVSS score, descending"},
    )
    assert figures["variants"] == 1 and figures["key_points"] == 2
    family = figures["families"]["audit"]
    assert (family["nothing"], family["memp"], family["memp_procedure"], family["transcript"]) == (0.0, 0.5, 0.5, 1.0)
    # The best skill of each source is chosen on the family's key points; the human one is kept apart.
    assert family["skills"]["b1-model"]["skill"] == "scan"
    assert family["best_model_written"] == {"source": "b2-model", "skill": "sort", "coverage": 1.0, "chars": 83}
    assert family["human_authored"]["coverage"] == 0.5
    assert figures["overall"]["best_model_written"] == 1.0
    assert [row["variant"] for row in figures["per_variant"]] == ["audit-2"]


def test_a_variant_without_keypoints_json_is_left_out(tmp_path: Path) -> None:
    later = write_dataset(tmp_path)
    (tmp_path / "audit" / "audit-2" / "keypoints.json").unlink()
    figures = key_point_figures(tmp_path, later, {}, {}, {})
    assert figures["variants"] == 0 and figures["families"] == {} and figures["overall"] == {}


@pytest.mark.skipif(not SESSIONS.is_dir(), reason="the development sessions are not here (shared/datasets)")
def test_on_the_development_sessions_every_family_is_reported_and_the_transcript_beats_chance() -> None:
    sessions = load_sessions(SESSIONS)
    first = {s.family: s for s in reversed(sessions)}
    later = [
        LaterVariant(s.family, s.variant, s.instruction, s.transcript.parent)
        for s in sessions
        if first[s.family] is not s
    ]
    # With nothing injected and no procedure: the model-free part of the figures.
    figures = key_point_figures(SESSIONS, later, {f: s.transcript for f, s in first.items()}, {}, {})
    with_key_points = {v.family for v in later if json.loads((v.folder / "keypoints.json").read_text(encoding="utf-8"))}
    assert set(figures["families"]) == with_key_points
    for family, row in figures["families"].items():
        assert row["nothing"] == 0.0 and row["memp"] == 0.0, family
        assert row["best_model_written"] is not None and row["best_model_written"]["source"] != HUMAN_AUTHORED
        assert set(row["skills"]) == {p.name for p in (SESSIONS / "skills").iterdir() if (p / family).is_dir()}
    overall = figures["overall"]
    assert all(0.0 <= value <= 1.0 for value in overall.values())
    # The first session of the family says more of a later one's key points than other families' sessions do.
    assert overall["transcript"] > overall["other_transcripts"]
