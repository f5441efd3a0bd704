"""Guardrails: allow or deny a decision, with the reason, from the state they are given.

Owns: the order and wording of denials: duplicate episode, namespace allowlist, per-(rule,
target) cooldown, per-target actions per window, the global actions-per-minute budget.
Must not: read the clock (``now`` is passed in), do I/O or log. The store gathers a
:class:`GuardrailState` for a :class:`Lookup` inside the same transaction that records the
verdict, so two concurrent notifications cannot both pass the same limit.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from remediator.clock import utc_text
from remediator.matching import Decision

GLOBAL_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class GuardrailPolicy:
    """Service-wide limits (from settings). Per-rule limits live on the rule."""

    namespace_allowlist: tuple[str, ...] = ()  # shell globs, case-sensitive: "shop", "team-*"
    actions_per_minute: int = 10
    _allowed: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One regex for all the globs, compiled once (this is checked for every decision).
        either = "|".join(fnmatch.translate(p) for p in self.namespace_allowlist)
        object.__setattr__(self, "_allowed", re.compile(either) if either else None)

    def namespace_allowed(self, namespace: str) -> bool:
        return self._allowed is not None and self._allowed.match(namespace) is not None


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the store must count for one decision. Times are Unix seconds, as stored."""

    episode: tuple[str, str, str, str]  # (rule, fingerprint, startsAt, status)
    target: str
    at: float  # now
    cooldown_since: float
    target_since: float | None
    global_since: float


@dataclass(frozen=True)
class GuardrailState:
    duplicate_of: int | None = None
    last_action_at: datetime | None = None  # same rule and target, within the cooldown
    target_actions: int = 0  # any rule, same target, within the rule's max_actions window
    global_actions: int = 0  # any rule and target, within the last minute


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    guardrail: str | None = None  # which guardrail denied: bounded, used as a metric label
    reason: str | None = None


ALLOW = Verdict(True)


def lookup(decision: Decision, now: datetime) -> Lookup:
    rule = decision.rule.rule
    target = decision.target
    assert target is not None, "only decisions with steps reach the guardrails"
    at = now.timestamp()
    return Lookup(
        episode=decision.episode,
        target=str(target),
        at=at,
        cooldown_since=at - rule.cooldown.total_seconds(),
        target_since=at - rule.max_actions.window.total_seconds() if rule.max_actions else None,
        global_since=at - GLOBAL_WINDOW.total_seconds(),
    )


def evaluate(
    decision: Decision, state: GuardrailState, policy: GuardrailPolicy, now: datetime
) -> Verdict:
    rule = decision.rule.rule
    if state.duplicate_of is not None:
        return Verdict(
            False,
            "duplicate",
            f"duplicate episode: decision #{state.duplicate_of} already acted on this alert "
            f"(fingerprint {decision.alert.fingerprint}, startsAt {decision.alert.starts_at_key})",
        )
    for step in decision.steps:
        if not policy.namespace_allowed(step.target.namespace):
            return Verdict(
                False,
                "namespace_allowlist",
                f"namespace {step.target.namespace!r} is not in the allowlist "
                f"({', '.join(policy.namespace_allowlist) or 'empty'})",
            )
    if state.last_action_at is not None and now < state.last_action_at + rule.cooldown:
        return Verdict(
            False,
            "cooldown",
            f"cooldown: rule acted on {decision.target} "
            + _cooldown(state.last_action_at, rule.cooldown),
        )
    if rule.max_actions is not None and state.target_actions >= rule.max_actions.count:
        return Verdict(
            False,
            "target_limit",
            f"target limit: {state.target_actions} actions on {decision.target} in the last "
            f"{_human(rule.max_actions.window)} (max {rule.max_actions.count})",
        )
    if state.global_actions >= policy.actions_per_minute:
        return Verdict(
            False,
            "global_budget",
            f"global budget: {state.global_actions} actions in the last minute "
            f"(max {policy.actions_per_minute} per minute)",
        )
    return ALLOW


@functools.lru_cache(maxsize=1024)
def _cooldown(last_action_at: datetime, cooldown: timedelta) -> str:
    """``at T; cooldown 10m ends U``: the same for every denial while one cooldown runs, and
    formatting two times costs more than the rest of the verdict."""
    until = last_action_at + cooldown
    return f"at {utc_text(last_action_at)}; cooldown {_human(cooldown)} ends {utc_text(until)}"


@functools.lru_cache(maxsize=256)  # a rule's cooldown and window: few distinct values
def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
