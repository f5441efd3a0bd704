"""Numbers as Prometheus alert templates print them, and threshold comparison.

Owns: turning the text of an alert annotation or label back into a float, whatever template
function printed it; picking that text out of a longer annotation with a rule's regex; the
comparison operators a rule's threshold uses. Knows nothing of rules, alerts or I/O.

The forms, as Prometheus ``template/template.go`` prints them (numbers with ``%.4g``):

- ``{{ $value }}``: ``92``, ``91.5``, ``0.98``, ``1e+06``, ``-3``, ``NaN``, ``+Inf``, ``-Inf``.
- ``humanize``: SI prefixes, ``15.23k`` ``1.5M`` ``2G`` ``3T`` ``4P`` ``5E`` ``6Z`` ``7Y`` for
  large values, ``12.5m`` ``3u`` ``4n`` ``5p`` ``6f`` ``7a`` ``8z`` ``9y`` for small ones; beyond
  ``Y``/``y`` it prints an exponent before the prefix (``1e+06Y``), which parses too.
- ``humanize1024``: ``50Mi``, ``1Ki`` ``2Gi`` ``3Ti`` ``4Pi`` ``5Ei`` ``6Zi`` ``7Yi``.
- ``humanizePercentage``: ``12.5%`` (Prometheus prints value * 100).
- ``humanizeDuration``: ``1d 2h 3m 4s``, ``2h 0m 5s``, ``1m 30s``, ``45s``, ``1.5s``, ``12.3ms``,
  ``15.2us``, ``3ns`` (and ``ps`` ... ``ys``), ``0s``; a leading ``-`` negates the whole
  duration (``-1m 30s`` is -90). Parsed to seconds.

Decisions:

- A percentage is the fraction it was printed from: ``12.5%`` parses to 0.125. A threshold may
  be written the same way (``5%`` is 0.05) or as the fraction (``0.05``); both compare with an
  alert printing ``humanizePercentage``. ``NaN%`` and ``+Inf%`` parse to NaN and +Inf.
- A lone ``m`` is milli (``humanize``), never minutes: ``humanizeDuration`` always prints the
  seconds after the minutes (``5m 0s``), so ``5m`` is 0.005. Write ``300s`` or ``5m 0s`` for
  five minutes. Durations without the seconds (``1h``) are refused rather than guessed.
- ``µ`` (micro sign) and ``μ`` (Greek mu) are accepted wherever Prometheus prints ``u``.
- Whitespace may separate the number and its unit (``50 Mi``); Prometheus prints none. Digits
  are ASCII digits only.
- Scaling is done in decimal, so the result is the float nearest the printed number
  (``15.23k`` is exactly ``15230.0``, ``12.3ms`` exactly ``0.0123``).
- NaN compares false with every operator except ``!=`` (true). ``==`` is
  ``math.isclose(rel_tol=1e-9, abs_tol=1e-12)``, ``!=`` its negation, ``>=``/``<=`` are
  ``>``/``<`` or ``==``; ``>`` and ``<`` are the plain float comparisons, so a tiny positive
  value is still ``> 0``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from types import MappingProxyType
from typing import Final, Literal

__all__ = [
    "COMPARATORS",
    "Comparator",
    "ValueParseError",
    "compare",
    "extract_value",
    "parse_threshold",
    "parse_value",
]

Comparator = Literal[">", ">=", "<", "<=", "==", "!="]


class ValueParseError(ValueError):
    """The text is not a number in any form Prometheus prints (the message says why)."""


# --------------------------------------------------------------------------- grammar

_NUMBER: Final = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf(?:inity)?|nan)(?![^\W\d_]))",
    re.ASCII,
)
_DURATION: Final = re.compile(
    r"(?P<sign>[+-])?(?:(?P<d>\d+)d\s+)?(?:(?P<h>\d+)h\s+)?(?:(?P<m>\d+)m\s+)?"
    r"(?P<s>\d+(?:\.\d+)?)s",
    re.ASCII,
)
# Looks like a duration but is not one humanizeDuration prints ("1h", "1h 30m", "1h30m0s").
_DURATION_LIKE: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?\s*(?:[dhm]|[mµμun]?s)\s*)+", re.ASCII)

_SI_EXPONENTS: Final = {
    "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18, "Z": 21, "Y": 24,
    "m": -3, "u": -6, "µ": -6, "μ": -6, "n": -9, "p": -12, "f": -15, "a": -18, "z": -21,
    "y": -24,
}  # fmt: skip
_UNITS: Final[Mapping[str, Decimal]] = MappingProxyType(
    {
        "%": Decimal("0.01"),
        "s": Decimal(1),
        **{prefix: Decimal(1).scaleb(exp) for prefix, exp in _SI_EXPONENTS.items()},
        **{f"{p}i": Decimal(1024 ** (n + 1)) for n, p in enumerate("KMGTPEZY")},
        **{f"{p}s": Decimal(1).scaleb(exp) for p, exp in _SI_EXPONENTS.items() if exp < 0},
    }
)
# Exact decimal arithmetic; out-of-range results become Infinity or 0 instead of raising.
_EXACT: Final = Context(prec=80, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])
_SHOWN_CHARS: Final = 80


def _show(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "...")


def _error(text: str, why: str) -> ValueParseError:
    return ValueParseError(f"cannot parse {_show(text)} as a number: {why}")


def _to_float(text: str, number: str, scale: Decimal) -> float:
    try:
        return float(_EXACT.multiply(Decimal(number), scale))
    except ArithmeticError as exc:  # an exponent beyond even Decimal's range
        raise _error(text, "the number is out of range") from exc


# --------------------------------------------------------------------------- parsing


def parse_value(text: str) -> float:
    """The number ``text`` holds, in any form above; surrounding whitespace is ignored.

    Raises :class:`ValueParseError` for empty text, garbage, unknown units and more than one
    number.
    """
    stripped = text.strip()
    if not stripped:
        raise _error(text, "the text is empty")
    number = _NUMBER.match(stripped)
    if number is not None:
        if number.end() == len(stripped):  # a plain number: float() rounds it exactly
            plain = float(stripped)
            if not math.isinf(plain) or "n" in stripped.lower():  # overflow: decide below
                return plain
            return _to_float(text, stripped, Decimal(1))
        scale = _UNITS.get(stripped[number.end() :].lstrip())
        if scale is not None:
            return _to_float(text, number.group(), scale)
    # Not a number with one unit: a duration with days, hours or minutes ("1m 30s"; these
    # always hold a space, so no unit above can be one), or an error.
    duration = _DURATION.fullmatch(stripped)
    if duration is not None and any(duration.group(part) for part in "dhm"):
        seconds = Decimal(duration.group("s"))
        for part, size in (("d", 86400), ("h", 3600), ("m", 60)):
            seconds += int(duration.group(part) or 0) * size
        return _to_float(text, "-1" if duration.group("sign") == "-" else "1", seconds)
    if number is None:
        raise _error(text, "it does not start with a number")
    unit = stripped[number.end() :].lstrip()
    if _DURATION_LIKE.fullmatch(stripped):
        raise _error(
            text, "not a duration as humanizeDuration prints it (e.g. '1d 2h 3m 4s', '1m 30s')"
        )
    if any(char.isdigit() for char in unit):
        raise _error(text, "it holds more than one number")
    raise _error(text, f"unknown unit {unit!r}")


def parse_threshold(text: str | int | float) -> float:
    """A rule's threshold: the same forms as :func:`parse_value`; ints and floats pass through.

    Raises :class:`ValueParseError` (booleans are refused: a YAML ``true`` is no threshold).
    """
    if isinstance(text, bool):
        raise ValueParseError(f"cannot parse {text!r} as a number: it is a boolean")
    if isinstance(text, int):
        try:
            return float(text)
        except OverflowError as exc:
            raise ValueParseError(
                f"cannot parse {_show(str(text))} as a number: it is out of range"
            ) from exc
    if isinstance(text, float):
        return text
    if not isinstance(text, str):  # rule files are YAML: guard against lists, dicts, None
        raise ValueParseError(f"cannot parse {text!r} as a number: it is a {type(text).__name__}")
    return parse_value(text)


def extract_value(text: str, pattern: re.Pattern[str] | None) -> str:
    """The part of ``text`` that holds the number.

    Without a pattern, all of ``text``. Otherwise the first match (``re.search``): its group
    ``value`` if the pattern names one, else its group 1 if it has groups, else the whole match.
    Raises :class:`ValueParseError` naming the pattern when it does not match or the group
    captured nothing.
    """
    if pattern is None:
        return text
    match = pattern.search(text)
    if match is None:
        raise ValueParseError(f"regex {pattern.pattern!r} does not match {_show(text)}")
    group: str | int = "value" if "value" in pattern.groupindex else 1 if pattern.groups else 0
    found: str | None = match.group(group)
    if found is None:
        raise ValueParseError(
            f"regex {pattern.pattern!r} matched {_show(text)} but group {group!r} captured nothing"
        )
    return found


# --------------------------------------------------------------------------- comparison


def _equal(value: float, threshold: float) -> bool:
    return math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12)


def _not_equal(value: float, threshold: float) -> bool:
    return not _equal(value, threshold)


def _at_least(value: float, threshold: float) -> bool:
    return value > threshold or _equal(value, threshold)


def _at_most(value: float, threshold: float) -> bool:
    return value < threshold or _equal(value, threshold)


COMPARATORS: Mapping[str, Callable[[float, float], bool]] = MappingProxyType(
    {
        ">": operator.gt,
        ">=": _at_least,
        "<": operator.lt,
        "<=": _at_most,
        "==": _equal,
        "!=": _not_equal,
    }
)


def compare(value: float, op: Comparator, threshold: float) -> bool:
    """``value op threshold`` with the rounding and NaN rules in the module docstring.

    Raises ``ValueError`` for an operator that is not a :data:`Comparator`.
    """
    try:
        check = COMPARATORS[op]
    except KeyError:
        raise ValueError(
            f"unknown comparator {op!r}; expected one of {', '.join(COMPARATORS)}"
        ) from None
    return check(value, threshold)
