"""The HTTP face of the fake: kube-apiserver URLs, verbs and wire formats over the store.

It owns URL routing (``/api/v1/...`` and ``/apis/<group>/<version>/...``, namespaced or not,
with ``status`` and ``scale`` subresources), discovery (``/api``, ``/apis``, resource lists,
``/version``, health endpoints), list pagination, watch streams, the three patch content types,
``dryRun=All``, DeleteOptions, and the translation of errors into ``kind: Status`` answers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakekube.errors import (
    ApiError,
    Cause,
    bad_request,
    invalid,
    method_not_allowed,
    status_body,
    unknown_path,
)
from tests.fakekube.patching import PatchError, json_patch, merge_patch, strategic_merge_patch
from tests.fakekube.resources import Registry, Resource
from tests.fakekube.selectors import SelectorError, field_selector, label_selector, selector_string
from tests.fakekube.store import Store, WatchEvent

JSON = dict[str, Any]
log = logging.getLogger(__name__)

SCALE = Resource("autoscaling", "v1", "scale", "Scale")  # for messages only: not served
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
PATCHERS: dict[str, Callable[[Any, Any], Any]] = {
    "application/json-patch+json": json_patch,
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
}
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-fakekube",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class Route:
    resource: Resource
    namespace: str | None  # None: cluster-scoped, or a list across all namespaces
    name: str | None
    sub: str | None  # "status", "scale" or None

    @property
    def ns(self) -> str:
        return self.namespace or ""


Handler = Callable[[web.Request, Route], Awaitable[web.StreamResponse]]


class ApiServer:
    """Serves every API URL from one catch-all route: ``app.router.add_route("*", ...)``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.registry: Registry = store.registry
        self.closing = False

    def add_routes(self, app: web.Application) -> None:
        for slash in ("", "/"):  # the client asks for "/version/"
            app.router.add_get(f"/version{slash}", self._version)
            for probe in ("/healthz", "/livez", "/readyz"):
                app.router.add_get(f"{probe}{slash}", self._ok)
        app.router.add_route("*", "/{tail:.*}", self.handle)

    def close(self) -> None:
        """Make open watches end now (the server is stopping)."""
        self.closing = True
        self.store.notify()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.code)
        except SelectorError as exc:
            return web.json_response(status_body(400, "BadRequest", str(exc)), status=400)
        except Exception as exc:
            log.exception("fakekube: %s %s failed", request.method, request.path)
            message = f"fakekube internal error: {type(exc).__name__}: {exc}"
            return web.json_response(status_body(500, "InternalError", message), status=500)

    # ------------------------------------------------------------------ routing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            raise unknown_path(request.path)
        document = self._discovery(parts)
        if document is not None:
            if request.method != "GET":
                raise method_not_allowed(request.method, request.path)
            return web.json_response(document)
        route = self._route(parts, request.path)
        handler = self._handlers(route).get(request.method)
        if handler is None:
            raise method_not_allowed(request.method, request.path)
        return await handler(request, route)

    def _route(self, parts: list[str], path: str) -> Route:
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self.registry.by_path(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        resource = self.registry.by_path(group, version, rest[0]) if rest else None
        if resource is None or len(rest) > 3:
            raise unknown_path(path)
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in resource.subresources:
            raise unknown_path(path)
        if resource.namespaced and namespace is None and name is not None:
            raise unknown_path(path)
        return Route(resource, namespace, name, sub)

    def _handlers(self, route: Route) -> dict[str, Handler]:
        if route.name is None:
            if route.resource.namespaced and route.namespace is None:
                return {"GET": self._list}  # across all namespaces: read-only
            return {"GET": self._list, "POST": self._create, "DELETE": self._delete_collection}
        if route.sub is None:
            return {
                "GET": self._read,
                "PUT": self._replace,
                "PATCH": self._patch,
                "DELETE": self._delete,
            }
        if route.sub == "status":
            return {"GET": self._read, "PUT": self._replace_status, "PATCH": self._patch_status}
        return {"GET": self._read_scale, "PUT": self._replace_scale, "PATCH": self._patch_scale}

    # ------------------------------------------------------------------ discovery

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response(VERSION)

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _discovery(self, parts: list[str]) -> JSON | None:
        groups = self.registry.group_versions()
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if parts == ["apis"]:
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [_group(g, vs) for g, vs in groups.items()],
            }
        if len(parts) == 2 and parts[0] == "apis":
            if parts[1] not in groups:
                raise unknown_path("/" + "/".join(parts))
            return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], groups[parts[1]])}
        if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            resources = self.registry.in_group_version(group, version)
            if not resources:
                raise unknown_path("/" + "/".join(parts))
            return _resource_list(group, version, resources)
        return None

    # ------------------------------------------------------------------ collections

    async def _list(self, request: web.Request, route: Route) -> web.StreamResponse:
        """A list in a namespace that does not exist is empty, as on a real server."""
        labels, fields = request.query.get("labelSelector"), request.query.get("fieldSelector")
        if request.query.get("watch") in ("1", "true"):
            return await self._watch(request, route, labels, fields)
        items = self.store.select(route.resource, route.namespace, labels, fields)
        start, limit = _continue_from(request), int(request.query.get("limit") or 0)
        page = items[start : start + limit] if limit else items[start:]
        meta: JSON = {"resourceVersion": str(self.store.rv)}
        if limit and start + limit < len(items):
            meta["continue"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        for item in page:  # items of a typed list carry no apiVersion/kind
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return web.json_response(
            {
                "kind": f"{route.resource.kind}List",
                "apiVersion": route.resource.api_version,
                "metadata": meta,
                "items": page,
            }
        )

    async def _create(self, request: web.Request, route: Route) -> web.StreamResponse:
        body = await _json_object(request)
        body_namespace = (body.get("metadata") or {}).get("namespace")
        if route.resource.namespaced and body_namespace not in (None, "", route.namespace):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        created = self.store.create(route.resource, route.ns, body, dry_run=_dry_run(request))
        return web.json_response(created, status=201)

    async def _delete_collection(self, request: web.Request, route: Route) -> web.StreamResponse:
        labels, fields = request.query.get("labelSelector"), request.query.get("fieldSelector")
        options = await _delete_options(request)
        deleted = [
            self._delete_one(route.resource, route.ns, obj["metadata"]["name"], options)
            for obj in self.store.select(route.resource, route.namespace, labels, fields)
        ]
        return web.json_response(
            {
                "kind": f"{route.resource.kind}List",
                "apiVersion": route.resource.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": deleted,
            }
        )

    # ------------------------------------------------------------------ objects

    async def _read(self, request: web.Request, route: Route) -> web.StreamResponse:
        return web.json_response(self.store.get(route.resource, route.ns, _name(route)))

    async def _replace(self, request: web.Request, route: Route) -> web.StreamResponse:
        return await self._write(request, route, await _json_object(request), status=False)

    async def _patch(self, request: web.Request, route: Route) -> web.StreamResponse:
        """A resourceVersion the patch sets is a precondition, as on a real server."""
        return await self._write(request, route, await self._patched(request, route), status=False)

    async def _patched(self, request: web.Request, route: Route) -> JSON:
        current = self.store.get(route.resource, route.ns, _name(route))
        return _apply_patch(request.content_type, current, await _json_body(request))

    async def _write(
        self, request: web.Request, route: Route, obj: JSON, status: bool
    ) -> web.StreamResponse:
        """PUT the object, or only its status (the status subresource)."""
        write = self.store.replace_status if status else self.store.replace
        return web.json_response(
            write(route.resource, route.ns, _name(route), obj, dry_run=_dry_run(request))
        )

    async def _delete(self, request: web.Request, route: Route) -> web.StreamResponse:
        options = await _delete_options(request)
        deleted = self._delete_one(route.resource, route.ns, _name(route), options)
        if route.resource.delete_returns_object:
            return web.json_response(deleted)
        meta = deleted["metadata"]
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": meta["name"],
                    "group": route.resource.group,
                    "kind": route.resource.plural,
                    "uid": meta["uid"],
                },
            }
        )

    def _delete_one(self, resource: Resource, namespace: str, name: str, options: JSON) -> JSON:
        propagation = options.get("propagationPolicy")
        if options.get("orphanDependents") is True:
            propagation = "Orphan"
        return self.store.delete(
            resource,
            namespace,
            name,
            dry_run="All" in (options.get("dryRun") or []),
            propagation=propagation,
            preconditions=options.get("preconditions"),
        )

    # ------------------------------------------------------------------ status subresource

    async def _replace_status(self, request: web.Request, route: Route) -> web.StreamResponse:
        return await self._write(request, route, await _json_object(request), status=True)

    async def _patch_status(self, request: web.Request, route: Route) -> web.StreamResponse:
        return await self._write(request, route, await self._patched(request, route), status=True)

    # ------------------------------------------------------------------ scale subresource

    async def _read_scale(self, request: web.Request, route: Route) -> web.StreamResponse:
        obj = self.store.get(route.resource, route.ns, _name(route))
        return web.json_response(scale_of(obj))

    async def _replace_scale(self, request: web.Request, route: Route) -> web.StreamResponse:
        return self._write_scale(request, route, await _json_object(request))

    async def _patch_scale(self, request: web.Request, route: Route) -> web.StreamResponse:
        current = self.store.get(route.resource, route.ns, _name(route))
        patch = await _json_body(request)
        return self._write_scale(
            request, route, _apply_patch(request.content_type, scale_of(current), patch)
        )

    def _write_scale(self, request: web.Request, route: Route, scale: JSON) -> web.Response:
        name = _name(route)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise invalid(
                SCALE,
                name,
                [Cause("spec.replicas", f"Invalid value: {replicas}: must be >= 0")],
            )
        updated = self.store.get(route.resource, route.ns, name)
        wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if wanted_rv:
            updated["metadata"]["resourceVersion"] = wanted_rv
        updated["spec"]["replicas"] = replicas
        stored = self.store.replace(
            route.resource, route.ns, name, updated, dry_run=_dry_run(request)
        )
        return web.json_response(scale_of(stored))

    # ------------------------------------------------------------------ watch

    async def _watch(
        self, request: web.Request, route: Route, labels: str | None, fields: str | None
    ) -> web.StreamResponse:
        """Stream events as JSON lines until ``timeoutSeconds``, the client goes or we stop."""
        match_labels, match_fields = label_selector(labels), field_selector(fields)
        since = request.query.get("resourceVersion") or "0"
        if not since.isdigit():
            raise bad_request(f"invalid resourceVersion {since!r}")
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        deadline = asyncio.get_running_loop().time() + timeout

        def wanted(event: WatchEvent) -> bool:
            return (
                event.resource == route.resource
                and (route.namespace is None or event.namespace == route.namespace)
                and match_labels(event.obj["metadata"].get("labels") or {})
                and match_fields(event.obj)
            )

        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        position = len(self.store.events)
        try:
            if since == "0":  # "any": start with the current state
                for obj in self.store.select(route.resource, route.namespace, labels, fields):
                    await _send(response, "ADDED", obj)
            else:
                position = next(
                    (i for i, e in enumerate(self.store.events) if e.rv > int(since)), position
                )
            while not self.closing and not _gone(request):
                changed = self.store.changed()
                while position < len(self.store.events):
                    event = self.store.events[position]
                    position += 1
                    if wanted(event):
                        await _send(response, event.type, event.obj)
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=min(remaining, 0.5))
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        return response


# ---------------------------------------------------------------------- helpers


def scale_of(obj: JSON) -> JSON:
    """The ``autoscaling/v1`` Scale view of a workload."""
    meta = obj["metadata"]
    replicas = obj["spec"].get("replicas", 1)
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": replicas},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selector_string(obj["spec"].get("selector")),
        },
    }


def _group(name: str, versions: list[str]) -> JSON:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def _resource_list(group: str, version: str, resources: list[Resource]) -> JSON:
    entries: list[JSON] = []
    for r in resources:
        entries.append(
            {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": VERBS,
            }
        )
        for sub in sorted(r.subresources):
            kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
            entries.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    **(kind if sub == "scale" else {"kind": r.kind}),
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }


def _name(route: Route) -> str:
    assert route.name is not None  # routes with a handler that needs a name have one
    return route.name


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()  # aiohttp caches the body: the recorder read it already
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"the request body is not JSON: {exc}") from exc


async def _json_object(request: web.Request) -> JSON:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


async def _delete_options(request: web.Request) -> JSON:
    body = await _json_body(request)
    options: JSON = dict(body) if isinstance(body, dict) else {}
    for name in ("propagationPolicy", "gracePeriodSeconds"):
        if name in request.query:
            options.setdefault(name, request.query[name])
    if request.query.get("orphanDependents") == "true":
        options.setdefault("orphanDependents", True)
    if _dry_run(request):
        options["dryRun"] = ["All"]
    if options.get("propagationPolicy") not in (None, "Orphan", "Background", "Foreground"):
        raise bad_request(f"invalid propagationPolicy {options['propagationPolicy']!r}")
    return options


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    if any(v != "All" for v in values):
        raise bad_request(f"invalid dry run value {values!r}: only 'All' is supported")
    return bool(values)


def _continue_from(request: web.Request) -> int:
    token = request.query.get("continue")
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, binascii.Error) as exc:
        raise bad_request(f"invalid continue token {token!r}") from exc


def _apply_patch(content_type: str, target: JSON, patch: Any) -> JSON:
    patcher = PATCHERS.get(content_type)
    if patcher is None:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(PATCHERS)} (got {content_type!r}; server-side apply is not simulated)",
        )
    try:
        result = patcher(copy.deepcopy(target), patch)
    except PatchError as exc:
        raise ApiError(422, "Invalid", str(exc)) from exc
    if not isinstance(result, dict):
        raise ApiError(422, "Invalid", "the patch did not produce an object")
    return result


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _send(response: web.StreamResponse, kind: str, obj: JSON) -> None:
    await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
