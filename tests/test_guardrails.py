"""Guardrails as a pure function of (decision, state, policy, now)."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from remediator.clock import FakeClock
from remediator.guardrails import GuardrailPolicy, GuardrailState, evaluate, lookup
from remediator.matching import Decision, decide
from remediator.payload import parse_notification
from remediator.rules import load_rules
from tests.conftest import EXAMPLE_RULES, body

POLICY = GuardrailPolicy(namespace_allowlist=("shop", "pay*"), actions_per_minute=5)


def cpu_decision(clock: FakeClock) -> Decision:
    (decision,) = decide(
        parse_notification(body("firing-checkout-grouped")), load_rules(EXAMPLE_RULES), clock.now()
    )
    return decision


def test_fresh_decision_is_allowed(clock: FakeClock) -> None:
    assert evaluate(cpu_decision(clock), GuardrailState(), POLICY, clock.now()).allowed


def test_duplicate_episode_is_denied_first(clock: FakeClock) -> None:
    verdict = evaluate(
        cpu_decision(clock), GuardrailState(duplicate_of=7, global_actions=99), POLICY, clock.now()
    )
    assert not verdict.allowed
    assert verdict.guardrail == "duplicate"
    assert verdict.reason is not None
    assert verdict.reason.startswith("duplicate episode: decision #7 already acted")


def test_namespace_outside_allowlist_is_denied(clock: FakeClock) -> None:
    policy = GuardrailPolicy(namespace_allowlist=("payments",))
    verdict = evaluate(cpu_decision(clock), GuardrailState(), policy, clock.now())
    assert verdict.guardrail == "namespace_allowlist"
    assert verdict.reason == "namespace 'shop' is not in the allowlist (payments)"


def test_empty_allowlist_denies_everything(clock: FakeClock) -> None:
    verdict = evaluate(cpu_decision(clock), GuardrailState(), GuardrailPolicy(), clock.now())
    assert verdict.reason == "namespace 'shop' is not in the allowlist (empty)"


def test_cooldown_denies_until_it_ends(clock: FakeClock) -> None:
    decision = cpu_decision(clock)
    acted = clock.now()
    clock.advance(timedelta(minutes=9, seconds=59))
    verdict = evaluate(decision, GuardrailState(last_action_at=acted), POLICY, clock.now())
    assert verdict.guardrail == "cooldown"
    assert verdict.reason == (
        "cooldown: rule acted on Deployment/shop/checkout at 2026-11-22T21:14:16.000000Z; "
        "cooldown 10m ends 2026-11-22T21:24:16.000000Z"
    )
    clock.advance(timedelta(seconds=1))
    assert evaluate(decision, GuardrailState(last_action_at=acted), POLICY, clock.now()).allowed


def test_per_target_window_limit(clock: FakeClock) -> None:
    decision = cpu_decision(clock)  # example rule: max 3 per hour
    assert evaluate(decision, GuardrailState(target_actions=2), POLICY, clock.now()).allowed
    verdict = evaluate(decision, GuardrailState(target_actions=3), POLICY, clock.now())
    assert verdict.guardrail == "target_limit"
    assert verdict.reason == (
        "target limit: 3 actions on Deployment/shop/checkout in the last 1h (max 3)"
    )


def test_global_budget(clock: FakeClock) -> None:
    decision = cpu_decision(clock)
    assert evaluate(decision, GuardrailState(global_actions=4), POLICY, clock.now()).allowed
    verdict = evaluate(decision, GuardrailState(global_actions=5), POLICY, clock.now())
    assert verdict.guardrail == "global_budget"


def test_lookup_windows_follow_the_rule_and_the_clock(clock: FakeClock) -> None:
    decision = cpu_decision(clock)
    query = lookup(decision, clock.now())  # 2026-11-22T21:14:16Z; rule: 10m cooldown, 3 per 1h
    assert query.at == 1795382056.0
    assert query.cooldown_since == 1795381456.0  # 10 minutes before
    assert query.target_since == 1795378456.0  # an hour before
    assert query.global_since == 1795381996.0  # a minute before
    assert query.target == "Deployment/shop/checkout"
    assert query.episode == (
        "scale-out-on-high-cpu",
        decision.alert.fingerprint,
        "2026-11-22T21:14:14.512000Z",
        "firing",
    )


def test_the_cooldown_text_does_not_depend_on_the_time_zone_it_was_given_in(
    clock: FakeClock,
) -> None:
    decision = cpu_decision(clock)
    acted = clock.now()
    elsewhere = acted.astimezone(timezone(timedelta(hours=1)))  # the same instant
    texts = {
        evaluate(decision, GuardrailState(last_action_at=when), POLICY, clock.now()).reason
        for when in (acted, elsewhere, acted)
    }
    assert len(texts) == 1


@pytest.mark.parametrize(
    ("namespace", "allowed"),
    [
        ("shop", True),
        ("payments", True),
        ("pay", True),
        ("shop-staging", False),  # a glob matches the whole name, not a prefix
        ("xshop", False),
        ("Shop", False),  # case-sensitive, as Kubernetes names are
    ],
)
def test_allowlist_globs_match_whole_namespaces(namespace: str, allowed: bool) -> None:
    assert POLICY.namespace_allowed(namespace) is allowed


def test_allowlist_glob_characters_and_ranges() -> None:
    policy = GuardrailPolicy(namespace_allowlist=("team-?", "db-[0-9]", "*"))
    assert policy.namespace_allowed("anything")
    narrow = GuardrailPolicy(namespace_allowlist=("team-?", "db-[0-9]"))
    assert narrow.namespace_allowed("team-a")
    assert narrow.namespace_allowed("db-7")
    assert not narrow.namespace_allowed("team-ab")
    assert not narrow.namespace_allowed("db-x")
