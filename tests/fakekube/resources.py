"""The resource registry: which kinds the fake serves, at which URL, with which subresources.

Everything else in the fake is generic over :class:`Resource`; adding a kind is one line here
(plus defaulting, validation or a controller in their modules if the kind needs them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class NameRule(Enum):
    """How ``metadata.name`` is validated (RFC 1123 subdomain, RFC 1123 label, RFC 1035 label)."""

    SUBDOMAIN = "subdomain"
    LABEL = "label"
    DNS1035 = "dns1035"


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: frozenset[str] = frozenset()
    generation: bool = False  # metadata.generation bumps on spec changes
    name_rule: NameRule = NameRule.SUBDOMAIN
    delete_returns_object: bool = False  # otherwise DELETE answers a Status

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` or ``pods``: how the API server names the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Deployment.apps`` or ``Pod``: how validation messages name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def has_scale(self) -> bool:
        return "scale" in self.subresources


_STATUS = frozenset({"status"})
_SCALE = frozenset({"status", "scale"})

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        subresources=_STATUS,
        name_rule=NameRule.LABEL,
        delete_returns_object=True,
    ),
    Resource("", "v1", "nodes", "Node", namespaced=False, subresources=_STATUS),
    Resource("", "v1", "pods", "Pod", subresources=_STATUS, delete_returns_object=True),
    Resource("", "v1", "services", "Service", subresources=_STATUS, name_rule=NameRule.DNS1035),
    Resource("", "v1", "events", "Event"),
    Resource("", "v1", "configmaps", "ConfigMap"),
    Resource("", "v1", "secrets", "Secret"),
    Resource("apps", "v1", "deployments", "Deployment", subresources=_SCALE, generation=True),
    Resource("apps", "v1", "statefulsets", "StatefulSet", subresources=_SCALE, generation=True),
    Resource("apps", "v1", "daemonsets", "DaemonSet", subresources=_STATUS, generation=True),
    Resource("apps", "v1", "replicasets", "ReplicaSet", subresources=_SCALE, generation=True),
    Resource("batch", "v1", "jobs", "Job", subresources=_STATUS, generation=True),
    Resource("batch", "v1", "cronjobs", "CronJob", subresources=_STATUS, generation=True),
    Resource("coordination.k8s.io", "v1", "leases", "Lease"),
    Resource(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        subresources=_STATUS,
        generation=True,
    ),
    Resource(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        subresources=_STATUS,
        generation=True,
    ),
)


class Registry:
    """Looks resources up by URL segments or by apiVersion and kind."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.resources = tuple(resources)
        self._by_path = {(r.group, r.version, r.plural): r for r in self.resources}
        self._by_kind = {(r.api_version, r.kind): r for r in self.resources}

    def by_path(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> Resource:
        try:
            return self._by_kind[(api_version, kind)]
        except KeyError:
            raise ValueError(f"the fake does not serve {api_version} {kind}") from None

    def group_versions(self) -> dict[str, list[str]]:
        """Named groups (not the core group) and their versions, in registry order."""
        groups: dict[str, list[str]] = {}
        for resource in self.resources:
            if resource.group and resource.version not in groups.get(resource.group, []):
                groups.setdefault(resource.group, []).append(resource.version)
        return groups

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if (r.group, r.version) == (group, version)]


REGISTRY = Registry(RESOURCES)
NAMESPACES = REGISTRY.by_kind("v1", "Namespace")
REPLICASETS = REGISTRY.by_kind("apps/v1", "ReplicaSet")
