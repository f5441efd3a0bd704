"""Every setting of ``remediator serve``, documented where it is declared.

Each setting has a command-line flag and an environment variable (``REMEDIATOR_*``); the flag
wins. ``--help`` and the README's settings table are generated from ``SETTINGS`` below, so the
documentation cannot drift from the code. Secrets are best given as files (``*_FILE``) so they
do not show up in ``ps`` or in the environment of child processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

LogFormat = Literal["auto", "json", "console"]
MIB = 1024 * 1024


@dataclass(frozen=True)
class Setting:
    name: str
    flag: str
    env: str
    help: str
    kind: Literal["str", "int", "float", "bool", "path", "list"] = "str"
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "listen",
        "--listen",
        "REMEDIATOR_LISTEN",
        "HOST:PORT to serve the webhook, /healthz, /readyz and /metrics on. "
        "Default 127.0.0.1:9095 (loopback: set 0.0.0.0:9095 in a pod).",
    ),
    Setting(
        "rules_dir",
        "--rules-dir",
        "REMEDIATOR_RULES_DIR",
        "Directory of rule files (*.yaml, *.yml). Default ./rules.",
        "path",
    ),
    Setting(
        "state_file",
        "--state-file",
        "REMEDIATOR_STATE_FILE",
        "SQLite file for decisions, guardrail state and the audit trail; created if "
        "missing. Default ./remediator.db.",
        "path",
    ),
    Setting(
        "bearer_token",
        "--bearer-token",
        "REMEDIATOR_BEARER_TOKEN",
        "Accept 'Authorization: Bearer TOKEN' (Alertmanager http_config.authorization).",
        secret=True,
    ),
    Setting(
        "bearer_token_file",
        "--bearer-token-file",
        "REMEDIATOR_BEARER_TOKEN_FILE",
        "File holding the bearer token (surrounding whitespace is ignored).",
        "path",
    ),
    Setting(
        "basic_auth_user",
        "--basic-auth-user",
        "REMEDIATOR_BASIC_AUTH_USER",
        "Accept HTTP basic auth with this user (Alertmanager http_config.basic_auth).",
    ),
    Setting(
        "basic_auth_password",
        "--basic-auth-password",
        "REMEDIATOR_BASIC_AUTH_PASSWORD",
        "Password for --basic-auth-user.",
        secret=True,
    ),
    Setting(
        "basic_auth_password_file",
        "--basic-auth-password-file",
        "REMEDIATOR_BASIC_AUTH_PASSWORD_FILE",
        "File holding the basic auth password.",
        "path",
    ),
    Setting(
        "insecure_no_auth",
        "--insecure-no-auth",
        "REMEDIATOR_INSECURE_NO_AUTH",
        "Serve the webhook without authentication. Without credentials and without this "
        "flag the service refuses to start.",
        "bool",
    ),
    Setting(
        "allow_namespaces",
        "--allow-namespaces",
        "REMEDIATOR_ALLOW_NAMESPACES",
        "Comma-separated namespaces actions may touch; shell-style globs allowed "
        "('team-*', '*'). Default: none, so every action is denied until you set it.",
        "list",
    ),
    Setting(
        "actions_per_minute",
        "--actions-per-minute",
        "REMEDIATOR_ACTIONS_PER_MINUTE",
        "Global budget: at most this many actions (any rule, any target) in any 60 s. "
        "Default 10: a storm of alerts must not become a storm of changes.",
        "int",
    ),
    Setting(
        "max_concurrent_actions",
        "--max-concurrent-actions",
        "REMEDIATOR_MAX_CONCURRENT_ACTIONS",
        "Decisions carried out at the same time; the rest wait their turn. Default 4.",
        "int",
    ),
    Setting(
        "dry_run",
        "--dry-run",
        "REMEDIATOR_DRY_RUN",
        "Decide and audit everything, change nothing: with a cluster, writes are sent with "
        "dryRun=All. Forced on when no cluster is configured.",
        "bool",
    ),
    Setting(
        "kubeconfig",
        "--kubeconfig",
        "REMEDIATOR_KUBECONFIG",
        "kubeconfig file. Default: in-cluster config in a pod, else $KUBECONFIG or "
        "~/.kube/config; with none of them the service runs dry-run only.",
        "path",
    ),
    Setting(
        "kube_context",
        "--kube-context",
        "REMEDIATOR_KUBE_CONTEXT",
        "kubeconfig context to use. Default: the current context.",
    ),
    Setting(
        "max_body_bytes",
        "--max-body-bytes",
        "REMEDIATOR_MAX_BODY_BYTES",
        "Largest webhook body accepted; larger gets 413. Default 1048576 (1 MiB): an "
        "Alertmanager notification of 50 alerts is about 60 KiB.",
        "int",
    ),
    Setting(
        "max_queue",
        "--max-queue",
        "REMEDIATOR_MAX_QUEUE",
        "Writes allowed to wait for the state file before the webhook answers 503 so "
        "Alertmanager retries later. Default 1000.",
        "int",
    ),
    Setting(
        "log_format",
        "--log-format",
        "REMEDIATOR_LOG_FORMAT",
        "auto (console on a terminal, JSON otherwise), json or console. Default auto.",
    ),
    Setting(
        "log_level",
        "--log-level",
        "REMEDIATOR_LOG_LEVEL",
        "debug, info, warning or error. Default info.",
    ),
)


class ConfigError(ValueError):
    """A setting is missing, malformed or unsafe; the message says which and why."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    listen: str = "127.0.0.1:9095"
    rules_dir: Path = Path("rules")
    state_file: Path = Path("remediator.db")
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    basic_auth_user: str | None = None
    basic_auth_password: SecretStr | None = None
    basic_auth_password_file: Path | None = None
    insecure_no_auth: bool = False
    allow_namespaces: tuple[str, ...] = ()
    actions_per_minute: int = Field(default=10, ge=1)
    max_concurrent_actions: int = Field(default=4, ge=1)
    dry_run: bool = False
    kubeconfig: Path | None = None
    kube_context: str | None = None
    max_body_bytes: int = Field(default=MIB, ge=1024)
    max_queue: int = Field(default=1000, ge=1)
    log_format: LogFormat = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not HOST:PORT")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> Settings:
        if self.bearer_token and self.bearer_token_file:
            raise ValueError("set --bearer-token or --bearer-token-file, not both")
        if self.basic_auth_password and self.basic_auth_password_file:
            raise ValueError("set --basic-auth-password or --basic-auth-password-file, not both")
        has_password = self.basic_auth_password or self.basic_auth_password_file
        if bool(self.basic_auth_user) != bool(has_password):
            raise ValueError("basic auth needs both --basic-auth-user and a password")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"  # noqa: S104

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def credentials(self) -> Credentials:
        """Read secret files now; refuse to run open unless told to."""
        token = _secret(self.bearer_token, self.bearer_token_file, "bearer token")
        password = _secret(
            self.basic_auth_password, self.basic_auth_password_file, "basic auth password"
        )
        basic = (self.basic_auth_user, password) if self.basic_auth_user and password else None
        if token is None and basic is None and not self.insecure_no_auth:
            raise ConfigError(
                "no webhook credentials configured: set REMEDIATOR_BEARER_TOKEN(_FILE) and/or "
                "REMEDIATOR_BASIC_AUTH_USER with a password, or pass --insecure-no-auth to "
                "accept unauthenticated webhooks"
            )
        return Credentials(bearer_token=token, basic=basic)


@dataclass(frozen=True)
class Credentials:
    bearer_token: str | None = None
    basic: tuple[str, str] | None = None

    @property
    def required(self) -> bool:
        return self.bearer_token is not None or self.basic is not None


def _secret(value: SecretStr | None, path: Path | None, what: str) -> str | None:
    if value is not None:
        secret = value.get_secret_value()
    elif path is not None:
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from exc
    else:
        return None
    if not secret:
        raise ConfigError(f"the {what} is empty")
    return secret


def parse_env_value(setting: Setting, raw: str) -> Any:
    if setting.kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{setting.env}={raw!r} is not a boolean (true/false)")
    if setting.kind == "list":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def settings_from(values: dict[str, Any], environ: dict[str, str]) -> Settings:
    """Merge flags (``values``, None where not given) over environment variables."""
    merged: dict[str, Any] = {}
    for setting in SETTINGS:
        flag_value = values.get(setting.name)
        if flag_value is not None and flag_value is not False:
            merged[setting.name] = (
                parse_env_value(setting, flag_value)
                if setting.kind == "list" and isinstance(flag_value, str)
                else flag_value
            )
        elif setting.env in environ:
            merged[setting.name] = parse_env_value(setting, environ[setting.env])
    try:
        return Settings.model_validate(merged)
    except ValueError as exc:
        raise ConfigError(_settings_message(exc)) from exc


def _settings_message(exc: ValueError) -> str:
    if not isinstance(exc, ValidationError):
        return str(exc)
    flags = {s.name: f"{s.flag} / {s.env}" for s in SETTINGS}
    parts = []
    for item in exc.errors(include_url=False, include_input=False):
        loc = item["loc"][0] if item["loc"] else ""
        where = flags.get(str(loc), "settings")
        parts.append(f"{where}: {str(item['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)
