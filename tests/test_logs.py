"""Log lines: one JSON object per line, with pre-rendered JSON spliced in; console output."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog

from remediator.logs import MERGE_JSON, configure, expand_json, render_json


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


def test_merged_json_members_follow_the_event_keys() -> None:
    line = render_json(None, "info", {"event": "audit", MERGE_JSON: '{"id":3,"rule":"r"}'})
    assert line == '{"event":"audit","id":3,"rule":"r"}'
    assert json.loads(line) == {"event": "audit", "id": 3, "rule": "r"}


@pytest.mark.parametrize("merged", [None, "", "{}"])
def test_nothing_to_merge_leaves_the_line_as_it_is(merged: str | None) -> None:
    event = {"event": "x", "n": 1} | ({MERGE_JSON: merged} if merged is not None else {})
    assert render_json(None, "info", event) == '{"event":"x","n":1}'


def test_values_json_does_not_know_are_rendered_as_their_repr() -> None:
    when = datetime(2026, 11, 22, 21, 14, 16)
    line = json.loads(render_json(None, "info", {"event": "x", "when": when, "ok": True}))
    assert line == {"event": "x", "when": repr(when), "ok": True}


def test_console_expands_merged_json_into_fields() -> None:
    event = expand_json(None, "info", {"event": "audit", MERGE_JSON: '{"id":3,"outcome":"failed"}'})
    assert event == {"event": "audit", "id": 3, "outcome": "failed"}


@pytest.mark.usefixtures("restore_structlog")
def test_json_format_writes_one_parseable_line_per_event_at_the_level() -> None:
    stream = io.StringIO()
    configure("json", "info", stream=stream)
    log = structlog.get_logger("t").bind()
    log.debug("hidden")
    log.info("audit", **{MERGE_JSON: '{"id":1,"reason":"line\\nbreak"}'})
    log.warning("plain", count=2)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    stamp = first.pop("timestamp")
    assert first == {"event": "audit", "level": "info", "id": 1, "reason": "line\nbreak"}
    assert stamp.endswith("Z")
    second.pop("timestamp")
    assert second == {"event": "plain", "count": 2, "level": "warning"}


@pytest.mark.usefixtures("restore_structlog")
def test_console_format_shows_merged_fields() -> None:
    stream = io.StringIO()
    configure("console", "info", stream=stream)
    structlog.get_logger("t").bind().info("audit", **{MERGE_JSON: '{"outcome":"skipped"}'})
    text = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())  # without the colours
    assert " audit " in text
    assert text.rstrip().endswith("outcome=skipped")
    assert MERGE_JSON not in text
