"""Matching: a pure function from (notification, rule set, now) to decisions.

Owns: which rules an alert triggers (alertname index, label matchers, status), the threshold
check on the value the alert carries, and rendering each step's target from the alert labels.
Must not: do I/O, read the clock, log, or consult guardrail state. A problem with one alert
(unparseable value, missing label, invalid name) becomes a *skipped* decision with the reason,
never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remediator.payload import Alert, Notification
from remediator.rules import LoadedRule, RuleSet, Threshold
from remediator.targets import RenderError, Target, render_target
from remediator.values import ValueParseError, compare, extract_value, parse_value


@dataclass(frozen=True)
class PlannedStep:
    action: str
    target: Target
    params_json: dict[str, Any]  # the rule's, prepared at load: never mutate

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "params": dict(self.params_json),
            "target": self.target.as_dict(),
        }


@dataclass(frozen=True)
class Decision:
    """What one rule wants done about one alert, before guardrails have their say."""

    rule: LoadedRule
    alert: Alert
    receiver: str
    group_key: str
    decided_at: datetime
    steps: tuple[PlannedStep, ...] = ()
    value: float | None = None
    skip_reason: str | None = None

    @property
    def rule_name(self) -> str:
        return self.rule.rule.name

    @property
    def episode(self) -> tuple[str, str, str, str]:
        """(rule, fingerprint, startsAt, status): one action at most, ever, per episode."""
        return (self.rule_name, self.alert.fingerprint, self.alert.starts_at_key, self.alert.status)

    @property
    def target(self) -> Target | None:
        """The primary target (the first step's): cooldowns and per-target limits key on it."""
        return self.steps[0].target if self.steps else None

    @property
    def action(self) -> str:
        return self.rule.action


def read_value(threshold: Threshold, alert: Alert) -> float:
    source = threshold.value_from
    if source.annotation is not None:
        raw = alert.annotations.get(source.annotation)
    else:
        raw = alert.labels.get(source.label or "")
    if raw is None:
        raise ValueParseError(f"{source.describe()} is not set on the alert")
    return parse_value(extract_value(raw, source.pattern))


def _plan(loaded: LoadedRule, alert: Alert) -> tuple[PlannedStep, ...]:
    return tuple(
        PlannedStep(
            step.type,
            render_target(step.kind, step.namespace, step.name, alert.labels),
            step.params_json,
        )
        for step in loaded.steps
    )


def _assess(
    loaded: LoadedRule, alert: Alert
) -> tuple[float | None, tuple[PlannedStep, ...], str | None]:
    """(value read, planned steps, skip reason): steps when the rule should act, else a reason."""
    threshold = loaded.rule.threshold
    value: float | None = None
    if threshold is not None:
        try:
            value = read_value(threshold, alert)
        except ValueParseError as exc:
            return None, (), f"value unreadable: {exc}"
        if not compare(value, threshold.op, threshold.value):
            reason = f"threshold not met: {value:g} {threshold.op} {threshold.value:g} is false"
            return value, (), reason
    try:
        return value, _plan(loaded, alert), None
    except RenderError as exc:
        return value, (), f"target invalid: {exc}"


def decide_alert(
    loaded: LoadedRule, alert: Alert, notification: Notification, now: datetime
) -> Decision | None:
    """None when the rule does not apply to the alert at all (labels or status differ)."""
    rule = loaded.rule
    if alert.status not in rule.on_status or not rule.match.matches(alert.labels):
        return None
    value, steps, skip_reason = _assess(loaded, alert)
    return Decision(
        rule=loaded,
        alert=alert,
        receiver=notification.receiver,
        group_key=notification.group_key,
        decided_at=now,
        steps=steps,
        value=value,
        skip_reason=skip_reason,
    )


def decide(notification: Notification, rules: RuleSet, now: datetime) -> list[Decision]:
    """Every decision the notification's alerts give rise to, in payload order."""
    decisions = []
    for alert in notification.alerts:
        for loaded in rules.for_alertname(alert.alertname):
            decision = decide_alert(loaded, alert, notification, now)
            if decision is not None:
                decisions.append(decision)
    return decisions
