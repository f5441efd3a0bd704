"""A test double of kube-apiserver: real HTTP and JSON, in-memory state; see :class:`FakeKube`.

The official ``kubernetes`` client works against it unchanged, and it passes the 29 checks of
``shared/k8s-conformance/battery.py``. The pieces, each in its own module:

- ``resources``: the registry of served kinds; ``store``: CRUD, resourceVersions and watch
  history; ``admission``: defaulting and validation; ``patching``: the three patch formats;
  ``selectors``: label and field selectors; ``controllers``: the Deployment controller,
  workload status and the kubelet, simulated inside each write; ``api``: URLs, verbs, watch
  and discovery over HTTP.

This module owns what tests drive: the server's lifecycle, a kubeconfig for it, direct access
to the stored objects, fault injection, and the log of every request. What the double does not
simulate is listed in GAPS.md.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakekube.api import ApiServer
from tests.fakekube.controllers import reconcile
from tests.fakekube.errors import ApiError, reason_for, status_body
from tests.fakekube.resources import NAMESPACES, REGISTRY
from tests.fakekube.store import Store

__all__ = ["ApiError", "FakeKube", "Injection", "RecordedRequest"]

JSON = dict[str, Any]
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class Injection:
    """A planned answer for the next ``times`` requests that match ``method`` and ``path``."""

    method: str | None  # None matches every method
    path: re.Pattern[str]  # searched in the request path
    status: int  # 0: serve normally (after ``delay``)
    times: int
    body: JSON | None
    headers: dict[str, str]
    delay: float

    def matches(self, request: web.Request) -> bool:
        return (
            self.times > 0
            and self.method in (None, request.method)
            and self.path.search(request.path) is not None
        )


@dataclass
class RecordedRequest:
    """One request as the fake saw it; ``status`` is what it answered (0 while in flight)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any  # parsed JSON, or None when empty or not JSON
    status: int = 0


class FakeKube:
    """The fake API server with test controls. Start it on loopback with :meth:`start`."""

    def __init__(self) -> None:
        self.store = Store(REGISTRY, on_write=reconcile)
        self.api = ApiServer(self.store)
        self.injections: list[Injection] = []
        self.requests: list[RecordedRequest] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._middleware], client_max_size=16 * 2**20)
        self.api.add_routes(self.app)
        for namespace in SYSTEM_NAMESPACES:
            self._ensure_namespace(namespace)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on a real TCP socket (port 0 picks a free one); return the base URL."""
        self.api.closing = False
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        self.api.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: Path, context: str = "fake") -> Path:
        """A kubeconfig for :attr:`url` (token user, TLS verification off); JSON is YAML."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [
                {
                    "name": context,
                    "cluster": {"server": self.url, "insecure-skip-tls-verify": True},
                }
            ],
            "users": [{"name": context, "user": {"token": "fakekube-token"}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": "default"},
                }
            ],
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    # ------------------------------------------------------------------ state helpers

    def put(self, obj: JSON) -> JSON:
        """Create or replace ``obj`` as if through the API; its namespace is created if missing.

        Server-side fields are filled and controllers run, as for an API write. A ``status``
        that differs from the one stored before is then written as through the status subresource
        (to simulate a kubelet or a stuck rollout); pass none to let the simulation fill it.
        Raises :class:`ApiError` (422, ...) like the API would.
        """
        resource = REGISTRY.by_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        namespace = str(meta.get("namespace") or "default") if resource.namespaced else ""
        if resource.namespaced:
            self._ensure_namespace(namespace)
        before = self.store.peek(resource, namespace, name)
        body = copy.deepcopy(obj)
        body.setdefault("metadata", {}).pop("resourceVersion", None)
        if before is None:
            stored = self.store.create(resource, namespace, body)
        else:
            stored = self.store.replace(resource, namespace, name, body)
        status = obj.get("status")
        if resource.has_status and status is not None and status != (before or {}).get("status"):
            stored = self.store.replace_status(resource, namespace, name, {"status": status})
        return stored

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> JSON | None:
        """A copy of the stored object, or None (``namespace`` None for cluster-scoped kinds)."""
        obj = self.store.peek(REGISTRY.by_kind(api_version, kind), namespace or "", name)
        return copy.deepcopy(obj) if obj is not None else None

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        """Delete the object (and its dependents) if it exists."""
        resource = REGISTRY.by_kind(api_version, kind)
        if self.store.peek(resource, namespace or "", name) is not None:
            self.store.delete(resource, namespace or "", name)

    def add_deployment(
        self, namespace: str, name: str, replicas: int = 1, containers: list[JSON] | None = None
    ) -> JSON:
        """Create (or update the replicas and containers of) a Deployment labelled app=name."""
        existing = self.get("apps/v1", "Deployment", namespace, name)
        if existing is not None:
            existing.pop("status", None)
            existing["spec"]["replicas"] = replicas
            if containers is not None:
                existing["spec"]["template"]["spec"]["containers"] = containers
            return self.put(existing)
        return self.put(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {
                            "containers": containers or [{"name": "app", "image": f"{name}:1.0"}]
                        },
                    },
                },
            }
        )

    def _ensure_namespace(self, namespace: str) -> None:
        if not self.store.namespace_exists(namespace):
            self.store.create(NAMESPACES, "", {"metadata": {"name": namespace}})

    # ------------------------------------------------------------------ fault injection

    def inject(
        self,
        *,
        method: str | None,
        path: str,
        status: int,
        times: int = 1,
        body: JSON | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` (None: any) and ``path`` (a
        regex searched in the request path) with ``status``, ``headers`` and ``body`` (default:
        a Status body), after ``delay`` seconds; ``status=0`` serves them normally after
        ``delay`` (to make a client time out)."""
        self.injections.append(
            Injection(method, re.compile(path), status, times, body, dict(headers or {}), delay)
        )

    def clear_requests(self) -> None:
        self.requests.clear()

    def _take_injection(self, request: web.Request) -> Injection | None:
        for injection in self.injections:
            if injection.matches(request):
                injection.times -= 1
                return injection
        return None

    @staticmethod
    def _injected_response(injection: Injection) -> web.Response:
        body = injection.body
        if body is None:
            details: JSON = {}
            retry_after = injection.headers.get("Retry-After", "")
            if retry_after.isdigit():
                details["retryAfterSeconds"] = int(retry_after)
            reason = reason_for(injection.status)
            message = f"fakekube: injected {injection.status} {reason}"
            body = status_body(injection.status, reason, message, details)
        return web.json_response(body, status=injection.status, headers=injection.headers)

    # ------------------------------------------------------------------ recording

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        recorded = RecordedRequest(
            request.method,
            request.path,
            dict(request.query),
            request.content_type if "Content-Type" in request.headers else "",
            _parse(await request.read()),
        )
        self.requests.append(recorded)
        injection = self._take_injection(request)
        if injection is not None and injection.delay > 0:
            await asyncio.sleep(injection.delay)
        if injection is not None and injection.status:
            response: web.StreamResponse = self._injected_response(injection)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # aiohttp's own answers (e.g. 405 on /version)
                recorded.status = exc.status
                raise
        recorded.status = response.status
        return response


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
