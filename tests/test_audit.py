"""The audit sink's log lines: when they are written, and that they are the stored records."""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from remediator.audit import AuditLog, AuditQuery, AuditRecord, StoredRecord, query
from remediator.logs import configure
from remediator.store import SCHEMA


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    stream = io.StringIO()
    configure("json", "info", stream=stream)
    try:
        yield stream
    finally:
        structlog.configure(**saved)


def record(n: int) -> dict[str, Any]:
    return {
        "at": f"2026-11-22T21:14:{n:02d}.000000Z",
        "outcome": "skipped",
        "reason": f"reason {n}",
        "guardrail": None,
        "rule": "r",
        "rule_hash": "0" * 64,
        "rule_source": "rules/x.yaml:2",
        "action": "scale",
        "params": [{"replicas": "+2"}],
        "alertname": "HighCPUUsage",
        "alert_status": "firing",
        "fingerprint": f"{n:016x}",
        "starts_at": "2026-11-22T21:14:14.512000Z",
        "group_key": "{}:{}",
        "receiver": "remediator",
        "value": math.nan,
    }


def stage_all(sink: AuditLog, count: int) -> list[StoredRecord]:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    return [sink.stage(conn, record(n)) for n in range(1, count + 1)]


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_without_an_event_loop_a_line_is_written_at_once(log_stream: io.StringIO) -> None:
    sink = AuditLog()
    (stored,) = stage_all(sink, 1)
    sink.publish(stored)
    (line,) = lines(log_stream)
    assert line["id"] == 1
    assert line["reason"] == "reason 1"


async def test_lines_of_one_loop_turn_are_written_at_its_end_in_order(
    log_stream: io.StringIO,
) -> None:
    sink = AuditLog()
    for stored in stage_all(sink, 3):
        sink.publish(stored)
    assert log_stream.getvalue() == ""
    await asyncio.sleep(0)  # one turn of the loop: the queued lines go out
    assert [line["id"] for line in lines(log_stream)] == [1, 2, 3]
    assert {line["event"] for line in lines(log_stream)} == {"audit"}


async def test_flush_writes_what_is_queued_now(log_stream: io.StringIO) -> None:
    sink = AuditLog()
    (stored,) = stage_all(sink, 1)
    sink.publish(stored)
    sink.flush()
    assert [line["id"] for line in lines(log_stream)] == [1]
    await asyncio.sleep(0)
    assert len(lines(log_stream)) == 1  # the scheduled flush finds nothing left


def test_a_line_holds_the_stored_json_and_the_id(log_stream: io.StringIO) -> None:
    sink = AuditLog()
    (stored,) = stage_all(sink, 1)
    sink.publish(stored)
    (line,) = lines(log_stream)
    fields = {k: v for k, v in line.items() if k not in ("event", "level", "timestamp")}
    assert fields == {"id": 1, **json.loads(stored.json)}
    assert "guardrail" not in fields  # None fields are left out, of both
    assert fields["value"] is None  # NaN is not JSON: written as null


def test_nothing_is_queued_when_info_is_filtered_out() -> None:
    saved = structlog.get_config()
    stream = io.StringIO()
    configure("json", "warning", stream=stream)
    try:
        sink = AuditLog()
        (stored,) = stage_all(sink, 1)
        sink.publish(stored)
        sink.flush()
        assert stream.getvalue() == ""
    finally:
        structlog.configure(**saved)


def test_a_stored_record_reads_back_as_an_audit_record() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    AuditLog().stage(conn, record(7))
    (read,) = query(conn, AuditQuery())
    assert isinstance(read, AuditRecord)
    assert read.id == 1
    assert read.at.isoformat() == "2026-11-22T21:14:07+00:00"
    assert read.reason == "reason 7"
    assert read.guardrail is None
    assert read.params == [{"replicas": "+2"}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reasno": "typo"}, "unknown ['reasno']"),
        ({"rule": ...}, "missing ['rule']"),
        ({"alertname": None}, "missing ['alertname']"),  # None is left out, so it is missing
        ({"id": 5}, "unknown ['id']"),  # the row's id, never a field
        ({"at": datetime(2026, 11, 22, tzinfo=UTC)}, "at datetime.datetime(2026, 11, 22"),
    ],
)
def test_stage_refuses_what_is_not_an_audit_record(change: dict[str, Any], message: str) -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    fields = {k: v for k, v in (record(1) | change).items() if v is not ...}
    with pytest.raises(ValueError, match=re.escape(message)):
        AuditLog().stage(conn, fields)
    assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 0


def test_lines_queued_on_a_loop_that_stopped_are_written_by_the_next_publish(
    log_stream: io.StringIO,
) -> None:
    sink = AuditLog()
    first, second = stage_all(sink, 2)

    async def publish_and_stop() -> None:
        sink.publish(first)  # its flush is scheduled on this loop...
        asyncio.get_running_loop().stop()  # ...which stops before it runs

    loop = asyncio.new_event_loop()
    loop.run_until_complete(publish_and_stop())
    loop.close()
    assert log_stream.getvalue() == ""
    sink.publish(second)  # no loop now: written at once, with what was queued
    assert [line["id"] for line in lines(log_stream)] == [1, 2]
