"""The fake API server: the shared conformance battery, its test controls, and its fidelity.

Everything goes through the official ``kubernetes`` client over real HTTP. The fake runs on
the test's event loop, so every blocking client call is made with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from tests.fakekube.patching import strategic_merge_patch
from tests.fakekube.server import FakeKube

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REMEDIATOR_SHARED", REPO.parent / "shared"))
BATTERY = SHARED / "k8s-conformance" / "battery.py"
T = TypeVar("T")


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
            [sys.executable, str(BATTERY), "--kubeconfig", str(kubeconfig), "--namespace", "conf"],
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
    assert server.returncode == 0  # SIGTERM is a clean stop


# ---------------------------------------------------------------------- fixtures


class Kube:
    """The fake plus an official client configured from the fake's kubeconfig."""

    def __init__(self, fake: FakeKube, api: k8s.ApiClient) -> None:
        self.fake = fake
        self.api = api
        self.apps = k8s.AppsV1Api(api)
        self.core = k8s.CoreV1Api(api)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def raw(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The JSON answer itself, not the client's model of it."""
        response = await self.call(fn, *args, _preload_content=False, **kwargs)
        try:
            answer = json.loads(response.data)
        finally:
            response.release_conn()
        assert isinstance(answer, dict)
        return answer

    async def replicas(self) -> int:
        scale = await self.call(self.apps.read_namespaced_deployment_scale, "checkout", "shop")
        assert scale.spec is not None
        return int(scale.spec.replicas or 0)


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[Kube]:
    fake = FakeKube()
    await fake.start()
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        str(fake.write_kubeconfig(tmp_path / "kubeconfig")), client_configuration=configuration
    )
    configuration.retries = 0  # urllib3 would otherwise retry a 429 that has a Retry-After
    api = k8s.ApiClient(configuration)
    fake.add_deployment("shop", "checkout", replicas=3)
    yield Kube(fake, api)
    api.close()  # type: ignore[no-untyped-call]
    await fake.stop()


def _status_of(error: ApiException) -> dict[str, Any]:
    body = json.loads(error.body or "{}")
    assert isinstance(body, dict)
    return body


# ---------------------------------------------------------------------- fault injection


async def test_injected_status_is_answered_then_normal_service_resumes(kube: Kube) -> None:
    kube.fake.inject(method="GET", path=r"/scale$", status=500, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as error:
            await kube.replicas()
        assert error.value.status == 500
        assert _status_of(error.value)["reason"] == "InternalError"
    assert await kube.replicas() == 3
    assert [r.status for r in kube.fake.requests] == [500, 500, 200]


async def test_injected_headers_and_body_reach_the_client(kube: Kube) -> None:
    kube.fake.inject(method=None, path="checkout", status=429, headers={"Retry-After": "3"})
    kube.fake.inject(method=None, path="checkout", status=503, body={"custom": True})
    with pytest.raises(ApiException) as throttled:
        await kube.replicas()
    assert throttled.value.status == 429
    assert throttled.value.headers is not None
    assert throttled.value.headers["Retry-After"] == "3"
    assert _status_of(throttled.value)["details"] == {"retryAfterSeconds": 3}
    with pytest.raises(ApiException) as unavailable:
        await kube.replicas()
    assert (unavailable.value.status, _status_of(unavailable.value)) == (503, {"custom": True})


async def test_injection_matches_method_and_path_only(kube: Kube) -> None:
    kube.fake.inject(method="PUT", path=r"/scale$", status=503)
    kube.fake.inject(method="GET", path=r"/other$", status=503)
    assert await kube.replicas() == 3  # neither matches a GET of .../checkout/scale
    assert [i.times for i in kube.fake.injections] == [1, 1]


async def test_a_delay_makes_the_client_time_out_then_the_request_is_served(kube: Kube) -> None:
    kube.fake.inject(method="GET", path=r"/scale$", status=0, delay=0.6)
    with pytest.raises(Urllib3Error):
        await kube.call(
            kube.apps.read_namespaced_deployment_scale, "checkout", "shop", _request_timeout=0.2
        )
    assert await kube.replicas() == 3  # the next one is not delayed
    await asyncio.sleep(0.6)
    assert [r.status for r in kube.fake.requests] == [200, 200]  # the slow one finished too


async def test_requests_are_recorded_and_can_be_cleared(kube: Kube) -> None:
    await kube.call(
        kube.apps.patch_namespaced_deployment_scale,
        "checkout",
        "shop",
        {"spec": {"replicas": 4}},
        dry_run="All",
    )
    (recorded,) = kube.fake.requests
    assert (recorded.method, recorded.path, recorded.status) == (
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/checkout/scale",
        200,
    )
    assert recorded.query == {"dryRun": "All"}
    assert recorded.content_type == "application/strategic-merge-patch+json"
    assert recorded.body == {"spec": {"replicas": 4}}
    kube.fake.clear_requests()
    assert kube.fake.requests == []


# ---------------------------------------------------------------------- state helpers


async def test_state_helpers_see_api_writes(kube: Kube) -> None:
    await kube.call(
        kube.apps.patch_namespaced_deployment_scale, "checkout", "shop", {"spec": {"replicas": 6}}
    )
    stored = kube.fake.get("apps/v1", "Deployment", "shop", "checkout")
    assert stored is not None
    assert stored["spec"]["replicas"] == 6
    assert stored["status"]["readyReplicas"] == 6
    assert stored["status"]["observedGeneration"] == stored["metadata"]["generation"]
    assert kube.fake.get("apps/v1", "Deployment", "shop", "missing") is None


async def test_put_creates_the_namespace_and_a_given_status_sticks(kube: Kube) -> None:
    deployment = kube.fake.add_deployment("new-ns", "api", replicas=3)
    stuck = {**deployment, "status": {**deployment["status"], "readyReplicas": 1}}
    kube.fake.put(stuck)
    read = await kube.call(kube.apps.read_namespaced_deployment, "api", "new-ns")
    assert read.status is not None
    assert (read.status.replicas, read.status.ready_replicas) == (3, 1)
    kube.fake.add_deployment("new-ns", "api", replicas=4)  # a spec write: the rollout catches up
    status = (kube.fake.get("apps/v1", "Deployment", "new-ns", "api") or {})["status"]
    assert (status["replicas"], status["readyReplicas"]) == (4, 4)


async def test_a_watch_sees_objects_put_by_the_test(kube: Kube) -> None:
    def first_pod_named(name: str) -> str:
        stream = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        pods = stream.stream(  # type: ignore[no-untyped-call]
            kube.core.list_namespaced_pod, "shop", timeout_seconds=5
        )
        for event in pods:
            if event["object"].metadata.name == name:
                stream.stop()  # type: ignore[no-untyped-call]
                return str(event["type"])
        return "not seen"

    seen = asyncio.create_task(asyncio.to_thread(first_pod_named, "late"))
    await asyncio.sleep(0.3)
    kube.fake.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "late", "namespace": "shop"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
        }
    )
    assert await seen == "ADDED"


# ---------------------------------------------------------------------- fidelity beyond the battery


async def test_a_patch_naming_an_unknown_container_is_invalid(kube: Kube) -> None:
    """A typo in the container name adds a container without an image: a real server says 422."""
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "ap", "env": []}]}}}}
    with pytest.raises(ApiException) as error:
        await kube.call(kube.apps.patch_namespaced_deployment, "checkout", "shop", patch)
    assert error.value.status == 422
    cause = _status_of(error.value)["details"]["causes"][0]
    assert cause["field"] == "spec.template.spec.containers[1].image"


async def test_missing_namespaces_answer_404(kube: Kube) -> None:
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}
    with pytest.raises(ApiException) as create:
        await kube.call(kube.core.create_namespaced_pod, "nowhere", body)
    assert (create.value.status, _status_of(create.value)["message"]) == (
        404,
        'namespaces "nowhere" not found',
    )
    with pytest.raises(ApiException) as read:
        await kube.call(kube.apps.read_namespaced_deployment, "checkout", "nowhere")
    assert read.value.status == 404
    listed = await kube.call(kube.core.list_namespaced_pod, "nowhere")
    assert listed.items == []


async def test_rollback_and_garbage_collection_of_replicasets(kube: Kube) -> None:
    async def revisions() -> dict[str, str]:
        listed = await kube.raw(
            kube.apps.list_namespaced_replica_set, "shop", label_selector="app=checkout"
        )
        return {
            rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"][
                "deployment.kubernetes.io/revision"
            ]
            for rs in listed["items"]
        }

    def image(tag: str) -> dict[str, Any]:
        containers = [{"name": "app", "image": f"checkout:{tag}"}]
        return {"spec": {"template": {"spec": {"containers": containers}}}}

    await kube.call(kube.apps.patch_namespaced_deployment, "checkout", "shop", image("2.0"))
    assert await revisions() == {"checkout:1.0": "1", "checkout:2.0": "2"}
    await kube.call(kube.apps.patch_namespaced_deployment, "checkout", "shop", image("1.0"))
    assert await revisions() == {"checkout:1.0": "3", "checkout:2.0": "2"}  # like rollout undo
    await kube.call(kube.apps.delete_namespaced_deployment, "checkout", "shop")
    assert await revisions() == {}


async def test_service_ports_merge_by_port_and_status_writes_keep_the_spec(kube: Kube) -> None:
    ports = [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]
    service = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": ports}}
    await kube.call(kube.core.create_namespaced_service, "shop", service)
    patched = await kube.raw(
        kube.core.patch_namespaced_service,
        "web",
        "shop",
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
    )
    merged = [(p["name"], p["port"], p["targetPort"]) for p in patched["spec"]["ports"]]
    assert merged == [("http", 80, 8080), ("metrics", 9090, 9090)]
    await kube.call(
        kube.apps.patch_namespaced_deployment_status,
        "checkout",
        "shop",
        {"spec": {"replicas": 9}, "status": {"readyReplicas": 0}},
    )
    stored = kube.fake.get("apps/v1", "Deployment", "shop", "checkout") or {}
    assert (stored["spec"]["replicas"], stored["status"]["readyReplicas"]) == (3, 0)


POD = {
    "containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "side:1"},
    ]
}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(  # what `kubectl set image` sends
            {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                "containers": [{"name": "app", "image": "app:2"}],
            },
            [("sidecar", "side:1", None), ("app", "app:2", ["A"])],
            id="setElementOrder",
        ),
        pytest.param(
            {"containers": [{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}]},
            [("app", "app:1", []), ("sidecar", "side:1", None)],
            id="delete-by-merge-key",
        ),
        pytest.param(
            {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o:1"}]},
            [("only", "o:1", None)],
            id="replace-list",
        ),
    ],
)
def test_strategic_merge_directives(patch: dict[str, Any], expected: list[Any]) -> None:
    merged = strategic_merge_patch(POD, patch)
    got = [
        (c["name"], c["image"], [e["name"] for e in c["env"]] if "env" in c else None)
        for c in merged["containers"]
    ]
    assert got == expected


KINDS: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "image": "a:1"}]}},
    {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80}]}},
    {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}},
    {"apiVersion": "v1", "kind": "Secret", "stringData": {"k": "v"}},
    {"apiVersion": "v1", "kind": "Node", "spec": {}},
    {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "postgres:15"}]},
            },
        },
    },
    {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": "agent:1"}]},
            },
        },
    },
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "j", "image": "busybox:1.36"}],
                        }
                    }
                }
            },
        },
    },
    {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "spec": {
            "maxReplicas": 5,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
        },
    },
    {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "spec": {"minAvailable": 1}},
    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "a"}},
]


async def test_every_stored_object_fits_the_official_client_models(kube: Kube) -> None:
    """The client validates required fields strictly: nothing the fake fills may miss one."""
    for number, template in enumerate(KINDS):
        kube.fake.put({**template, "metadata": {"name": f"o{number}", "namespace": "shop"}})
    for (resource, _, name), obj in kube.fake.store.objects.items():
        model = "CoreV1Event" if resource.kind == "Event" else f"V{resource.version[1:]}"
        if resource.kind != "Event":
            model += resource.kind
        decoded = kube.api.deserialize(json.dumps(obj), model, "application/json")
        assert decoded.metadata.name == name
    kinds = {resource.kind for resource, _, _ in kube.fake.store.objects}
    assert {"ReplicaSet", "Deployment", "Namespace"} <= kinds
