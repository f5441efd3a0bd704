"""Target templates: plain {labels.NAME} substitution, validated as Kubernetes names."""

from __future__ import annotations

import re

import pytest

from remediator.targets import RenderError, Target, check_template, render, render_target

LABELS = {"namespace": "shop", "deployment": "checkout", "empty": "", "upper": "Checkout"}


def test_placeholders_are_replaced_by_label_values() -> None:
    assert render("{labels.deployment}-canary", LABELS) == "checkout-canary"
    assert render_target("Deployment", "{labels.namespace}", "{labels.deployment}", LABELS) == (
        Target("Deployment", "shop", "checkout")
    )


def test_text_without_placeholders_is_kept() -> None:
    assert render("payments-api", LABELS) == "payments-api"


@pytest.mark.parametrize(
    "template",
    ["{labels.a.__class__}", "{{labels.a}}", "{label.a}", "{labels.a", "{0}", "{labels.a!r}"],
)
def test_anything_but_a_label_placeholder_is_refused_at_load(template: str) -> None:
    with pytest.raises(ValueError, match=re.escape("is not a {labels.NAME} placeholder")):
        check_template(template)


@pytest.mark.parametrize("label", ["missing", "empty"])
def test_missing_or_empty_label_is_a_render_error(label: str) -> None:
    with pytest.raises(RenderError, match=f"label '{label}' is not set on the alert"):
        render(f"{{labels.{label}}}", LABELS)


@pytest.mark.parametrize(
    ("namespace", "name", "message"),
    [
        ("{labels.upper}", "x", "namespace 'Checkout' is not a valid Kubernetes namespace"),
        ("shop", "{labels.upper}", "name 'Checkout' is not a valid Kubernetes object name"),
        ("a" * 64, "x", "is not a valid Kubernetes namespace"),
        ("shop", "bad_name", "name 'bad_name' is not a valid Kubernetes object name"),
        ("shop", "../etc", "is not a valid Kubernetes object name"),
    ],
)
def test_rendered_names_must_be_valid(namespace: str, name: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_target("Deployment", namespace, name, LABELS)


def test_values_are_never_evaluated() -> None:
    """A label value that looks like a placeholder or code is text, and then an invalid name."""
    labels = {"deployment": "{labels.namespace}"}
    with pytest.raises(RenderError, match=r"name '\{labels.namespace\}' is not a valid"):
        render_target("Deployment", "shop", "{labels.deployment}", labels)
