"""Rule files: schema, located error messages, matchers, the alertname index."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from remediator.actions import REGISTRY
from remediator.rules import LabelMatcher, RuleSetError, load_rules, parse_duration
from tests.conftest import EXAMPLE_RULES

GOOD = """\
rules:
  - name: scale-checkout
    match:
      alertname: HighCPUUsage
    target: {kind: Deployment, namespace: "{labels.namespace}", name: "{labels.deployment}"}
    action:
      type: scale
      params: {replicas: "+2", min_replicas: 1, max_replicas: 5}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(directory: Path) -> list[str]:
    with pytest.raises(RuleSetError) as error:
        load_rules(directory)
    return [str(e) for e in error.value.errors]


def test_example_rules_load() -> None:
    rules = load_rules(EXAMPLE_RULES)
    assert rules.count >= 2
    assert {r.rule.name for r in rules.all()} >= {
        "scale-out-on-high-cpu",
        "restart-on-db-pool-exhausted",
    }


def test_rules_are_indexed_by_alertname(rules_dir: Path) -> None:
    write(rules_dir, "a.yaml", GOOD)
    rules = load_rules(rules_dir)
    assert [r.rule.name for r in rules.for_alertname("HighCPUUsage")] == ["scale-checkout"]
    assert rules.for_alertname("Other") == ()


def test_unknown_key_is_an_error_with_file_line_rule_and_key(rules_dir: Path) -> None:
    path = write(rules_dir, "a.yaml", GOOD.replace("    match:", "    cooldwn: 5m\n    match:"))
    assert errors_of(rules_dir) == [f'{path}:3:5: rule "scale-checkout": cooldwn: unknown key']


def test_missing_params_key_names_the_step_key(rules_dir: Path) -> None:
    path = write(rules_dir, "a.yaml", GOOD.replace("min_replicas: 1, ", ""))
    assert errors_of(rules_dir) == [
        f'{path}:8:15: rule "scale-checkout": action.params: relative or percent replicas '
        "('+2') need both min_replicas and max_replicas"
    ]


def test_unknown_action_type_lists_known_ones(rules_dir: Path) -> None:
    path = write(rules_dir, "a.yaml", GOOD.replace("type: scale", "type: scael"))
    (message,) = errors_of(rules_dir)
    assert message.startswith(f'{path}:7:7: rule "scale-checkout": action: unknown action type')
    assert "rollout_restart, scale" in message


def test_every_error_in_every_file_is_reported_at_once(rules_dir: Path) -> None:
    write(rules_dir, "a.yaml", GOOD.replace("    match:", "    bogus: 1\n    match:"))
    write(rules_dir, "b.yaml", "rules:\n  - name: x\n")
    write(rules_dir, "c.yaml", "rules: [\n")
    messages = errors_of(rules_dir)
    assert len(messages) == 3, messages
    assert any("a.yaml:3:5" in m and "bogus: unknown key" in m for m in messages)
    assert any("b.yaml" in m and "match: required key is missing" in m for m in messages)
    assert any("c.yaml" in m and "invalid YAML" in m for m in messages)


def test_duplicate_rule_names_across_files_are_rejected(rules_dir: Path) -> None:
    write(rules_dir, "a.yaml", GOOD)
    b = write(rules_dir, "b.yaml", GOOD)
    (message,) = errors_of(rules_dir)
    assert message.startswith(f'{b}:2:1: rule "scale-checkout": name: duplicate rule name')


def test_duplicate_yaml_key_is_rejected(rules_dir: Path) -> None:
    path = write(
        rules_dir,
        "a.yaml",
        GOOD.replace("    match:", "    cooldown: 1m\n    cooldown: 2m\n    match:"),
    )
    assert errors_of(rules_dir) == [f"{path}:4:5: cooldown: duplicate key"]


def test_action_cannot_target_a_kind_it_does_not_support(rules_dir: Path) -> None:
    write(rules_dir, "a.yaml", GOOD.replace("kind: Deployment", "kind: DaemonSet"))
    (message,) = errors_of(rules_dir)
    assert (
        "action 'scale' cannot act on a DaemonSet (it acts on Deployment, StatefulSet)" in message
    )


def test_template_with_code_like_braces_is_rejected(rules_dir: Path) -> None:
    write(rules_dir, "a.yaml", GOOD.replace('"{labels.deployment}"', '"{labels.__class__}{x}"'))
    (message,) = errors_of(rules_dir)
    assert "target.name" in message
    assert "not a {labels.NAME} placeholder" in message


def test_invalid_regex_matcher_is_located(rules_dir: Path) -> None:
    write(
        rules_dir,
        "a.yaml",
        GOOD.replace(
            "alertname: HighCPUUsage", "alertname: HighCPUUsage\n      labels: ['pod=~\"(\"']"
        ),
    )
    (message,) = errors_of(rules_dir)
    assert ":5:" in message
    assert "match.labels.0" in message
    assert "invalid regex" in message


def test_steps_and_action_are_exclusive(rules_dir: Path) -> None:
    write(rules_dir, "a.yaml", GOOD + "    steps: [{type: rollout_restart}]\n")
    (message,) = errors_of(rules_dir)
    assert "set exactly one of action (one step) or steps (a list)" in message


def test_steps_run_in_order_with_per_step_targets(rules_dir: Path) -> None:
    write(
        rules_dir,
        "a.yaml",
        """\
        rules:
          - name: restart-then-scale
            match: {alertname: X}
            target: {kind: Deployment, namespace: shop, name: api}
            steps:
              - type: rollout_restart
              - type: scale
                params: {replicas: 3}
                target: {kind: StatefulSet, namespace: shop, name: db}
        """,
    )
    (loaded,) = load_rules(rules_dir).all()
    assert [s.type for s in loaded.rule.all_steps] == ["rollout_restart", "scale"]


def test_missing_rules_directory_is_an_error(tmp_path: Path) -> None:
    assert errors_of(tmp_path / "nope") == [
        f"{tmp_path / 'nope'}:0:0: rules directory does not exist"
    ]


def test_rule_hash_changes_with_the_definition(rules_dir: Path) -> None:
    write(rules_dir, "a.yaml", GOOD)
    first = next(iter(load_rules(rules_dir).all())).definition_hash
    write(rules_dir, "a.yaml", GOOD.replace("max_replicas: 5", "max_replicas: 6"))
    second = next(iter(load_rules(rules_dir).all())).definition_hash
    assert len(first) == 64
    assert first != second


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "critical2"}, False),
        ('severity!="critical"', {}, True),
        ('severity=~"crit"', {"severity": "critical"}, False),  # anchored, like Alertmanager
        ('severity=~"crit.*"', {"severity": "critical"}, True),
        ('severity=~"critical|page"', {"severity": "page"}, True),
        ('severity!~"critical|page"', {"severity": "warning"}, True),
        ('team=""', {}, True),  # a missing label matches as the empty string
        ('team=~".+"', {}, False),
        ("severity=critical", {"severity": "critical"}, True),  # unquoted value
        (r'msg="a \"quoted\" word"', {"msg": 'a "quoted" word'}, True),
    ],
)
def test_label_matchers(matcher: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelMatcher.parse(matcher).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("500ms", 0.5), (90, 90)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "10", "5 minutes", "-1m", "1x"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_action_example_is_a_valid_rule(rules_dir: Path, name: str) -> None:
    """The examples `remediator actions` prints load with the service's own loader."""
    write(rules_dir, "example.yaml", "rules:\n" + textwrap.indent(REGISTRY[name].example, "  "))
    (loaded,) = load_rules(rules_dir).all()
    assert [step.type for step in loaded.rule.all_steps] == [name]


def test_error_in_a_later_step_names_the_step(rules_dir: Path) -> None:
    path = write(
        rules_dir,
        "a.yaml",
        """\
        rules:
          - name: two-steps
            match: {alertname: X}
            target: {kind: Deployment, namespace: shop, name: api}
            steps:
              - type: rollout_restart
              - type: scale
        """,
    )
    assert errors_of(rules_dir) == [
        f'{path}:7:9: rule "two-steps": steps.1.params: required key is missing'
    ]


def test_loaded_rules_are_hashable_and_equal_by_definition() -> None:
    first = load_rules(EXAMPLE_RULES)
    again = load_rules(EXAMPLE_RULES)
    rules = {loaded for loaded in first.all()} | {loaded for loaded in again.all()}
    assert len(rules) == first.count  # the same definitions from the same places
