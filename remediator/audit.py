"""The audit trail: immutable records of every decision and the one sink that writes them.

Owns: :class:`AuditRecord` (what an auditor sees), storing it in the state file inside the
caller's transaction, emitting it as one structured log line after the commit, and querying.
Must not: decide anything: the engine hands it finished records.

A record is rendered to JSON once, when it is stored; the log line is that same text with the
id added, so the state file and the log always agree, field for field. Top-level fields that
are None are left out of both (reading a record back restores them as None); a value that is
not a number (NaN, +-Inf) is written as null, JSON having no such numbers. Times are
fixed-width UTC text, ``2026-11-22T21:14:16.220000Z``, in the record as in the ``at`` column.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pydantic_core
import structlog
from pydantic import BaseModel, ConfigDict, Field

from remediator.clock import utc_text
from remediator.logs import JSON_LINES

Outcome = Literal["executed", "dry_run", "skipped", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("executed", "dry_run", "skipped", "failed")


class StepRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str
    target: str
    params: dict[str, Any]
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)
    request: dict[str, Any] | None = None
    note: str = ""
    error: str | None = None


class AuditRecord(BaseModel):
    """One decision about one alert by one rule, and what came of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int | None = None
    at: datetime
    outcome: Outcome
    reason: str | None = None
    guardrail: str | None = None
    decision_id: int | None = None
    rule: str
    rule_hash: str
    rule_source: str
    action: str
    target: str | None = None
    params: list[dict[str, Any]] = Field(default_factory=list)
    dry_run: bool = False
    alertname: str
    alert_status: str
    fingerprint: str
    starts_at: str
    group_key: str
    receiver: str
    value: float | None = None
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)
    error: str | None = None
    duration_ms: float | None = None
    decided_at: datetime | None = None


RECORD_FIELDS = frozenset(AuditRecord.model_fields) - {"id"}  # the id is the row's
REQUIRED_FIELDS = frozenset(k for k, f in AuditRecord.model_fields.items() if f.is_required())


class AuditRecordError(ValueError):
    """A stored audit row does not read back as an :class:`AuditRecord`."""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record inserted in the open transaction: its id, its fields and the stored JSON."""

    id: int
    fields: Mapping[str, Any]
    json: str  # as stored: without the id, None fields left out

    @property
    def line(self) -> str:
        """The JSON of the log line: the stored text with the id in front."""
        return f'{{"id":{self.id},{self.json[1:]}'  # never "{}": stage requires fields


class AuditLog:
    """The single sink: ``stage`` inside a store transaction, ``publish`` after it commits.

    Published records become log lines at the end of the current turn of the event loop: the
    records one group commit makes durable are published by as many intakes, all woken in the
    same turn, and go out as one structlog event of one line each (a structlog event costs
    several times the line it writes). The records are already in the state file; ``flush``
    writes what is queued at once (the app calls it when it stops).
    """

    def __init__(self) -> None:
        # Bound now, not a lazy proxy (structlog's advice for a logger used in a loop). Build
        # the sink after logging is configured, as the app factory does.
        self._log = structlog.get_logger("remediator.audit").bind()
        self._queued: list[str] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None  # loop a flush is scheduled on

    def stage(self, conn: sqlite3.Connection, fields: Mapping[str, Any]) -> StoredRecord:
        """Insert one record in the caller's transaction and return it with its id.

        ``fields`` are :class:`AuditRecord`'s, JSON-ready: times as
        :func:`~remediator.clock.utc_text` writes them, steps as :class:`StepRecord`. They are
        written as given, not validated (the engine builds them, and building a model costs
        more than the rest of the row): an unknown or missing field is refused here, and
        every stored record is read back through :class:`AuditRecord`.
        """
        present = {key: value for key, value in fields.items() if value is not None}
        keys = present.keys()
        if not REQUIRED_FIELDS <= keys <= RECORD_FIELDS or not isinstance(present["at"], str):
            raise ValueError(
                f"not an audit record: unknown {sorted(keys - RECORD_FIELDS)}, "
                f"missing {sorted(REQUIRED_FIELDS - keys)}, at {present.get('at')!r} "
                "(the time as utc_text writes it)"
            )
        # exclude_none still matters: nested step records hold None fields too.
        text = pydantic_core.to_json(present, exclude_none=True, inf_nan_mode="null").decode()
        cursor = conn.execute(
            "INSERT INTO audit (at, rule, target, outcome, fingerprint, decision_id, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                present["at"],
                present["rule"],
                present.get("target"),
                present["outcome"],
                present["fingerprint"],
                present.get("decision_id"),
                text,
            ),
        )
        assert cursor.lastrowid is not None
        return StoredRecord(cursor.lastrowid, fields, text)

    def publish(self, stored: StoredRecord) -> None:
        """Queue one log line, ``"event": "audit"``, whose other fields are the record's."""
        if not self._log.is_enabled_for(logging.INFO):  # nothing to build when filtered out
            return
        self._queued.append(stored.line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a command-line tool): write it now
            self.flush()
            return
        if self._flush_on is not loop:  # not yet scheduled on this loop
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the queued lines now."""
        self._flush_on = None
        lines, self._queued = self._queued, []
        if lines:
            self._log.info("audit", **{JSON_LINES: lines})


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    rule: str | None = None
    target: str | None = None
    outcome: Outcome | None = None
    limit: int = 100


def query(conn: sqlite3.Connection, q: AuditQuery) -> list[AuditRecord]:
    """Newest first."""
    where: list[str] = []
    args: list[Any] = []
    if q.since is not None:
        where.append("at >= ?")
        args.append(utc_text(q.since))
    if q.until is not None:
        where.append("at < ?")
        args.append(utc_text(q.until))
    for column, value in (("rule", q.rule), ("target", q.target), ("outcome", q.outcome)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    sql = "SELECT id, record FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(q.limit)
    rows: Sequence[tuple[int, str]] = conn.execute(sql, args).fetchall()
    records = []
    for row_id, text in rows:
        try:
            records.append(AuditRecord.model_validate({**json.loads(text), "id": row_id}))
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            raise AuditRecordError(
                f"audit record {row_id} does not read back as an audit record: {exc}"
            ) from exc
    return records
