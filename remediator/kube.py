"""The Kubernetes gateway: the only module that imports ``kubernetes``.

Owns: building the official client (in-cluster config, else kubeconfig), running its
blocking calls off the event loop, retries (5xx, 429 honouring Retry-After, connection errors
and timeouts; bounded in attempts and total time), the read-modify-write loop that answers a
409 by reading again, and turning every library exception into ``remediator.errors``.
Must not: decide what to do: actions say that.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from remediator.actions.base import ScaleChange
from remediator.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    Invalid,
    NoCluster,
    NotFound,
    Rejected,
    Transient,
    Unavailable,
)
from remediator.targets import Target

T = TypeVar("T")

STRATEGIC_MERGE = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before calling a Kubernetes request failed.

    Actions run after the webhook's 2xx, so Alertmanager's 10 s deadline does not bound them;
    the defaults give a struggling API server about half a minute without hammering it.
    """

    attempts: int = 5  # total tries, including the first
    total_seconds: float = 30.0  # give up once this much time has gone by
    backoff_initial: float = 0.2  # seconds; doubles per attempt, with full jitter
    backoff_max: float = 5.0  # cap for the computed backoff and for Retry-After
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    conflict_attempts: int = 5  # reads+writes after a 409 before giving up


Sleep = Callable[[float], Awaitable[None]]


def load_api_client(kubeconfig: Path | None, context: str | None) -> Any | None:
    """In-cluster config when running in a pod (and no kubeconfig was named), else the
    kubeconfig (``--kubeconfig``, ``$KUBECONFIG`` or ``~/.kube/config``). None when there is
    neither: the service can then only dry-run."""
    configuration = k8s.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException as exc:
            raise NoCluster(f"in-cluster configuration failed: {exc}") from exc
    else:
        path = (
            kubeconfig
            or Path(
                os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
            ).expanduser()
        )
        if not path.is_file():
            if kubeconfig is not None:
                raise NoCluster(f"kubeconfig {path} does not exist")
            return None
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path), context=context, client_configuration=configuration
            )
        except (k8s_config.ConfigException, OSError, ValueError) as exc:
            raise NoCluster(f"kubeconfig {path}: {exc}") from exc
    # We own retries (below); urllib3's own would hide attempts and ignore our budget.
    configuration.retries = 0
    return k8s.ApiClient(configuration)


def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return str(exc.reason or "")


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def translate(exc: BaseException, what: str) -> GatewayError:
    """Library exception -> project error. ``what`` names the request for the message."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = f"{what}: {status} {_status_message(exc)}".rstrip()
        if status == 404:
            return NotFound(message)
        if status == 409:
            return Conflict(message)
        if status in (401, 403):
            return Forbidden(message, status=status)
        if status in (400, 422):
            return Invalid(message, status=status)
        if status == 429 or status >= 500:
            return Transient(message, status=status, retry_after=_retry_after(exc))
        if status == 0:
            return Transient(f"{what}: {exc.reason}")
        return Rejected(message, status=status)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return Transient(f"{what}: {type(exc).__name__}: {exc}")
    return GatewayError(f"{what}: {type(exc).__name__}: {exc}")


_APPS_KINDS = {
    "Deployment": "deployment",
    "StatefulSet": "stateful_set",
    "DaemonSet": "daemon_set",
}


class KubeGateway:
    """Implements ``remediator.actions.base.Gateway`` with the official client."""

    def __init__(
        self,
        api_client: Any,
        *,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._api = api_client
        self._apps = k8s.AppsV1Api(api_client)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self.attempts = 0  # every HTTP attempt made: a counter for metrics and tests

    def close(self) -> None:
        self._api.close()

    # ------------------------------------------------------------------ plumbing

    def _method(self, verb: str, target: Target, suffix: str = "") -> Callable[..., Any]:
        kind = _APPS_KINDS.get(target.kind)
        if kind is None:
            raise Invalid(f"unsupported kind {target.kind}")
        return getattr(self._apps, f"{verb}_namespaced_{kind}{suffix}")  # type: ignore[no-any-return]

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        policy = self.retry
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return min(exc.retry_after, policy.backoff_max)
        ceiling = min(policy.backoff_max, policy.backoff_initial * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API request with retries; returns the decoded JSON answer."""
        kwargs["_preload_content"] = False
        kwargs["_request_timeout"] = (self.retry.connect_timeout, self.retry.read_timeout)

        def blocking() -> Any:
            self.attempts += 1
            try:
                response = fn(*args, **kwargs)
                try:
                    data = response.data
                finally:
                    response.release_conn()  # back to the pool: the body was not preloaded
            except Exception as exc:
                raise translate(exc, what) from exc
            return json.loads(data) if data else {}

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Transient),
            stop=stop_after_attempt(self.retry.attempts)
            | stop_after_delay(self.retry.total_seconds),
            wait=self._wait,
            sleep=self._sleep,
            reraise=False,
        )
        started = time.monotonic()
        try:
            async for attempt in retrying:
                with attempt:
                    return await asyncio.to_thread(blocking)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise Unavailable(
                f"{what}: gave up after {exc.last_attempt.attempt_number} attempts in "
                f"{time.monotonic() - started:.1f}s: {last}",
                status=getattr(last, "status", None),
            ) from last
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ operations

    async def update_scale(
        self, target: Target, compute: Callable[[int], int], *, dry_run: bool
    ) -> ScaleChange:
        read = self._method("read", target, "_scale")
        replace = self._method("replace", target, "_scale")
        what = f"{target.kind} {target.namespace}/{target.name} scale"
        conflicts = 0
        while True:
            scale = await self._call(f"GET {what}", read, target.name, target.namespace)
            current = int(scale.get("spec", {}).get("replicas", 0))
            desired = compute(current)
            body = {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {
                    "name": target.name,
                    "namespace": target.namespace,
                    "resourceVersion": scale.get("metadata", {}).get("resourceVersion"),
                },
                "spec": {"replicas": desired},
            }
            if desired == current:
                return ScaleChange(current, current, body, server_dry_run=False)
            try:
                answer = await self._call(
                    f"PUT {what}",
                    replace,
                    target.name,
                    target.namespace,
                    body,
                    dry_run="All" if dry_run else None,
                )
            except Conflict:
                conflicts += 1
                if conflicts >= self.retry.conflict_attempts:
                    raise
                continue  # someone changed it between our read and write: read again
            after = int(answer.get("spec", {}).get("replicas", desired))
            return ScaleChange(current, after, body, server_dry_run=dry_run)

    async def read(self, target: Target) -> dict[str, Any]:
        answer = await self._call(
            f"GET {target.kind} {target.namespace}/{target.name}",
            self._method("read", target),
            target.name,
            target.namespace,
        )
        return dict(answer)

    async def patch(self, target: Target, body: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        patch = self._method("patch", target)
        answer = await self._call(
            f"PATCH {target.kind} {target.namespace}/{target.name}",
            patch,
            target.name,
            target.namespace,
            body,
            dry_run="All" if dry_run else None,
            _content_type=STRATEGIC_MERGE,
        )
        return dict(answer)
