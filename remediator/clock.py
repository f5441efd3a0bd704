"""Time as a dependency: everything that reads "now" is handed a :class:`Clock`.

The service uses :class:`SystemClock`; tests use :class:`FakeClock` and move it by hand, so
cooldowns, windows and budgets are tested without sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


def utc_text(when: datetime) -> str:
    """Fixed-width UTC ISO 8601 to the microsecond, ``2026-11-22T21:14:16.220000Z``: the one
    text form of a time in the state file and the logs (text order is time order)."""
    utc = when if when.tzinfo is UTC else when.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" -> "Z"


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 22, 21, 14, 16, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | float) -> None:
        self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)

    def set(self, when: datetime) -> None:
        self._now = when
