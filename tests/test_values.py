"""Every number form Prometheus alert templates print, regex extraction, threshold comparison."""

from __future__ import annotations

import math
import re
from typing import get_args

import pytest

from remediator.values import (
    COMPARATORS,
    Comparator,
    ValueParseError,
    compare,
    extract_value,
    parse_threshold,
    parse_value,
)

# Expected values are float literals, compared with ==: parsing scales in decimal, so the
# result is the float nearest the printed number, with no multiplication drift.
PROMETHEUS_FORMS = [
    # {{ $value }} (Go's %v), including the exact strings of the captured fixtures
    ("92", 92.0),
    ("91.5", 91.5),
    ("0.98", 0.98),
    ("1e+06", 1e6),
    ("1e-07", 1e-7),
    ("-3", -3.0),
    ("0", 0.0),
    # humanize: large SI prefixes
    ("15.23k", 15230.0),
    ("1.234k", 1234.0),
    ("1.5M", 1.5e6),
    ("2G", 2e9),
    ("3T", 3e12),
    ("4P", 4e15),
    ("5E", 5e18),
    ("6Z", 6e21),
    ("7Y", 7e24),
    ("-2.5k", -2500.0),
    ("1e+06Y", 1e30),  # beyond Y, %.4g prints an exponent before the prefix
    # humanize: small SI prefixes
    ("12.5m", 0.0125),
    ("3u", 3e-6),
    ("3µ", 3e-6),  # micro sign
    ("3μ", 3e-6),  # Greek mu
    ("4n", 4e-9),
    ("5p", 5e-12),
    ("6f", 6e-15),
    ("7a", 7e-18),
    ("8z", 8e-21),
    ("9y", 9e-24),
    ("1e-06y", 1e-30),
    # humanize1024
    ("50Mi", 52428800.0),
    ("1Ki", 1024.0),
    ("2Gi", 2147483648.0),
    ("3Ti", 3298534883328.0),
    ("4Pi", 4503599627370496.0),
    ("5Ei", 5764607523034234880.0),
    ("6Zi", 7083549724304467820544.0),
    ("7Yi", 8462480737302404222943232.0),
    ("1.5Ki", 1536.0),
    # humanizePercentage: the fraction it was printed from
    ("12.5%", 0.125),
    ("98%", 0.98),
    ("100%", 1.0),
    ("33.33%", 0.3333),
    ("-5%", -0.05),
    ("1e+04%", 100.0),
    # humanizeDuration, in seconds
    ("1d 2h 3m 4s", 93784.0),
    ("2h 0m 5s", 7205.0),
    ("1m 30s", 90.0),
    ("-1m 30s", -90.0),
    ("-1d 0h 0m 1s", -86401.0),
    ("45s", 45.0),
    ("1.5s", 1.5),
    ("0s", 0.0),
    ("12.3ms", 0.0123),
    ("-12.3ms", -0.0123),
    ("15.2us", 15.2e-6),
    ("15.2µs", 15.2e-6),
    ("3ns", 3e-9),
    ("4ps", 4e-12),
    ("9ys", 9e-24),
    # whitespace Prometheus does not print but a hand-written value may carry
    (" 92\n", 92.0),
    ("\t12.5% ", 0.125),
    ("50 Mi", 52428800.0),
]


@pytest.mark.parametrize(("text", "expected"), PROMETHEUS_FORMS)
def test_every_prometheus_form_parses_to_the_nearest_float(text: str, expected: float) -> None:
    assert parse_value(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+Inf", math.inf),
        ("-Inf", -math.inf),
        ("Inf", math.inf),
        ("+Inf%", math.inf),
        ("-Inf%", -math.inf),
        ("infinity", math.inf),
    ],
)
def test_infinities_parse_to_infinity(text: str, expected: float) -> None:
    assert parse_value(text) == expected


@pytest.mark.parametrize("text", ["NaN", "nan", " NaN ", "NaN%"])
def test_nan_parses_to_nan(text: str) -> None:
    assert math.isnan(parse_value(text))


def test_a_lone_m_is_milli_not_minutes() -> None:
    assert parse_value("5m") == 0.005
    assert parse_value("5m 0s") == 300.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot parse '' as a number: the text is empty"),
        ("   ", "cannot parse '   ' as a number: the text is empty"),
        ("12.5 apples", "cannot parse '12.5 apples' as a number: unknown unit 'apples'"),
        ("12kg", "cannot parse '12kg' as a number: unknown unit 'kg'"),
        ("5ks", "cannot parse '5ks' as a number: unknown unit 'ks'"),
        ("5K", "cannot parse '5K' as a number: unknown unit 'K'"),  # humanize prints k
        ("high", "cannot parse 'high' as a number: it does not start with a number"),
        ("info", "cannot parse 'info' as a number: it does not start with a number"),
        ("value=92", "cannot parse 'value=92' as a number: it does not start with a number"),
        ("92 93", "cannot parse '92 93' as a number: it holds more than one number"),
        ("1.2.3", "cannot parse '1.2.3' as a number: it holds more than one number"),
        ("92% (threshold 85%)", "cannot parse '92% (threshold 85%)' as a number: "
                                "it holds more than one number"),
        ("1h", "cannot parse '1h' as a number: not a duration as humanizeDuration prints it "
               "(e.g. '1d 2h 3m 4s', '1m 30s')"),
        ("1h 30m", "cannot parse '1h 30m' as a number: not a duration as humanizeDuration "
                   "prints it (e.g. '1d 2h 3m 4s', '1m 30s')"),
        ("1e99999999999999999999", "cannot parse '1e99999999999999999999' as a number: "
                                   "the number is out of range"),
    ],
)  # fmt: skip
def test_bad_text_is_refused_with_the_text_and_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueParseError) as error:
        parse_value(text)
    assert str(error.value) == message


@pytest.mark.parametrize(
    "text", ["+", "-", ".", "e5", "k", "%", "Mi", "1 e", "5Ki Mi", "1,5", "0x10", "1_000", "--5"]
)
def test_fragments_and_other_notations_are_refused(text: str) -> None:
    with pytest.raises(ValueParseError, match=r"^cannot parse "):
        parse_value(text)


def test_long_text_is_shortened_in_the_message() -> None:
    with pytest.raises(ValueParseError) as error:
        parse_value("x" * 500)
    assert str(error.value) == f"cannot parse '{'x' * 77}...' as a number: " + (
        "it does not start with a number"
    )


def test_value_parse_error_is_a_value_error() -> None:
    assert issubclass(ValueParseError, ValueError)


# --------------------------------------------------------------------------- round trip
# template.go's functions, transcribed; Python's %.4g prints as Go's except NaN and Inf.


def _go_g4(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.4g}"


def _humanize(v: float) -> str:
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _go_g4(v)
    prefix = ""
    if abs(v) >= 1:
        for p in "kMGTPEZY":
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        for p in "munpfazy":
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return _go_g4(v) + prefix


def _humanize1024(v: float) -> str:
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _go_g4(v)
    prefix = ""
    for p in ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"]:
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return _go_g4(v) + prefix


def _humanize_percentage(v: float) -> str:
    return _go_g4(v * 100) + "%"


def _humanize_duration(v: float) -> str:
    if math.isnan(v) or math.isinf(v):
        return _go_g4(v)
    if v == 0:
        return _go_g4(v) + "s"
    if abs(v) >= 1:
        sign, v = ("-", -v) if v < 0 else ("", v)
        whole = int(v)
        days, hours = whole // 86400, whole // 3600 % 24
        minutes, seconds = whole // 60 % 60, whole % 60
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_go_g4(v)}s"
    prefix = ""
    for p in "munpfazy":
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{_go_g4(v)}{prefix}s"


ROUND_TRIP_VALUES = [
    sign * mantissa * 10.0**exponent
    for sign in (1, -1)
    for mantissa in (1.0, 1.234567, 5.5, 9.99951)
    for exponent in range(-30, 31, 3)
] + [0.0, 59.99, 60.0, 86399.9, 1023.0, 1024.0, 1025.0]


@pytest.mark.parametrize(
    "humanize", [_go_g4, _humanize, _humanize1024, _humanize_percentage], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
def test_what_prometheus_prints_parses_back_to_four_significant_digits(
    humanize: object, value: float
) -> None:
    assert callable(humanize)
    printed = humanize(value)
    assert parse_value(printed) == pytest.approx(value, rel=5e-4, abs=0), printed


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
def test_what_humanize_duration_prints_parses_back_to_seconds(value: float) -> None:
    printed = _humanize_duration(value)
    if abs(value) >= 60:  # whole seconds from a minute up
        assert parse_value(printed) == math.trunc(value), printed
    else:
        assert parse_value(printed) == pytest.approx(value, rel=5e-4, abs=0), printed


@pytest.mark.parametrize("humanize", [_humanize, _humanize1024, _humanize_percentage])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_what_prometheus_prints_for_nan_and_inf_parses_back(humanize: object, value: float) -> None:
    assert callable(humanize)
    parsed = parse_value(humanize(value))
    assert parsed == value or (math.isnan(parsed) and math.isnan(value))


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (85, 85.0),
        (0.9, 0.9),
        (-1, -1.0),
        ("85", 85.0),
        ("85%", 0.85),
        ("5%", 0.05),
        ("0.05", 0.05),
        ("1Gi", 1073741824.0),
        ("15.23k", 15230.0),
        ("1m 30s", 90.0),
        ("+Inf", math.inf),
    ],
)
def test_thresholds_take_numbers_and_every_value_form(
    threshold: str | int | float, expected: float
) -> None:
    parsed = parse_threshold(threshold)
    assert parsed == expected
    assert type(parsed) is float


def test_a_percent_threshold_and_a_percent_value_compare_naturally() -> None:
    assert compare(parse_value("12.5%"), ">", parse_threshold("5%"))
    assert compare(parse_value("12.5%"), "==", parse_threshold(0.125))
    assert compare(parse_value("92%"), ">=", parse_threshold("85%"))


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        (True, "cannot parse True as a number: it is a boolean"),
        ("lots", "cannot parse 'lots' as a number: it does not start with a number"),
        ("85 %%", "cannot parse '85 %%' as a number: unknown unit '%%'"),
        (None, "cannot parse None as a number: it is a NoneType"),
    ],
)
def test_bad_thresholds_are_refused_with_the_reason(threshold: object, message: str) -> None:
    with pytest.raises(ValueParseError) as error:
        parse_threshold(threshold)  # type: ignore[arg-type]
    assert str(error.value) == message


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        # the exact annotation texts of the captured fixtures and rules/*.yaml
        (r"is (?P<value>[0-9.]+%)", "CPU usage of deployment checkout is 92% (threshold 85%).",
         "92%"),
        (r"value=(?P<value>[^ ]+?)\.?$",
         "98% of the orders-db pool connections are in use (threshold 95%); value=0.98.", "0.98"),
        (r"value=(?P<value>[^ ]+)", "value=91.5 since 10m", "91.5"),
        # the named group wins over an earlier unnamed one
        (r"(lag) is (?P<value>\S+)", "Consumer lag is 15.23k messages.", "15.23k"),
        # else group 1
        (r"lag is (\S+) messages", "Consumer lag is 15.23k messages (threshold 1000).", "15.23k"),
        # else the whole match
        (r"[0-9.]+Mi", "heap 50Mi of 64Mi", "50Mi"),
        # re.search: the first match anywhere, not anchored
        (r"\d+%", "at 98% and 99%", "98%"),
    ],
)  # fmt: skip
def test_extract_value_takes_the_value_group_else_group_1_else_the_match(
    pattern: str, text: str, expected: str
) -> None:
    assert extract_value(text, re.compile(pattern)) == expected


def test_extract_value_without_a_pattern_is_the_whole_text() -> None:
    assert extract_value(" 15.23k ", None) == " 15.23k "


def test_extracted_values_parse() -> None:
    text = "CPU usage of deployment checkout is 92% (threshold 85%)."
    assert parse_value(extract_value(text, re.compile(r"is (?P<value>[0-9.]+%)"))) == 0.92


def test_extract_value_names_the_pattern_when_it_does_not_match() -> None:
    with pytest.raises(ValueParseError) as error:
        extract_value("no number", re.compile(r"is ([0-9]+)%"))
    assert str(error.value) == "regex 'is ([0-9]+)%' does not match 'no number'"


def test_extract_value_names_the_pattern_when_the_group_captured_nothing() -> None:
    with pytest.raises(ValueParseError) as error:
        extract_value("value unknown", re.compile(r"value (?:=(?P<value>\S+)|unknown)"))
    assert str(error.value) == (
        "regex 'value (?:=(?P<value>\\\\S+)|unknown)' matched 'value unknown' "
        "but group 'value' captured nothing"
    )


# --------------------------------------------------------------------------- comparison


def test_comparators_are_exactly_the_comparator_literals() -> None:
    assert set(COMPARATORS) == set(get_args(Comparator))


@pytest.mark.parametrize(
    ("value", "op", "threshold", "expected"),
    [
        (92.0, ">", 85.0, True),
        (85.0, ">", 85.0, False),
        (84.9, ">", 85.0, False),
        (85.0, ">=", 85.0, True),
        (84.9, ">=", 85.0, False),
        (84.9, "<", 85.0, True),
        (85.0, "<", 85.0, False),
        (85.0, "<=", 85.0, True),
        (85.1, "<=", 85.0, False),
        (85.0, "==", 85.0, True),
        (85.1, "==", 85.0, False),
        (1.0, "!=", 2.0, True),
        (2.0, "!=", 2.0, False),
        (math.inf, ">", 1e300, True),
        (math.inf, "==", math.inf, True),
        (-math.inf, "<", -1e300, True),
    ],
)
def test_compare_applies_the_operator(
    value: float, op: Comparator, threshold: float, expected: bool
) -> None:
    assert compare(value, op, threshold) is expected
    assert COMPARATORS[op](value, threshold) is expected


@pytest.mark.parametrize(
    ("value", "op", "threshold", "expected"),
    [
        (0.1 + 0.2, "==", 0.3, True),
        (0.1 + 0.2, "!=", 0.3, False),
        (0.3, "<=", 0.1 + 0.2, True),
        (0.1 + 0.2, ">=", 0.3, True),
        (85.0 * (1 - 1e-12), ">=", 85.0, True),
        (1e-13, "==", 0.0, True),  # abs_tol 1e-12 near zero
        (1e-13, ">", 0.0, True),  # but > and < stay the plain comparisons
        (85.0 * (1 + 1e-8), "==", 85.0, False),  # beyond rel_tol 1e-9
    ],
)
def test_equality_allows_for_float_rounding(
    value: float, op: Comparator, threshold: float, expected: bool
) -> None:
    assert compare(value, op, threshold) is expected


@pytest.mark.parametrize("op", get_args(Comparator))
@pytest.mark.parametrize(("value", "threshold"), [(math.nan, 0.0), (0.0, math.nan)])
def test_nan_compares_false_except_for_not_equal(
    op: Comparator, value: float, threshold: float
) -> None:
    assert compare(value, op, threshold) is (op == "!=")
    assert compare(math.nan, op, math.nan) is (op == "!=")


def test_compare_refuses_an_unknown_operator() -> None:
    with pytest.raises(ValueError, match=r"^unknown comparator '=~'; expected one of >, >="):
        compare(1.0, "=~", 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["\u0661\u0662\u0663", "\u0669\u0662%", "\uff11\uff12"]
)  # Arabic-Indic, full-width
def test_only_ascii_digits_are_numbers(text: str) -> None:
    with pytest.raises(ValueParseError, match="it does not start with a number"):
        parse_value(text)


def test_a_huge_integer_threshold_is_named_without_all_its_digits() -> None:
    with pytest.raises(ValueParseError) as error:
        parse_threshold(10**400)
    assert str(error.value).startswith("cannot parse '1000")
    assert str(error.value).endswith("...' as a number: it is out of range")
    assert len(str(error.value)) < 140
