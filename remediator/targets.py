"""What an action acts on: a Kubernetes object reference, rendered from alert labels.

Owns: the ``{labels.NAME}`` substitution (plain text replacement, no template language) and
validation of the rendered namespace and name against Kubernetes' naming rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_PLACEHOLDER = re.compile(r"\{labels\.([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_BRACE = re.compile(r"[{}]")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


class RenderError(ValueError):
    """A target could not be rendered from the alert (missing label, invalid name)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A rendered, validated object reference (validated by :func:`render_target`; a plain
    dataclass because one is built for every matched alert). ``str()`` is ``Kind/ns/name``,
    the key guardrails count by: made once, it is used several times per decision."""

    kind: str
    namespace: str
    name: str
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_text", f"{self.kind}/{self.namespace}/{self.name}")

    def __str__(self) -> str:
        return self._text

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


def check_template(template: str) -> str:
    """Load-time check: only ``{labels.NAME}`` placeholders may appear. Returns the template."""
    leftover = _PLACEHOLDER.sub("", template)
    if _ANY_BRACE.search(leftover):
        raise ValueError(
            f"template {template!r} has a brace that is not a {{labels.NAME}} placeholder"
        )
    return template


@dataclass(frozen=True, slots=True)
class Template:
    """A checked template, split once into literal text and label names, so rendering is a
    dictionary lookup per placeholder (it runs for every matched alert)."""

    text: str
    parts: tuple[tuple[str, bool], ...]  # (literal text, False) or (label name, True)

    @classmethod
    def compile(cls, template: str) -> Template:
        check_template(template)
        parts: list[tuple[str, bool]] = []
        position = 0
        for match in _PLACEHOLDER.finditer(template):
            if match.start() > position:
                parts.append((template[position : match.start()], False))
            parts.append((match.group(1), True))
            position = match.end()
        if position < len(template):
            parts.append((template[position:], False))
        return cls(template, tuple(parts))

    def render(self, labels: Mapping[str, str]) -> str:
        if len(self.parts) == 1:  # one literal or one placeholder: most templates, no join
            return _part(self.parts[0], labels)
        return "".join(_part(part, labels) for part in self.parts)


def _part(part: tuple[str, bool], labels: Mapping[str, str]) -> str:
    text, is_label = part
    if not is_label:
        return text
    value = labels.get(text)
    if not value:
        raise RenderError(f"label {text!r} is not set on the alert")
    return value


def render(template: str | Template, labels: Mapping[str, str]) -> str:
    """Replace every ``{labels.NAME}`` with that label's value; a missing or empty label is a
    :class:`RenderError`. Label values are inserted as text, never evaluated."""
    compiled = template if isinstance(template, Template) else Template.compile(template)
    return compiled.render(labels)


def validate_namespace(namespace: str) -> None:
    if len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
        raise RenderError(
            f"namespace {namespace!r} is not a valid Kubernetes namespace "
            "(RFC 1123 label: lowercase alphanumerics and '-', at most 63 characters)"
        )


def validate_name(name: str) -> None:
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise RenderError(
            f"name {name!r} is not a valid Kubernetes object name "
            "(RFC 1123 subdomain: lowercase alphanumerics, '-' and '.', at most 253 characters)"
        )


def render_target(
    kind: str, namespace: str | Template, name: str | Template, labels: Mapping[str, str]
) -> Target:
    rendered_namespace = render(namespace, labels)
    rendered_name = render(name, labels)
    validate_namespace(rendered_namespace)
    validate_name(rendered_name)
    return Target(kind, rendered_namespace, rendered_name)
