"""Secrets and personal data found in text, and the text with each replaced by a typed placeholder.

Secrets are found by detect-secrets' plugins (the formats it knows: GitHub, GitLab, AWS key ids,
Azure storage keys, Slack, Stripe, OpenAI, Telegram and Discord bot tokens, JWTs, private keys,
passwords in URLs and in assignments) and by precise patterns for formats its plugins miss
(fine-grained GitHub tokens, Anthropic and project-scoped OpenAI keys, GCP keys, Azure connection
strings and SAS signatures, AWS secret keys on a command line, Docker, Mailgun, Vault, Shopify,
Databricks, HuggingFace and Google OAuth tokens, authorization headers, curl -u, .netrc, whole PEM
blocks). Each is replaced by `<redacted:KIND>`, so
a step stays readable: `export GITHUB_TOKEN=<redacted:github-token> && gh release create v1.2.0`.

`<private>...</private>` spans are dropped whole, leaving PRIVATE_MARK. Personal data (e-mail
addresses, phone numbers, street addresses) is replaced only where a caller asks
(`redact_personal`): in the texts that travel with a procedure (its title and when-to-use).

Plugins are loaded on first use (detect-secrets imports an HTTP client for its optional verifiers).
Each detector reads only bounded windows around its trigger words, all of which are found in one
pass of an Aho-Corasick automaton: text with nothing of the kind costs that one pass, and no text
costs more than a few passes however it is built (`memp-mcp bench redaction` measures it).
"""

from __future__ import annotations

import base64
import functools
import importlib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

PRIVATE_MARK = "<private:dropped>"
_PLACEHOLDER = re.compile(r"<redacted:[a-z0-9-]+>")
# A private span runs to its closing tag, or to the end of the text when the tag was cut off.
_PRIVATE = re.compile(r"<private>.*?(?:</private>|\Z)", re.DOTALL | re.IGNORECASE)
_PRIVATE_TAIL = re.compile(r"\A.*</private>", re.DOTALL | re.IGNORECASE)
# Characters a token continues with: a match a plugin cut short (a JWT's signature, a Stripe key
# longer than the plugin's 24 characters) is widened over them.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


# A value found once is looked for in the texts that come with it only when it is this long: a
# short one ("8080", a four-letter password) would be replaced wherever its letters occur.
_MIN_KNOWN_CHARS = 8


def placeholder(kind: str) -> str:
    return f"<redacted:{kind}>"


@dataclass(frozen=True)
class _Detector:
    kind: str
    triggers: tuple[str, ...]  # substrings, as written (case counts), without which it cannot match
    find: Callable[[str], Iterator[tuple[int, int]]]  # spans of secret values
    widen: bool = False
    # What it matches lies on one line: it runs around its triggers, not over the whole text (a
    # 20,000-character output with the word "password" in one line costs a few hundred characters).
    one_line: bool = True
    # How far past its trigger a match can end. A detector reads a window around its triggers, not
    # the whole line: some patterns backtrack quadratically over a long line (minified code, JSON).
    reach: int = 2_048


def _regex(pattern: str, group: int = 0, flags: int = 0) -> Callable[[str], Iterator[tuple[int, int]]]:
    compiled = re.compile(pattern, flags)

    def find(text: str) -> Iterator[tuple[int, int]]:
        for match in compiled.finditer(text):
            if match.group(group):
                yield match.span(group)

    return find


def _values(
    plugin: Callable[[], Any], credible: Callable[[str], bool] = lambda _: True, *, label: str = ""
) -> Callable[[str], Iterator[tuple[int, int]]]:
    """Spans of the values a detect-secrets plugin (made by `plugin` when first needed) finds in the
    text (it reports values, not places); a `label` it reports with the value (`AccountKey=`) is left
    in place."""

    def find(text: str) -> Iterator[tuple[int, int]]:
        for value in set(plugin().analyze_string(text)):
            if not value or not credible(value):
                continue
            start = text.find(value)
            while start != -1:
                yield start + (len(label) if value.startswith(label) else 0), start + len(value)
                start = text.find(value, start + len(value))

    return find


def _plugin(module: str, name: str) -> Callable[[], Any]:
    """A detect-secrets plugin, imported and made on first use: a text that never triggers one (most
    prompts) never loads detect-secrets, which imports an HTTP client for its optional verifiers."""

    @functools.cache
    def make() -> Any:
        return getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)()

    return make


def _entropy(value: str) -> float:
    counts: dict[str, int] = {}
    for char in value:
        counts[char] = counts.get(char, 0) + 1
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


_CODE = re.compile(r"^[$%{<@]|[(){}\[\]<>]")
# Quoted, a value is a literal: parentheses are only code when the whole value is a call
# (Django's generated SECRET_KEY values draw from "!@#$%^&*(-_=+)").
_QUOTED_CODE = re.compile(r"^[$%{<@]|[{}\[\]<>]|^[A-Za-z_][\w.]*\(.*\)$")
# Unquoted, a name is a variable (`password = raw_password`, `token: settings.API_TOKEN`) unless it
# holds a digit, as generated and chosen passwords do.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z_]*$|^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_PLACEHOLDER_WORDS = re.compile(
    r"(?i)^(x+|\*+|\.+|changeme|change_me|password\d*|secret\d*|example\w*|your\w*|dummy\w*|test\w*|fake\w*"
    r"|placeholder|redacted|null|none|true|false|hunter2|admin|root|sample\w*|foo\w*|bar\w*|xxx\w*)$"
)


def credible_secret(value: str, quoted: bool = True) -> bool:
    """Whether a value assigned to a secret-sounding name looks like a credential rather than code:
    not a variable, call or reference (`$TOKEN`, `self.password`, `os.environ[...]`), not an
    obvious placeholder, long enough and mixed enough to be a real one."""
    value = value.strip()
    code = _QUOTED_CODE if quoted else _CODE
    if len(value) < 8 or " " in value or code.search(value) or _PLACEHOLDER_WORDS.match(value):
        return False
    if not quoted and _NAME.match(value):
        return False
    if value.startswith(("/", "./", "~", "http")) and "@" not in value:
        return False  # a path or a URL (a URL's password is the basic-auth detector's)
    classes = sum(
        any(test(c) for c in value) for test in (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
    )
    return classes >= 3 or (classes >= 2 and _entropy(value) >= 3.0)


_SECRET_WORD = re.compile(
    r"(?i)password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth[_-]?key|private[_-]?key"
    r"|encryption[_-]?key|master[_-]?key|signing[_-]?key|[_.-]pass$"
)
# "pass" alone names a secret as a quoted key or given a value with "=" ("pass": "...", pass=...); test
# output's "PASS: test_name" does not.
_BARE_PASS = re.compile(r"(?i)[\"']pass[\"']|pass\s*=")
# A name, then its value: each read possessively (no backtracking into them), the name checked for a
# secret word afterwards, so that a long run of name characters costs one pass.
_ASSIGNED = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]{1,80}+)[\"']?\s*+(?::=|=|:)\s*+([\"']?)([^\s\"'`,;]++)\2")
_FLAG = re.compile(r"(?i)--(?:password|passwd|token|api-key|secret|access-key|client-secret)(?:=|\s+)([^\s\"'`]+)")


def _assigned(text: str) -> Iterator[tuple[int, int]]:
    """Values given to secret-sounding names in shell, env files, YAML and command flags."""
    for match in _ASSIGNED.finditer(text):
        name = match.group(1)
        secret_name = _SECRET_WORD.search(name) or (
            name.lower() == "pass" and _BARE_PASS.match(text, match.start(1) - 1 if match.start(1) else 0)
        )
        if secret_name and credible_secret(match.group(3), quoted=bool(match.group(2))):
            yield match.span(3)
    for match in _FLAG.finditer(text):
        # A flag's value is a literal (a shell has no dotted variables): `--password=my.s3cret.pw` is one.
        if credible_secret(match.group(1)):
            yield match.span(1)


def _assignments(find: Callable[[str], Iterator[tuple[int, int]]]) -> Callable[[str], Iterator[tuple[int, int]]]:
    """`find` run only on text that can hold a quoted value given to a name: every pattern of
    detect-secrets' keyword detector needs a quote and one of = : ( ; (they backtrack long on text
    that has neither)."""

    def guarded(text: str) -> Iterator[tuple[int, int]]:
        if any(q in text for q in "\"'`") and any(a in text for a in "=:(;"):
            yield from find(text)

    return guarded


# Domains reserved for documentation and tests (RFC 2606, RFC 6761): a URL's password there is an example.
_EXAMPLE_HOST = re.compile(r"@(?:[A-Za-z0-9-]+\.)*(?:example\.(?:com|net|org)|example|test|invalid)(?![A-Za-z0-9.-])")


def _url_passwords(find: Callable[[str], Iterator[tuple[int, int]]]) -> Callable[[str], Iterator[tuple[int, int]]]:
    """A URL's passwords, but those of example hosts and the placeholders already there."""

    def passwords(text: str) -> Iterator[tuple[int, int]]:
        for start, end in find(text):
            if not _PLACEHOLDER.search(text[start:end]) and not _EXAMPLE_HOST.match(text, end):
                yield start, end

    return passwords


# The words of detect-secrets' keyword list (plugins/keyword.py DENYLIST) as triggers: "key" alone
# would send most code to its regexes.
_KEYWORDS = (
    "password", "passwd", "pwd", "secret", "contrase", "api_key", "apikey", "api-key", "auth_key", "authkey",
    "service_key", "servicekey", "account_key", "accountkey", "db_key", "dbkey", "database_key", "priv_key",
    "privkey", "private_key", "privatekey", "client_key", "clientkey", "db_pass", "dbpass", "database_pass",
    "key_pass", "keypass",
)  # fmt: skip


def _any_case(*words: str) -> tuple[str, ...]:
    """Triggers for words written in any usual case: password, PASSWORD, Password, apiKey, ApiKey."""
    variants: list[str] = []
    for word in words:
        camel = word.replace("_key", "Key").replace("key", "Key").replace("pass", "Pass").replace("token", "Token")
        variants += [word, word.upper(), word.capitalize(), camel, camel[:1].upper() + camel[1:]]
    return tuple(dict.fromkeys(variants))


# "token" alone is in most code and prose (tokenizer, tokens used): a token's name is an
# environment variable, a snake-case or camel-case name, or a word given a value.
_TOKEN_NAMES = ("TOKEN", "_token", "-token", "Token", "token=", "token:", 'token"', "token'")
# Keys named for what they do (ENCRYPTION_KEY, RAILS_MASTER_KEY), and "pass" as a name of its own
# (DB_PASS, "pass": ...) but not inside a word (bypass, passthrough, 3 passed).
_KEY_NAMES = ("access_key", "accesskey", "access-key", "encryption_key", "master_key", "signing_key")
_PASS_NAMES = ("PASS", "_pass", "-pass", "Pass", '"pass"', "'pass'", "pass=", "pass:")


def _token_formats() -> tuple[_Detector, ...]:
    """Token formats that open with their own prefix: detect-secrets' plugins where it has one
    (Telegram, Discord), precise patterns for the rest (the prefixes their vendors document)."""
    return (
        _Detector("docker-token", ("dckr_",), _regex(r"\bdckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}")),
        # A bot token's secret half opens with "A" (as gitleaks' rule reads it): ":A" is its trigger.
        # Not widened: in the API's URLs the token follows "bot" (api.telegram.org/bot123:AA.../getMe).
        _Detector("telegram-token", (":A",), _values(_plugin("telegram_token", "TelegramBotTokenDetector"))),
        # The first part is a numeric bot id in base64: 1-9 as a first digit encode to these prefixes.
        _Detector(
            "discord-token",
            ("MT", "Mj", "Mz", "ND", "NT", "Nj", "Nz", "OD", "OT"),
            _values(_plugin("discord", "DiscordBotTokenDetector")),
            True,
            reach=100,
        ),
        _Detector("mailgun-key", ("key-",), _regex(r"\bkey-[0-9a-f]{32}(?![A-Za-z0-9_-])")),
        _Detector("vault-token", ("hvs.", "hvb.", "hvr."), _regex(r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}")),
        _Detector(
            "shopify-token",
            ("shpat_", "shpca_", "shppa_", "shpss_"),
            _regex(r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}(?![A-Za-z0-9_-])"),
        ),
        _Detector("databricks-token", ("dapi",), _regex(r"\bdapi[a-f0-9]{32}(?:-\d+)?(?![A-Za-z0-9_-])")),
        # Both cases required: "hf_" and 30 letters of one case are a name (hf_hubdownloadconfiguration...).
        _Detector(
            "huggingface-token",
            ("hf_",),
            _regex(r"\bhf_(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*[A-Z])[A-Za-z0-9]{30,}(?![A-Za-z0-9_-])"),
        ),
        _Detector(
            "slack-token",
            ("xapp-", "xoxe"),
            _regex(r"\b(?:xapp-\d|xoxe(?:\.xox[a-z])?-\d)-[A-Za-z0-9-]{20,}"),
        ),
        _Detector("stripe-key", ("whsec_",), _regex(r"\bwhsec_[A-Za-z0-9+/=]{24,}")),
        _Detector("google-oauth-token", ("ya29.",), _regex(r"\bya29\.[0-9A-Za-z_-]{20,}")),
    )


# Triggers for header names in any case: their distinctive tails, matched by the detector's (?i) pattern.
_HEADER_TRIGGERS = ("uthorization", "UTHORIZATION", "-key", "-Key", "-KEY", "-token", "-Token", "-TOKEN")
_HEADER = re.compile(
    r"(?i)\b(?:proxy-)?(?:authorization|x-api-key|x-auth-token|x-access-token|x-api-token)[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:basic|token|bearer|digest)\s+)?([A-Za-z0-9_.~+/=-]+)"
)


def _header_values(text: str) -> Iterator[tuple[int, int]]:
    """`Authorization: Basic ...`/`Token ...` and API-key header values that look like credentials."""
    for match in _HEADER.finditer(text):
        if credible_secret(match.group(1)):
            yield match.span(1)


# curl's -u/--user takes user:password (the password alone is taken; a `$VAR` is left).
_CURL_USER = re.compile(r"\bcurl\b[^\n|;&]*?\s(?:-u|--user)(?:=|\s*)[\"']?[^\s:\"'$]*:([^\s\"'@$][^\s\"'@]*)")


def _curl_user_passwords(text: str) -> Iterator[tuple[int, int]]:
    for match in _CURL_USER.finditer(text):
        if not _PLACEHOLDER_WORDS.match(match.group(1)) and not _PLACEHOLDER.search(match.group(1)):
            yield match.span(1)


# A .netrc's `password VALUE`: on a `machine` line, or at the start of a line of its own.
_NETRC = re.compile(r"(?im)(?:^[ \t]*|\bmachine\s+\S+\s+(?:login\s+\S+\s+)?)password[ \t]+([^\s\"'\\]+)")


def _netrc_passwords(text: str) -> Iterator[tuple[int, int]]:
    for match in _NETRC.finditer(text):
        if credible_secret(match.group(1), quoted=False):
            yield match.span(1)


_DOCKER_AUTH = re.compile(r'"auth"\s*:\s*"([A-Za-z0-9+/]{8,}={0,2})"')


def _docker_auths(text: str) -> Iterator[tuple[int, int]]:
    """Docker config.json's `"auth"`: base64 of user:password (checked to decode to one)."""
    for match in _DOCKER_AUTH.finditer(text):
        try:
            decoded = base64.b64decode(match.group(1), validate=True)
        except ValueError:
            continue
        if b":" in decoded:
            yield match.span(1)


@functools.cache
def _detectors() -> tuple[_Detector, ...]:

    pem = (
        r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----"
        r"(?:.*?-----END \1PRIVATE KEY\2-----|[A-Za-z0-9+/=\s\\:,.-]*)"
    )
    return (
        # Whole blocks first: a PEM key inside a GCP service-account file, JSON-escaped or not.
        _Detector("private-key", ("PRIVATE KEY",), _regex(pem, flags=re.DOTALL), one_line=False),
        _Detector("private-key", ("PuTTY-User-Key",), _values(_PuttyKey), one_line=False),
        _Detector("anthropic-key", ("sk-ant-",), _regex(r"sk-ant-[A-Za-z0-9_-]{20,}")),
        _Detector("openai-key", ("sk-",), _regex(r"\bsk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}")),
        _Detector("openai-key", ("T3BlbkFJ",), _values(_plugin("openai", "OpenAIDetector")), widen=True),
        _Detector(
            "github-token",
            ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
            _values(_plugin("github_token", "GitHubTokenDetector")),
            True,
        ),
        _Detector("github-token", ("github_pat_",), _regex(r"github_pat_[A-Za-z0-9_]{30,}")),
        _Detector(
            "gitlab-token",
            (
                "glpat-",
                "gldt-",
                "glft-",
                "glsoat-",
                "glrt-",
                "GR1348941",
                "glcbt-",
                "glimt-",
                "glptt-",
                "glagent-",
                "gloas-",
            ),
            _values(_plugin("gitlab_token", "GitLabTokenDetector")),
            True,
        ),
        _Detector(
            "aws-access-key", ("A3T", "ABIA", "ACCA", "AKIA", "ASIA"), _values(_plugin("aws", "AWSKeyDetector")), True
        ),
        _Detector(
            "aws-secret-key",
            _any_case("aws"),
            _regex(
                r"(?i)aws.{0,30}?(?:secret|key)[\w-]{0,20}[\"']?(?:\s*[=:]\s*|\s+)[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
                1,
            ),
            reach=200,
        ),
        _Detector("gcp-api-key", ("AIza",), _regex(r"AIza[0-9A-Za-z_-]{35}")),
        _Detector("gcp-key-id", ("private_key_id",), _regex(r"\"private_key_id\"\s*:\s*\"([0-9a-f]{40})\"", 1)),
        _Detector(
            "azure-storage-key",
            ("AccountKey",),
            _values(_plugin("azure_storage_key", "AzureStorageKeyDetector"), label="AccountKey="),
        ),
        _Detector(
            "azure-key",
            ("SharedAccessKey", "AccountKey", "sig=", *_any_case("subscription-key", "api-key", "functions-key")),
            _regex(
                r"(?i)(?:SharedAccessKey|AccountKey|[?&]sig|subscription-key|(?<![\w-])api-key|functions-key)[\"']?\s*[=:]\s*"
                r"[\"']?([A-Za-z0-9+/%]{32,}={0,2})",
                1,
            ),
        ),
        _Detector("slack-token", ("xox", "hooks.slack.com"), _values(_plugin("slack", "SlackDetector")), True),
        _Detector("stripe-key", ("sk_live_", "rk_live_"), _values(_plugin("stripe", "StripeDetector")), True),
        _Detector("stripe-key", ("sk_test_", "rk_test_"), _regex(r"\b[rs]k_test_[0-9a-zA-Z]{24,}")),
        *_token_formats(),
        _Detector("jwt", ("eyJ",), _values(_plugin("jwt", "JwtTokenDetector")), True),
        _Detector("npm-token", ("npm_", "_authToken"), _values(_plugin("npm", "NpmDetector")), True),
        # The plugin reads `//registry/:_authToken=` only; `npm config set ... :_authToken npm_...` and a
        # bare token are npm's too.
        _Detector("npm-token", ("npm_",), _regex(r"\bnpm_[A-Za-z0-9]{36}(?![A-Za-z0-9])")),
        _Detector("npm-token", ("_authToken",), _regex(r":_authToken(?:\s*=\s*|\s+)[\"']?([A-Za-z0-9_.+/=-]{16,})", 1)),
        _Detector("pypi-token", ("pypi-",), _values(_plugin("pypi_token", "PypiTokenDetector")), True),
        _Detector("sendgrid-key", ("SG.",), _values(_plugin("sendgrid", "SendGridDetector")), True),
        _Detector("mailchimp-key", ("-us",), _values(_plugin("mailchimp", "MailchimpDetector")), True),
        _Detector("password", ("://",), _url_passwords(_values(_plugin("basic_auth", "BasicAuthDetector")))),
        _Detector("bearer-token", _any_case("bearer"), _regex(r"(?i)\bbearer\s+([A-Za-z0-9_.~+/=-]{16,})", 1)),
        # Other schemes and API-key headers, in any case (HTTP header names are case-insensitive).
        _Detector("auth-header", _HEADER_TRIGGERS, _header_values, reach=400),
        _Detector("password", ("curl",), _curl_user_passwords),
        _Detector("password", _any_case("password"), _netrc_passwords, reach=400),
        # A URL whose user is empty (redis://:pw@host): basic_auth's pattern wants a user.
        _Detector("password", ("://:",), _url_passwords(_regex(r"://:([^\s/@:{}\"']+)@", 1))),
        _Detector("docker-auth", ('"auth"',), _docker_auths),
        _Detector(
            "secret",
            _any_case(*_KEYWORDS),
            _assignments(_values(_plugin("keyword", "KeywordDetector"), credible_secret)),
            reach=500,
        ),
        _Detector(
            "secret",
            (*_any_case(*_KEYWORDS, *_KEY_NAMES), *_TOKEN_NAMES, *_PASS_NAMES),
            _assigned,
        ),
    )


class _PuttyKey:
    def analyze_string(self, text: str) -> Iterator[str]:
        found = re.search(r"PuTTY-User-Key-File-\d:.*?(?:Private-MAC: [0-9a-f]+|\Z)", text, re.DOTALL)
        if found:
            yield found.group(0)


class Redacted(NamedTuple):
    text: str
    kinds: tuple[str, ...] = ()  # the kind of each secret replaced, in order of appearance, repeats kept
    # The values replaced, by value: held in memory only, so that a caller can take the same values
    # out of the texts that come with this one (`known`), where they appear without the context that
    # made them recognisable (a key echoed bare in a command's output). Never stored, never shown.
    values: Mapping[str, str] = MappingProxyType({})


def redact(text: str, known: Mapping[str, str] | None = None) -> Redacted:
    """`text` with private spans dropped and every secret found replaced by its typed placeholder,
    and so is every secret value of `known` (value -> kind) that it holds."""
    found_at = _triggers_in(text)
    if not found_at and not known:
        return Redacted(text)  # the common case, kept cheap: most texts hold no trigger at all
    kinds: list[str] = []
    if not found_at.keys().isdisjoint(_PRIVATE_TAGS):
        text, dropped = _PRIVATE.subn(PRIVATE_MARK, text)
        # A closing tag left over: its opening was cut off before the text came here.
        text, cut = _PRIVATE_TAIL.subn(PRIVATE_MARK, text)
        kinds += ["private"] * (dropped + cut)
        found_at = _triggers_in(text)
    spans: list[tuple[int, int, str]] = []
    for detector in _detectors() if found_at else ():
        if found_at.keys().isdisjoint(detector.triggers):
            continue
        for start, end in _found(detector, text, found_at):
            if detector.widen:
                while start > 0 and text[start - 1] in _TOKEN_CHARS:
                    start -= 1
                while end < len(text) and text[end] in _TOKEN_CHARS:
                    end += 1
            spans.append((start, end, detector.kind))
    for value, kind in (known or {}).items():
        start = text.find(value)
        while start != -1:
            spans.append((start, start + len(value), kind))
            start = text.find(value, start + len(value))
    if not spans:
        return Redacted(text, tuple(kinds))
    parts: list[str] = []
    values: dict[str, str] = {}
    position = 0
    # Earliest first, and of two overlapping, the one found first (detectors are ordered from the
    # most specific): an overlapped span is already covered.
    for start, end, kind in sorted(spans, key=lambda s: s[0]):
        if start < position:
            continue
        if _PLACEHOLDER.fullmatch(text[start:end]):
            continue
        parts += [text[position:start], placeholder(kind)]
        kinds.append(kind)
        if end - start >= _MIN_KNOWN_CHARS:
            values[text[start:end]] = kind
        position = end
    parts.append(text[position:])
    return Redacted("".join(parts), tuple(kinds), values)


_PRIVATE_TAGS = ("private>", "PRIVATE>", "Private>")


def _triggers_in(text: str) -> dict[str, list[int]]:
    """Where each trigger (and private tag) occurs in `text`."""
    triggers, automaton = _triggers()
    found_at: dict[str, list[int]] = {}
    for index, start, _ in automaton.find_matches_as_indexes(text, overlapping=True):
        found_at.setdefault(triggers[index], []).append(start)
    return found_at


@functools.cache
def _triggers() -> tuple[list[str], Any]:
    """Every detector's triggers and the private tags in one automaton: the text is read once, not once
    per trigger."""
    import ahocorasick_rs

    triggers = sorted({trigger for detector in _detectors() for trigger in detector.triggers} | set(_PRIVATE_TAGS))
    # A DFA: built once per process (about a millisecond), it reads long tool outputs twice as fast.
    automaton = ahocorasick_rs.AhoCorasick(
        triggers, matchkind=ahocorasick_rs.MatchKind.Standard, implementation=ahocorasick_rs.Implementation.DFA
    )
    return triggers, automaton


# Context a window keeps before its trigger (a secret's name: DB_PASSWORD=).
_WINDOW_BEFORE = 100
# What continues a value cut by a window's end: anything up to a space, quote or separator.
_VALUE_TAIL = re.compile(r"[^\s\"'`,;]*")


def _found(detector: _Detector, text: str, found_at: dict[str, list[int]]) -> Iterator[tuple[int, int]]:
    if not detector.one_line:
        yield from detector.find(text)
        return
    starts = sorted(at for trigger in detector.triggers for at in found_at.get(trigger, ()))
    # A trigger this far inside the last window read was read with room for its value: windows
    # advance by about `reach`, however densely a text repeats a trigger.
    margin = min(200, detector.reach // 2)
    covered = -1
    for at in starts:
        if at + margin <= covered:
            continue
        line_end = text.find("\n", at)
        last = min(len(text) if line_end == -1 else line_end, at + detector.reach)
        first = max(text.rfind("\n", 0, at) + 1, at - _WINDOW_BEFORE)
        for start, end in detector.find(text[first:last]):
            end += first
            if end == last:
                # A value running past the window (an STS token of 1,000 characters) is taken whole, to
                # the end of its token, not cut where the window happened to end.
                end = _VALUE_TAIL.match(text, end).end()  # type: ignore[union-attr]  # `*`: always matches
            yield first + start, end
        covered = last


# -- personal data ---------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_PHONE = re.compile(
    r"(?<![\w/.#=-])(?:"
    r"\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]\d{2,4}){1,4}"  # international: +44 20 7946 0958
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}"  # (555) 123-4567
    r"|\d{3}[\s.-]\d{3}[\s.-]\d{4}"  # 555-123-4567
    r")(?![\w-])"
)
_STREET = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter"
    r"|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Trl"
)
_ADDRESS = re.compile(
    rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][A-Za-z'-]*\.?\s+){{1,4}}(?:{_STREET})\b\.?"
    r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*[\w-]+)?"
    r"(?:,\s*[A-Z][A-Za-z .'-]{1,40}?,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?)?"
)


def redact_personal(text: str) -> Redacted:
    """`text` with e-mail addresses, phone numbers and street addresses replaced by placeholders."""
    kinds: list[str] = []
    for kind, pattern in (("address", _ADDRESS), ("email", _EMAIL), ("phone", _PHONE)):
        text, count = pattern.subn(placeholder(kind), text)
        kinds += [kind] * count
    return Redacted(text, tuple(kinds))
