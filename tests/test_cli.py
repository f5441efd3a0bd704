"""The remediator command: check, audit list, actions, and serve's refusals."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from remediator.app import SERVICE, create_app
from remediator.cli import cmd_check, main
from remediator.clock import FakeClock
from remediator.settings import Settings
from remediator.store import SCHEMA
from tests.conftest import AUTH, EXAMPLE_RULES, body

Client = TestClient[Any, Any]
CLEAN_ENV = {"PATH": "/usr/bin:/bin"}  # no REMEDIATOR_* from the caller's environment


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "remediator.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_check_lists_the_example_rules() -> None:
    out = io.StringIO()
    assert cmd_check(EXAMPLE_RULES, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[-1] == "OK: 2 rules in 2 files"
    assert any("scale-out-on-high-cpu: HighCPUUsage -> scale" in line for line in lines)


def test_check_reports_every_error_and_exits_1(rules_dir: Path) -> None:
    (rules_dir / "a.yaml").write_text("rules:\n  - name: a\n    matc: {}\n")
    (rules_dir / "b.yaml").write_text("rules:\n  - name: b\n    match: {alertname: X}\n")
    result = run_cli("check", str(rules_dir))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "3 errors in the rule set"
    assert f'{rules_dir}/a.yaml:3:5: rule "a": matc: unknown key' in lines
    assert f'{rules_dir}/a.yaml:2:5: rule "a": match: required key is missing' in lines
    assert any(
        line.startswith(f'{rules_dir}/b.yaml:2:5: rule "b":')
        and "set exactly one of action (one step) or steps" in line
        for line in lines
    )


def test_serve_refuses_invalid_rules(rules_dir: Path, tmp_path: Path) -> None:
    (rules_dir / "a.yaml").write_text("rules:\n  - name: a\n    bogus: 1\n")
    result = run_cli(
        "serve",
        "--rules-dir",
        str(rules_dir),
        "--state-file",
        str(tmp_path / "s.db"),
        "--insecure-no-auth",
    )
    assert result.returncode == 1
    assert result.stderr.startswith("remediator: refusing to start: ")
    assert 'rule "a": bogus: unknown key' in result.stderr


def test_serve_names_a_bad_setting(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "--listen",
        "nowhere",
        "--insecure-no-auth",
        env={**CLEAN_ENV, "REMEDIATOR_ACTIONS_PER_MINUTE": "0"},
    )
    assert result.returncode == 2
    assert "--listen / REMEDIATOR_LISTEN: 'nowhere' is not HOST:PORT" in result.stderr
    assert "--actions-per-minute / REMEDIATOR_ACTIONS_PER_MINUTE" in result.stderr


def test_help_documents_every_setting_with_its_environment_variable() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in (
        "REMEDIATOR_LISTEN",
        "REMEDIATOR_BEARER_TOKEN_FILE",
        "REMEDIATOR_DRY_RUN",
        "REMEDIATOR_ALLOW_NAMESPACES",
        "REMEDIATOR_KUBECONFIG",
    ):
        assert f"[{name}]" in text


def test_actions_lists_rbac_and_examples() -> None:
    out = io.StringIO()
    sys_stdout = sys.stdout
    try:
        sys.stdout = out
        assert main(["actions"]) == 0
    finally:
        sys.stdout = sys_stdout
    text = out.getvalue()
    assert "scale\n" in text
    assert "rollout_restart\n" in text
    assert '"resources": ["deployments/scale", "statefulsets/scale"]' in text


async def test_audit_list_filters_and_prints_json(
    aiohttp_client: Callable[..., Awaitable[Client]],
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    settings = make_settings()
    app = create_app(settings, clock=clock, registry=CollectorRegistry(), gateway=None)
    client = await aiohttp_client(app)
    served: web.Application = client.app
    for name in ("firing-checkout-grouped", "firing-db-pool", "repeat-db-pool"):
        response = await client.post("/api/v1/alerts", data=body(name), headers=AUTH)
        assert response.status == 200
        await served[SERVICE].executor.drained()

    state = str(settings.state_file)
    since = "2026-11-22T00:00:00Z"
    everything = run_cli("audit", "list", "--state-file", state, "--since", since, "--json")
    assert everything.returncode == 0, everything.stderr
    records = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [r["outcome"] for r in records] == ["skipped", "dry_run", "dry_run"]  # newest first

    skipped = run_cli("audit", "list", "--state-file", state, "--outcome", "skipped", "--json")
    (record,) = [json.loads(line) for line in skipped.stdout.splitlines()]
    assert record["guardrail"] == "duplicate"
    assert record["rule"] == "restart-on-db-pool-exhausted"

    by_target = run_cli(
        "audit", "list", "--state-file", state, "--target", "Deployment/shop/checkout"
    )
    lines = by_target.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "TIME", "(UTC)"]
    assert len(lines) == 2
    assert "scale-out-on-high-cpu" in lines[1]

    future = run_cli("audit", "list", "--state-file", state, "--since", "2030-01-01", "--json")
    assert future.stdout == ""


def test_audit_list_names_a_record_that_does_not_read_back(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    conn = sqlite3.connect(state)
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT INTO audit (at, rule, target, outcome, fingerprint, decision_id, record)"
        " VALUES ('2026-11-22T21:14:16.000000Z', 'r', NULL, 'skipped', 'f', NULL, ?)",
        ('{"at": "2026-11-22T21:14:16.000000Z", "outcome": "skipped"}',),
    )
    conn.commit()
    conn.close()
    result = run_cli("audit", "list", "--state-file", str(state))
    assert result.returncode == 2
    assert result.stderr.startswith(
        "remediator: audit record 1 does not read back as an audit record:"
    )
    assert "rule" in result.stderr  # names what is missing
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("when", ["yesterday", "5 minutes"])
def test_audit_list_rejects_a_bad_time(tmp_path: Path, when: str) -> None:
    state = tmp_path / "s.db"
    state.touch()
    result = run_cli("audit", "list", "--state-file", str(state), "--since", when)
    assert result.returncode == 2
    assert "is neither a duration (30m, 2h) nor an ISO 8601 time" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "remediator: no webhook credentials configured"),
        (
            ["--insecure-no-auth", "--kubeconfig", "{tmp}/nope"],
            "remediator: kubeconfig {tmp}/nope does not exist",
        ),
        (
            ["--insecure-no-auth", "--state-file", "{tmp}/file/state.db"],
            "remediator: cannot open the state file {tmp}/file/state.db",
        ),
    ],
    ids=["no-credentials", "missing-kubeconfig", "state-file-not-creatable"],
)
def test_serve_refuses_to_start_with_a_one_line_reason(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "file").write_text("")  # a file where a directory would be needed
    defaults = ["--rules-dir", str(EXAMPLE_RULES), "--state-file", str(tmp_path / "s.db")]
    argv = [a.format(tmp=tmp_path) for a in args]
    result = run_cli("serve", "--listen", "127.0.0.1:0", *defaults, *argv, env=CLEAN_ENV)
    assert result.returncode == 2
    assert result.stderr.startswith(message.format(tmp=tmp_path))
    assert len(result.stderr.splitlines()) == 1
