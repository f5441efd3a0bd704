"""Every number form Prometheus alert templates print, and threshold comparison."""

from __future__ import annotations

import math
import re

import pytest

from remediator.values import ValueParseError, compare, extract_value, parse_threshold, parse_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # {{ $value }}, including the exact strings of the captured fixtures
        ("92", 92.0),
        ("91.5", 91.5),
        ("0.98", 0.98),
        ("-3", -3.0),
        ("1e+06", 1e6),
        ("2.5E-3", 0.0025),
        (" 7 ", 7.0),
        # humanize
        ("15.23k", 15230.0),
        ("1.234k", 1234.0),
        ("1.5M", 1.5e6),
        ("2G", 2e9),
        ("3T", 3e12),
        ("4P", 4e15),
        ("5E", 5e18),
        ("6Z", 6e21),
        ("7Y", 7e24),
        ("1e+06Y", 1e30),
        ("12.5m", 0.0125),
        ("3u", 3e-6),
        ("3µ", 3e-6),
        ("4n", 4e-9),
        ("5p", 5e-12),
        ("6f", 6e-15),
        ("7a", 7e-18),
        ("8z", 8e-21),
        ("9y", 9e-24),
        # humanize1024
        ("50Mi", 50 * 1024**2),
        ("1Ki", 1024.0),
        ("2Gi", 2 * 1024**3),
        ("3Ti", 3 * 1024**4),
        ("4Pi", 4 * 1024**5),
        ("5Ei", 5 * 1024**6),
        ("6Zi", 6 * 1024**7),
        ("7Yi", 7 * 1024**8),
        # humanizePercentage
        ("12.5%", 0.125),
        ("98%", 0.98),
        ("100%", 1.0),
        # humanizeDuration
        ("1d 2h 3m 4s", 93784.0),
        ("2h 0m 5s", 7205.0),
        ("1m 30s", 90.0),
        ("-1m 30s", -90.0),
        ("45s", 45.0),
        ("1.5s", 1.5),
        ("12.3ms", 0.0123),
        ("15.2us", 15.2e-6),
        ("15.2µs", 15.2e-6),
        ("3ns", 3e-9),
        ("0s", 0.0),
    ],
)
def test_parses_every_prometheus_form(text: str, expected: float) -> None:
    assert parse_value(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "expected"), [("NaN", math.nan), ("+Inf", math.inf), ("-Inf", -math.inf)]
)
def test_special_values(text: str, expected: float) -> None:
    value = parse_value(text)
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


def test_lone_m_is_milli_not_minutes() -> None:
    assert parse_value("5m") == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot parse '' as a number: the text is empty"),
        ("   ", "cannot parse '' as a number: the text is empty"),
        ("12.5 apples", "cannot parse '12.5 apples' as a number: it holds more than one word"),
        ("12 kg", "cannot parse '12 kg' as a number: it holds more than one word"),
        ("12kg", "cannot parse '12kg' as a number: unknown unit 'kg'"),
        ("high", "cannot parse 'high' as a number"),
        ("1.2.3", "cannot parse '1.2.3' as a number"),
        ("5ks", "cannot parse '5ks' as a number: unknown unit 'ks'"),
    ],
)
def test_garbage_is_rejected_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueParseError) as error:
        parse_value(text)
    assert str(error.value) == message


def test_thresholds_accept_numbers_and_the_same_forms() -> None:
    assert parse_threshold(85) == 85.0
    assert parse_threshold(0.9) == 0.9
    assert parse_threshold("85%") == pytest.approx(0.85)
    assert parse_threshold("1Gi") == 1024**3
    with pytest.raises(ValueParseError):
        parse_threshold(True)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        (None, "92", "92"),
        (r"is (?P<value>[0-9.]+%)", "CPU usage of deployment checkout is 92% (x).", "92%"),
        (r"lag is (\S+) messages", "Consumer lag is 15.23k messages (threshold 1000).", "15.23k"),
        (r"[0-9.]+%", "98% of the pool", "98%"),
        (r"value=(?P<value>[^ ]+?)\.?$", "in use (threshold 95%); value=0.98.", "0.98"),
    ],
)
def test_extract_value(pattern: str | None, text: str, expected: str) -> None:
    compiled = re.compile(pattern) if pattern is not None else None
    assert extract_value(text, compiled) == expected


def test_extract_value_names_the_pattern_when_it_does_not_match() -> None:
    with pytest.raises(ValueParseError) as error:
        extract_value("no number", re.compile(r"is ([0-9]+)%"))
    assert str(error.value) == "regex 'is ([0-9]+)%' does not match 'no number'"


@pytest.mark.parametrize(
    ("value", "op", "threshold", "expected"),
    [
        (92, ">", 85, True),
        (85, ">", 85, False),
        (85, ">=", 85, True),
        (0.1 + 0.2, "==", 0.3, True),  # float rounding is not a difference
        (0.1 + 0.2, ">=", 0.3, True),
        (0.3, "<=", 0.1 + 0.2, True),
        (84.9, "<", 85, True),
        (1, "!=", 2, True),
        (math.nan, ">", 0, False),
        (math.nan, "<", 0, False),
        (math.nan, "==", math.nan, False),
        (math.nan, "!=", 0, True),
        (math.inf, ">", 1e300, True),
    ],
)
def test_compare(value: float, op: str, threshold: float, expected: bool) -> None:
    assert compare(value, op, threshold) is expected  # type: ignore[arg-type]
