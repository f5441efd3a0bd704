"""The Alertmanager webhook payload (version "4") as typed, frozen values.

Owns: decoding the request body bytes into a :class:`Notification`, and the one-line error
message that names what is wrong with a body that is not a valid notification.
Must not: know about rules, guardrails or Kubernetes.

Unknown fields are ignored so that a newer Alertmanager does not break intake. Timestamps are
RFC 3339 with Go's trimmed fractional seconds (``.22Z``, ``.512Z``, ``Z``); a firing alert's
``endsAt`` is the zero time ``0001-01-01T00:00:00Z``, which is kept as ``None``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediator.clock import utc_text

AlertStatus = Literal["firing", "resolved"]

_ZERO_TIME_YEAR = 1


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook notification we can act on."""


class _Incoming(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Alert(_Incoming):
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at_sent: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(min_length=1)

    # Times are kept as sent and normalised on first use: validation stays in pydantic's
    # compiled code (a Python validator per field costs a quarter of the parse).

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @cached_property
    def ends_at(self) -> datetime | None:
        """``endsAt`` in UTC; None for the zero time a firing alert carries."""
        sent = self.ends_at_sent
        if sent is None or sent.year == _ZERO_TIME_YEAR:
            return None
        return _utc(sent)

    @cached_property
    def starts_at_key(self) -> str:
        """``startsAt`` in UTC to the microsecond, so a trimmed and an untrimmed rendering of
        the same instant identify the same episode."""
        return utc_text(_utc(self.starts_at))


def _utc(value: datetime) -> datetime:
    """RFC 3339 times carry an offset; one without is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Notification(_Incoming):
    version: Literal["4"]
    receiver: str
    status: AlertStatus
    alerts: tuple[Alert, ...]
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        if item["type"] == "json_invalid":
            parts.append(f"body is not valid JSON: {item['msg'].removeprefix('Invalid JSON: ')}")
        elif item["type"] == "literal_error" and item["loc"] == ("version",):
            parts.append('version: unsupported webhook version (expected "4")')
        elif item["type"] == "missing":
            parts.append(f"{where}: required field is missing")
        else:
            parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def parse_notification(body: bytes) -> Notification:
    """Validate straight from the body bytes (no intermediate ``json.loads``)."""
    if not body.strip():
        raise PayloadError("body is empty: expected an Alertmanager webhook JSON object")
    try:
        notification = Notification.model_validate_json(body)
    except ValidationError as exc:
        raise PayloadError(_describe(exc)) from exc
    for index, alert in enumerate(notification.alerts):
        # Some valid RFC 3339 times fall outside the datetime range once in UTC (year 1 at
        # +05:00): refuse them here, as invalid input, rather than fail while deciding. The
        # normalised times are cached on the alert for matching.
        field = "startsAt"
        try:
            _ = alert.starts_at_key
            field = "endsAt"
            _ = alert.ends_at
        except OverflowError:
            raise PayloadError(f"alerts.{index}.{field}: time is out of range in UTC") from None
    return notification
