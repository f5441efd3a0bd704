"""Settings from flags and environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.settings import SETTINGS, ConfigError, Settings, settings_from


def no_flags() -> dict[str, object]:
    return {s.name: None for s in SETTINGS}


def test_environment_variables_fill_every_setting(tmp_path: Path) -> None:
    settings = settings_from(
        no_flags(),
        {
            "REMEDIATOR_LISTEN": "0.0.0.0:8080",
            "REMEDIATOR_RULES_DIR": str(tmp_path),
            "REMEDIATOR_ALLOW_NAMESPACES": "shop, payments ,,team-*",
            "REMEDIATOR_DRY_RUN": "true",
            "REMEDIATOR_ACTIONS_PER_MINUTE": "3",
            "REMEDIATOR_BEARER_TOKEN": "secret",
        },
    )
    assert settings.port == 8080
    assert settings.host == "0.0.0.0"
    assert settings.rules_dir == tmp_path
    assert settings.allow_namespaces == ("shop", "payments", "team-*")
    assert settings.dry_run is True
    assert settings.actions_per_minute == 3
    assert settings.credentials().bearer_token == "secret"


def test_a_flag_wins_over_its_environment_variable() -> None:
    flags = {**no_flags(), "listen": "127.0.0.1:1234", "allow_namespaces": "a,b"}
    settings = settings_from(flags, {"REMEDIATOR_LISTEN": "0.0.0.0:1", "REMEDIATOR_DRY_RUN": "1"})
    assert settings.port == 1234
    assert settings.allow_namespaces == ("a", "b")
    assert settings.dry_run is True


def test_every_setting_has_a_documented_flag_and_variable() -> None:
    fields = set(Settings.model_fields)
    assert {s.name for s in SETTINGS} == fields
    for setting in SETTINGS:
        assert setting.flag == "--" + setting.name.replace("_", "-")
        assert setting.env == "REMEDIATOR_" + setting.name.upper()
        assert len(setting.help) > 20


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REMEDIATOR_DRY_RUN": "maybe"}, "REMEDIATOR_DRY_RUN='maybe' is not a boolean"),
        ({"REMEDIATOR_LISTEN": "8080"}, "--listen / REMEDIATOR_LISTEN: '8080' is not HOST:PORT"),
        ({"REMEDIATOR_MAX_CONCURRENT_ACTIONS": "0"}, "--max-concurrent-actions"),
        (
            {"REMEDIATOR_BASIC_AUTH_USER": "am"},
            "basic auth needs both --basic-auth-user and a password",
        ),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from(no_flags(), env)


def test_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    settings = Settings(bearer_token_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"cannot read the bearer token file .*missing"):
        settings.credentials()


def test_empty_secret_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="the bearer token is empty"):
        Settings(bearer_token_file=empty).credentials()
