"""structlog set-up: JSON lines for machines, the console renderer on a terminal.

Owns: the processor chain and the renderers. A caller that already holds an event's fields
as a rendered JSON object (the audit trail renders each record once, for the state file) passes
it under :data:`MERGE_JSON`; the JSON renderer splices its members into the line instead of
decoding and encoding them again, and the console renderer expands it into fields.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# An event key holding a JSON object (text) whose members become members of the log line.
MERGE_JSON = "_merge_json"

# Made once: json.dumps with any option builds a new encoder per call.
_STRICT = json.JSONEncoder(separators=(",", ":"))
_LENIENT = json.JSONEncoder(separators=(",", ":"), default=repr)


def _encode(event_dict: MutableMapping[str, Any]) -> str:
    try:
        return _STRICT.encode(event_dict)
    except TypeError:  # a value JSON does not know: its repr, as structlog's renderer does
        return _LENIENT.encode(event_dict)


def render_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """One compact JSON object per line; a :data:`MERGE_JSON` object is spliced in after the
    event's own keys (the two must not share keys: audit records have no event, level or
    timestamp field)."""
    merged = event_dict.pop(MERGE_JSON, None)
    line = _encode(event_dict)
    if not merged or merged == "{}":
        return line
    return f"{line[:-1]},{merged[1:]}"


def expand_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """For the console: a :data:`MERGE_JSON` object becomes ordinary fields."""
    merged = event_dict.pop(MERGE_JSON, None)
    if merged:
        event_dict.update(json.loads(merged))
    return event_dict


def configure(log_format: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Log to ``stream`` (standard error by default) at ``level`` and above."""
    out = stream if stream is not None else sys.stderr
    console = log_format == "console" or (log_format == "auto" and out.isatty())
    renderers: list[Any] = (
        [expand_json, structlog.dev.ConsoleRenderer()] if console else [render_json]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *renderers,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
