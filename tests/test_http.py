"""The webhook over real HTTP: every captured payload, auth, and every error status."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from remediator.app import SERVICE, Service, create_app
from remediator.audit import AuditQuery, AuditRecord, query
from remediator.clock import FakeClock
from remediator.logs import configure
from remediator.settings import ConfigError, Settings
from tests.conftest import AUTH, TOKEN, Hold, body, fixture_names

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def client_for(
    aiohttp_client: Callable[..., Awaitable[Client]],
    make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> MakeClient:
    async def make(**overrides: Any) -> Client:
        app = create_app(
            make_settings(**overrides), clock=clock, registry=CollectorRegistry(), gateway=None
        )
        return await aiohttp_client(app)

    return make


def service(client: Client) -> Service:
    app: web.Application = client.app
    return app[SERVICE]


def audit_rows(client: Client) -> list[tuple[str, str]]:
    with service(client).store.reader() as conn:
        return conn.execute("SELECT rule, outcome FROM audit ORDER BY id").fetchall()


def decision_count(client: Client) -> int:
    with service(client).store.reader() as conn:
        return int(conn.execute("SELECT count(*) FROM decisions").fetchone()[0])


@pytest.mark.parametrize("name", fixture_names())
async def test_every_captured_payload_is_accepted(client_for: MakeClient, name: str) -> None:
    client = await client_for()
    response = await client.post(
        "/api/v1/alerts", data=body(name), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["status"] == "accepted"
    assert answer["alerts"] == len(json.loads(body(name))["alerts"])


async def test_matching_alert_is_dry_run_without_a_cluster(client_for: MakeClient) -> None:
    client = await client_for()
    response = await client.post(
        "/api/v1/alerts", data=body("firing-checkout-grouped"), headers=AUTH
    )
    assert (await response.json())["accepted"] == 1
    await service(client).executor.drained()
    assert audit_rows(client) == [("scale-out-on-high-cpu", "dry_run")]


async def test_repeat_of_the_same_episode_is_audited_as_duplicate(client_for: MakeClient) -> None:
    client = await client_for()
    for _ in range(3):
        response = await client.post("/api/v1/alerts", data=body("firing-db-pool"), headers=AUTH)
        assert response.status == 200
        await service(client).executor.drained()
    assert decision_count(client) == 1
    assert [outcome for _, outcome in audit_rows(client)] == ["dry_run", "skipped", "skipped"]


# ------------------------------------------------------------------------------ auth


async def test_no_credentials_is_401(client_for: MakeClient) -> None:
    client = await client_for()
    response = await client.post("/api/v1/alerts", data=body("firing-db-pool"))
    assert response.status == 401
    assert (await response.json())["error"] == "missing or invalid credentials"
    assert decision_count(client) == 0


async def test_wrong_bearer_is_401_and_logged_without_the_secret(client_for: MakeClient) -> None:
    client = await client_for()
    with structlog.testing.capture_logs() as logs:
        response = await client.post(
            "/api/v1/alerts",
            data=body("firing-db-pool"),
            headers={"Authorization": f"Bearer {TOKEN}x"},
        )
    assert response.status == 401
    assert TOKEN not in await response.text()
    (refusal,) = [e for e in logs if e["event"].startswith("webhook refused")]
    assert refusal["authorization"] == "invalid"
    assert refusal["log_level"] == "warning"
    assert TOKEN not in str(refusal)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_basic_auth_as_alertmanager_sends_it(client_for: MakeClient) -> None:
    client = await client_for(
        bearer_token=None,
        basic_auth_user="alertmanager",
        basic_auth_password="fixture-basic-password",
    )
    ok = await client.post(
        "/api/v1/alerts",
        data=body("firing-db-pool"),
        headers=basic("alertmanager", "fixture-basic-password"),
    )
    assert ok.status == 200
    for user, password in (("alertmanager", "wrong"), ("other", "fixture-basic-password")):
        denied = await client.post(
            "/api/v1/alerts", data=body("firing-db-pool"), headers=basic(user, password)
        )
        assert denied.status == 401
    garbage = await client.post(
        "/api/v1/alerts", data=body("firing-db-pool"), headers={"Authorization": "Basic !!!"}
    )
    assert garbage.status == 401


async def test_bearer_and_basic_together_accept_either(client_for: MakeClient) -> None:
    client = await client_for(basic_auth_user="am", basic_auth_password="pw")
    for headers in (AUTH, basic("am", "pw")):
        response = await client.post("/api/v1/alerts", data=body("firing-db-pool"), headers=headers)
        assert response.status == 200


async def test_insecure_no_auth_accepts_anyone(client_for: MakeClient) -> None:
    client = await client_for(bearer_token=None, insecure_no_auth=True)
    response = await client.post("/api/v1/alerts", data=body("firing-db-pool"))
    assert response.status == 200


def test_service_refuses_to_start_without_credentials(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ConfigError, match="no webhook credentials configured"):
        create_app(make_settings(bearer_token=None), gateway=None)


def test_credentials_can_come_from_files(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    settings = make_settings(bearer_token=None, bearer_token_file=token_file)
    assert settings.credentials().bearer_token == TOKEN


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{", "invalid Alertmanager notification: body is not valid JSON"),
        (
            b'{"version": "3", "receiver": "x", "status": "firing", "alerts": [], "groupKey": "k"}',
            "invalid Alertmanager notification: version: unsupported webhook version"
            ' (expected "4")',
        ),
        (
            b'{"version": "4", "receiver": "x", "status": "firing", "alerts": []}',
            "invalid Alertmanager notification: groupKey: required field is missing",
        ),
        (b"", "invalid Alertmanager notification: body is empty"),
    ],
)
async def test_bad_input_is_400_naming_the_problem(
    client_for: MakeClient, payload: bytes, message: str
) -> None:
    client = await client_for()
    response = await client.post("/api/v1/alerts", data=payload, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["error"].startswith(message)
    assert decision_count(client) == 0
    assert audit_rows(client) == []


async def test_a_time_out_of_range_in_utc_is_400_and_acts_on_nothing(
    client_for: MakeClient,
) -> None:
    client = await client_for()
    raw = json.loads(body("firing-db-pool"))
    raw["alerts"][0]["startsAt"] = "0001-01-01T00:00:00+05:00"  # a rule matches this alert
    response = await client.post("/api/v1/alerts", data=json.dumps(raw), headers=AUTH)
    assert response.status == 400
    assert (await response.json())["error"] == (
        "invalid Alertmanager notification: alerts.0.startsAt: time is out of range in UTC"
    )
    assert decision_count(client) == 0
    assert audit_rows(client) == []


async def test_body_over_the_limit_is_413(client_for: MakeClient) -> None:
    client = await client_for(max_body_bytes=2048)
    big = body("firing-checkout-grouped")
    assert len(big) > 2048
    response = await client.post("/api/v1/alerts", data=big, headers=AUTH)
    assert response.status == 413
    assert "the limit is 2048 bytes" in (await response.json())["error"]
    assert decision_count(client) == 0


async def test_chunked_body_over_the_limit_is_413(client_for: MakeClient) -> None:
    client = await client_for(max_body_bytes=2048)

    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    response = await client.post("/api/v1/alerts", data=chunks(), headers=AUTH)
    assert response.status == 413


# ------------------------------------------------------------------------------ 503


def _read_only(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = 1")


async def test_unwritable_store_is_503_and_nothing_is_acted_on(client_for: MakeClient) -> None:
    client = await client_for()
    store = service(client).store
    # Switch the writer connection to read-only, as a read-only remount would.
    await store.write(_read_only)
    response = await client.post("/api/v1/alerts", data=body("firing-db-pool"), headers=AUTH)
    assert response.status == 503
    assert "not writable" in (await response.json())["error"]
    ready = await client.get("/readyz")
    assert ready.status == 503
    await service(client).executor.drained()
    assert decision_count(client) == 0


async def test_full_intake_queue_is_503_with_retry_after(client_for: MakeClient) -> None:
    client = await client_for(max_queue=1)
    store = service(client).store
    async with Hold(store) as hold:
        in_flight = asyncio.ensure_future(store.write(lambda conn: None))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        queued = asyncio.ensure_future(store.write(lambda conn: None))
        await hold.queued(1)  # the queue now holds max_queue (1) writes
        response = await client.post("/api/v1/alerts", data=body("firing-db-pool"), headers=AUTH)
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert "intake queue is full" in (await response.json())["error"]
    await asyncio.gather(in_flight, queued)
    assert decision_count(client) == 0


async def test_metrics_show_the_writes_queued_behind_a_slow_commit(client_for: MakeClient) -> None:
    client = await client_for()
    store = service(client).store
    async with Hold(store) as hold:
        in_flight = asyncio.ensure_future(store.write(lambda conn: None))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        queued = [asyncio.ensure_future(store.write(lambda conn: None)) for _ in range(3)]
        await hold.queued(3)
        text = await (await client.get("/metrics")).text()
        assert 'remediator_queue_depth{queue="store"} 3.0' in text
        assert 'remediator_queue_depth{queue="actions"} 0.0' in text
    await asyncio.gather(in_flight, *queued)
    text = await (await client.get("/metrics")).text()
    assert 'remediator_queue_depth{queue="store"} 0.0' in text


async def test_alert_and_notification_series_exist_from_the_start(client_for: MakeClient) -> None:
    client = await client_for()
    text = await (await client.get("/metrics")).text()
    for series in (
        'remediator_alerts_received_total{status="firing"} 0.0',
        'remediator_alerts_received_total{status="resolved"} 0.0',
        'remediator_notifications_total{result="accepted"} 0.0',
        'remediator_notifications_total{result="unauthorized"} 0.0',
    ):
        assert series in text


async def test_a_method_the_client_made_up_is_counted_as_other(client_for: MakeClient) -> None:
    client = await client_for()
    for method in ("PROPFIND", "TRACE"):
        response = await client.request(method, "/api/v1/alerts", headers=AUTH)
        assert response.status == 405
    text = await (await client.get("/metrics")).text()
    assert 'method="other"' in text
    assert "TRACE" not in text
    assert "PROPFIND" not in text


# ------------------------------------------------------------------------------ probes


async def test_health_ready_and_metrics(client_for: MakeClient) -> None:
    client = await client_for()
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["store"] == "writable"
    await client.post("/api/v1/alerts", data=body("firing-checkout-grouped"), headers=AUTH)
    await service(client).executor.drained()
    text = await (await client.get("/metrics")).text()
    assert 'remediator_alerts_received_total{status="firing"} 3.0' in text
    assert "remediator_rules_loaded 2.0" in text
    assert (
        'remediator_decisions_total{action="scale",outcome="dry_run",'
        'rule="scale-out-on-high-cpu"} 1.0' in text
    )
    assert 'remediator_http_requests_total{code="200",method="POST",route="/api/v1/alerts"}' in text


async def test_a_record_skipped_by_matching_shows_what_the_rule_would_have_done(
    client_for: MakeClient,
) -> None:
    client = await client_for()
    raw = json.loads(body("firing-checkout-grouped"))
    for alert in raw["alerts"]:
        alert["annotations"]["description"] = "CPU usage of deployment checkout is 60% (85%)."
    response = await client.post("/api/v1/alerts", data=json.dumps(raw), headers=AUTH)
    assert (await response.json())["skipped"] == 1
    with service(client).store.reader() as conn:
        (record,) = query(conn, AuditQuery())
    assert record.outcome == "skipped"
    assert record.reason == "threshold not met: 0.6 >= 0.85 is false"
    assert record.value == 0.6
    assert record.params == [{"replicas": "+2", "min_replicas": 2, "max_replicas": 10}]
    assert record.target is None  # nothing was planned


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The service's JSON log, as ``remediator serve --log-format json`` writes it."""
    saved = structlog.get_config()
    stream = io.StringIO()
    configure("json", "info", stream=stream)
    structlog.configure(cache_logger_on_first_use=False)  # leave no logger bound to `stream`
    try:
        yield stream
    finally:
        structlog.configure(**saved)


async def test_every_audit_record_is_one_json_log_line_equal_to_the_stored_record(
    client_for: MakeClient, json_log: io.StringIO
) -> None:
    client = await client_for()
    for name in ("firing-db-pool", "repeat-db-pool"):
        await client.post("/api/v1/alerts", data=body(name), headers=AUTH)
        await service(client).executor.drained()
    service(client).audit.flush()  # lines go out at the end of the loop turn; now, here
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    audit_lines = [line for line in lines if line["event"] == "audit"]
    assert [line["outcome"] for line in audit_lines] == ["dry_run", "skipped"]
    assert [line["id"] for line in audit_lines] == [1, 2]
    assert audit_lines[1]["guardrail"] == "duplicate"
    assert audit_lines[0]["rule"] == "restart-on-db-pool-exhausted"
    assert all(line["level"] == "info" and line["timestamp"] for line in audit_lines)
    with service(client).store.reader() as conn:
        rows = conn.execute("SELECT id, record FROM audit ORDER BY id").fetchall()
        stored = sorted(query(conn, AuditQuery()), key=lambda record: record.id or 0)
    for line, (row_id, text), record in zip(audit_lines, rows, stored, strict=True):
        fields = {k: v for k, v in line.items() if k not in ("event", "level", "timestamp")}
        assert fields == {"id": row_id, **json.loads(text)}  # the line is the stored row
        assert AuditRecord.model_validate(fields) == record
        assert fields["at"].endswith(".000000Z")  # fixed-width times, as in the at column
