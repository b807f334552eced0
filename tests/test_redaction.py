"""Secrets and private spans never stored, on every path; personal data kept out of what travels.

The corpus holds fake but well-formed secrets of every format targeted, generated here (never real
ones). Each path test writes them in and then reads the database file's bytes: a value found there,
in a live row, an old version or a freed page, is a leak.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memp_mcp.cli.root import app
from memp_mcp.config import load_settings
from memp_mcp.engine.memory import Memory
from memp_mcp.hooks.handlers import run_hook
from memp_mcp.hooks.memories import FreshMemories
from memp_mcp.redact import PRIVATE_MARK, redact, redact_personal
from memp_mcp.store import SQLiteStore, Store
from tests.claude_code_session import Transcript
from tests.conftest import FakeEmbedder

ALNUM = string.ascii_letters + string.digits
BASE64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"


def _random(rng: random.Random, size: int, chars: str = ALNUM) -> str:
    return "".join(rng.choice(chars) for _ in range(size))


def _b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def secret_corpus(seed: int = 0) -> dict[str, tuple[str, str]]:
    """{name: (text as an agent would write it, the secret value in it)}, fresh values per seed."""
    rng = random.Random(seed)
    r = lambda size, chars=ALNUM: _random(rng, size, chars)  # noqa: E731
    pem_lines = "\n".join(r(64, BASE64) for _ in range(5))
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{pem_lines}\n-----END RSA PRIVATE KEY-----"
    gcp_key = (
        "-----BEGIN PRIVATE KEY-----\n" + "\n".join(r(64, BASE64) for _ in range(4)) + "\n-----END PRIVATE KEY-----\n"
    )
    jwt = ".".join([_b64url({"alg": "HS256", "typ": "JWT"}), _b64url({"sub": r(8), "exp": 1}), r(43, URLSAFE)])
    values = {
        "github classic": ("export GITHUB_TOKEN={} && gh release create v1.2.0", f"ghp_{r(36)}"),
        "github fine-grained": ("git push https://bot:{}@github.com/acme/app.git", f"github_pat_{r(22)}_{r(59)}"),
        "gitlab": ("curl --header 'PRIVATE-TOKEN: {}' https://gitlab.com/api/v4/projects", f"glpat-{r(20, URLSAFE)}"),
        "aws key id": ("AWS_ACCESS_KEY_ID={} aws s3 ls s3://bucket", "AKIA" + r(16, string.ascii_uppercase + "234567")),
        "aws secret": ("aws configure set aws_secret_access_key {}", r(40, BASE64)),
        "gcp service account": (
            "cat > sa.json <<'EOF'\n{}\nEOF",
            json.dumps(
                {"type": "service_account", "private_key_id": r(40, "0123456789abcdef"), "private_key": gcp_key}
            ),
        ),
        "gcp api key": ("curl 'https://maps.googleapis.com/maps/api/geocode/json?key={}'", "AIza" + r(35, URLSAFE)),
        "azure storage key": (
            "az storage blob list --connection-string 'DefaultEndpointsProtocol=https;AccountName=acme;"
            "AccountKey={};EndpointSuffix=core.windows.net'",
            r(86, BASE64) + "==",
        ),
        "slack": ("SLACK_BOT_TOKEN={} python bot.py", f"xoxb-{rng.randint(10**10, 10**11)}-{r(24).lower()}"),
        "stripe": ("stripe.api_key = '{}'", f"sk_live_{r(24)}"),
        "openai": ("curl -H 'Authorization: Bearer {}' https://api.openai.com/v1/models", f"sk-proj-{r(48, URLSAFE)}"),
        "anthropic": ("ANTHROPIC_API_KEY={} claude -p 'hi'", f"sk-ant-api03-{r(93, URLSAFE)}AA"),
        "jwt": ("curl -H 'Cookie: session={}' http://localhost:8000/admin/", jwt),
        "pem private key": ("cat > deploy_key <<EOF\n{}\nEOF\nchmod 600 deploy_key", pem),
        "postgres url": ("psql postgresql://app:{}@db.internal:5432/app -c 'select 1'", r(18)),
        "mysql url": ("DATABASE_URL=mysql://root:{}@localhost/shop ./manage.py migrate", r(14)),
        "password in env": ("export DB_PASSWORD={} && ./run.sh", r(10) + str(rng.randint(10, 99))),
        "password in code": ("EMAIL_HOST_PASSWORD = '{}'", r(12) + "#" + str(rng.randint(10, 99))),
    }
    return {name: (template.format(value), value) for name, (template, value) in values.items()}


def _leaked_pieces(value: str) -> list[str]:
    """What of a secret must not be found: the value, or for a key file each line of its body."""
    if "PRIVATE KEY" in value:
        return [line for line in value.replace("\\n", "\n").splitlines() if len(line) >= 40 and "KEY" not in line]
    return [value]


def assert_no_secret(haystack: bytes | str, corpus: dict[str, tuple[str, str]]) -> None:
    text = haystack.decode("utf-8", "replace") if isinstance(haystack, bytes) else haystack
    leaked = [name for name, (_, value) in corpus.items() for piece in _leaked_pieces(value) if piece in text]
    assert not leaked, f"secrets found: {leaked}"


def database_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


# -- the detector ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_every_format_of_the_corpus_is_redacted_with_a_typed_placeholder(seed: int) -> None:
    for name, (text, value) in secret_corpus(seed).items():
        redacted = redact(text)
        assert redacted.kinds, name
        assert_no_secret(redacted.text, {name: (text, value)})
        assert "<redacted:" in redacted.text, name
    github = redact(secret_corpus(seed)["github classic"][0]).text
    assert github == "export GITHUB_TOKEN=<redacted:github-token> && gh release create v1.2.0"


@pytest.mark.parametrize(
    "text",
    [
        "python manage.py test auth_tests --settings=test_sqlite",
        "grep -n 'password' django/contrib/auth/forms.py",
        "password = self.cleaned_data.get('password1')",
        "user.set_password(raw_password)",
        "git log --oneline -3  # 5b00743a1c2e9f0d4b6a8c7e3f1d2b4a6c8e0f13",
        'export API_KEY=$API_KEY && curl -H "Authorization: Bearer $TOKEN" https://example.com',
        "client.login(username='admin', password='password')",
        "password = raw_password",
        "assert is_valid('http://user:pass@example.com/path')",
        "token: settings.API_TOKEN",
        "export SECRET_KEY=$(openssl rand -hex 32)",
        "Read: /work/app/settings.py",
    ],
)
def test_ordinary_development_text_is_left_alone(text: str) -> None:
    assert redact(text).text == text


def test_private_spans_are_dropped_even_when_cut_off() -> None:
    assert redact("deploy <private>the vault is at 10.0.0.7</private> now").text == f"deploy {PRIVATE_MARK} now"
    assert "10.0.0.7" not in redact("ok <private>the vault is at 10.0.0.7").text
    assert "10.0.0.7" not in redact("is at 10.0.0.7</private> then more").text


def test_personal_data_is_recognised() -> None:
    text = "Fill the form for Jane Roe, 1600 Maple Avenue, Apt 4, jane.roe@example.org, (555) 123-4567"
    redacted = redact_personal(text)
    assert set(redacted.kinds) == {"address", "email", "phone"}
    for piece in ("1600 Maple", "jane.roe@", "123-4567"):
        assert piece not in redacted.text
    assert redact_personal("run tests for django 4.2.1 on port 8000").kinds == ()


# -- the paths ---------------------------------------------------------------------------


def _steps(corpus: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Every secret once in an action and once in an observation."""
    return [
        {"action": text, "observation": f"done; printed {value}", "thought": "set the credentials"}
        for text, value in corpus.values()
    ]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_mcp_record_stores_no_secret_and_says_what_it_redacted(tmp_path: Path) -> None:
    from mcp import Client

    from memp_mcp.server.app import build_server

    corpus = secret_corpus(1)
    settings = load_settings({"db_path": tmp_path / "server.db"}, environ={})
    store = SQLiteStore(settings.db_path)
    memory = Memory(store, FakeEmbedder())
    task = "publish the package for jane.roe@example.org with " + corpus["anthropic"][0]
    async with Client(build_server(settings, memory=memory), raise_exceptions=True) as client:
        recorded = await client.call_tool(
            "record_trajectory", {"task": task, "steps": _steps(corpus), "outcome": "success"}
        )
        result = recorded.structured_content
        assert result is not None
        assert "steps[0].action: github-token" in result["redacted"]
        assert "task: anthropic-key" in result["redacted"]
        assert_no_secret(json.dumps(result), corpus)
        recalled = await client.call_tool("recall_procedure", {"task": "publish the package"})
        assert recalled.structured_content and recalled.structured_content["procedures"]
        assert "jane.roe@example.org" not in json.dumps(recalled.structured_content) + str(recalled.content)
        assert_no_secret(json.dumps(recalled.structured_content) + str(recalled.content), corpus)
        detail = await client.call_tool("get_procedure", {"procedure_id": result["procedure_id"]})
        assert_no_secret(json.dumps(detail.structured_content), corpus)
    store.close()
    assert_no_secret(database_bytes(settings.db_path), corpus)


def test_stop_hook_stores_no_secret_nor_private_span_from_the_transcript(tmp_path: Path) -> None:
    corpus = secret_corpus(2)
    settings = load_settings({"db_path": tmp_path / "data" / "memory.db", "hook_server": False}, environ={})
    project = tmp_path / "app"
    (project / ".git").mkdir(parents=True)
    transcript = Transcript(tmp_path / "t.jsonl", "s1", project)
    prompt = f"deploy the app; the db password is in {corpus['postgres url'][0]} <private>call Ann on 0044</private>"
    transcript.prompt(prompt)
    for text, value in corpus.values():
        long_output = "x" * 30_000 + f" token {value} " + "y" * 30_000  # cut in the middle by the reader
        transcript.tool("Bash", {"command": text, "description": "set up"}, f"ok {value}\n{long_output}")
    for text, value in corpus.values():
        # What the hooks now keep whole: the agent's words before a call, a written file, an edit's sides.
        transcript.say(f"Next I set the key {value} in the config.")
        config = str(project / "config.py")
        transcript.tool("Write", {"file_path": config, "content": f"KEY = '{value}'\n{text}\n"}, "File created")
        edit = {"file_path": config, "old_string": f"KEY = '{value}'", "new_string": f"KEY = env('{value}')"}
        transcript.tool("Edit", edit, "The file has been updated.")
    transcript.tool("Bash", {"command": "pytest -q"}, "<private>internal host build-7</private>\n3 passed")
    memories = FreshMemories(settings)
    base = {"session_id": "s1", "transcript_path": str(transcript.path), "cwd": str(project)}
    run_hook(json.dumps({**base, "hook_event_name": "UserPromptSubmit", "prompt": prompt}).encode(), settings, memories)
    run_hook(json.dumps({**base, "hook_event_name": "Stop"}).encode(), settings, memories)
    stored = database_bytes(settings.db_path)
    assert b"deploy the app" in stored  # the turn was recorded
    assert_no_secret(stored, corpus)
    assert b"build-7" not in stored and b"call Ann" not in stored
    states = b"".join(p.read_bytes() for p in settings.db_path.parent.rglob("*.json"))
    assert_no_secret(states, corpus)


def test_a_secret_a_command_printed_is_taken_out_where_the_turn_repeats_it_bare(tmp_path: Path) -> None:
    from memp_mcp.hooks.transcript import read_last_turn, turn_steps

    corpus = secret_corpus(5)
    transcript = Transcript(tmp_path / "t.jsonl", "s1", tmp_path)
    transcript.prompt("move the settings out of the env file")
    for text, value in corpus.values():
        transcript.tool("Bash", {"command": "cat .env"}, text)  # recognisable here, by its context
        transcript.say(f"The value is {value}; I will move it.")
        edit = {
            "file_path": str(tmp_path / "settings.py"),
            "old_string": "KEY = None",
            "new_string": f"KEY = '{value}'",
        }
        transcript.tool("Edit", edit, "The file has been updated.")
    turn = read_last_turn(transcript.path)
    assert turn is not None
    kept = "\n".join(f"{s.action}\n{s.observation}\n{s.thought}" for s in turn_steps(turn))
    assert "KEY = '" in kept and "I will move it" in kept
    leaked = [name for name, (_, value) in corpus.items() if value in kept]
    assert not leaked, leaked


runner = CliRunner()


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    Memory(SQLiteStore(path), FakeEmbedder()).store.close()
    monkeypatch.setenv("MEMP_DB_PATH", str(path))
    monkeypatch.setenv("MEMP_EMBEDDINGS", "0")
    monkeypatch.setenv("MEMP_NAMESPACE", "default")
    return path


def _run(*args: str) -> tuple[int, str]:
    """A command's exit code and output, less the line naming the namespace it used (on stderr)."""
    result = runner.invoke(app, list(args))
    lines = result.output.splitlines(keepends=True)
    return result.exit_code, "".join(line for line in lines if not NAMESPACE_NOTICE.match(line))


NAMESPACE_NOTICE = re.compile(r"\Anamespace \S+ \(.*\)\n?\Z")


def test_import_of_a_jsonl_library_stores_no_secret(cli_db: Path, tmp_path: Path) -> None:
    corpus = secret_corpus(3)
    texts = [text for text, _ in corpus.values()]
    header = {"format": "memp-library", "version": 1, "namespace": "default"}
    procedure = {
        "type": "procedure",
        "title": "Deploy the app",
        "when_to_use": "deploying; key " + corpus["openai"][0],
        "steps": texts,
        "pitfalls": [f"do not print {corpus['slack'][1]}"],
        "keys": [corpus["jwt"][0]],
        "trajectories": [{"task": "deploy " + corpus["stripe"][0], "outcome": "success", "steps": _steps(corpus)}],
    }
    from memp_mcp.engine.library import FORMAT_NAME, FORMAT_VERSION

    header.update(format=FORMAT_NAME, version=FORMAT_VERSION)
    library = tmp_path / "lib.jsonl"
    library.write_text(json.dumps(header) + "\n" + json.dumps(procedure) + "\n")
    code, out = _run("import", str(library))
    out = " ".join(out.split())
    assert code == 0, out
    assert "redacted before storing" in out and "procedures[0].steps[0]: github-token" in out
    assert_no_secret(out, corpus)
    assert_no_secret(database_bytes(cli_db), corpus)


def test_import_of_skills_stores_no_secret(cli_db: Path, tmp_path: Path) -> None:
    corpus = secret_corpus(4)
    folder = tmp_path / "skills" / "deploy-app"
    folder.mkdir(parents=True)
    steps = "\n".join(f"{n}. {' '.join(text.split())}" for n, (text, _) in enumerate(corpus.values(), 1))
    pem = corpus["pem private key"][0]
    folder.joinpath("SKILL.md").write_text(
        "---\nname: deploy-app\ndescription: Deploy the app to production with its credentials.\n---\n"
        f"# Deploy the app\n\n## Steps\n{steps}\n\nThe key file:\n\n```\n{pem}\n```\n"
    )
    # A supporting file kept whole with the skill holds one too.
    (folder / "scripts").mkdir()
    (folder / "scripts" / "deploy.sh").write_text("#!/bin/sh\n" + next(iter(corpus.values()))[0] + "\n")
    code, out = _run("import", str(tmp_path / "skills"))
    assert code == 0, out
    assert "redacted before storing" in out
    assert_no_secret(database_bytes(cli_db), corpus)


def test_cli_edit_stores_no_secret(cli_db: Path) -> None:
    corpus = secret_corpus(5)
    memory = Memory(SQLiteStore(cli_db), FakeEmbedder())
    memory.record("deploy the app", ["make deploy"], "success")
    memory.store.close()
    code, out = _run(
        "edit", "1", "--step", corpus["aws key id"][0], "--step", corpus["aws secret"][0],
        "--pitfall", corpus["gitlab"][0], "--title", "Deploy for jane@example.org",
    )  # fmt: skip
    out = " ".join(out.split())
    assert code == 0, out
    assert "steps[0]: aws-access-key" in out and "title: email" in out
    assert_no_secret(database_bytes(cli_db), corpus)
    assert b"jane@example.org" not in database_bytes(cli_db)


def _store_secrets_around_the_engine(path: Path, corpus: dict[str, tuple[str, str]]) -> None:
    store = SQLiteStore(path)
    _write_secrets_around_the_engine(store, corpus)
    store.close()


def _write_secrets_around_the_engine(store: Store, corpus: dict[str, tuple[str, str]]) -> None:
    """A database written before redaction existed: secrets in a procedure, its history, a trajectory,
    a search key and a logged recall."""
    from memp_mcp.models import Outcome, Step

    texts = [text for text, _ in corpus.values()]
    with store.transaction():
        trajectory = store.add_trajectory(
            "default", "deploy with " + texts[0], [Step(action=t, observation=t) for t in texts], Outcome.SUCCESS
        )
        procedure = store.add_procedure(
            "default", "Deploy the app", "deploying " + texts[1], texts[:8], [texts[8]], "agent", None,
            [trajectory], trajectory, [("deploy with " + texts[2], None)],
        )  # fmt: skip
        store.revise_procedure(procedure, reason="more", changed_by=None, steps=texts[8:])
        store.add_recall_event("r1", "default", "deploy with " + texts[3], [procedure], "hybrid")


def test_export_refuses_a_procedure_holding_a_secret(cli_db: Path, tmp_path: Path) -> None:
    corpus = secret_corpus(6)
    _store_secrets_around_the_engine(cli_db, corpus)
    code, out = _run("export", "-o", str(tmp_path / "out.jsonl"))
    assert code == 2 and "procedure 1 ('Deploy the app') holds a secret" in out and "scan --fix" in out
    assert len(out.strip().splitlines()) == 1
    assert not (tmp_path / "out.jsonl").exists()
    code, out = _run("export")
    assert code == 2 and out.count("\n") == 1, out
    code, out = _run("export", "--format", "skills", str(tmp_path / "skills"))
    assert code == 2 and "procedure 1" in out
    assert not (tmp_path / "skills").exists()


def test_scan_fix_redacts_stored_secrets_history_included(cli_db: Path, tmp_path: Path) -> None:
    corpus = secret_corpus(7)
    _store_secrets_around_the_engine(cli_db, corpus)
    code, out = _run("scan")
    out = " ".join(out.split())
    assert code == 1 and "procedure_versions 1/1 steps_json" in out and "--fix" in out
    assert_no_secret(out, corpus)
    _, out = _run("doctor")
    assert re.search(r"FAIL secrets stored: [1-9][0-9]* \(in 10 texts\)", " ".join(out.split())), out
    code, out = _run("scan", "--all", "--fix")
    assert code == 0 and "redacted" in out, out
    _, out = _run("doctor")
    assert "ok secrets stored: 0" in " ".join(out.split()), out
    assert_no_secret(database_bytes(cli_db), corpus)
    code, out = _run("scan", "--all")
    assert code == 0 and out.startswith("no secrets"), out
    code, out = _run("export", "-o", str(tmp_path / "out.jsonl"))
    assert code == 0, out
    procedure = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[1])
    assert procedure["steps"][0] == "SLACK_BOT_TOKEN=<redacted:slack-token> python bot.py"


@pytest.mark.backends("sqlite", "postgresql")
def test_the_team_store_is_scanned_fixed_and_recorded_into_without_secrets(store: Store) -> None:
    from memp_mcp.engine.scan import scan

    corpus = secret_corpus(8)
    _write_secrets_around_the_engine(store, corpus)
    found = scan(store, "default", fix=False)
    assert {f.table for f in found.found} == {
        "trajectories", "procedures", "procedure_versions", "procedure_keys", "recall_events",
    }  # fmt: skip
    assert scan(store, "elsewhere", fix=False).found == []
    scan(store, None, fix=True)
    memory = Memory(store, FakeEmbedder())
    recorded = memory.record("rotate keys " + corpus["aws key id"][0], _steps(corpus), "success")
    assert recorded.procedure_id is not None and recorded.redacted
    stored = json.dumps([row.values for row in store.stored_rows()])
    assert_no_secret(stored, corpus)
    assert "<redacted:github-token>" in stored
    assert scan(store, None, fix=False).found == []


def test_a_long_tool_output_is_redacted_across_the_cuts_that_abridge_it() -> None:
    from memp_mcp.hooks.transcript import OBSERVATION_CHARS, ToolCall, call_step

    corpus = secret_corpus(9)
    half = OBSERVATION_CHARS // 2
    pem, token = corpus["pem private key"][1], corpus["github classic"][1]
    head = "a" * (half - 200) + pem  # the key block runs across the head's cut
    tail = "<private>internal-host-7 " + "d" * 400 + "</private> then " + token + " " + "e" * (half - 300)
    result = head + "b" * 50_000 + tail  # the private span opens before the tail's cut
    step = call_step(ToolCall("Bash", {"command": f"deploy --token {token}"}, result, answered=True))
    assert step.observation is not None and "[..." in step.observation
    assert_no_secret(step.observation + step.action, corpus)
    assert "internal-host-7" not in step.observation and "dddd" not in step.observation
    assert "<redacted:github-token>" in step.observation and "<redacted:private-key>" in step.observation


def test_migrate_refuses_to_carry_stored_secrets_into_the_team_store(tmp_path: Path, postgres_url: str) -> None:
    corpus = secret_corpus(10)
    path = tmp_path / "old.db"
    _store_secrets_around_the_engine(path, corpus)
    code, out = _run("migrate", "--db", str(path), "--to", postgres_url)
    out = " ".join(out.split())
    assert code == 2 and "nothing migrated" in out and "scan --all --fix" in out, out
    assert_no_secret(out, corpus)


def test_an_outcome_report_stores_no_secret_and_its_pitfalls_no_personal_data(tmp_path: Path) -> None:
    corpus = secret_corpus(11)
    memory = Memory(SQLiteStore(tmp_path / "m.db"), FakeEmbedder())
    memory.record("publish the package", ["make dist", "twine upload dist/*"], "success")
    recall = memory.recall("publish the package for jane.roe@example.org")
    assert recall.recall_id is not None
    reported = memory.report_outcome(
        recall.recall_id,
        False,
        notes="upload refused with " + corpus["stripe"][0],
        correction=corpus["slack"][0],
        trajectory=_steps(corpus),
    )
    assert "notes: stripe-key" in reported.redacted and "correction: slack-token" in reported.redacted
    procedure = memory.get_procedure(reported.credited_procedure_ids[0]).procedure
    assert "jane.roe@example.org" not in json.dumps(procedure.pitfalls)
    memory.store.close()
    assert_no_secret(database_bytes(tmp_path / "m.db"), corpus)


@pytest.mark.parametrize(
    "text",
    [
        "api_key" * 3000,
        "api_key='a'," * 2000,
        "x." * 10000 + "password=abc123XYZ",
        '{"password": "' * 2000,
        "TOKEN=" * 4000,
        "aws " * 5000 + "secret",
        "http://a:b@" * 3000,
    ],
    ids=["keywords", "quoted", "dotted-name", "json", "tokens", "aws", "urls"],
)
def test_text_built_to_make_patterns_backtrack_is_read_in_bounded_work(text: str) -> None:
    # Some of these took minutes when the patterns read whole lines: each must simply finish.
    assert redact(text).text


def test_every_secret_of_a_long_environment_dump_is_redacted() -> None:
    corpus = secret_corpus(12)
    names = [f"SERVICE_{n}_TOKEN=" + ("ghp_" + "A" * 36 if n % 7 == 0 else f"${{VAULT_{n}}}") for n in range(400)]
    dump = "\n".join([*names, "STRIPE_KEY=" + corpus["stripe"][1], "DB_PASSWORD=" + corpus["password in env"][1]])
    assert_no_secret(redact(dump).text, {k: corpus[k] for k in ("stripe", "password in env")})
    assert "ghp_" not in redact(dump).text
