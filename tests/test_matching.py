"""Matching: (notification, rules, now) -> decisions, with no I/O."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from remediator.clock import FakeClock
from remediator.matching import decide
from remediator.payload import parse_notification
from remediator.rules import RuleSet, load_rules
from tests.conftest import EXAMPLE_RULES, body

NOW = FakeClock().now()


def examples() -> RuleSet:
    return load_rules(EXAMPLE_RULES)


def test_high_cpu_alert_plans_a_scale_of_its_deployment() -> None:
    notification = parse_notification(body("firing-checkout-grouped"))
    (decision,) = decide(notification, examples(), NOW)
    assert decision.rule_name == "scale-out-on-high-cpu"
    assert decision.skip_reason is None
    assert decision.value == pytest.approx(0.92)
    (step,) = decision.steps
    assert step.action == "scale"
    assert str(step.target) == "Deployment/shop/checkout"
    assert decision.episode == (
        "scale-out-on-high-cpu",
        decision.alert.fingerprint,
        "2026-11-22T21:14:14.512000Z",
        "firing",
    )


def test_db_pool_alert_plans_a_rollout_restart() -> None:
    notification = parse_notification(body("firing-db-pool"))
    (decision,) = decide(notification, examples(), NOW)
    assert decision.rule_name == "restart-on-db-pool-exhausted"
    assert decision.value == pytest.approx(0.98)
    assert str(decision.target) == "Deployment/payments/payments-api"


def test_resolved_alerts_do_not_trigger_firing_rules() -> None:
    for name in ("resolved-checkout", "resolved-db-pool"):
        assert decide(parse_notification(body(name)), examples(), NOW) == []


def test_alerts_without_rules_give_no_decision() -> None:
    for name in ("firing-kafka-orders", "firing-truncated-pod-memory-leak"):
        assert decide(parse_notification(body(name)), examples(), NOW) == []


def _with_description(name: str, alertname: str, description: str) -> bytes:
    raw = json.loads(body(name))
    for alert in raw["alerts"]:
        if alert["labels"]["alertname"] == alertname:
            alert["annotations"]["description"] = description
    return json.dumps(raw).encode()


def test_value_below_threshold_is_a_skip_with_the_numbers() -> None:
    payload = _with_description(
        "firing-checkout-grouped", "HighCPUUsage", "CPU usage of deployment checkout is 71% (x)."
    )
    (decision,) = decide(parse_notification(payload), examples(), NOW)
    assert decision.steps == ()
    assert decision.skip_reason == "threshold not met: 0.71 >= 0.85 is false"


def test_unparseable_value_is_a_skip_saying_why() -> None:
    payload = _with_description(
        "firing-checkout-grouped", "HighCPUUsage", "CPU usage of deployment checkout is high"
    )
    (decision,) = decide(parse_notification(payload), examples(), NOW)
    assert decision.steps == ()
    assert decision.skip_reason is not None
    assert decision.skip_reason.startswith("value unreadable: ")


def _rule_dir(tmp_path: Path, target_name: str) -> RuleSet:
    (tmp_path / "r.yaml").write_text(
        textwrap.dedent(f"""\
        rules:
          - name: r
            match: {{alertname: DatabaseConnectionPoolExhausted}}
            target: {{kind: Deployment, namespace: "{{labels.namespace}}", name: "{target_name}"}}
            action: {{type: rollout_restart}}
        """)
    )
    return load_rules(tmp_path)


def test_missing_label_in_target_is_a_skip(tmp_path: Path) -> None:
    rules = _rule_dir(tmp_path, "{labels.service}")
    (decision,) = decide(parse_notification(body("firing-db-pool")), rules, NOW)
    assert decision.skip_reason == "target invalid: label 'service' is not set on the alert"


def test_rendered_name_must_be_a_valid_kubernetes_name(tmp_path: Path) -> None:
    rules = _rule_dir(tmp_path, "{labels.alertname}")
    (decision,) = decide(parse_notification(body("firing-db-pool")), rules, NOW)
    assert decision.skip_reason is not None
    assert decision.skip_reason.startswith(
        "target invalid: name 'DatabaseConnectionPoolExhausted' is not a valid Kubernetes object"
    )


def test_label_matchers_filter_alerts(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        textwrap.dedent("""\
        rules:
          - name: only-warning
            match: {alertname: HighMemoryUsage, labels: ['severity="critical"']}
            target: {kind: Deployment, namespace: shop, name: checkout}
            action: {type: rollout_restart}
        """)
    )
    rules = load_rules(tmp_path)
    assert decide(parse_notification(body("firing-checkout-grouped")), rules, NOW) == []


def test_rules_on_resolved_status_see_resolved_alerts(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        textwrap.dedent("""\
        rules:
          - name: scale-back
            match: {alertname: HighCPUUsage}
            on_status: [resolved]
            target: {kind: Deployment, namespace: shop, name: checkout}
            action: {type: scale, params: {replicas: 2}}
        """)
    )
    rules = load_rules(tmp_path)
    assert decide(parse_notification(body("firing-checkout-grouped")), rules, NOW) == []
    (decision,) = decide(parse_notification(body("resolved-checkout")), rules, NOW)
    assert decision.episode[3] == "resolved"
