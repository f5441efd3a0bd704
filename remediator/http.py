"""The HTTP layer: authenticate, read the body once, validate it, hand it on, answer.

Owns: routes, authentication (bearer and basic, compared in constant time), the body limit,
the mapping from failures to status codes, and request metrics.
Must not: know about rules or Kubernetes: it calls ``Engine.intake`` and reports the result.

Status codes are chosen for Alertmanager's retry semantics: it retries 5xx within a flush and
re-sends 4xx at the next group_interval; so input that will never become valid gets 4xx, and
anything that may succeed later (store busy or unwritable) gets 503.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from remediator.engine import Engine
from remediator.metrics import Metrics
from remediator.payload import PayloadError, parse_notification
from remediator.settings import Credentials
from remediator.store import StoreBusy, StoreError

log = structlog.get_logger("remediator.http")

ALERTS_PATH = "/api/v1/alerts"
# Metric label values must be bounded; the request method is the client's to choose.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
Ready = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"status": "error", "error": message}, status=status, headers=headers)


class Authenticator:
    """Accepts a request whose Authorization header matches any configured credential."""

    def __init__(self, credentials: Credentials) -> None:
        self._expected: list[bytes] = []
        if credentials.bearer_token is not None:
            self._expected.append(f"Bearer {credentials.bearer_token}".encode())
        if credentials.basic is not None:
            user, password = credentials.basic
            self._basic: tuple[bytes, bytes] | None = (user.encode(), password.encode())
        else:
            self._basic = None
        self.required = bool(self._expected) or self._basic is not None

    def check(self, header: str | None) -> bool:
        if not self.required:
            return True
        if header is None:
            return False
        given = header.encode()
        # Compare against every credential so timing does not reveal which kind matched.
        ok = False
        for expected in self._expected:
            ok |= hmac.compare_digest(given, expected)
        if self._basic is not None:
            ok |= self._check_basic(header)
        return ok

    def _check_basic(self, header: str) -> bool:
        assert self._basic is not None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        if not sep:
            return False
        expected_user, expected_password = self._basic
        user_ok = hmac.compare_digest(user, expected_user)
        password_ok = hmac.compare_digest(password, expected_password)
        return user_ok and password_ok


class Handlers:
    def __init__(
        self,
        *,
        engine: Engine,
        auth: Authenticator,
        metrics: Metrics,
        max_body_bytes: int,
        ready: Ready,
    ) -> None:
        self._engine = engine
        self._auth = auth
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._ready = ready

    async def alerts(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization")
        if not self._auth.check(header):
            self._metrics.notifications("unauthorized").inc()
            # Never the header itself: it may hold a near-miss of the real secret.
            log.warning(
                "webhook refused: missing or invalid credentials",
                remote=request.remote,
                authorization="missing" if header is None else "invalid",
                user_agent=request.headers.get("User-Agent", ""),
            )
            return _error(
                401,
                "missing or invalid credentials",
                **{"WWW-Authenticate": 'Bearer realm="remediator", Basic realm="remediator"'},
            )
        declared = request.content_length  # parsed from the header on every access
        if declared is not None and declared > self._max_body:
            return self._too_large(declared)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(None)
        try:
            notification = parse_notification(body)
        except PayloadError as exc:
            self._metrics.notifications("invalid").inc()
            log.info("invalid notification", error=str(exc), size=len(body))
            return _error(400, f"invalid Alertmanager notification: {exc}")
        try:
            result = await self._engine.intake(notification)
        except StoreBusy as exc:
            self._metrics.notifications("unavailable").inc()
            return _error(503, f"busy: {exc}; retry later", **{"Retry-After": "1"})
        except StoreError as exc:
            self._metrics.notifications("unavailable").inc()
            log.error("state store unavailable", error=str(exc))
            return _error(503, "state store is not writable; nothing was acted on; retry later")
        self._metrics.notifications("accepted").inc()
        # Four integers: formatted directly rather than through json.dumps (every 2xx).
        return web.Response(
            body=(
                f'{{"status":"accepted","alerts":{result.alerts},"decisions":{result.decisions},'
                f'"accepted":{result.accepted},"skipped":{result.skipped}}}'
            ).encode(),
            content_type="application/json",
        )

    def _too_large(self, size: int | None) -> web.Response:
        self._metrics.notifications("invalid").inc()
        told = f" ({size} bytes)" if size is not None else ""
        return _error(413, f"body too large{told}: the limit is {self._max_body} bytes")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready, detail = await self._ready()
        return web.json_response(
            {"status": "ready" if ready else "not ready", **detail}, status=200 if ready else 503
        )

    async def metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self._metrics.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response


def request_metrics(metrics: Metrics) -> Any:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        started = time.perf_counter()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            method = request.method if request.method in _METHODS else "other"
            metrics.requests(name, method, str(code)).inc()
            metrics.latency(name).observe(time.perf_counter() - started)

    return middleware


def add_routes(app: web.Application, handlers: Handlers) -> None:
    app.router.add_post(ALERTS_PATH, handlers.alerts)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)
