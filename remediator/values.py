"""Numbers as Prometheus alert templates print them, and threshold comparison.

Owns: parsing every form Prometheus' template functions produce back into a float, pulling
the number out of a longer annotation with a rule's regex, and the comparison operators.
Must not: know about rules, alerts or I/O.

The forms (Prometheus ``template/template.go``, all with ``%.4g``):

- ``{{ $value }}``: ``92``, ``91.5``, ``0.98``, ``1e+06``, ``NaN``, ``+Inf``, ``-Inf``.
- ``humanize``: SI prefixes, ``15.23k`` ``1.5M`` ... ``Y`` for large values and ``12.5m``
  ``3u`` ``4n`` ``5p`` ``6f`` ``7a`` ``8z`` ``9y`` for small ones (``µ`` is accepted too).
- ``humanize1024``: ``50Mi``, ``1Ki`` ... ``Yi``.
- ``humanizePercentage``: ``12.5%`` is the value 0.125. A percentage is a fraction, so an
  alert printing ``12.5%`` compares with a threshold written ``5%`` or ``0.05``.
- ``humanizeDuration``: ``1d 2h 3m 4s``, ``2h 0m 5s``, ``1m 30s``, ``45s``, ``1.5s``,
  ``12.3ms``, ``15.2us``, ``3ns``, with a leading ``-`` when negative; parsed to seconds.

A lone ``m`` is milli (``humanize``), never minutes: ``humanizeDuration`` always prints the
seconds after minutes (``5m 0s``).

NaN compares false with every operator except ``!=``; ``==`` and ``!=`` allow for float
rounding (relative 1e-9).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Literal

Comparator = Literal[">", ">=", "<", "<=", "==", "!="]


class ValueParseError(ValueError):
    """The text is not a number in any form Prometheus prints."""


_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SI = {
    "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Z": 1e21, "Y": 1e24,
    "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15, "a": 1e-18,
    "z": 1e-21, "y": 1e-24,
}  # fmt: skip
_BINARY = {p + "i": 1024.0 ** (n + 1) for n, p in enumerate("KMGTPEZY")}
_SCALED = re.compile(rf"^(?P<number>{_NUMBER})(?P<unit>[A-Za-zµ%]*)$")
_SPECIAL = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}
_DURATION = re.compile(
    r"^(?P<sign>-)?(?:(?P<d>\d+)d\s+)?(?:(?P<h>\d+)h\s+)?(?:(?P<m>\d+)m\s+)?(?P<s>\d+)s$"
)


def _unit_factor(unit: str) -> float | None:
    if unit == "":
        return 1.0
    if unit == "%":
        return 0.01
    if unit in _BINARY:
        return _BINARY[unit]
    if unit in _SI:
        return _SI[unit]
    if unit.endswith("s"):  # humanizeDuration below a minute: 1.5s, 12.3ms, 15.2us
        prefix = unit[:-1]
        if prefix == "":
            return 1.0
        if prefix in _SI and _SI[prefix] < 1:
            return _SI[prefix]
    return None


def parse_value(text: str) -> float:
    """Every form above, surrounding whitespace allowed. Raises :class:`ValueParseError`."""
    stripped = text.strip()
    if not stripped:
        raise ValueParseError("cannot parse '' as a number: the text is empty")
    special = _SPECIAL.get(stripped.lower())
    if special is not None:
        return special
    if " " in stripped:
        duration = _DURATION.match(stripped)
        if duration is None:
            raise ValueParseError(f"cannot parse {text!r} as a number: it holds more than one word")
        parts = {k: int(v) if v else 0 for k, v in duration.groupdict().items() if k != "sign"}
        seconds = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
        return -float(seconds) if duration.group("sign") else float(seconds)
    match = _SCALED.match(stripped)
    if match is None:
        raise ValueParseError(f"cannot parse {text!r} as a number")
    factor = _unit_factor(match.group("unit"))
    if factor is None:
        raise ValueParseError(
            f"cannot parse {text!r} as a number: unknown unit {match.group('unit')!r}"
        )
    return float(match.group("number")) * factor


def parse_threshold(text: str | int | float) -> float:
    """A rule's threshold: the same forms as alert values; numbers pass through."""
    if isinstance(text, bool):
        raise ValueParseError(f"{text!r} is not a number")
    if isinstance(text, int | float):
        return float(text)
    return parse_value(text)


def extract_value(text: str, pattern: re.Pattern[str] | None) -> str:
    """The part of ``text`` that holds the number: the regex's group ``value`` if it has one,
    else its group 1, else the whole match; all of ``text`` without a pattern."""
    if pattern is None:
        return text
    match = pattern.search(text)
    if match is None:
        raise ValueParseError(f"regex {pattern.pattern!r} does not match {text!r}")
    if "value" in pattern.groupindex:
        found = match.group("value")
    elif pattern.groups:
        found = match.group(1)
    else:
        found = match.group(0)
    if found is None:
        raise ValueParseError(f"regex {pattern.pattern!r} matched {text!r} but captured nothing")
    return str(found)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


COMPARATORS: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": lambda a, b: a > b or _close(a, b),
    "<": operator.lt,
    "<=": lambda a, b: a < b or _close(a, b),
    "==": _close,
    "!=": lambda a, b: not _close(a, b),
}


def compare(value: float, op: Comparator, threshold: float) -> bool:
    return COMPARATORS[op](value, threshold)
