"""Rule files: schema, loading with located errors, and the alertname index.

Owns: what a rule file may say (strict: an unknown key is an error), Alertmanager-style label
matchers, turning every problem in a rules directory into one ``file:line:col: rule "x": key:
message`` line, and :class:`RuleSet`, which finds the rules for an alertname in O(1).
Must not: do I/O beyond reading the rule files, read the clock, or talk to Kubernetes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from remediator.actions import REGISTRY
from remediator.payload import AlertStatus
from remediator.targets import Template, check_template
from remediator.values import Comparator, ValueParseError, parse_threshold

# --------------------------------------------------------------------------- durations

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """Prometheus-style durations: ``30s``, ``10m``, ``1h30m``, ``2d``; a bare number is
    seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration {value!r} is negative")
        return timedelta(seconds=value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a duration like 30s, 10m or 1h30m")
    text = value.strip()
    if _DURATION_PART.sub("", text) != "":
        raise ValueError(f"{value!r} is not a duration like 30s, 10m or 1h30m")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def _format_duration(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(_format_duration, return_type=str)
]

# --------------------------------------------------------------------------- matchers

_MATCHER = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"
    r'(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^"\s]*))\s*$'
)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelMatcher(_Strict):
    """``name="value"``, ``name!="value"``, ``name=~"regex"``, ``name!~"regex"``.

    As in Alertmanager, a missing label matches as the empty string and regexes are anchored
    (``^(?:re)$``)."""

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @model_validator(mode="after")
    def _compile(self) -> LabelMatcher:
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(f"^(?:{self.value})$"))
            except re.error as exc:
                raise ValueError(f"invalid regex {self.value!r}: {exc}") from exc
        return self

    @classmethod
    def parse(cls, text: str) -> LabelMatcher:
        match = _MATCHER.match(text)
        if match is None:
            raise ValueError(
                f'{text!r} is not a label matcher like name="value", name!="value", '
                'name=~"regex" or name!~"regex"'
            )
        quoted = match.group("quoted")
        value = json.loads(f'"{quoted}"') if quoted is not None else match.group("bare")
        return cls.model_validate(
            {"name": match.group("name"), "op": match.group("op"), "value": value}
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        regex: re.Pattern[str] = self.__dict__["_regex"]
        found = regex.match(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"


def _matcher(value: object) -> object:
    return LabelMatcher.parse(value) if isinstance(value, str) else value


class Match(_Strict):
    alertname: str = Field(min_length=1, description="Exact alertname; rules are indexed by it.")
    labels: tuple[Annotated[LabelMatcher, BeforeValidator(_matcher)], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(matcher.matches(labels) for matcher in self.labels)


# --------------------------------------------------------------------------- threshold


class ValueFrom(_Strict):
    """Where the alert carries the number: one annotation or one label, optionally the part of
    it that ``regex`` captures (group ``value``, else group 1, else the whole match)."""

    annotation: str | None = None
    label: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ValueFrom:
        if (self.annotation is None) == (self.label is None):
            raise ValueError("set exactly one of annotation or label")
        if self.regex is not None:
            try:
                object.__setattr__(self, "_pattern", re.compile(self.regex))
            except re.error as exc:
                raise ValueError(f"invalid regex {self.regex!r}: {exc}") from exc
        else:
            object.__setattr__(self, "_pattern", None)
        return self

    @property
    def pattern(self) -> re.Pattern[str] | None:
        pattern: re.Pattern[str] | None = self.__dict__["_pattern"]
        return pattern

    def describe(self) -> str:
        return f"annotation {self.annotation!r}" if self.annotation else f"label {self.label!r}"


def _threshold_value(value: object) -> object:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return parse_threshold(value)
        except ValueParseError as exc:
            raise ValueError(str(exc)) from exc
    return value


class Threshold(_Strict):
    value_from: ValueFrom
    op: Comparator
    value: Annotated[float, BeforeValidator(_threshold_value)]


# --------------------------------------------------------------------------- targets, steps


class TargetTemplate(_Strict):
    """The object to act on; ``namespace`` and ``name`` may use ``{labels.NAME}``."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet"]
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)

    @field_validator("namespace", "name")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return check_template(value)


class _StepBase(_Strict):
    type: str
    target: TargetTemplate | None = Field(
        default=None, description="Overrides the rule's target for this step."
    )


def _step_model(name: str, params_model: type[BaseModel], params_required: bool) -> type[Any]:
    params_field: Any = (
        (params_model, ...)
        if params_required
        else (params_model, Field(default_factory=params_model))
    )
    return create_model(
        f"Step_{name}",
        __base__=_StepBase,
        type=(Literal[name], ...),  # type: ignore[arg-type]
        params=params_field,
    )


def _params_required(model: type[BaseModel]) -> bool:
    return any(f.is_required() for f in model.model_fields.values())


_STEP_MODELS = tuple(
    _step_model(name, action.params_model, _params_required(action.params_model))
    for name, action in REGISTRY.items()
)
Step = Annotated[Union[_STEP_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007


class MaxActions(_Strict):
    count: int = Field(ge=1)
    window: Duration


class Rule(_Strict):
    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$", max_length=128)
    description: str = ""
    match: Match
    threshold: Threshold | None = None
    on_status: tuple[AlertStatus, ...] = ("firing",)
    target: TargetTemplate | None = None
    action: Step | None = None
    steps: tuple[Step, ...] | None = None
    cooldown: Duration = timedelta(minutes=5)
    max_actions: MaxActions | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if (self.action is None) == (self.steps is None):
            raise ValueError("set exactly one of action (one step) or steps (a list)")
        if self.steps is not None and not self.steps:
            raise ValueError("steps must hold at least one step")
        if not self.on_status:
            raise ValueError("on_status must name at least one of firing, resolved")
        for index, step in enumerate(self.all_steps):
            target = step.target or self.target
            where = "action" if self.action is not None else f"steps.{index}"
            if target is None:
                raise ValueError(f"{where}: no target: set target on the rule or on the step")
            kinds = REGISTRY[step.type].target_kinds
            if target.kind not in kinds:
                raise ValueError(
                    f"{where}: action {step.type!r} cannot act on a {target.kind} "
                    f"(it acts on {', '.join(sorted(kinds))})"
                )
        return self

    @property
    def all_steps(self) -> tuple[Any, ...]:
        return (self.action,) if self.action is not None else tuple(self.steps or ())

    @property
    def definition_hash(self) -> str:
        """sha256 of the rule's canonical JSON: the audit names exactly which definition
        decided."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class RuleFile(_Strict):
    rules: tuple[Rule, ...] = ()


# --------------------------------------------------------------------------- rule set


@dataclass(frozen=True)
class RuleStep:
    """One step of a loaded rule, with what every decision needs of it prepared once."""

    type: str
    params_json: dict[str, Any]  # the step's params as JSON; shared: never mutate
    kind: str
    namespace: Template
    name: Template


@dataclass(frozen=True)
class LoadedRule:
    rule: Rule
    source: str  # "path:line"
    definition_hash: str
    # Derived from the rule at load (left out of equality and hashing, which the rule decides):
    steps: tuple[RuleStep, ...] = field(init=False, compare=False)
    action: str = field(init=False, compare=False)  # step types joined with "+"
    # What every audit record of this rule says about it. Shared: never mutate.
    audit_fields: Mapping[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        steps = []
        for step in self.rule.all_steps:
            template = step.target or self.rule.target
            assert template is not None  # the schema guarantees a target per step
            steps.append(
                RuleStep(
                    step.type,
                    step.params.model_dump(mode="json"),
                    template.kind,
                    Template.compile(template.namespace),
                    Template.compile(template.name),
                )
            )
        action = "+".join(step.type for step in steps)
        object.__setattr__(self, "steps", tuple(steps))
        object.__setattr__(self, "action", action)
        object.__setattr__(
            self,
            "audit_fields",
            MappingProxyType(
                {
                    "rule": self.rule.name,
                    "rule_hash": self.definition_hash,
                    "rule_source": self.source,
                    "action": action,
                    "params": [step.params_json for step in steps],
                }
            ),
        )


@dataclass(frozen=True)
class RuleSet:
    by_alertname: Mapping[str, tuple[LoadedRule, ...]]
    files: tuple[str, ...] = ()
    count: int = 0

    def for_alertname(self, alertname: str) -> tuple[LoadedRule, ...]:
        return self.by_alertname.get(alertname, ())

    def all(self) -> Iterable[LoadedRule]:
        for rules in self.by_alertname.values():
            yield from rules

    @classmethod
    def build(cls, rules: Iterable[LoadedRule], files: Iterable[str] = ()) -> RuleSet:
        index: dict[str, list[LoadedRule]] = {}
        total = 0
        for loaded in rules:
            index.setdefault(loaded.rule.match.alertname, []).append(loaded)
            total += 1
        return cls({k: tuple(v) for k, v in index.items()}, tuple(files), total)


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class RuleError:
    file: str
    line: int
    column: int
    rule: str | None
    key: str
    message: str

    def __str__(self) -> str:
        rule = f' rule "{self.rule}":' if self.rule else ""
        key = f" {self.key}:" if self.key else ""
        return f"{self.file}:{self.line}:{self.column}:{rule}{key} {self.message}"


@dataclass
class RuleSetError(Exception):
    errors: list[RuleError] = field(default_factory=list)

    def __str__(self) -> str:
        count = len(self.errors)
        head = f"{count} error{'s' if count != 1 else ''} in the rule set"
        return "\n".join([head, *(str(e) for e in self.errors)])


class _Located:
    """Maps a validation location (keys and indexes) to the YAML node it came from."""

    def __init__(self, root: yaml.Node) -> None:
        self.root = root

    def find(self, loc: tuple[int | str, ...]) -> yaml.Node:
        node = self.root
        for part in loc:
            child = self._child(node, part)
            if child is None:
                continue  # a discriminator tag or a missing key: stay on the parent
            node = child
        return node

    @staticmethod
    def _child(node: yaml.Node, part: int | str) -> yaml.Node | None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child: yaml.Node = value
                    return child
            return None
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            return node.value[part] if 0 <= part < len(node.value) else None
        return None

    def key_node(self, loc: tuple[int | str, ...]) -> yaml.Node | None:
        parent = self.find(loc[:-1])
        if isinstance(parent, yaml.MappingNode):
            for key, _ in parent.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(loc[-1]):
                    return key
        return None


def _duplicate_keys(node: yaml.Node, file: str) -> list[RuleError]:
    errors: list[RuleError] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    mark = key.start_mark
                    errors.append(
                        RuleError(
                            file, mark.line + 1, mark.column + 1, None, key.value, "duplicate key"
                        )
                    )
                seen.add(key.value)
            errors.extend(_duplicate_keys(value, file))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            errors.extend(_duplicate_keys(item, file))
    return errors


def _rule_name(data: Any, loc: tuple[int | str, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        try:
            name = data["rules"][loc[1]]["name"]
        except (KeyError, IndexError, TypeError):
            return f"#{loc[1] + 1}"
        return str(name) if isinstance(name, str) else f"#{loc[1] + 1}"
    return None


def _message(item: Mapping[str, Any]) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown action type; known: {', '.join(sorted(REGISTRY))}"
    message = str(item["msg"])
    return message.removeprefix("Value error, ")


def _key_path(loc: tuple[int | str, ...], tags: frozenset[str]) -> str:
    """The key path inside the rule, without pydantic's discriminator tags: a step's location
    ``action.scale.params`` is shown as ``action.params`` (``steps.1.scale.params`` likewise)."""
    inside = loc[2:] if len(loc) >= 2 and loc[0] == "rules" else loc
    parts: list[str] = []
    for part in inside:
        after_step = bool(parts) and (parts[-1] == "action" or parts[-1].isdigit())
        if isinstance(part, str) and part in tags and after_step:
            continue
        parts.append(str(part))
    return ".".join(parts)


def _errors_from_validation(
    exc: ValidationError, data: Any, located: _Located, file: str
) -> list[RuleError]:
    tags = frozenset(REGISTRY)
    errors = []
    for item in exc.errors(include_url=False, include_input=False):
        loc = tuple(item["loc"])
        node: yaml.Node | None = None
        if item["type"] == "extra_forbidden":
            node = located.key_node(loc)
        node = node or located.find(loc)
        mark = node.start_mark
        errors.append(
            RuleError(
                file,
                mark.line + 1,
                mark.column + 1,
                _rule_name(data, loc),
                _key_path(loc, tags),
                _message(item),
            )
        )
    return errors


def load_file(path: Path, display: str | None = None) -> tuple[list[LoadedRule], list[RuleError]]:
    """Parse and validate one rule file; returns its rules or every error in it."""
    file = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [RuleError(file, 1, 1, None, "", f"cannot read file: {exc}")]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [RuleError(file, line, column, None, "", f"invalid YAML: {problem}")]
    if root is None:
        return [], []  # an empty file holds no rules
    duplicates = _duplicate_keys(root, file)
    if duplicates:
        return [], duplicates
    located = _Located(root)
    try:
        parsed = RuleFile.model_validate(data)
    except ValidationError as exc:
        return [], _errors_from_validation(exc, data, located, file)
    loaded = []
    for index, rule in enumerate(parsed.rules):
        mark = located.find(("rules", index)).start_mark
        loaded.append(LoadedRule(rule, f"{file}:{mark.line + 1}", rule.definition_hash))
    return loaded, []


def rule_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_rules(directory: Path) -> RuleSet:
    """Load every ``*.yaml``/``*.yml`` in ``directory``; raise :class:`RuleSetError` with all
    the errors at once if any file is invalid."""
    if not directory.is_dir():
        raise RuleSetError(
            [RuleError(str(directory), 0, 0, None, "", "rules directory does not exist")]
        )
    errors: list[RuleError] = []
    rules: list[LoadedRule] = []
    seen: dict[str, str] = {}
    files = rule_files(directory)
    for path in files:
        loaded, file_errors = load_file(path)
        errors.extend(file_errors)
        for item in loaded:
            first = seen.get(item.rule.name)
            if first is not None:
                file, _, line = item.source.rpartition(":")
                errors.append(
                    RuleError(
                        file,
                        int(line),
                        1,
                        item.rule.name,
                        "name",
                        f"duplicate rule name (first defined at {first})",
                    )
                )
                continue
            seen[item.rule.name] = item.source
            rules.append(item)
    if errors:
        raise RuleSetError(errors)
    return RuleSet.build(rules, (str(p) for p in files))
