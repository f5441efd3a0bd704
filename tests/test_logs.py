"""Log lines: one JSON object per line, pre-rendered JSON objects spliced in; console output."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog

from remediator.logs import JSON_LINES, ConsoleLines, configure, render_json


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


def test_each_object_becomes_a_line_after_the_event_keys() -> None:
    text = render_json(
        None, "info", {"event": "audit", JSON_LINES: ['{"id":3,"rule":"r"}', '{"id":4}']}
    )
    assert text.splitlines() == ['{"event":"audit","id":3,"rule":"r"}', '{"event":"audit","id":4}']


def test_an_empty_object_is_the_event_alone_and_no_objects_no_line() -> None:
    assert render_json(None, "info", {"event": "x", JSON_LINES: ["{}"]}) == '{"event":"x"}'
    assert render_json(None, "info", {"event": "x", JSON_LINES: []}) == ""


def test_an_event_without_objects_is_one_line() -> None:
    assert render_json(None, "info", {"event": "x", "n": 1}) == '{"event":"x","n":1}'


def test_values_json_does_not_know_are_rendered_as_their_repr() -> None:
    when = datetime(2026, 11, 22, 21, 14, 16)
    line = json.loads(render_json(None, "info", {"event": "x", "when": when, "ok": True}))
    assert line == {"event": "x", "when": repr(when), "ok": True}


def test_console_renders_each_object_as_its_own_line_of_fields() -> None:
    text = ConsoleLines()(
        None, "info", {"event": "audit", JSON_LINES: ['{"id":3}', '{"outcome":"failed"}']}
    )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()
    assert len(plain) == 2
    assert plain[0].startswith("audit")
    assert plain[0].rstrip().endswith("id=3")
    assert plain[1].rstrip().endswith("outcome=failed")


@pytest.mark.usefixtures("restore_structlog")
def test_json_format_writes_parseable_lines_at_the_level() -> None:
    stream = io.StringIO()
    configure("json", "info", stream=stream)
    log = structlog.get_logger("t").bind()
    log.debug("hidden")
    log.info("audit", **{JSON_LINES: ['{"id":1,"reason":"line\\nbreak"}', '{"id":2}']})
    log.warning("plain", count=2)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first.pop("timestamp").endswith("Z")
    assert first == {"event": "audit", "level": "info", "id": 1, "reason": "line\nbreak"}
    second.pop("timestamp")
    assert second == {"event": "audit", "level": "info", "id": 2}
    third.pop("timestamp")
    assert third == {"event": "plain", "count": 2, "level": "warning"}


@pytest.mark.usefixtures("restore_structlog")
def test_console_format_shows_the_objects_fields() -> None:
    stream = io.StringIO()
    configure("console", "info", stream=stream)
    structlog.get_logger("t").bind().info("audit", **{JSON_LINES: ['{"outcome":"skipped"}']})
    text = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())  # without the colours
    assert " audit " in text
    assert text.rstrip().endswith("outcome=skipped")
    assert JSON_LINES not in text
