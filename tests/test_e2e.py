"""End to end: a real Prometheus and Alertmanager (Debian packages) post to a running
``remediator serve``, which acts on Deployments in the fake API server through the official
client. Slow (two stack starts, ~40 s); needs ``prometheus`` and ``prometheus-alertmanager``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, SHARED

pytestmark = pytest.mark.e2e

SCRIPTS = SHARED / "scripts"
BASIC = ("alertmanager", "e2e-basic-password")
BEARER = "e2e-bearer-token"
WAIT = 60.0  # seconds; the first notifications arrive ~12 s after the stack starts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return str(response.read().decode())


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    """The fake API, remediator and Prometheus + Alertmanager, all on loopback."""

    kube_url: str
    remediator_url: str
    state_file: Path
    logs: dict[str, Path]

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        result: dict[str, Any] = get_json(self.kube_url + path)
        return result

    def wait_for(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.5)  # polling another process's effect, not timing an assertion
        details = "\n".join(f"--- {name}\n{tail(path)}" for name, path in self.logs.items())
        raise AssertionError(f"timed out after {WAIT:.0f}s waiting for {what}\n{details}")

    def audit(self) -> list[dict[str, Any]]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "remediator.cli",
                "audit",
                "list",
                "--state-file",
                str(self.state_file),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            cwd=REPO,
        )
        return [json.loads(line) for line in result.stdout.splitlines()]

    def metric(self, series: str) -> float:
        """The value of one exposed series, e.g. ``x_total{result="accepted"}``; 0 if absent."""
        for line in get_text(self.remediator_url + "/metrics").splitlines():
            name, _, value = line.rpartition(" ")
            if name == series:
                return float(value)
        return 0.0


def _start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    for binary in ("prometheus", "prometheus-alertmanager"):
        assert shutil.which(binary), (
            f"{binary} is not installed: apt-get install -y prometheus prometheus-alertmanager "
            "(.ci/run does this)"
        )
    processes: list[subprocess.Popen[bytes]] = []
    stack_dir = tmp_path / "stack"
    started_stack = False

    def start(*remediator_args: str, env: dict[str, str] | None = None) -> Stack:
        nonlocal started_stack
        base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        kubeconfig = tmp_path / "kubeconfig"
        kube_log = tmp_path / "fakekube.log"
        kube_port = free_port()
        kube = _start(
            [
                sys.executable,
                "-m",
                "tests.fakekube",
                "--port",
                str(kube_port),
                "--kubeconfig-out",
                str(kubeconfig),
                "--seed-deployment",
                "shop/checkout=3",
                "--seed-deployment",
                "payments/payments-api=2",
            ],
            kube_log,
            base_env,
        )
        processes.append(kube)
        kube_url = f"http://127.0.0.1:{kube_port}"
        port = free_port()
        state_file = tmp_path / "state.db"
        remediator_log = tmp_path / "remediator.log"
        logs = {
            "remediator": remediator_log,
            "fakekube": kube_log,
            "alertmanager": stack_dir / "alertmanager" / "alertmanager.log",
        }
        result = Stack(kube_url, f"http://127.0.0.1:{port}", state_file, logs)
        result.wait_for("the fake API server", lambda: _answers(kube_url + "/version"))
        remediator = _start(
            [
                sys.executable,
                "-m",
                "remediator.cli",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--rules-dir",
                str(REPO / "rules"),
                "--state-file",
                str(state_file),
                "--kubeconfig",
                str(kubeconfig),
                "--allow-namespaces",
                "shop,payments,data",
                "--log-format",
                "json",
                *remediator_args,
            ],
            remediator_log,
            {**base_env, **(env or {})},
        )
        processes.append(remediator)
        result.wait_for("remediator /readyz", lambda: _answers(result.remediator_url + "/readyz"))
        subprocess.run(
            [str(SCRIPTS / "start-alertmanager-stack.sh")],
            env={
                **base_env,
                "WEBHOOK_URL": result.remediator_url + "/api/v1/alerts",
                "PROM_PORT": str(free_port()),
                "AM_PORT": str(free_port()),
                "STACK_DIR": str(stack_dir),
                "WEBHOOK_BASIC_USER": BASIC[0],
                "WEBHOOK_BASIC_PASSWORD": BASIC[1],
                "WEBHOOK_BEARER_TOKEN": BEARER,
            },
            check=True,
            capture_output=True,
            timeout=90,
        )
        started_stack = True
        return result

    yield start

    if started_stack:
        subprocess.run(
            [str(SCRIPTS / "stop-alertmanager-stack.sh")],
            env={**os.environ, "STACK_DIR": str(stack_dir)},
            capture_output=True,
            timeout=60,
            check=False,
        )
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _answers(url: str) -> bool:
    try:
        get_text(url)
    except OSError:
        return False
    return True


def test_high_cpu_alert_scales_the_deployment_and_the_audit_shows_it(
    stack: Callable[..., Stack],
) -> None:
    running = stack("--insecure-no-auth")

    def scaled() -> bool:
        return int(running.deployment("shop", "checkout")["spec"]["replicas"]) == 5

    running.wait_for("shop/checkout scaled from 3 to 5", scaled)
    records = [r for r in running.audit() if r["rule"] == "scale-out-on-high-cpu"]
    executed = [r for r in records if r["outcome"] == "executed"]
    assert len(executed) == 1, records
    (record,) = executed
    assert record["target"] == "Deployment/shop/checkout"
    assert record["before"] == {"replicas": 3}
    assert record["after"] == {"replicas": 5}
    assert record["receiver"] == "remediation-plain"
    assert record["value"] == pytest.approx(0.92)
    # Alertmanager repeats the group every 20-30 s; whatever arrived since is a duplicate.
    assert all(r["guardrail"] == "duplicate" for r in records if r["outcome"] == "skipped")


def test_authenticated_receivers_act_and_unauthenticated_ones_are_refused(
    stack: Callable[..., Stack],
) -> None:
    running = stack(
        env={
            "REMEDIATOR_BEARER_TOKEN": BEARER,
            "REMEDIATOR_BASIC_AUTH_USER": BASIC[0],
            "REMEDIATOR_BASIC_AUTH_PASSWORD": BASIC[1],
        },
    )

    def restarted() -> bool:
        template = running.deployment("payments", "payments-api")["spec"]["template"]
        annotations = template.get("metadata", {}).get("annotations") or {}
        return "kubectl.kubernetes.io/restartedAt" in annotations

    running.wait_for("payments/payments-api restarted (basic-auth receiver)", restarted)
    running.wait_for(
        "the bearer receiver's Kafka notification accepted",
        lambda: running.metric('remediator_notifications_total{result="accepted"}') >= 2,
    )
    running.wait_for(
        "the plain receiver refused with 401",
        lambda: running.metric('remediator_notifications_total{result="unauthorized"}') >= 1,
    )
    assert int(running.deployment("shop", "checkout")["spec"]["replicas"]) == 3
    records = running.audit()
    restarts = [r for r in records if r["rule"] == "restart-on-db-pool-exhausted"]
    assert [r["outcome"] for r in restarts if r["outcome"] != "skipped"] == ["executed"]
    assert restarts[-1]["receiver"] == "remediation-basic-auth"
    assert not [r for r in records if r["rule"] == "scale-out-on-high-cpu"]
