"""Prometheus metrics, created on an injected registry (tests get an isolated one).

Label values are bounded: rule names, action types, outcomes, guardrail names, alert status,
HTTP route and status code. Never alert text, fingerprints or targets.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

M = TypeVar("M", Counter, Gauge, Histogram)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Children(Generic[M]):
    """A labelled metric, called with label values to get the child: ``decisions(rule,
    action, outcome).inc()``.

    ``metric.labels(...)`` takes a lock and builds a key on every call; since label values are
    bounded, each child is looked up once and kept (the request path labels several metrics
    per alert).
    """

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.alerts_received = Children(
            Counter(
                "remediator_alerts_received",
                "Alerts received in webhook notifications, by the alert's own status.",
                ["status"],
                registry=registry,
            )
        )
        self.notifications = Children(
            Counter(
                "remediator_notifications",
                "Webhook notifications by result (accepted, invalid, unauthorized, unavailable).",
                ["result"],
                registry=registry,
            )
        )
        self.decisions = Children(
            Counter(
                "remediator_decisions",
                "Decisions by rule, action and outcome (executed, dry_run, skipped, failed).",
                ["rule", "action", "outcome"],
                registry=registry,
            )
        )
        self.denials = Children(
            Counter(
                "remediator_guardrail_denials",
                "Decisions a guardrail denied, by guardrail.",
                ["guardrail"],
                registry=registry,
            )
        )
        self.action_duration = Children(
            Histogram(
                "remediator_action_duration_seconds",
                "Time to carry out a decision's steps against Kubernetes.",
                ["action"],
                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                registry=registry,
            )
        )
        self.queue_depth = Children(
            Gauge(
                "remediator_queue_depth",
                "Writes waiting for the state store, and decisions waiting to run.",
                ["queue"],
                registry=registry,
            )
        )
        # Series a dashboard or an alert expects from the start, at 0 (rate() and absent()
        # need them before the first notification).
        for status in ("firing", "resolved"):
            self.alerts_received(status)
        for result in ("accepted", "invalid", "unauthorized", "unavailable"):
            self.notifications(result)
        self.inflight = Gauge(
            "remediator_actions_in_flight",
            "Decisions being carried out right now.",
            registry=registry,
        )
        self.rules_loaded = Gauge(
            "remediator_rules_loaded", "Rules in the active rule set.", registry=registry
        )
        self.reload_success = Gauge(
            "remediator_rules_last_reload_successful",
            "1 if the last rule (re)load succeeded, else 0.",
            registry=registry,
        )
        self.reload_time = Gauge(
            "remediator_rules_last_reload_success_timestamp_seconds",
            "Unix time of the last successful rule (re)load.",
            registry=registry,
        )
        self.requests = Children(
            Counter(
                "remediator_http_requests",
                "HTTP requests by route, method and status code.",
                ["route", "method", "code"],
                registry=registry,
            )
        )
        self.latency = Children(
            Histogram(
                "remediator_http_request_duration_seconds",
                "HTTP request latency by route.",
                ["route"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            )
        )
