"""Decoding Alertmanager webhook bodies: every captured payload, and the facts that bite."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from remediator.payload import PayloadError, parse_notification
from tests.conftest import body, fixture_names


@pytest.mark.parametrize("name", fixture_names())
def test_every_captured_payload_parses(name: str) -> None:
    notification = parse_notification(body(name))
    raw = json.loads(body(name))
    assert notification.version == "4"
    assert len(notification.alerts) == len(raw["alerts"])
    assert notification.truncated_alerts == raw["truncatedAlerts"]
    for alert, raw_alert in zip(notification.alerts, raw["alerts"], strict=True):
        assert alert.fingerprint == raw_alert["fingerprint"]
        assert alert.status == raw_alert["status"]


def test_firing_alert_zero_end_time_is_unset() -> None:
    alert = parse_notification(body("firing-db-pool")).alerts[0]
    assert alert.ends_at is None


def test_trimmed_fractional_seconds_keep_their_value() -> None:
    alert = parse_notification(body("firing-db-pool")).alerts[0]
    assert alert.starts_at.microsecond == 220000
    assert alert.starts_at_key == "2026-11-22T21:14:16.220000Z"


def test_firing_group_can_hold_a_resolved_alert() -> None:
    notification = parse_notification(body("firing-checkout-one-resolved"))
    assert notification.status == "firing"
    statuses = {a.alertname: a.status for a in notification.alerts}
    assert statuses["HighErrorRate"] == "resolved"
    assert statuses["HighCPUUsage"] == "firing"


def test_refired_alert_is_a_new_episode_with_the_same_fingerprint() -> None:
    first = parse_notification(body("firing-checkout-grouped")).alerts[0]
    again = parse_notification(body("firing-checkout-refired")).alerts[0]
    assert first.fingerprint == again.fingerprint
    assert first.starts_at_key != again.starts_at_key


def test_unknown_fields_are_ignored() -> None:
    raw = json.loads(body("firing-db-pool"))
    raw["somethingNew"] = {"x": 1}
    raw["alerts"][0]["newAlertField"] = True
    assert parse_notification(json.dumps(raw).encode()).receiver == "remediation-basic-auth"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "body is empty: expected an Alertmanager webhook JSON object"),
        (b"{not json", "body is not valid JSON"),
        (b"[]", "body: Input should be an object"),
        (b'{"version": "3"}', 'version: unsupported webhook version (expected "4")'),
    ],
)
def test_invalid_bodies_are_named(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as error:
        parse_notification(payload)
    assert str(error.value).startswith(message)


def test_missing_alert_field_is_named_with_its_path() -> None:
    raw = json.loads(body("firing-db-pool"))
    del raw["alerts"][0]["fingerprint"]
    with pytest.raises(PayloadError, match=r"^alerts\.0\.fingerprint: required field is missing$"):
        parse_notification(json.dumps(raw).encode())


def test_bad_timestamp_is_named() -> None:
    raw = json.loads(body("firing-db-pool"))
    raw["alerts"][0]["startsAt"] = "yesterday"
    with pytest.raises(PayloadError, match=r"^alerts\.0\.startsAt: "):
        parse_notification(json.dumps(raw).encode())


def _with_times(starts_at: str, ends_at: str) -> bytes:
    raw = json.loads(body("resolved-db-pool"))
    raw["alerts"][0]["startsAt"] = starts_at
    raw["alerts"][0]["endsAt"] = ends_at
    return json.dumps(raw).encode()


def test_times_with_an_offset_are_the_same_instants_in_utc() -> None:
    alert = parse_notification(
        _with_times("2026-11-22T22:14:16.22+01:00", "2026-11-22T17:20:00-05:00")
    ).alerts[0]
    assert alert.starts_at_key == "2026-11-22T21:14:16.220000Z"
    assert alert.ends_at == datetime(2026, 11, 22, 22, 20, tzinfo=UTC)
    assert alert.ends_at.tzinfo is UTC


def test_a_time_without_an_offset_is_taken_as_utc() -> None:
    alert = parse_notification(_with_times("2026-11-22T21:14:16", "2026-11-22T21:20:00")).alerts[0]
    assert alert.starts_at_key == "2026-11-22T21:14:16.000000Z"
    assert alert.ends_at == datetime(2026, 11, 22, 21, 20, tzinfo=UTC)


def test_nanosecond_times_as_go_prints_them_are_accepted_to_the_microsecond() -> None:
    alert = parse_notification(
        _with_times("2026-11-22T21:14:16.123456789Z", "0001-01-01T00:00:00Z")
    ).alerts[0]
    assert alert.starts_at_key == "2026-11-22T21:14:16.123456Z"
    assert alert.ends_at is None


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "field"),
    [
        ("0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00Z", "startsAt"),
        ("2026-11-22T21:14:16Z", "9999-12-31T23:59:59-05:00", "endsAt"),
    ],
)
def test_a_time_outside_the_range_in_utc_is_named(starts_at: str, ends_at: str, field: str) -> None:
    with pytest.raises(PayloadError, match=rf"^alerts\.0\.{field}: time is out of range in UTC$"):
        parse_notification(_with_times(starts_at, ends_at))
