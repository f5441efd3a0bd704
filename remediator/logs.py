"""structlog set-up: JSON lines for machines, the console renderer on a terminal.

Owns: the processor chain and the renderers. A caller that already holds events as rendered
JSON objects (the audit trail renders each record once, for the state file) passes them as a
list under :data:`JSON_LINES`: the event then renders as one line per object, each line the
event's own keys (``event``, ``level``, ``timestamp``, context) followed by the object's
members. Nothing is decoded and encoded again, and one pass through the processor chain serves
every line (structlog's per-event cost is most of a line's cost).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# An event key holding a list of JSON objects (as text): the event renders as one line each.
JSON_LINES = "_json_lines"

# Made once: json.dumps with any option builds a new encoder per call. UTF-8, not \u escapes:
# the JSON objects spliced in (pydantic-core's) are UTF-8 too.
_STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_LENIENT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=repr)


def _encode(event_dict: MutableMapping[str, Any]) -> str:
    try:
        return _STRICT.encode(event_dict)
    except TypeError:  # a value JSON does not know: its repr, as structlog's renderer does
        return _LENIENT.encode(event_dict)


def render_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """One compact JSON object per line. With :data:`JSON_LINES`, one line per object: the
    event's keys, then the object's members (the two must not share keys: audit records have
    no event, level or timestamp field)."""
    objects: list[str] | None = event_dict.pop(JSON_LINES, None)
    line = _encode(event_dict)
    if objects is None:
        return line
    head = line[:-1]
    return "\n".join(f"{head},{obj[1:]}" if obj != "{}" else line for obj in objects)


class ConsoleLines:
    """The console renderer, with :data:`JSON_LINES` objects expanded into fields, one
    rendered line each."""

    def __init__(self) -> None:
        self._render = structlog.dev.ConsoleRenderer()

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        objects: list[str] | None = event_dict.pop(JSON_LINES, None)
        if objects is None:
            return self._render(logger, method, event_dict)
        return "\n".join(
            self._render(logger, method, {**event_dict, **json.loads(obj)}) for obj in objects
        )


def configure(log_format: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Log to ``stream`` (standard error by default) at ``level`` and above."""
    out = stream if stream is not None else sys.stderr
    console = log_format == "console" or (log_format == "auto" and out.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            ConsoleLines() if console else render_json,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
