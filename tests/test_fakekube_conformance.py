"""The fake API server against the shared conformance battery, and its test controls."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from tests.conftest import REPO, SHARED
from tests.fakekube.server import FakeKube

BATTERY = SHARED / "k8s-conformance" / "battery.py"


def test_fake_api_server_passes_the_conformance_battery(tmp_path: Path) -> None:
    """Run as CI does: the fake standalone, the battery in its own process over HTTP."""
    kubeconfig = tmp_path / "kubeconfig"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fakekube", "--kubeconfig-out", str(kubeconfig)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("FAKEKUBE_URL=http://127.0.0.1:"), line
        result = subprocess.run(
            [
                sys.executable,
                str(BATTERY),
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                "conformance",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": ""},
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "29 passed, 0 failed", result.stdout + result.stderr
    assert result.returncode == 0


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[FakeKube, k8s.AppsV1Api]]:
    kube = FakeKube()
    await kube.start()
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        str(kube.write_kubeconfig(tmp_path / "kubeconfig")), client_configuration=configuration
    )
    configuration.retries = 0  # urllib3 would otherwise retry a 429 that has a Retry-After
    api_client = k8s.ApiClient(configuration)
    kube.add_deployment("shop", "checkout", replicas=3)
    yield kube, k8s.AppsV1Api(api_client)
    api_client.close()  # type: ignore[no-untyped-call]
    await kube.stop()


async def _replicas(apps: k8s.AppsV1Api) -> int:
    scale = await asyncio.to_thread(apps.read_namespaced_deployment_scale, "checkout", "shop")
    assert scale.spec is not None
    return int(scale.spec.replicas or 0)


async def test_injected_status_is_answered_then_normal_service_resumes(
    fake: tuple[FakeKube, k8s.AppsV1Api],
) -> None:
    kube, apps = fake
    kube.inject(method="GET", path=r"/scale$", status=500, times=1)
    with pytest.raises(ApiException) as error:
        await _replicas(apps)
    assert error.value.status == 500
    assert await _replicas(apps) == 3
    assert [r.status for r in kube.requests] == [500, 200]


async def test_injected_headers_reach_the_client(fake: tuple[FakeKube, k8s.AppsV1Api]) -> None:
    kube, apps = fake
    kube.inject(method=None, path="checkout", status=429, headers={"Retry-After": "3"})
    with pytest.raises(ApiException) as error:
        await _replicas(apps)
    assert error.value.status == 429
    assert error.value.headers is not None
    assert error.value.headers["Retry-After"] == "3"


async def test_injection_matches_method_and_path_only(fake: tuple[FakeKube, k8s.AppsV1Api]) -> None:
    kube, apps = fake
    kube.inject(method="PUT", path=r"/scale$", status=503)
    assert await _replicas(apps) == 3  # a GET is not affected
    assert kube.injections[0].times == 1


async def test_state_helpers_see_api_writes(fake: tuple[FakeKube, k8s.AppsV1Api]) -> None:
    kube, apps = fake
    await asyncio.to_thread(
        apps.patch_namespaced_deployment_scale, "checkout", "shop", {"spec": {"replicas": 6}}
    )
    stored = kube.get("apps/v1", "Deployment", "shop", "checkout")
    assert stored is not None
    assert stored["spec"]["replicas"] == 6
    assert stored["status"]["readyReplicas"] == 6
