"""Settings: environment variables, overrides, validation with messages that name the culprit."""

from __future__ import annotations

from pathlib import Path

import pytest

from memp_mcp.config import DEFAULT_EMBEDDING_MODEL, ENV_VARS, Settings, load_settings, validate_namespace
from memp_mcp.errors import InvalidInputError


def test_defaults_without_environment() -> None:
    settings = load_settings(environ={})
    assert settings.namespace == "default"
    assert settings.embedding_model == DEFAULT_EMBEDDING_MODEL
    assert settings.embeddings is True
    assert settings.model_dir is None
    assert settings.db_path.name == "memory.db"
    assert (settings.build_strategy, settings.retrieve_strategy, settings.update_strategy) == (
        "proceduralization",
        "hybrid",
        "adjustment",
    )


def test_every_env_var_maps_to_a_field() -> None:
    assert set(ENV_VARS.values()) <= set(Settings.model_fields)
    assert all(var.startswith("MEMP_") for var in ENV_VARS)


def test_environment_variables_are_read(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "MEMP_DB_PATH": str(tmp_path / "x.db"),
            "MEMP_NAMESPACE": "team/alpha",
            "MEMP_EMBEDDING_MODEL": "BAAI/bge-small-en-v1.5",
            "MEMP_MODEL_DIR": str(tmp_path / "model"),
            "MEMP_MODEL_CACHE_DIR": str(tmp_path / "cache"),
            "MEMP_EMBEDDINGS": "0",
            "MEMP_HUB_TIMEOUT": "1.5",
            "MEMP_PACKAGE_INDEX": "https://mirror.example/simple",
            "MEMP_BUILD_STRATEGY": "script",
            "MEMP_RETRIEVE_STRATEGY": "avefact",
            "MEMP_UPDATE_STRATEGY": "validation",
            "MEMP_READ_ONLY_NAMESPACES": "shared, curated ,",
            "MEMP_HTTP_TOKEN": "s3cret",
            "MEMP_LOG_LEVEL": "debug",
            "UNRELATED": "ignored",
        }
    )
    assert settings.db_path == tmp_path / "x.db"
    assert settings.namespace == "team/alpha"
    assert settings.embedding_model == "BAAI/bge-small-en-v1.5"
    assert settings.model_dir == tmp_path / "model"
    assert settings.model_cache_dir == tmp_path / "cache"
    assert settings.embeddings is False
    assert settings.hub_timeout == 1.5
    assert settings.package_index == "https://mirror.example/simple"
    assert settings.build_strategy == "script"
    assert settings.retrieve_strategy == "avefact"
    assert settings.update_strategy == "validation"
    assert settings.read_only_namespaces == frozenset({"shared", "curated"})
    assert settings.http_token == "s3cret"
    assert settings.log_level == "DEBUG"


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMP_NAMESPACE", "from-env")
    assert load_settings().namespace == "from-env"


def test_overrides_win_and_none_overrides_are_ignored(tmp_path: Path) -> None:
    env = {"MEMP_NAMESPACE": "from-env", "MEMP_DB_PATH": str(tmp_path / "env.db"), "MEMP_LOG_LEVEL": "ERROR"}
    settings = load_settings({"namespace": "from-flag", "db_path": None, "log_level": "warning"}, environ=env)
    assert settings.namespace == "from-flag"
    assert settings.db_path == tmp_path / "env.db"
    assert settings.log_level == "WARNING"


def test_empty_variables_mean_unset() -> None:
    assert load_settings(environ={"MEMP_NAMESPACE": "", "MEMP_HUB_TIMEOUT": ""}).namespace == "default"


def test_home_is_expanded_in_paths() -> None:
    settings = load_settings(environ={"MEMP_DB_PATH": "~/memp/x.db", "MEMP_MODEL_DIR": "~/model"})
    assert settings.db_path == Path.home() / "memp" / "x.db"
    assert settings.model_dir == Path.home() / "model"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("MEMP_HUB_TIMEOUT", "soon"),
        ("MEMP_HUB_TIMEOUT", "0"),
        ("MEMP_HUB_TIMEOUT", "-3"),
        ("MEMP_EMBEDDINGS", "maybe"),
        ("MEMP_BUILD_STRATEGY", "magic"),
        ("MEMP_RETRIEVE_STRATEGY", "bm25"),
        ("MEMP_UPDATE_STRATEGY", "never"),
        ("MEMP_LOG_LEVEL", "LOUD"),
        ("MEMP_NAMESPACE", "has spaces"),
        ("MEMP_NAMESPACE", "x" * 65),
        ("MEMP_READ_ONLY_NAMESPACES", "ok,not ok"),
    ],
)
def test_bad_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(InvalidInputError, match=var):
        load_settings(environ={var: value})


def test_bad_override_names_the_option_not_the_variable() -> None:
    with pytest.raises(InvalidInputError) as info:
        load_settings({"namespace": "no way!"}, environ={"MEMP_NAMESPACE": "fine"})
    assert "option namespace" in str(info.value)
    assert "MEMP_NAMESPACE" not in str(info.value)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="colour"):
        load_settings({"colour": "blue"}, environ={})


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(InvalidInputError) as info:
        load_settings(environ={"MEMP_HUB_TIMEOUT": "x", "MEMP_UPDATE_STRATEGY": "y"})
    assert "MEMP_HUB_TIMEOUT" in str(info.value)
    assert "MEMP_UPDATE_STRATEGY" in str(info.value)


def test_secret_values_are_not_echoed() -> None:
    with pytest.raises(InvalidInputError) as info:
        load_settings({"http_token": 12345}, environ={})
    assert "12345" not in str(info.value)


@pytest.mark.parametrize("good", ["default", "proj-1", "team/alpha", "a.b_c", "X" * 64, "  padded  "])
def test_valid_namespaces(good: str) -> None:
    assert validate_namespace(good) == good.strip()


@pytest.mark.parametrize("bad", ["", "   ", "with space", "semi;colon", "quote'", "é", "x" * 65, "tab\tname"])
def test_invalid_namespaces(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="namespace"):
        validate_namespace(bad)


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(ValueError, match="frozen"):
        settings.namespace = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"tokens": []}', "at least one token"),
        ('{"tokens": [{"token": "short", "principal": "a"}]}', "at least 16 characters"),
        ('{"tokens": [{"token": "0123456789abcdef", "principal": "local:me"}]}', "'principal' must be a name"),
        ('{"tokens": [{"token": "0123456789abcdef", "principal": "a", "write": "team"}]}', "'write' must be a list"),
    ],
)
def test_a_token_file_that_cannot_be_used_is_refused_with_what_is_wrong(
    tmp_path: Path, content: str, message: str
) -> None:
    from memp_mcp.principals import load_token_file

    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        load_token_file(path)


def test_a_principal_reads_what_it_may_write_and_defaults_to_a_namespace_it_may_use(tmp_path: Path) -> None:
    from memp_mcp.principals import load_token_file, principal_for

    path = tmp_path / "tokens.json"
    path.write_text(
        '{"tokens": [{"token": "0123456789abcdef", "principal": "ci", "read": ["docs"], "write": ["builds"]},'
        ' {"token": "fedcba9876543210", "principal": "ops", "read": ["*"], "write": ["*"]}]}'
    )
    principals = load_token_file(path)
    ci = principal_for("0123456789abcdef", principals)
    assert ci is not None and ci.name == "ci"
    assert ci.may_read("docs") and ci.may_read("builds") and ci.may_write("builds")
    assert not ci.may_write("docs") and not ci.may_read("default")
    assert ci.default_namespace("default") == "builds"
    ops = principal_for("fedcba9876543210", principals)
    assert ops is not None and ops.may_write("anything") and ops.default_namespace("default") == "default"
    assert principal_for("0123456789abcdeX", principals) is None
