"""The audit trail: immutable records of every decision and the one sink that writes them.

Owns: :class:`AuditRecord` (what an auditor sees), storing it in the state file inside the
caller's transaction, emitting it as one structured log line after the commit, and querying.
Must not: decide anything: the engine hands it finished records.

A record is rendered to JSON once, when it is stored; the log line is that same text with the
id added, so the state file and the log always agree, field for field. Fields that are None
are left out of both (reading a record back restores them as None).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

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


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record inserted in the open transaction, and the JSON stored for it."""

    record: AuditRecord
    json: str  # as stored: without the id, None fields left out

    @property
    def line(self) -> str:
        """The JSON of the log line: the stored text with the id in front."""
        return f'{{"id":{self.record.id},{self.json[1:]}' if self.json != "{}" else self.json


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

    def stage(
        self, conn: sqlite3.Connection, record: AuditRecord, at: str | None = None
    ) -> StoredRecord:
        """Insert the record in the caller's transaction; returns it with its id. ``at`` is
        ``record.at`` as :func:`~remediator.clock.utc_text` writes it, when the caller has it
        already (formatting a time costs more than the rest of the row's Python)."""
        text = record.model_dump_json(exclude_none=True)  # the id is None until inserted
        cursor = conn.execute(
            "INSERT INTO audit (at, rule, target, outcome, fingerprint, decision_id, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                at if at is not None else utc_text(record.at),
                record.rule,
                record.target,
                record.outcome,
                record.fingerprint,
                record.decision_id,
                text,
            ),
        )
        # The record is frozen and was built a moment ago by the engine: set the id in place
        # rather than copying every field (this is the hot path of every notification).
        object.__setattr__(record, "id", cursor.lastrowid)
        return StoredRecord(record, text)

    def publish(self, stored: StoredRecord) -> None:
        """Queue one log line, ``"event": "audit"``, whose other fields are the record's."""
        if not self._log.is_enabled_for(logging.INFO):  # nothing to build when filtered out
            return
        if not self._queued:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no event loop (a command-line tool): write it now
                self._queued.append(stored.line)
                self.flush()
                return
        self._queued.append(stored.line)

    def flush(self) -> None:
        """Write the queued lines now."""
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
    return [AuditRecord.model_validate({**json.loads(r), "id": i}) for i, r in rows]
