"""`memp-mcp install claude-code`: adds the server and hooks, idempotently, and keeps every other byte."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memp_mcp.cli import app
from memp_mcp.errors import InvalidInputError
from memp_mcp.hooks import jsonedit
from memp_mcp.hooks.install import HOOK_EVENTS, SERVER_NAME, Change, apply, is_our_hook

runner = CliRunner()

# A user's settings as people and tools leave them: four-space indent, a key order of their own,
# other tools' hooks (one on an event memp-mcp also uses), unicode, and no final newline.
SETTINGS = """{
    "permissions": {"allow": ["Bash(npm test:*)", "Read(*)"], "deny": []},
    "model": "opus",
    "hooks": {
        "PreToolUse": [
            {
                "matcher": "Bash",
                "hooks": [{"type": "command", "command": "~/bin/guard.sh", "timeout": 5}]
            }
        ],
        "UserPromptSubmit": [
            {
                "hooks": [
                    {"type": "command", "command": "echo \\"Branch: $(git branch --show-current)\\""}
                ]
            }
        ]
    },
    "statusLine": {"type": "command", "command": "printf 'caf\u00e9 \u2615'"}
}"""

CLAUDE_JSON = """{
  "numStartups": 42,
  "projects": {"/home/me/app": {"allowedTools": [], "mcpServers": {}}},
  "mcpServers": {
    "github": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]}
  },
  "tipsHistory": {"memory": 3}
}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(SETTINGS, encoding="utf-8")
    (home / ".claude.json").write_text(CLAUDE_JSON, encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    return home


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def only_insertions(before: str, after: str) -> bool:
    """True when `after` is `before` with text inserted and nothing deleted or rewritten."""
    opcodes = difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
    return all(tag in ("equal", "insert") for tag, *_ in opcodes)


def our_hooks(settings: dict[str, object]) -> dict[str, list[dict[str, object]]]:
    hooks = settings.get("hooks")
    assert isinstance(hooks, dict)
    return {event: [h for g in groups for h in g["hooks"] if is_our_hook(h)] for event, groups in hooks.items()}


def test_install_adds_hooks_and_server_and_keeps_everything_else(home: Path) -> None:
    code, out = run("install", "claude-code")
    assert code == 0, out
    settings_text = (home / ".claude" / "settings.json").read_text(encoding="utf-8")
    servers_text = (home / ".claude.json").read_text(encoding="utf-8")
    assert only_insertions(SETTINGS, settings_text) and only_insertions(CLAUDE_JSON, servers_text)
    settings = json.loads(settings_text)
    ours = our_hooks(settings)
    for event, timeout in HOOK_EVENTS.items():
        assert len(ours[event]) == 1 and ours[event][0]["timeout"] == timeout
        assert str(ours[event][0]["command"]).endswith(" hook")
    # The other tools' hooks are still there, first, unchanged.
    assert settings["hooks"]["UserPromptSubmit"][0] == json.loads(SETTINGS)["hooks"]["UserPromptSubmit"][0]
    assert settings["hooks"]["PreToolUse"] == json.loads(SETTINGS)["hooks"]["PreToolUse"]
    assert {k: v for k, v in settings.items() if k != "hooks"} == {
        k: v for k, v in json.loads(SETTINGS).items() if k != "hooks"
    }
    # New lines follow the file's own four-space indentation.
    assert '\n        "SessionStart": [\n            {\n' in settings_text
    servers = json.loads(servers_text)
    assert servers["mcpServers"]["github"] == json.loads(CLAUDE_JSON)["mcpServers"]["github"]
    entry = servers["mcpServers"][SERVER_NAME]
    assert entry["type"] == "stdio" and entry["args"][-2:] == ["serve", "--project-namespace"]
    assert Path(entry["command"]).is_absolute()


def test_install_twice_changes_nothing_and_uninstall_restores_the_original_bytes(home: Path) -> None:
    assert run("install", "claude-code")[0] == 0
    first = [(home / ".claude" / "settings.json").read_bytes(), (home / ".claude.json").read_bytes()]
    code, out = run("install", "claude-code")
    assert code == 0 and out.count("already up to date") == 2, out
    assert [(home / ".claude" / "settings.json").read_bytes(), (home / ".claude.json").read_bytes()] == first
    assert run("install", "claude-code", "--uninstall")[0] == 0
    assert (home / ".claude" / "settings.json").read_text(encoding="utf-8") == SETTINGS
    assert (home / ".claude.json").read_text(encoding="utf-8") == CLAUDE_JSON


def test_a_moved_installation_replaces_its_old_hooks(home: Path) -> None:
    stale = json.loads(SETTINGS)
    stale["hooks"]["Stop"] = [{"hooks": [{"type": "command", "command": "/old/venv/bin/memp-mcp hook", "timeout": 5}]}]
    (home / ".claude" / "settings.json").write_text(json.dumps(stale, indent=2))
    assert run("install", "claude-code")[0] == 0
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    assert [h["command"] for h in our_hooks(settings)["Stop"]] != ["/old/venv/bin/memp-mcp hook"]
    assert all(len(our_hooks(settings)[event]) == 1 for event in HOOK_EVENTS)
    assert "PreToolUse" in settings["hooks"] and not our_hooks(settings)["PreToolUse"]


def test_dry_run_prints_the_change_and_writes_nothing(home: Path) -> None:
    code, out = run("install", "claude-code", "--dry-run")
    assert code == 0
    assert "+++ " in out and '+        "SessionStart": [' in out and f'+    "{SERVER_NAME}"' in out
    assert (home / ".claude" / "settings.json").read_text(encoding="utf-8") == SETTINGS
    assert (home / ".claude.json").read_text(encoding="utf-8") == CLAUDE_JSON


def test_project_scope_writes_the_project_files_at_the_git_root(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "app"
    (project / ".git").mkdir(parents=True)
    (project / "src").mkdir()
    monkeypatch.chdir(project / "src")
    assert run("install", "claude-code", "--scope", "project")[0] == 0
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    assert set(our_hooks(settings)) == set(HOOK_EVENTS)
    server = json.loads((project / ".mcp.json").read_text())["mcpServers"][SERVER_NAME]
    # Files everyone who clones the project shares name the command, not this machine's path to it.
    assert server["command"] == "memp-mcp"
    assert all(h["command"] == "memp-mcp hook" for hooks in our_hooks(settings).values() for h in hooks)
    # The user's files are not touched.
    assert (home / ".claude" / "settings.json").read_text(encoding="utf-8") == SETTINGS
    assert run("install", "claude-code", "--scope", "project", "--uninstall")[0] == 0
    # Files the install created are gone again; a file that held more keeps the rest.
    assert not (project / ".claude" / "settings.json").exists() and not (project / ".mcp.json").exists()
    (project / ".mcp.json").write_text('{"mcpServers": {"db": {"command": "db-mcp"}}}\n')
    assert run("install", "claude-code", "--scope", "project")[0] == 0
    assert run("install", "claude-code", "--scope", "project", "--uninstall")[0] == 0
    assert (project / ".mcp.json").read_text() == '{"mcpServers": {"db": {"command": "db-mcp"}}}\n'
    # An empty object memp-mcp did not write stays.
    (project / ".claude" / "settings.json").parent.mkdir(exist_ok=True)
    (project / ".claude" / "settings.json").write_text("{}\n")
    assert run("install", "claude-code", "--scope", "project", "--uninstall")[0] == 0
    assert (project / ".claude" / "settings.json").read_text() == "{}\n"


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (".claude/settings.json", '{"hooks": [1, 2]', "not valid JSON"),
        (".claude/settings.json", '{"hooks": []}', '"hooks" is not an object'),
        (".claude/settings.json", "[]", "does not hold a JSON object"),
        (".claude.json", '{"mcpServers": {"procedural-memory": {"command": "other-tool"}}}', "is not memp-mcp"),
        (".claude/settings.json", '{"hooks": {}, "model": "opus", "hooks": {"Stop": []}}', "'hooks' appears twice"),
    ],
)
def test_files_it_cannot_edit_safely_are_left_alone(home: Path, file: str, content: str, message: str) -> None:
    (home / file).write_text(content)
    code, out = run("install", "claude-code")
    assert code == 2 and message in " ".join(out.split()), out
    assert (home / file).read_text() == content
    other = ".claude.json" if file != ".claude.json" else ".claude/settings.json"
    assert (home / other).read_text(encoding="utf-8") in (SETTINGS, CLAUDE_JSON)


def test_a_symlinked_settings_file_is_written_where_it_points_and_stays_a_link(home: Path) -> None:
    dotfiles = home / "dotfiles"
    dotfiles.mkdir()
    settings = home / ".claude" / "settings.json"
    (dotfiles / "claude-settings.json").write_text(SETTINGS, encoding="utf-8")
    settings.unlink()
    settings.symlink_to(dotfiles / "claude-settings.json")
    assert run("install", "claude-code")[0] == 0
    assert settings.is_symlink()
    assert our_hooks(json.loads((dotfiles / "claude-settings.json").read_text()))["Stop"]


def test_a_settings_file_changed_since_it_was_read_is_not_overwritten(home: Path) -> None:
    settings = home / ".claude" / "settings.json"
    stale = Change(settings, before=SETTINGS, after='{"hooks": {}}\n')
    settings.write_text('{"model": "sonnet"}\n')  # the client saved its settings meanwhile
    with pytest.raises(InvalidInputError, match="changed while memp-mcp was editing it"):
        apply([stale])
    assert settings.read_text() == '{"model": "sonnet"}\n'


@pytest.mark.parametrize(
    "text",
    ["{}", "{}\n", '{"a": 1}', '{\r\n  "a": [1, {"b": null}],\r\n  "c": "\\u00e9"\r\n}\r\n', '{"hooks": {}}'],
)
def test_append_then_remove_is_the_identity(text: str) -> None:
    root = jsonedit.parse(text)
    added = jsonedit.append(text, root, {"x": [1, 2]}, key="new")
    assert json.loads(added) == {**json.loads(text), "new": {"x": [1, 2]}}
    grown = jsonedit.parse(added)
    assert jsonedit.remove(added, grown, len(grown.items) - 1) == text


REPOSITORY = Path(__file__).resolve().parent.parent


def test_the_plugin_in_the_repository_installs_the_same_hooks_and_server() -> None:
    from memp_mcp.engine.skills import read_skill, spec_problems
    from memp_mcp.hooks.install import hook_entry, server_entry

    marketplace = json.loads((REPOSITORY / ".claude-plugin" / "marketplace.json").read_text())
    entry = marketplace["plugins"][0]
    plugin = REPOSITORY / entry["source"]
    manifest = json.loads((plugin / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == entry["name"] and marketplace["owner"]["name"]
    hooks = json.loads((plugin / "hooks" / "hooks.json").read_text())["hooks"]
    assert hooks == {event: [hook_entry(["memp-mcp"], timeout)] for event, timeout in HOOK_EVENTS.items()}
    servers = json.loads((plugin / ".mcp.json").read_text())["mcpServers"]
    assert servers == {SERVER_NAME: server_entry(["memp-mcp"])}
    skills = sorted((plugin / "skills").iterdir())
    assert skills and all(spec_problems(read_skill(folder)) == [] for folder in skills)


def test_installing_one_scope_warns_when_the_other_has_the_hooks_too(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "app"
    (project / ".git").mkdir(parents=True)
    monkeypatch.chdir(project)
    code, out = run("install", "claude-code")
    assert code == 0 and "also installed" not in out
    code, out = run("install", "claude-code", "--scope", "project")
    said = " ".join(out.split())
    assert code == 0 and "hooks are also installed for the user scope" in said and "runs each of them twice" in said
    assert "--scope user --uninstall" in said
    code, out = run("install", "claude-code")
    assert code == 0 and "also installed for the project scope" in " ".join(out.split())
    # Taking one out is what the warning asks for: no warning then.
    code, out = run("install", "claude-code", "--scope", "project", "--uninstall")
    assert code == 0 and "also installed" not in out
