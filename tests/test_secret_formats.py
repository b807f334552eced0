"""Secret formats and contexts issue 36 found stored as they were, each taken out on the real entry paths.

Every example is a fake but well-formed value, generated here per seed, written the way an agent or a
tool's output writes it. Each goes in through the engine's record (what the `record_trajectory` tool
calls) and through a hook's Stop turn, and must then be found nowhere in the database's bytes.
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

from memp_mcp.config import load_settings
from memp_mcp.engine.memory import Memory
from memp_mcp.hooks.handlers import run_hook
from memp_mcp.hooks.memories import FreshMemories
from memp_mcp.redact import redact
from memp_mcp.store import SQLiteStore
from tests.claude_code_session import Transcript
from tests.conftest import FakeEmbedder
from tests.test_redaction import database_bytes, secret_corpus

LOWER_HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"


def _mixed(rng: random.Random, size: int, chars: str = ALNUM) -> str:
    """A random value holding every kind of character `chars` has (upper- and lower-case letters, digits),
    as generated tokens do (a draw of lower-case letters alone would not be one)."""
    kinds = [test for test in (str.isupper, str.islower, str.isdigit) if any(test(c) for c in chars)]
    while True:
        value = "".join(rng.choice(chars) for _ in range(size))
        if all(any(test(c) for c in value) for test in kinds):
            return value


def _discord_token(rng: random.Random) -> str:
    """A Discord bot token: the bot's id in base64, a timestamp part, an HMAC part."""
    bot_id = str(rng.randint(10**17, 10**19 - 1)).encode()
    first = base64.b64encode(bot_id).decode().rstrip("=")
    return f"{first}.{_mixed(rng, 6, URLSAFE)}.{_mixed(rng, 27, URLSAFE)}"


def format_examples(seed: int) -> list[tuple[str, str, str, str]]:
    """[(name, text as written, the secret value in it, the placeholder kind expected)]."""
    rng = random.Random(seed)
    r = lambda size, chars=ALNUM: _mixed(rng, size, chars)  # noqa: E731
    hexes = lambda size: "".join(rng.choice(LOWER_HEX) for _ in range(size))  # noqa: E731
    basic = base64.b64encode(f"deploy:{r(16)}".encode()).decode()
    sts = r(700, ALNUM + "/+") + "=="  # an STS session token is several hundred characters long
    examples = [
        # Formats no detector knew.
        ("docker", "echo {} | docker login -u acme --password-stdin", f"dckr_pat_{r(27, URLSAFE)}", "docker-token"),
        ("telegram", "curl https://api.telegram.org/bot{}/getMe", f"{rng.randint(10**8, 10**9)}:AA{r(33, URLSAFE)}",
         "telegram-token"),
        ("discord", "DISCORD_BOT=1 node bot.js --login {}", _discord_token(rng), "discord-token"),
        ("mailgun", "curl -s --user 'api:{}' https://api.mailgun.net/v3/mg.acme.io/messages",
         f"key-{hexes(32)}", "mailgun-key"),
        ("vault", "vault login {}", f"hvs.{r(90, URLSAFE)}", "vault-token"),
        ("shopify", "curl -H 'X-Shopify-Access-Token: {}' https://acme.myshopify.com/admin/api/2024-01/shop.json",
         f"shpat_{hexes(32)}", "shopify-token"),
        ("databricks", "databricks configure --host https://acme.cloud.databricks.com --token-value {}",
         f"dapi{hexes(32)}", "databricks-token"),
        ("huggingface", "huggingface-cli login --token {}", f"hf_{r(34, string.ascii_letters)}", "huggingface-token"),
        ("slack app", "SLACK_APP=1 python app.py {}",
         f"xapp-1-A0{r(9).upper()}-{rng.randint(10**12, 10**13)}-{hexes(64)}", "slack-token"),
        ("slack refresh", "refreshed: {}", f"xoxe-1-{r(140)}", "slack-token"),
        ("stripe webhook", "stripe listen --forward-to localhost:8000/hooks  # signing with {}",
         f"whsec_{r(32)}", "stripe-key"),
        ("google oauth", "curl 'https://www.googleapis.com/drive/v3/files?access_token={}'",
         f"ya29.a0{r(150, URLSAFE)}", "google-oauth-token"),
        # Contexts no detector read.
        ("npm config", "npm config set //registry.npmjs.org/:_authToken {}", f"npm_{r(36)}", "npm-token"),
        ("curl basic auth", "curl -u deploy:{} https://ci.acme.io/api/builds", r(14), "password"),
        ("authorization basic", "curl -H 'authorization: Basic {}' https://ci.acme.io/api", basic, "auth-header"),
        ("authorization token", 'requests.get(url, headers={{"AUTHORIZATION": "Token {}"}})', hexes(40),
         "auth-header"),
        ("x-api-key", "curl -H 'x-api-key: {}' https://api.acme.io/v1/items", r(32), "auth-header"),
        ("X-API-Key", 'fetch(url, {{headers: {{"X-API-Key": "{}"}}}})', r(40), "auth-header"),
        ("netrc", "cat > ~/.netrc <<EOF\nmachine api.heroku.com\n  login ops@acme.io\n  password {}\nEOF",
         r(24), "password"),
        ("netrc one line", "printf 'machine git.acme.io login ci password {}\\n' >> ~/.netrc", r(18), "password"),
        ("docker config", 'cat ~/.docker/config.json\n{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}', basic,
         "docker-auth"),
        ("redis empty user", "redis-cli -u redis://:{}@cache.internal:6379/0 ping", r(20), "password"),
        ("encryption key", "export ENCRYPTION_KEY={} && ./run.sh", base64.b64encode(r(32).encode()).decode(),
         "secret"),
        ("rails master key", "RAILS_MASTER_KEY={} bin/rails server", hexes(32), "secret"),
        ("json pass", 'echo \'{{"user": "ops", "pass": "{}"}}\' > creds.json', r(16), "secret"),
        ("password flag with dots", "mysql --user=app --password={} shop", f"{r(6)}.{r(5)}.{r(4)}", "secret"),
        ("django secret key", "SECRET_KEY = '{}'",
         "django-insecure-" + "".join(rng.choice(string.ascii_lowercase + string.digits + "!@#%^&*(-_=+)")
                                      for _ in range(50)) + "(x)", "secret"),
        ("long session token", "export AWS_SESSION_TOKEN={}\naws s3 ls", sts, "secret"),
        ("long quoted token", "aws_session_token = \"{}\"", sts, "secret"),
        # Formats detected before, here so that every kind docs/privacy.md lists has a tested example.
        ("pypi", "twine upload -u __token__ -p {} dist/*", "pypi-AgEIcHlwaS5vcmc" + r(70, URLSAFE), "pypi-token"),
        ("sendgrid", "SENDGRID=1 ./mail.sh {}", f"SG.{r(22, URLSAFE)}.{r(43, URLSAFE)}", "sendgrid-key"),
        ("mailchimp", "mailchimp --key {}", f"{hexes(32)}-us{rng.randint(1, 20)}", "mailchimp-key"),
        ("bearer", "curl -H 'Authorization: Bearer {}' https://api.acme.io", r(40), "bearer-token"),
        ("azure api-key", "curl -H 'api-key: {}' https://acme.openai.azure.com/openai/deployments", hexes(32),
         "azure-key"),
    ]  # fmt: skip
    return [(name, template.format(value), value, kind) for name, template, value, kind in examples]


def _leaks(haystack: bytes | str, examples: list[tuple[str, str, str, str]]) -> list[str]:
    text = haystack.decode("utf-8", "replace") if isinstance(haystack, bytes) else haystack
    # A long value must be gone whole: neither it nor its last 40 characters (a tail left behind).
    return [name for name, _, value, _ in examples if value in text or value[-40:] in text]


EXAMPLE_NAMES = [name for name, *_ in format_examples(0)]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_each_format_and_context_is_redacted_with_its_kind(name: str, seed: int) -> None:
    example = next(e for e in format_examples(seed) if e[0] == name)
    _, text, value, kind = example
    redacted = redact(text)
    assert kind in redacted.kinds, (redacted.kinds, redacted.text)
    assert not _leaks(redacted.text, [example]), redacted.text
    # What is around the secret stays readable.
    assert redacted.text.split(f"<redacted:{kind}>")[0] == text.split(value)[0]


@pytest.mark.parametrize(
    "text",
    [
        "curl -u $CI_USER:$CI_TOKEN https://ci.acme.io/api",
        "docker run -u 1000:1000 -v $PWD:/src app",
        'headers = {"Authorization": f"Token {self.token}"}',
        "Authorization: Bearer $TOKEN",
        "the authorization: checked by the middleware",
        "password authentication failed for user app",
        "Password reset links expire after three days.",
        "if not self.pass_through: return",
        "PASS: http://www.djangoproject.com/ was accepted",
        "PASS: localhost:8000 -> localhost:8000",
        "ENCRYPTION_KEY=$(openssl rand -base64 32)",
        "master_key = settings.RAILS_MASTER_KEY",
        '"auth": "required"',
        "redis://localhost:6379/0",
        "key-value store",
        "ordering = ('-pub_date', 'headline')",
        "self.assertEqual(response.status_code, 200)",
    ],
)
def test_ordinary_development_text_near_the_new_formats_is_left_alone(text: str) -> None:
    assert redact(text).text == text


def test_formats_recorded_through_the_engine_are_nowhere_in_the_database(tmp_path: Path) -> None:
    examples = format_examples(1)
    memory = Memory(SQLiteStore(tmp_path / "m.db"), FakeEmbedder())
    steps: list[dict[str, Any]] = [
        {"action": text, "observation": f"ok; printed {value}", "thought": "set the credentials"}
        for _, text, value, _ in examples
    ]
    recorded = memory.record("deploy the app with " + examples[0][1], steps, "success")
    assert recorded.procedure_id is not None
    for index, (_, _, _, kind) in enumerate(examples):
        assert f"steps[{index}].action: {kind}" in recorded.redacted
    memory.store.close()
    assert _leaks(database_bytes(tmp_path / "m.db"), examples) == []


def test_formats_in_a_stop_hook_turn_are_nowhere_in_the_database(tmp_path: Path) -> None:
    examples = format_examples(2)
    settings = load_settings({"db_path": tmp_path / "data" / "memory.db", "hook_server": False}, environ={})
    project = tmp_path / "app"
    (project / ".git").mkdir(parents=True)
    transcript = Transcript(tmp_path / "t.jsonl", "s1", project)
    prompt = "deploy the app"
    transcript.prompt(prompt)
    for _, text, value, _ in examples:
        transcript.tool("Bash", {"command": text, "description": "set up"}, f"ok\n{value}\n")
    memories = FreshMemories(settings)
    base = {"session_id": "s1", "transcript_path": str(transcript.path), "cwd": str(project)}
    run_hook(json.dumps({**base, "hook_event_name": "UserPromptSubmit", "prompt": prompt}).encode(), settings, memories)
    run_hook(json.dumps({**base, "hook_event_name": "Stop"}).encode(), settings, memories)
    stored = database_bytes(settings.db_path)
    assert b"deploy the app" in stored  # the turn was recorded
    assert _leaks(stored, examples) == []
    beside = b"".join(p.read_bytes() for p in settings.db_path.parent.rglob("*") if p.is_file())
    assert _leaks(beside, examples) == []


# -- docs/privacy.md's table and the detectors -----------------------------------------------


def _documented_kinds() -> set[str]:
    text = (Path(__file__).resolve().parent.parent / "docs" / "privacy.md").read_text(encoding="utf-8")
    section = text.split("What is detected", 1)[1].split("### `<private>` spans", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {kind for row in rows for kind in re.findall(r"`([a-z0-9-]+)`", row.split("|")[1])}


def test_every_kind_privacy_md_lists_is_detected_by_a_tested_example_and_none_is_left_out() -> None:
    from memp_mcp.redact import _detectors

    detected = {kind for *_, kind in format_examples(0)}
    detected |= {kind for text, _ in secret_corpus(0).values() for kind in redact(text).kinds}
    assert _documented_kinds() - detected == set(), "listed in privacy.md but found by no tested example"
    assert {d.kind for d in _detectors()} - _documented_kinds() == set(), "detected but not listed in privacy.md"


@pytest.mark.parametrize(
    "text",
    ["curl " * 5000 + "-u a:b", "Authorization: " * 4000, "MTNDOTNz" * 5000, "machine a password " * 3000,
     "x" * 100_000 + "TOKEN=" + "A1b" * 2000],
    ids=["curl", "headers", "discord-prefixes", "netrc", "long-value"],
)  # fmt: skip
def test_text_dense_with_the_new_triggers_is_read_in_bounded_work(text: str) -> None:
    # Each new detector reads windows around its triggers: dense triggers must simply finish.
    assert redact(text).text
