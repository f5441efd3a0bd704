"""The in-memory object store: CRUD with kube-apiserver semantics, and the watch history.

It owns the global resourceVersion counter, uid/creationTimestamp/generation bookkeeping,
optimistic concurrency (409 on a stale resourceVersion), the status subresource split (writes
to the object keep its status, status writes keep everything else), no-op updates (no new
resourceVersion), garbage collection by ownerReferences, and the list of change events that
watches replay. Controllers plug in through the ``on_write`` hook, which runs inside every
non-status write just before it is stored.
"""

from __future__ import annotations

import asyncio
import copy
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.fakekube import admission
from tests.fakekube.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    namespace_not_found,
    not_found,
)
from tests.fakekube.resources import NAMESPACES, REGISTRY, Registry, Resource
from tests.fakekube.selectors import field_selector, label_selector

JSON = dict[str, Any]
Key = tuple[Resource, str, str]  # resource, namespace ("" when cluster-scoped), name
WriteHook = Callable[["Store", Resource, JSON], None]

_NAME_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet generateName suffixes use


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    resource: Resource
    namespace: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: JSON


class Store:
    """Every object, the resourceVersion counter and the event history watches read."""

    def __init__(self, registry: Registry = REGISTRY, on_write: WriteHook | None = None) -> None:
        self.registry = registry
        self.on_write = on_write
        self.objects: dict[Key, JSON] = {}
        self.rv = 1
        self.events: list[WatchEvent] = []
        self._changed: asyncio.Event | None = None

    # ------------------------------------------------------------------ reads

    def namespace_exists(self, namespace: str) -> bool:
        return (NAMESPACES, "", namespace) in self.objects

    def peek(self, resource: Resource, namespace: str, name: str) -> JSON | None:
        """The stored object itself (not a copy), or None."""
        return self.objects.get(_key(resource, namespace, name))

    def get(self, resource: Resource, namespace: str, name: str) -> JSON:
        return copy.deepcopy(self._current(resource, namespace, name))

    def select(
        self,
        resource: Resource,
        namespace: str | None,
        labels: str | None = None,
        fields: str | None = None,
    ) -> list[JSON]:
        """Matching objects, sorted by namespace and name; ``namespace=None`` means all."""
        match_labels, match_fields = label_selector(labels), field_selector(fields)
        found = [
            (key, obj)
            for key, obj in self.objects.items()
            if key[0] == resource
            and (namespace is None or key[1] == namespace)
            and match_labels(obj["metadata"].get("labels") or {})
            and match_fields(obj)
        ]
        return [copy.deepcopy(obj) for _, obj in sorted(found, key=lambda f: f[0][1:])]

    def dependents(self, uid: str) -> list[tuple[Resource, JSON]]:
        """Objects with an ownerReference to ``uid``."""
        return [
            (key[0], obj)
            for key, obj in self.objects.items()
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]

    # ------------------------------------------------------------------ change notification

    def changed(self) -> asyncio.Event:
        """Set at the next write; take it before reading ``events`` so no write is missed."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def notify(self) -> None:
        """Wake everyone waiting on :meth:`changed`."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _record(self, kind: str, resource: Resource, namespace: str, obj: JSON) -> None:
        self.events.append(WatchEvent(self.rv, resource, namespace, kind, copy.deepcopy(obj)))
        self.notify()

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    # ------------------------------------------------------------------ writes

    def create(
        self, resource: Resource, namespace: str, obj: JSON, *, dry_run: bool = False
    ) -> JSON:
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        if resource.namespaced:
            if not self.namespace_exists(namespace):
                raise namespace_not_found(namespace)
            meta["namespace"] = namespace
        else:
            namespace = ""
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(resource, namespace, str(meta["generateName"]))
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        for server_owned in ("resourceVersion", "deletionTimestamp", "generation"):
            meta.pop(server_owned, None)
        meta.update(uid=_uid(), creationTimestamp=now())
        if resource.generation:
            meta["generation"] = 1
        if resource.has_status:
            new.pop("status", None)
        admission.default(resource, new, None)
        admission.validate(resource, new, None)
        key = _key(resource, namespace, str(meta["name"]))
        if key in self.objects:
            raise already_exists(resource, key[2])
        if dry_run:
            return new
        return self._commit(key, new, "ADDED")

    def replace(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        obj: JSON,
        *,
        dry_run: bool = False,
        check_rv: bool = True,
    ) -> JSON:
        """PUT semantics; ``check_rv`` makes a given but stale resourceVersion a 409."""
        current = self._current(resource, namespace, name)
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        self._check_preconditions(resource, current, meta, name, check_rv=check_rv)
        for kept in ("uid", "creationTimestamp", "generation", "namespace", "deletionTimestamp"):
            if kept in current["metadata"]:
                meta[kept] = current["metadata"][kept]
            else:
                meta.pop(kept, None)
        meta["name"] = name
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        if resource.has_status:
            _set_status(new, current.get("status"))
        admission.default(resource, new, current)
        admission.validate(resource, new, current)
        if resource.generation and _spec(new) != _spec(current):
            meta["generation"] = int(current["metadata"].get("generation", 0)) + 1
        if new == current or dry_run:
            return copy.deepcopy(new)
        return self._commit(_key(resource, namespace, name), new, "MODIFIED")

    def replace_status(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        obj: JSON,
        *,
        dry_run: bool = False,
        check_rv: bool = True,
    ) -> JSON:
        """The status subresource: only ``status`` changes; controllers do not run."""
        current = self._current(resource, namespace, name)
        self._check_preconditions(
            resource, current, obj.get("metadata") or {}, name, check_rv=check_rv
        )
        new = copy.deepcopy(current)
        _set_status(new, copy.deepcopy(obj.get("status")))
        if new == current or dry_run:
            return copy.deepcopy(new)
        return self._commit(_key(resource, namespace, name), new, "MODIFIED", hooks=False)

    def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        propagation: str | None = None,
        preconditions: JSON | None = None,
    ) -> JSON:
        """Delete at once (no finalizers, no grace period) and garbage-collect dependents."""
        current = self._current(resource, namespace, name)
        self._check_preconditions(
            resource, current, preconditions or {}, name, check_rv=True, check_name=False
        )
        if dry_run:
            return copy.deepcopy(current)
        key = _key(resource, namespace, name)
        del self.objects[key]
        current["metadata"]["resourceVersion"] = self._next_rv()
        self._record("DELETED", resource, key[1], current)
        self._collect(current, orphan=propagation == "Orphan")
        if resource == NAMESPACES:
            for res, ns, obj_name in [k for k in self.objects if k[1] == name]:
                if self.peek(res, ns, obj_name) is not None:
                    self.delete(res, ns, obj_name)
        return copy.deepcopy(current)

    # ------------------------------------------------------------------ internals

    def _current(self, resource: Resource, namespace: str, name: str) -> JSON:
        obj = self.objects.get(_key(resource, namespace, name))
        if obj is None:
            raise not_found(resource, name)
        return obj

    def _commit(self, key: Key, obj: JSON, event: str, *, hooks: bool = True) -> JSON:
        if hooks and self.on_write is not None:
            self.on_write(self, key[0], obj)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[key] = obj
        self._record(event, key[0], key[1], obj)
        return copy.deepcopy(obj)

    def _check_preconditions(
        self,
        resource: Resource,
        current: JSON,
        meta: JSON,
        name: str,
        *,
        check_rv: bool,
        check_name: bool = True,
    ) -> None:
        if check_name and meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        wanted_uid = meta.get("uid")
        if wanted_uid and wanted_uid != current["metadata"]["uid"]:
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {wanted_uid}, UID in object meta: "
                f"{current['metadata']['uid']}",
            )
        wanted_rv = meta.get("resourceVersion")
        if check_rv and wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise conflict(resource, name)

    def _generate_name(self, resource: Resource, namespace: str, prefix: str) -> str:
        while True:
            name = prefix + "".join(random.choices(_NAME_SUFFIX, k=5))
            if _key(resource, namespace, name) not in self.objects:
                return name

    def _collect(self, owner: JSON, *, orphan: bool) -> None:
        """The garbage collector: delete (or, for Orphan, release) the owner's dependents."""
        uid = owner["metadata"]["uid"]
        for resource, dependent in self.dependents(uid):
            meta = dependent["metadata"]
            if orphan:
                released = copy.deepcopy(dependent)
                released["metadata"]["ownerReferences"] = [
                    r for r in meta["ownerReferences"] if r.get("uid") != uid
                ]
                self.replace(
                    resource, meta.get("namespace", ""), meta["name"], released, check_rv=False
                )
            elif self.peek(resource, meta.get("namespace", ""), meta["name"]) is not None:
                self.delete(resource, meta.get("namespace", ""), meta["name"])


def _key(resource: Resource, namespace: str, name: str) -> Key:
    return (resource, namespace if resource.namespaced else "", name)


def _uid() -> str:
    return str(uuid.uuid4())


def _spec(obj: JSON) -> JSON:
    """Everything that is not metadata or status: what a generation bump is about."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _set_status(obj: JSON, status: Any) -> None:
    if status is None:
        obj.pop("status", None)
    else:
        obj["status"] = status
