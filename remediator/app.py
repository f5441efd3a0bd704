"""The application factory: builds the whole service from :class:`Settings`.

Tests build the very same app, passing a fake clock, an isolated metrics registry or a
gateway of their own; nothing here is a module-level singleton.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from remediator import store as db
from remediator.actions.base import Gateway
from remediator.audit import AuditLog
from remediator.clock import Clock, SystemClock
from remediator.engine import Engine, Executor
from remediator.guardrails import GuardrailPolicy
from remediator.http import Authenticator, Handlers, add_routes, request_metrics
from remediator.kube import KubeGateway, load_api_client
from remediator.metrics import Metrics
from remediator.rules import RuleSet, load_rules
from remediator.settings import Settings

log = structlog.get_logger("remediator.app")


@dataclass
class Service:
    """The parts of a running service, for tests and the CLI to reach."""

    settings: Settings
    store: db.Store
    audit: AuditLog
    engine: Engine
    executor: Executor
    metrics: Metrics
    clock: Clock
    gateway: Gateway | None


SERVICE = web.AppKey("service", Service)


class FromSettings:
    """Marker: build the Kubernetes gateway from the settings."""


FROM_SETTINGS = FromSettings()


def _gateway(settings: Settings) -> KubeGateway | None:
    api_client = load_api_client(settings.kubeconfig, settings.kube_context)
    return KubeGateway(api_client) if api_client is not None else None


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    gateway: Gateway | FromSettings | None = FROM_SETTINGS,
    rules: RuleSet | None = None,
    execute: bool = True,
) -> web.Application:
    """Build the service. Raises ``RuleSetError`` (invalid rules), ``ConfigError`` (settings)
    or ``NoCluster`` (a named kubeconfig that does not work): the service refuses to start.

    By default the gateway is built from settings (none when no cluster is configured); tests
    pass the fake API server's, or None for no cluster.
    ``execute=False`` records decisions without carrying them out, which is what a process
    that crashes right after its 2xx leaves behind (restart tests use it).
    """
    credentials = settings.credentials()
    clock = clock or SystemClock()
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    ruleset = rules if rules is not None else load_rules(settings.rules_dir)
    kube = _gateway(settings) if isinstance(gateway, FromSettings) else gateway
    dry_run = settings.dry_run or kube is None
    store = db.Store(settings.state_file, max_queue=settings.max_queue)
    audit = AuditLog()
    executor = Executor(
        store=store,
        audit=audit,
        gateway=kube,
        clock=clock,
        metrics=metrics,
        concurrency=settings.max_concurrent_actions,
    )
    engine = Engine(
        rules=ruleset,
        store=store,
        audit=audit,
        executor=executor,
        policy=GuardrailPolicy(
            namespace_allowlist=settings.allow_namespaces,
            actions_per_minute=settings.actions_per_minute,
        ),
        clock=clock,
        metrics=metrics,
        dry_run=dry_run,
    )
    metrics.rules_loaded.set(ruleset.count)
    metrics.reload_success.set(1)
    metrics.reload_time.set(clock.now().timestamp())
    service = Service(settings, store, audit, engine, executor, metrics, clock, kube)

    async def ready() -> tuple[bool, dict[str, Any]]:
        detail: dict[str, Any] = {"rules": engine.rules.count, "dry_run": engine.dry_run}
        try:
            await store.write(lambda conn: db.probe(conn, clock.now()))
        except db.StoreError as exc:
            detail["store"] = f"not writable: {exc}"
            return False, detail
        detail["store"] = "writable"
        return True, detail

    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[request_metrics(metrics)]
    )
    app[SERVICE] = service
    add_routes(
        app,
        Handlers(
            engine=engine,
            auth=Authenticator(credentials),
            metrics=metrics,
            max_body_bytes=settings.max_body_bytes,
            ready=ready,
        ),
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store.open()
        if execute:
            executor.start()
            await executor.recover()
        log.info(
            "remediator started",
            rules=ruleset.count,
            rule_files=len(ruleset.files),
            state_file=str(settings.state_file),
            dry_run=dry_run,
            cluster=kube is not None,
            auth=credentials.required,
            allow_namespaces=list(settings.allow_namespaces),
        )
        if not settings.allow_namespaces:
            log.warning(
                "no namespace is allowed: every action will be denied (set --allow-namespaces)"
            )
        try:
            yield
        finally:
            try:
                if execute:
                    await executor.stop()
                await store.close()
            finally:
                audit.flush()  # the lines of records already durable
                if isinstance(kube, KubeGateway) and isinstance(gateway, FromSettings):
                    kube.close()

    app.cleanup_ctx.append(lifecycle)
    return app
