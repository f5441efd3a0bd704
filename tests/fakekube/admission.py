"""What the API server does to an object between decoding and storing: defaulting, validation.

Defaulting fills the fields a real server fills (so the stored object looks like one read from
a cluster); validation rejects with 422 what a real server rejects in the fields remediation
touches: names, labels, pod templates (every container named and with an image), workload
selectors and replicas, immutable selectors. It is not the full Kubernetes validation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from tests.fakekube.errors import Cause, invalid
from tests.fakekube.resources import NameRule, Resource

JSON = dict[str, Any]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_RULES: dict[NameRule, tuple[re.Pattern[str], int, str]] = {
    NameRule.SUBDOMAIN: (
        _SUBDOMAIN,
        253,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
        "'-' or '.', and must start and end with an alphanumeric character",
    ),
    NameRule.LABEL: (
        _LABEL,
        63,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
        "'-', and must start and end with an alphanumeric character",
    ),
    NameRule.DNS1035: (
        _DNS1035,
        63,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
        "with an alphabetic character, and end with an alphanumeric character",
    ),
}
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _dig(obj: JSON, *path: str) -> Any:
    node: Any = obj
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _pod_template_paths(kind: str) -> list[tuple[str, ...]]:
    """Where the kind keeps a pod spec, as key paths from the object root."""
    if kind == "Pod":
        return [("spec",)]
    if kind in WORKLOADS or kind == "Job":
        return [("spec", "template", "spec")]
    if kind == "CronJob":
        return [("spec", "jobTemplate", "spec", "template", "spec")]
    return []


# ---------------------------------------------------------------------- defaulting


def default(resource: Resource, obj: JSON, old: JSON | None) -> None:
    """Fill defaults in place; ``old`` is the stored object on an update."""
    spec = obj.get("spec")
    for path in _pod_template_paths(resource.kind):
        pod_spec = _dig(obj, *path)
        if isinstance(pod_spec, dict):
            _default_pod_spec(pod_spec)
    handler = _KIND_DEFAULTS.get(resource.kind)
    if handler is not None and isinstance(spec, dict):
        handler(obj, spec, old)
    if resource.kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"][
            "name"
        ]
        obj.setdefault("status", {"phase": "Active"})


def _default_pod_spec(spec: JSON) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        if isinstance(container, dict):
            _default_container(container)


def _default_container(container: JSON) -> None:
    image = str(container.get("image", ""))
    latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _default_deployment(obj: JSON, spec: JSON, old: JSON | None) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxSurge", "25%")
        rolling.setdefault("maxUnavailable", "25%")


def _default_statefulset(obj: JSON, spec: JSON, old: JSON | None) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)


def _default_daemonset(obj: JSON, spec: JSON, old: JSON | None) -> None:
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)


def _default_replicaset(obj: JSON, spec: JSON, old: JSON | None) -> None:
    spec.setdefault("replicas", 1)


def _default_job(obj: JSON, spec: JSON, old: JSON | None) -> None:
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if spec.get("manualSelector") or "selector" in spec:
        return
    meta = obj["metadata"]
    job_labels = {JOB_UID_LABEL: meta["uid"], JOB_NAME_LABEL: meta["name"]}
    spec["selector"] = {"matchLabels": {JOB_UID_LABEL: meta["uid"]}}
    template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **job_labels}


def _default_cronjob(obj: JSON, spec: JSON, old: JSON | None) -> None:
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)


def _default_service(obj: JSON, spec: JSON, old: JSON | None) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    old_ip = _dig(old, "spec", "clusterIP") if old is not None else None
    if not spec.get("clusterIP"):
        spec["clusterIP"] = old_ip or _allocate_cluster_ip()
    spec["clusterIPs"] = [spec["clusterIP"]]
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


def _allocate_cluster_ip() -> str:
    number = uuid.uuid4().int
    return f"10.96.{number % 250}.{(number >> 8) % 250 + 1}"


_KIND_DEFAULTS: dict[str, Callable[[JSON, JSON, JSON | None], None]] = {
    "Deployment": _default_deployment,
    "StatefulSet": _default_statefulset,
    "DaemonSet": _default_daemonset,
    "ReplicaSet": _default_replicaset,
    "Job": _default_job,
    "CronJob": _default_cronjob,
    "Service": _default_service,
}


# ---------------------------------------------------------------------- validation


def validate(resource: Resource, obj: JSON, old: JSON | None) -> None:
    """Raise a 422 carrying every field error found."""
    meta = obj.get("metadata") or {}
    causes = [
        *_name_causes(resource, str(meta.get("name", ""))),
        *_label_causes("metadata.labels", meta.get("labels")),
    ]
    for path in _pod_template_paths(resource.kind):
        causes += _pod_spec_causes(".".join(path), _dig(obj, *path), resource.kind)
    if resource.kind in WORKLOADS:
        causes += _workload_causes(obj, old)
    if causes:
        raise invalid(resource, str(meta.get("name", "")), causes)


def _name_causes(resource: Resource, name: str) -> list[Cause]:
    if not name:
        return [Cause("metadata.name", "Required value: name or generateName is required")]
    pattern, limit, rule = _NAME_RULES[resource.name_rule]
    if len(name) > limit or not pattern.match(name):
        return [Cause("metadata.name", f'Invalid value: "{name}": {rule}')]
    return []


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    prefix_ok = not prefix or (len(prefix) <= 253 and _SUBDOMAIN.match(prefix) is not None)
    return prefix_ok and 0 < len(name) <= 63 and _LABEL_VALUE.match(name) is not None


def _label_value_ok(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and _LABEL_VALUE.match(value) is not None


def _label_causes(field: str, labels: Any) -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [Cause(field, "Invalid value: labels must be a map of strings")]
    causes = [
        Cause(
            field,
            f'Invalid value: "{key}": a label key is an optional DNS subdomain '
            "prefix and '/' then a name of at most 63 alphanumeric characters or '-_.'",
        )
        for key in labels
        if not _label_key_ok(str(key))
    ]
    causes += [
        Cause(
            f"{field}.{key}",
            f'Invalid value: "{value}": a label value is empty or at most '
            "63 alphanumeric characters or '-_.', starting and ending alphanumeric",
        )
        for key, value in labels.items()
        if not _label_value_ok(value)
    ]
    return causes


def _pod_spec_causes(field: str, spec: Any, kind: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [Cause(field, "Required value", "FieldValueRequired")]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [Cause(f"{field}.containers", "Required value", "FieldValueRequired")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        where = f"{field}.containers[{index}]"
        name = container.get("name") if isinstance(container, dict) else None
        if not name:
            causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
        elif not _LABEL.match(str(name)) or len(str(name)) > 63:
            causes.append(Cause(f"{where}.name", f'Invalid value: "{name}"'))
        elif name in seen:
            causes.append(
                Cause(f"{where}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate")
            )
        seen.add(str(name))
        if not isinstance(container, dict) or not container.get("image"):
            causes.append(Cause(f"{where}.image", "Required value", "FieldValueRequired"))
    if kind in ("Job", "CronJob") and spec.get("restartPolicy") not in ("OnFailure", "Never"):
        causes.append(
            Cause(
                f"{field}.restartPolicy",
                'Required value: valid values: "OnFailure", "Never"',
                "FieldValueRequired",
            )
        )
    return causes


def _workload_causes(obj: JSON, old: JSON | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    labels = _dig(spec, "template", "metadata", "labels") or {}
    causes = _label_causes("spec.template.metadata.labels", labels)
    match_labels = (selector or {}).get("matchLabels") or {}
    if not match_labels and not (selector or {}).get("matchExpressions"):
        causes.append(Cause("spec.selector", "Required value", "FieldValueRequired"))
    elif any(labels.get(k) != v for k, v in match_labels.items()):
        causes.append(
            Cause(
                "spec.template.metadata.labels",
                f"Invalid value: {labels}: `selector` does not match template `labels`",
            )
        )
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        causes.append(
            Cause("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
        )
    if old is not None and selector != _dig(old, "spec", "selector"):
        causes.append(Cause("spec.selector", f"Invalid value: {selector}: field is immutable"))
    return causes
