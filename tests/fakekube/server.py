"""A test double of kube-apiserver: real HTTP and JSON, in-memory state.

The official ``kubernetes`` client talks to it unchanged. It is generic (a registry of
resources over one store with resourceVersions, watch, the three patch types, dryRun,
selectors and subresources) plus two small controllers that run synchronously on every write:
the Deployment controller's ReplicaSet bookkeeping (revisions, what ``rollout undo`` reads)
and workload status. It passes ``shared/k8s-conformance/battery.py``; see GAPS.md for what it
does not do.

For tests, :class:`FakeKube` adds fault injection (answer the next matching requests with a
status, headers and a body, or after a delay), a log of every request, and direct access to
the stored objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakekube.patching import PatchError, json_patch, merge_patch, strategic_merge_patch
from tests.fakekube.selectors import SelectorError, field_selector, label_selector

JSON = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    scale: bool = False  # has a scale subresource
    generation: bool = False  # metadata.generation bumps on spec changes

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = (
    Resource("", "v1", "namespaces", "Namespace", namespaced=False),
    Resource("", "v1", "pods", "Pod"),
    Resource("", "v1", "services", "Service"),
    Resource("", "v1", "events", "Event"),
    Resource("", "v1", "configmaps", "ConfigMap"),
    Resource("apps", "v1", "deployments", "Deployment", scale=True, generation=True),
    Resource("apps", "v1", "statefulsets", "StatefulSet", scale=True, generation=True),
    Resource("apps", "v1", "daemonsets", "DaemonSet", generation=True),
    Resource("apps", "v1", "replicasets", "ReplicaSet", scale=True, generation=True),
    Resource("batch", "v1", "jobs", "Job", generation=True),
    Resource("batch", "v1", "cronjobs", "CronJob", generation=True),
    Resource("coordination.k8s.io", "v1", "leases", "Lease"),
    Resource(
        "autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", generation=True
    ),
)
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ROUTE = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+)(?=/))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
REVISION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH = "pod-template-hash"


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self) -> web.Response:
        return web.json_response(
            status_body(self.code, self.reason, self.message), status=self.code
        )


def status_body(code: int, reason: str, message: str) -> JSON:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Key = tuple[Resource, str, str]  # resource, namespace ("" when cluster-scoped), name


@dataclass
class WatchEvent:
    rv: int
    resource: Resource
    namespace: str
    type: str
    obj: JSON


class Store:
    """Every object, the resourceVersion counter and the event history watches read."""

    def __init__(self) -> None:
        self.objects: dict[Key, JSON] = {}
        self.rv = 1
        self.events: list[WatchEvent] = []
        self.changed = asyncio.Condition()
        self._notifying: set[asyncio.Future[None]] = set()

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def namespace_exists(self, namespace: str) -> bool:
        return (BY_PATH[("", "v1", "namespaces")], "", namespace) in self.objects

    def record(self, resource: Resource, namespace: str, kind: str, obj: JSON) -> None:
        self.events.append(WatchEvent(self.rv, resource, namespace, kind, copy.deepcopy(obj)))
        loop_running = True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            loop_running = False
        if loop_running:
            task = asyncio.ensure_future(self._notify())
            self._notifying.add(task)
            task.add_done_callback(self._notifying.discard)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    # ------------------------------------------------------------------ writes

    def create(
        self, resource: Resource, namespace: str, obj: JSON, *, dry_run: bool = False
    ) -> JSON:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name", "")
        if not name:
            raise ApiError(
                422, "Invalid", f"{resource.kind} is invalid: metadata.name: Required value"
            )
        validate(resource, obj)
        if resource.namespaced:
            if not self.namespace_exists(namespace):
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
            meta["namespace"] = namespace
        key = (resource, namespace if resource.namespaced else "", name)
        if key in self.objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{resource.plural}.{resource.group or "core"} "{name}" already exists',
            )
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
        if resource.generation:
            meta["generation"] = 1
        default(resource, obj)
        if dry_run:
            meta["resourceVersion"] = str(self.rv)
            return obj
        meta["resourceVersion"] = self.next_rv()
        self.objects[key] = obj
        self.record(resource, key[1], "ADDED", obj)
        controllers(self, resource, obj)
        return copy.deepcopy(self.objects[key])

    def get(self, resource: Resource, namespace: str, name: str) -> JSON:
        if resource.namespaced and not self.namespace_exists(namespace):
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
        obj = self.objects.get((resource, namespace if resource.namespaced else "", name))
        if obj is None:
            raise ApiError(
                404, "NotFound", f'{resource.plural}.{resource.group or "core"} "{name}" not found'
            )
        return obj

    def replace(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        new: JSON,
        *,
        dry_run: bool = False,
        check_rv: bool = True,
    ) -> JSON:
        current = self.get(resource, namespace, name)
        new = copy.deepcopy(new)
        meta = new.setdefault("metadata", {})
        wanted_rv = meta.get("resourceVersion")
        if check_rv and wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise conflict(resource, name)
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        validate(resource, new)
        for kept in ("uid", "creationTimestamp", "namespace", "generation"):
            if kept in current["metadata"]:
                meta[kept] = current["metadata"][kept]
            else:
                meta.pop(kept, None)
        meta["name"] = name
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        if "status" not in new and "status" in current:
            new["status"] = current["status"]
        if resource.generation and new.get("spec") != current.get("spec"):
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        default(resource, new)
        if dry_run:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            return new
        meta["resourceVersion"] = self.next_rv()
        key = (resource, namespace if resource.namespaced else "", name)
        self.objects[key] = new
        self.record(resource, key[1], "MODIFIED", new)
        controllers(self, resource, new)
        return copy.deepcopy(self.objects[key])

    def delete(
        self, resource: Resource, namespace: str, name: str, *, dry_run: bool = False
    ) -> JSON:
        obj = self.get(resource, namespace, name)
        if dry_run:
            return copy.deepcopy(obj)
        key = (resource, namespace if resource.namespaced else "", name)
        del self.objects[key]
        obj["metadata"]["resourceVersion"] = self.next_rv()
        self.record(resource, key[1], "DELETED", obj)
        if resource.kind == "Deployment":  # garbage-collect owned ReplicaSets
            for rs in owned(self, obj, BY_PATH[("apps", "v1", "replicasets")]):
                self.delete(
                    BY_PATH[("apps", "v1", "replicasets")], namespace, rs["metadata"]["name"]
                )
        return obj

    def list(
        self, resource: Resource, namespace: str | None, labels: str | None, fields: str | None
    ) -> list[JSON]:
        match_labels = label_selector(labels)
        match_fields = field_selector(fields)
        return [
            obj
            for (res, ns, _), obj in sorted(self.objects.items(), key=lambda i: i[0][1:])
            if res == resource
            and (namespace is None or ns == namespace)
            and match_labels(obj.get("metadata", {}).get("labels") or {})
            and match_fields(obj)
        ]


def conflict(resource: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.plural} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
    )


def invalid(resource: Resource, name: str, detail: str) -> ApiError:
    return ApiError(422, "Invalid", f'{resource.kind} "{name}" is invalid: {detail}')


def validate(resource: Resource, obj: JSON) -> None:
    name = obj.get("metadata", {}).get("name", "")
    if len(name) > 253 or not _NAME.match(name):
        raise invalid(
            resource,
            name,
            f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
            "consist of lower case alphanumeric characters, '-' or '.'",
        )
    spec = obj.get("spec") or {}
    if resource.kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            raise invalid(
                resource,
                name,
                "spec.template.metadata.labels: Invalid value: selector does not match "
                "template labels",
            )
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(resource, name, "spec.replicas: must be greater than or equal to 0")


def default(resource: Resource, obj: JSON) -> None:
    spec = (
        obj.setdefault("spec", {})
        if resource.kind not in ("Namespace", "Event", "ConfigMap")
        else None
    )
    if resource.kind in ("Deployment", "StatefulSet", "ReplicaSet") and spec is not None:
        spec.setdefault("replicas", 1)
    if resource.kind == "Service" and spec is not None and not spec.get("clusterIP"):
        spec["clusterIP"] = f"10.96.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"
        spec.setdefault("type", "ClusterIP")
    if resource.kind == "Namespace":
        obj.setdefault("status", {"phase": "Active"})
    if resource.kind == "Pod":
        obj.setdefault("status", {"phase": "Running"})


def owned(store: Store, owner: JSON, resource: Resource) -> list[JSON]:
    uid = owner["metadata"]["uid"]
    return [
        obj
        for (res, _, _), obj in store.objects.items()
        if res == resource
        and any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])
    ]


def _template_hash(template: JSON) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def controllers(store: Store, resource: Resource, obj: JSON) -> None:
    """What kube-controller-manager would do soon after the write, done at once."""
    if resource.kind == "Deployment":
        deployment_controller(store, obj)
    if resource.kind in ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"):
        workload_status(store, resource, obj)


def deployment_controller(store: Store, deployment: JSON) -> None:
    rs_resource = BY_PATH[("apps", "v1", "replicasets")]
    namespace = deployment["metadata"]["namespace"]
    template = deployment["spec"].get("template") or {}
    digest = _template_hash(template)
    children = owned(store, deployment, rs_resource)
    top = max(
        (int(c["metadata"].get("annotations", {}).get(REVISION, "0")) for c in children), default=0
    )
    current = next(
        (c for c in children if c["metadata"].get("labels", {}).get(TEMPLATE_HASH) == digest), None
    )
    replicas = deployment["spec"].get("replicas", 1)
    if current is None:
        labels = {**(template.get("metadata") or {}).get("labels", {}), TEMPLATE_HASH: digest}
        rs_template = copy.deepcopy(template)
        rs_template.setdefault("metadata", {})["labels"] = labels
        selector = copy.deepcopy(deployment["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})[TEMPLATE_HASH] = digest
        revision = top + 1
        store.create(
            rs_resource,
            namespace,
            {
                "metadata": {
                    "name": f"{deployment['metadata']['name']}-{digest}",
                    "labels": labels,
                    "annotations": {REVISION: str(revision)},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": deployment["metadata"]["name"],
                            "uid": deployment["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
            },
        )
    else:
        revision = int(current["metadata"].get("annotations", {}).get(REVISION, "0"))
        if revision < top:  # rolled back to an older template: it becomes the newest revision
            revision = top + 1
        if current["spec"].get("replicas") != replicas or current["metadata"]["annotations"].get(
            REVISION
        ) != str(revision):
            updated = copy.deepcopy(current)
            updated["spec"]["replicas"] = replicas
            updated["metadata"]["annotations"][REVISION] = str(revision)
            store.replace(
                rs_resource, namespace, current["metadata"]["name"], updated, check_rv=False
            )
    for child in owned(store, deployment, rs_resource):
        if child["metadata"]["labels"].get(TEMPLATE_HASH) != digest and child["spec"].get(
            "replicas"
        ):
            scaled_down = copy.deepcopy(child)
            scaled_down["spec"]["replicas"] = 0
            store.replace(
                rs_resource, namespace, child["metadata"]["name"], scaled_down, check_rv=False
            )
    annotations = deployment["metadata"].setdefault("annotations", {})
    annotations[REVISION] = str(revision)


def workload_status(store: Store, resource: Resource, obj: JSON) -> None:
    """Every pod is instantly ready: status follows spec and observedGeneration catches up."""
    replicas = obj["spec"].get("replicas", 1) if resource.kind != "DaemonSet" else 1
    status = {"observedGeneration": obj["metadata"].get("generation", 1)}
    if resource.kind == "DaemonSet":
        status.update(
            currentNumberScheduled=1,
            desiredNumberScheduled=1,
            numberReady=1,
            updatedNumberScheduled=1,
            numberAvailable=1,
            numberMisscheduled=0,
        )
    else:
        status.update(
            replicas=replicas,
            readyReplicas=replicas,
            availableReplicas=replicas,
            updatedReplicas=replicas,
        )
        if resource.kind == "StatefulSet":
            status["currentReplicas"] = replicas
    obj["status"] = status  # status is not a spec change: no new resourceVersion needed


# ---------------------------------------------------------------------- HTTP


@dataclass
class Injection:
    method: str | None
    path: re.Pattern[str]
    status: int
    times: int
    body: JSON | None
    headers: dict[str, str]
    delay: float


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    status: int = 0


def _scale_of(resource: Resource, obj: JSON) -> JSON:
    meta = obj["metadata"]
    selector = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
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
            "replicas": replicas,
            "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
        },
    }


def _dry_run(request: web.Request) -> bool:
    value = request.query.get("dryRun")
    if value not in (None, "All"):
        raise ApiError(400, "BadRequest", f"invalid dry run value {value!r}")
    return value == "All"


def _apply_patch(content_type: str, target: JSON, patch: Any) -> JSON:
    try:
        if content_type == "application/json-patch+json":
            result = json_patch(target, patch)
        elif content_type == "application/merge-patch+json":
            result = merge_patch(target, patch)
        elif content_type == "application/strategic-merge-patch+json":
            result = strategic_merge_patch(target, patch)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, "
                f"application/strategic-merge-patch+json (got {content_type!r})",
            )
    except PatchError as exc:
        raise ApiError(422, "Invalid", str(exc)) from exc
    if not isinstance(result, dict):
        raise ApiError(422, "Invalid", "the patch did not produce an object")
    return result


class FakeKube:
    """The fake API server, with test controls. Start it on loopback with :meth:`start`."""

    def __init__(self) -> None:
        self.store = Store()
        self.injections: list[Injection] = []
        self.requests: list[RecordedRequest] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        self.app.router.add_get("/version", self._version)
        self.app.router.add_get("/api", self._api_versions)
        self.app.router.add_get("/apis", self._api_groups)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{bound[0]}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: Path, context: str = "fake") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "fake-token"}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": "default"},
                }
            ],
        }
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        return path

    # ------------------------------------------------------------------ state helpers

    def put(self, obj: JSON) -> JSON:
        """Create or replace ``obj`` as if through the API (namespace created if missing)."""
        resource = BY_KIND[(obj["apiVersion"], obj["kind"])]
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace", "default") if resource.namespaced else ""
        if resource.namespaced and not self.store.namespace_exists(namespace):
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        key = (resource, namespace, meta["name"])
        if key in self.store.objects:
            replaced = copy.deepcopy(obj)
            replaced["metadata"].pop("resourceVersion", None)
            return self.store.replace(resource, namespace, meta["name"], replaced)
        return self.store.create(resource, namespace, obj)

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> JSON | None:
        resource = BY_KIND[(api_version, kind)]
        obj = self.store.objects.get((resource, namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def add_deployment(
        self, namespace: str, name: str, replicas: int = 1, containers: list[JSON] | None = None
    ) -> JSON:
        existing = self.get("apps/v1", "Deployment", namespace, name)
        if existing is not None:
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
        """The next ``times`` requests matching ``method`` and ``path`` (a regex searched in the
        request path) are answered with ``status``; status 0 serves them normally after
        ``delay`` seconds."""
        self.injections.append(
            Injection(method, re.compile(path), status, times, body, dict(headers or {}), delay)
        )

    def clear_requests(self) -> None:
        self.requests.clear()

    # ------------------------------------------------------------------ HTTP plumbing

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        recorded = RecordedRequest(
            request.method, request.path, dict(request.query), request.content_type, body
        )
        self.requests.append(recorded)
        injection = self._take_injection(request)
        if injection is not None:
            if injection.delay:
                await asyncio.sleep(injection.delay)
            if injection.status:
                recorded.status = injection.status
                payload = injection.body or status_body(
                    injection.status, "Injected", f"injected {injection.status}"
                )
                return web.json_response(
                    payload, status=injection.status, headers=injection.headers
                )
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except SelectorError as exc:
            response = ApiError(400, "BadRequest", str(exc)).response()
        recorded.status = response.status
        return response

    def _take_injection(self, request: web.Request) -> Injection | None:
        for injection in self.injections:
            if injection.times <= 0:
                continue
            if injection.method not in (None, request.method):
                continue
            if not injection.path.search(request.path):
                continue
            injection.times -= 1
            return injection
        return None

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "platform": "linux/amd64"}
        )

    async def _api_versions(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        )

    async def _api_groups(self, request: web.Request) -> web.Response:
        groups: dict[str, list[str]] = {}
        for r in RESOURCES:
            if r.group:
                groups.setdefault(r.group, []).append(r.version)
        return web.json_response(
            {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                        "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                    }
                    for g, vs in groups.items()
                ],
            }
        )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        match = _ROUTE.match(request.path)
        if match is None:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({request.path})",
            )
        group = "" if match.group("core") else match.group("group")
        version = match.group("core") or match.group("version")
        resource = BY_PATH.get((group, version, match.group("plural")))
        if resource is None:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({request.path})",
            )
        namespace = match.group("ns") or ""
        name, sub = match.group("name"), match.group("sub")
        if sub not in (None, "scale", "status") or (sub == "scale" and not resource.scale):
            raise ApiError(404, "NotFound", f"{resource.plural}/{sub} is not a subresource")
        method = request.method
        if name is None:
            if method == "GET":
                return await self._list(request, resource, namespace or None)
            if method == "POST":
                return self._create(request, resource, namespace)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        if sub == "scale":
            return self._scale(request, resource, namespace, name)
        if method == "GET":
            return web.json_response(self.store.get(resource, namespace, name))
        if method == "PUT":
            body = await request.json()
            return web.json_response(
                self.store.replace(resource, namespace, name, body, dry_run=_dry_run(request))
            )
        if method == "PATCH":
            current = self.store.get(resource, namespace, name)
            patched = _apply_patch(request.content_type, current, await request.json())
            patched.setdefault("metadata", {})["resourceVersion"] = current["metadata"][
                "resourceVersion"
            ]
            return web.json_response(
                self.store.replace(resource, namespace, name, patched, dry_run=_dry_run(request))
            )
        if method == "DELETE":
            deleted = self.store.delete(resource, namespace, name, dry_run=_dry_run(request))
            return web.json_response(deleted)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed")

    def _create(self, request: web.Request, resource: Resource, namespace: str) -> web.Response:
        body = self.requests[-1].body if self.requests else None
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        created = self.store.create(resource, namespace, body, dry_run=_dry_run(request))
        return web.json_response(created, status=201)

    def _scale(
        self, request: web.Request, resource: Resource, namespace: str, name: str
    ) -> web.Response:
        current = self.store.get(resource, namespace, name)
        if request.method == "GET":
            return web.json_response(_scale_of(resource, current))
        body = self.requests[-1].body
        if request.method == "PUT":
            scale = body if isinstance(body, dict) else {}
            wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
                raise conflict(resource, name)
        elif request.method == "PATCH":
            scale = _apply_patch(request.content_type, _scale_of(resource, current), body)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on scale")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value',
            )
        updated = copy.deepcopy(current)
        updated["spec"]["replicas"] = replicas
        stored = self.store.replace(
            resource, namespace, name, updated, dry_run=_dry_run(request), check_rv=False
        )
        return web.json_response(_scale_of(resource, stored))

    async def _list(
        self, request: web.Request, resource: Resource, namespace: str | None
    ) -> web.StreamResponse:
        # A list in a namespace that does not exist is empty, as on a real server.
        labels, fields = request.query.get("labelSelector"), request.query.get("fieldSelector")
        if request.query.get("watch") in ("1", "true"):
            return await self._watch(request, resource, namespace, labels, fields)
        items = self.store.list(resource, namespace, labels, fields)
        return web.json_response(
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": items,
            }
        )

    async def _watch(
        self,
        request: web.Request,
        resource: Resource,
        namespace: str | None,
        labels: str | None,
        fields: str | None,
    ) -> web.StreamResponse:
        match_labels, match_fields = label_selector(labels), field_selector(fields)
        timeout = float(request.query.get("timeoutSeconds", "1800"))
        since = request.query.get("resourceVersion")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        def wanted(event: WatchEvent) -> bool:
            meta = event.obj.get("metadata", {})
            return (
                event.resource == resource
                and (namespace is None or event.namespace == namespace)
                and match_labels(meta.get("labels") or {})
                and match_fields(event.obj)
            )

        async def send(kind: str, obj: JSON) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        if since in (None, "", "0"):
            for obj in self.store.list(resource, namespace, labels, fields):
                await send("ADDED", obj)
            position = len(self.store.events)
        else:
            position = next(
                (i for i, e in enumerate(self.store.events) if e.rv > int(since)),
                len(self.store.events),
            )
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                while position < len(self.store.events):
                    event = self.store.events[position]
                    position += 1
                    if wanted(event):
                        await send(event.type, event.obj)
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                async with self.store.changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self.store.changed.wait(), timeout=min(remaining, 0.5)
                        )
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        await response.write_eof()
        return response
