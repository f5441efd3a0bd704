"""Label and field selectors: parsing the query-string forms the API server accepts.

Label selectors support equality (`=`, `==`, `!=`), set-based (`in`, `notin`) and existence
(`key`, `!key`) terms; field selectors support `=`, `==` and `!=` on any dotted path of the
object (a real server allows only a few fields per kind).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


class SelectorError(ValueError):
    pass


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p for p in parts if p.strip()]


LabelCheck = Callable[[Mapping[str, str]], bool]


def _requirement(term: str) -> LabelCheck:
    if match := _SET.match(term):
        key, op, values = match.group(1), match.group(2), match.group(3)
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if match := _EQ.match(term):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS.match(term):
        negate, key = match.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {term!r}")


def label_selector(text: str | None) -> LabelCheck:
    checks = [_requirement(term) for term in _split(text or "")]
    return lambda labels: all(check(labels) for check in checks)


def _field(obj: dict[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    return "" if node is None else str(node)


def _field_requirement(term: str) -> Predicate:
    match = _EQ.match(term)
    if match is None:
        raise SelectorError(f"invalid field selector: {term!r}")
    path, op, value = match.groups()
    if op == "!=":
        return lambda obj: _field(obj, path) != value
    return lambda obj: _field(obj, path) == value


def field_selector(text: str | None) -> Predicate:
    checks = [_field_requirement(term) for term in _split(text or "")]
    return lambda obj: all(check(obj) for check in checks)


def selector_string(selector: dict[str, Any] | None) -> str:
    """A ``LabelSelector`` object in query-string form (as ``Scale.status.selector`` holds it)."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(expression.get("values") or []))
        if operator == "In":
            terms.append(f"{key} in ({values})")
        elif operator == "NotIn":
            terms.append(f"{key} notin ({values})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)
