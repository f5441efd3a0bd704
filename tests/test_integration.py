"""The official kubernetes client against the fake API server, through the whole service."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from remediator import store as db
from remediator.app import SERVICE, Service, create_app
from remediator.audit import AuditRecord
from remediator.clock import FakeClock
from remediator.kube import KubeGateway, RetryPolicy, load_api_client
from remediator.rules import load_rules
from remediator.settings import Settings
from tests.conftest import AUTH, body
from tests.fakekube.server import FakeKube

Client = TestClient[Any, Any]


class Sleeps:
    """An injected sleep: records what the gateway asked for and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[FakeKube]:
    fake = FakeKube()
    await fake.start()
    fake.write_kubeconfig(tmp_path / "kubeconfig")
    fake.add_deployment("shop", "checkout", replicas=3)
    fake.add_deployment("payments", "payments-api", replicas=2)
    yield fake
    await fake.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def gateway_for(tmp_path: Path, sleeps: Sleeps) -> Callable[..., KubeGateway]:
    def make(**policy: Any) -> KubeGateway:
        api = load_api_client(tmp_path / "kubeconfig", None)
        defaults: dict[str, Any] = {"read_timeout": 1.0, "connect_timeout": 1.0}
        return KubeGateway(api, retry=RetryPolicy(**{**defaults, **policy}), sleep=sleeps)

    return make


@pytest.fixture
def start(
    aiohttp_client: Callable[..., Awaitable[Client]],
    make_settings: Callable[..., Settings],
    gateway_for: Callable[..., KubeGateway],
    clock: FakeClock,
) -> Callable[..., Awaitable[Client]]:
    async def make(
        *,
        rules_dir: Path | None = None,
        execute: bool = True,
        retry: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Client:
        settings = make_settings(**overrides)
        rules = load_rules(rules_dir) if rules_dir else None
        app = create_app(
            settings,
            clock=clock,
            registry=CollectorRegistry(),
            gateway=gateway_for(**(retry or {})),
            rules=rules,
            execute=execute,
        )
        return await aiohttp_client(app)

    return make


def service(client: Client) -> Service:
    app: web.Application = client.app
    return app[SERVICE]


async def post(client: Client, name: str) -> dict[str, Any]:
    response = await client.post("/api/v1/alerts", data=body(name), headers=AUTH)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    await service(client).executor.drained()
    return answer


def audit(client: Client) -> list[dict[str, Any]]:
    """The stored records, oldest first, as JSON; each must read back as an AuditRecord."""
    with service(client).store.reader() as conn:
        rows = conn.execute("SELECT record FROM audit ORDER BY id").fetchall()
    for (text,) in rows:
        AuditRecord.model_validate_json(text)  # raises if a write produced a bad record
    return [json.loads(text) for (text,) in rows]


def replicas(kube: FakeKube, namespace: str, name: str) -> int:
    obj = kube.get("apps/v1", "Deployment", namespace, name)
    assert obj is not None
    return int(obj["spec"]["replicas"])


def scale_writes(kube: FakeKube) -> list[Any]:
    return [r for r in kube.requests if r.method == "PUT" and r.path.endswith("/scale")]


# ------------------------------------------------------------------------------ scale


async def test_high_cpu_scales_the_deployment_and_audits_before_and_after(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    client = await start()
    await post(client, "firing-checkout-grouped")
    assert replicas(kube, "shop", "checkout") == 5
    (record,) = audit(client)
    assert record["outcome"] == "executed"
    assert record["before"] == {"replicas": 3}
    assert record["after"] == {"replicas": 5}
    assert record["target"] == "Deployment/shop/checkout"
    assert record["rule"] == "scale-out-on-high-cpu"
    assert len(record["rule_hash"]) == 64
    assert record["group_key"] == '{}:{deployment="checkout", namespace="shop"}'
    assert record["receiver"] == "remediation-plain"
    assert record["starts_at"] == "2026-11-22T21:14:14.512000Z"
    assert record["duration_ms"] > 0


async def test_scale_is_clamped_to_max_replicas(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    kube.add_deployment("shop", "checkout", replicas=9)
    client = await start()
    await post(client, "firing-checkout-grouped")
    assert replicas(kube, "shop", "checkout") == 10
    assert audit(client)[0]["after"] == {"replicas": 10}


async def test_scale_at_the_bound_changes_nothing(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    kube.add_deployment("shop", "checkout", replicas=10)
    client = await start()
    await post(client, "firing-checkout-grouped")
    assert scale_writes(kube) == []
    (record,) = audit(client)
    assert record["outcome"] == "executed"
    assert record["steps"][0]["note"] == "already at the desired replicas"


async def test_missing_deployment_is_a_failed_decision(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, rules_dir: Path
) -> None:
    (rules_dir / "r.yaml").write_text(
        textwrap.dedent("""\
        rules:
          - name: scale-ghost
            match: {alertname: HighCPUUsage}
            target: {kind: Deployment, namespace: shop, name: ghost}
            action: {type: scale, params: {replicas: 4}}
        """)
    )
    client = await start(rules_dir=rules_dir)
    await post(client, "firing-checkout-grouped")
    (record,) = audit(client)
    assert record["outcome"] == "failed"
    assert record["error"].startswith("step 1 (scale) failed: GET Deployment shop/ghost scale: 404")


# ------------------------------------------------------------------------------ restart


async def test_db_pool_exhausted_restarts_like_kubectl(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, clock: FakeClock
) -> None:
    client = await start()
    await post(client, "firing-db-pool")
    deployment = kube.get("apps/v1", "Deployment", "payments", "payments-api")
    assert deployment is not None
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == clock.now().strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    (patch,) = [r for r in kube.requests if r.method == "PATCH"]
    assert patch.content_type == "application/strategic-merge-patch+json"
    (record,) = audit(client)
    assert record["outcome"] == "executed"
    assert record["action"] == "rollout_restart"


# ------------------------------------------------------------------------------ dry-run


async def test_global_dry_run_uses_server_side_dry_run_and_changes_nothing(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    client = await start(dry_run=True)
    await post(client, "firing-checkout-grouped")
    await post(client, "firing-db-pool")
    assert replicas(kube, "shop", "checkout") == 3
    writes = [r for r in kube.requests if r.method in ("PUT", "PATCH")]
    assert len(writes) == 2
    assert all(r.query.get("dryRun") == "All" for r in writes)
    scale, restart = audit(client)
    assert scale["outcome"] == "dry_run"
    assert scale["after"] == {"replicas": 5}
    assert scale["steps"][0]["request"]["spec"] == {"replicas": 5}
    assert restart["outcome"] == "dry_run"
    assert "kubectl.kubernetes.io/restartedAt" in str(restart["steps"][0]["request"])


async def test_rule_level_dry_run(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, rules_dir: Path
) -> None:
    (rules_dir / "r.yaml").write_text(
        textwrap.dedent("""\
        rules:
          - name: careful
            match: {alertname: HighCPUUsage}
            target: {kind: Deployment, namespace: shop, name: checkout}
            action: {type: scale, params: {replicas: 7}}
            dry_run: true
        """)
    )
    client = await start(rules_dir=rules_dir)
    await post(client, "firing-checkout-grouped")
    assert replicas(kube, "shop", "checkout") == 3
    assert audit(client)[0]["outcome"] == "dry_run"


# ------------------------------------------------------------------------------ retries


async def test_transient_500s_are_retried(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, sleeps: Sleeps
) -> None:
    kube.inject(method="GET", path=r"/deployments/checkout/scale$", status=500, times=2)
    client = await start()
    await post(client, "firing-checkout-grouped")
    assert replicas(kube, "shop", "checkout") == 5
    assert len(sleeps.calls) == 2
    assert audit(client)[0]["outcome"] == "executed"


async def test_429_retry_after_is_honoured(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, sleeps: Sleeps
) -> None:
    kube.inject(
        method="PUT",
        path=r"/deployments/checkout/scale$",
        status=429,
        headers={"Retry-After": "2"},
        body={"kind": "Status", "message": "slow down"},
    )
    client = await start()
    await post(client, "firing-checkout-grouped")
    assert sleeps.calls == [2.0]
    assert replicas(kube, "shop", "checkout") == 5


async def test_timeouts_are_retried(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, sleeps: Sleeps
) -> None:
    kube.inject(method="GET", path=r"/deployments/checkout/scale$", status=0, delay=1.0)
    client = await start(retry={"read_timeout": 0.3})
    await post(client, "firing-checkout-grouped")
    assert len(sleeps.calls) == 1
    assert replicas(kube, "shop", "checkout") == 5


async def test_retries_are_bounded_and_the_failure_audited(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, sleeps: Sleeps
) -> None:
    kube.inject(method="GET", path=r"/deployments/checkout/scale$", status=503, times=50)
    client = await start(retry={"attempts": 3})
    await post(client, "firing-checkout-grouped")
    assert len(sleeps.calls) == 2
    (record,) = audit(client)
    assert record["outcome"] == "failed"
    assert "gave up after 3 attempts" in record["error"]
    assert replicas(kube, "shop", "checkout") == 3


async def test_4xx_is_not_retried(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, sleeps: Sleeps
) -> None:
    kube.inject(
        method="PUT",
        path=r"/deployments/checkout/scale$",
        status=403,
        body={"kind": "Status", "message": "forbidden: no RBAC"},
    )
    client = await start()
    await post(client, "firing-checkout-grouped")
    assert sleeps.calls == []
    (record,) = audit(client)
    assert record["outcome"] == "failed"
    assert "403 forbidden: no RBAC" in record["error"]


async def test_conflict_rereads_and_reapplies(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    kube.inject(
        method="PUT",
        path=r"/deployments/checkout/scale$",
        status=409,
        body={"kind": "Status", "reason": "Conflict", "message": "object was modified"},
    )
    client = await start()
    await post(client, "firing-checkout-grouped")
    reads = [r for r in kube.requests if r.method == "GET" and r.path.endswith("/scale")]
    assert len(reads) == 2
    assert replicas(kube, "shop", "checkout") == 5


async def test_real_conflict_recomputes_from_the_new_count(
    kube: FakeKube, gateway_for: Callable[..., KubeGateway]
) -> None:
    """Another writer scales between our read and our write: the relative change is applied
    to the new count, not the stale one."""
    from remediator.targets import Target

    gateway = gateway_for()
    target = Target(kind="Deployment", namespace="shop", name="checkout")
    calls: list[int] = []

    def plus_two(current: int) -> int:
        calls.append(current)
        if len(calls) == 1:
            kube.add_deployment("shop", "checkout", replicas=6)  # the other writer
        return current + 2

    change = await gateway.update_scale(target, plus_two, dry_run=False)
    assert calls == [3, 6]
    assert (change.before, change.after) == (6, 8)
    assert replicas(kube, "shop", "checkout") == 8
    gateway.close()


# ------------------------------------------------------------------------------ guardrails


async def test_repeats_and_retries_act_once_per_episode(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, clock: FakeClock
) -> None:
    client = await start()
    await post(client, "firing-checkout-grouped")
    clock.advance(3600)  # past cooldown and window: only dedup can stop a second action
    await post(client, "firing-checkout-one-resolved")
    await post(client, "repeat-checkout-one-resolved")
    assert len(scale_writes(kube)) == 1
    outcomes = [(r["outcome"], r.get("guardrail")) for r in audit(client)]
    assert outcomes == [("executed", None), ("skipped", "duplicate"), ("skipped", "duplicate")]


async def test_refire_is_a_new_episode_but_cooldown_holds_it(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, clock: FakeClock, rules_dir: Path
) -> None:
    (rules_dir / "r.yaml").write_text(
        textwrap.dedent("""\
        rules:
          - name: restart-on-errors
            match: {alertname: HighErrorRate}
            target: {kind: Deployment, namespace: "{labels.namespace}", name: "{labels.deployment}"}
            action: {type: rollout_restart}
            cooldown: 5m
        """)
    )
    client = await start(rules_dir=rules_dir)
    await post(client, "firing-checkout-grouped")
    clock.advance(60)
    await post(client, "firing-checkout-refired")  # new startsAt: new episode, in cooldown
    clock.advance(300)
    await post(client, "firing-checkout-refired")  # cooldown over: the new episode acts
    records = audit(client)
    assert [(r["outcome"], r.get("guardrail")) for r in records] == [
        ("executed", None),
        ("skipped", "cooldown"),
        ("executed", None),
    ]
    assert len([r for r in kube.requests if r.method == "PATCH"]) == 2


async def test_namespace_outside_allowlist_is_not_touched(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    client = await start(allow_namespaces=("payments",))
    await post(client, "firing-checkout-grouped")
    assert kube.requests == [] or scale_writes(kube) == []
    (record,) = audit(client)
    assert record["guardrail"] == "namespace_allowlist"


async def test_global_budget_limits_actions_per_minute(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, clock: FakeClock
) -> None:
    client = await start(actions_per_minute=1)
    await post(client, "firing-checkout-grouped")
    await post(client, "firing-db-pool")
    records = audit(client)
    assert [r.get("guardrail") for r in records] == [None, "global_budget"]
    clock.advance(61)
    await post(client, "repeat-db-pool")  # same episode as before: never denied as duplicate
    assert audit(client)[-1]["outcome"] == "executed"


async def test_guardrail_state_survives_a_restart(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    first = await start()
    await post(first, "firing-checkout-grouped")
    await first.close()
    second = await start()
    await post(second, "firing-checkout-grouped")
    assert len(scale_writes(kube)) == 1
    assert audit(second)[-1]["guardrail"] == "duplicate"


# ------------------------------------------------------------------------------ crash/restart


async def test_decision_recorded_before_a_crash_runs_once_after_restart(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    crashed = await start(execute=False)  # acknowledges, then "dies" before acting
    await post(crashed, "firing-checkout-grouped")
    assert scale_writes(kube) == []
    await crashed.close()
    restarted = await start()
    await service(restarted).executor.drained()
    assert replicas(kube, "shop", "checkout") == 5
    await post(restarted, "firing-checkout-grouped")  # Alertmanager's retry of the same payload
    await post(restarted, "repeat-checkout-one-resolved")
    assert len(scale_writes(kube)) == 1
    assert [r["outcome"] for r in audit(restarted)] == ["executed", "skipped", "skipped"]


async def test_decision_interrupted_mid_action_is_audited_not_repeated(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    restarted = await restart_after_crash(start, running=True)
    assert scale_writes(kube) == []
    (record,) = audit(restarted)
    assert record["outcome"] == "failed"
    assert record["error"].startswith("interrupted:")


def rewrite_plan(client: Client, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite decision 1's stored plan, as another version of remediator would have left it."""
    with service(client).store.reader() as conn:
        (text,) = conn.execute("SELECT plan FROM decisions WHERE id = 1").fetchone()
        conn.execute(
            "UPDATE decisions SET plan = ? WHERE id = 1", (json.dumps(change(json.loads(text))),)
        )
        conn.commit()


def flat(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan format of remediator 0.1.0 as first landed: the head's fields at the top."""
    head = {k: v for k, v in plan["head"].items() if k != "params"}
    return {**head, "steps": plan["steps"]}


def decision_states(client: Client) -> list[str]:
    with service(client).store.reader() as conn:
        return [row[0] for row in conn.execute("SELECT state FROM decisions ORDER BY id")]


async def restart_after_crash(
    start: Callable[..., Awaitable[Client]],
    *,
    change: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    running: bool = False,
) -> Client:
    """A service acknowledges the checkout group and dies before acting; decision 1 is left as
    another version (``change`` its plan) or a kill in the middle of the Kubernetes call
    (``running``) would leave it. Start again and let recovery finish."""
    crashed = await start(execute=False)
    await post(crashed, "firing-checkout-grouped")
    if change is not None:
        rewrite_plan(crashed, change)
    if running:
        await service(crashed).store.write(lambda conn: db.set_decision_state(conn, 1, "running"))
    await crashed.close()
    restarted = await start()
    await service(restarted).executor.drained()
    return restarted


async def test_a_pending_decision_stored_in_the_flat_plan_format_runs_after_an_upgrade(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    restarted = await restart_after_crash(start, change=flat)
    assert replicas(kube, "shop", "checkout") == 5
    (record,) = audit(restarted)
    assert record["outcome"] == "executed"
    assert record["rule"] == "scale-out-on-high-cpu"
    assert record["params"] == [{"replicas": "+2", "min_replicas": 2, "max_replicas": 10}]
    assert decision_states(restarted) == ["done"]


async def test_a_running_decision_in_the_flat_plan_format_is_audited_as_interrupted(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    # The restart used to fail: KeyError 'head' in recover().
    restarted = await restart_after_crash(start, change=flat, running=True)
    (record,) = audit(restarted)
    assert record["outcome"] == "failed"
    assert record["error"].startswith("interrupted:")
    assert scale_writes(kube) == []


async def test_a_plan_this_version_cannot_carry_out_is_audited_failed_not_left_running(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    def unknown_action(plan: dict[str, Any]) -> dict[str, Any]:
        plan["steps"][0]["action"] = "frobnicate"  # e.g. written by a newer version
        return plan

    restarted = await restart_after_crash(start, change=unknown_action)
    (record,) = audit(restarted)
    assert record["outcome"] == "failed"
    assert record["error"] == (
        "unexpected error, effect unknown, not retried: KeyError: 'frobnicate'"
    )
    assert decision_states(restarted) == ["done"]
    assert scale_writes(kube) == []


async def test_connection_errors_are_retried_then_reported_as_unavailable(
    tmp_path: Path, sleeps: Sleeps
) -> None:
    """No API server listening: every attempt is refused; the gateway gives up, bounded."""
    import socket

    from remediator.errors import Unavailable
    from remediator.targets import Target

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = FakeKube()
    closed.url = f"http://127.0.0.1:{port}"
    api = load_api_client(closed.write_kubeconfig(tmp_path / "closed-kubeconfig"), None)
    gateway = KubeGateway(api, retry=RetryPolicy(attempts=4), sleep=sleeps)
    target = Target("Deployment", "shop", "checkout")
    with pytest.raises(Unavailable, match="gave up after 4 attempts"):
        await gateway.update_scale(target, lambda n: n + 1, dry_run=False)
    assert gateway.attempts == 4
    assert len(sleeps.calls) == 3
    gateway.close()


async def test_restart_records_generation_and_stamp_before_and_after(
    start: Callable[..., Awaitable[Client]], kube: FakeKube, clock: FakeClock
) -> None:
    before = kube.get("apps/v1", "Deployment", "payments", "payments-api")
    assert before is not None
    client = await start()
    await post(client, "firing-db-pool")
    (record,) = audit(client)
    generation = before["metadata"]["generation"]
    assert record["before"] == {"generation": generation, "restartedAt": None}
    assert record["after"] == {
        "generation": generation + 1,
        "restartedAt": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


async def test_shutdown_finishes_the_running_action_and_leaves_queued_ones_pending(
    start: Callable[..., Awaitable[Client]], kube: FakeKube
) -> None:
    kube.inject(method="GET", path=r"/deployments/checkout/scale$", status=0, delay=0.5)
    first = await start(max_concurrent_actions=1)
    for name in ("firing-checkout-grouped", "firing-db-pool"):
        response = await first.post("/api/v1/alerts", data=body(name), headers=AUTH)
        assert response.status == 200
    await first.close()  # graceful stop while the scale is in flight and the restart queued
    assert replicas(kube, "shop", "checkout") == 5  # the running one was finished
    assert [r for r in kube.requests if r.method == "PATCH"] == []  # the queued one was not
    second = await start()
    await service(second).executor.drained()
    assert len([r for r in kube.requests if r.method == "PATCH"]) == 1
    assert sorted(r["outcome"] for r in audit(second)) == ["executed", "executed"]
