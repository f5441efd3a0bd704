"""What kube-controller-manager and the kubelet would do after a write, done inside the write.

:func:`reconcile` is the store's ``on_write`` hook. It runs synchronously just before an object
is stored, so a client never sees a half-reconciled state:

- Deployment controller: one ReplicaSet per pod template (named ``<deployment>-<hash>``,
  labelled ``pod-template-hash``, owned by the Deployment); the ReplicaSet of the current
  template carries the next ``deployment.kubernetes.io/revision`` whenever the template changes
  (or changes back, as ``rollout undo`` does), older ones are scaled to 0 and pruned beyond
  ``revisionHistoryLimit``; the Deployment carries the current revision.
- Workload status: every replica is instantly ready and up to date, ``observedGeneration``
  catches up (so "rollout complete" checks pass at once).
- Kubelet: a new Pod is Running and Ready.

A status written through the status subresource (or :meth:`FakeKube.put`) is not overwritten
until the next spec or metadata write, which is how a test simulates a stuck rollout.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

from tests.fakekube.resources import REPLICASETS, Resource
from tests.fakekube.store import Store, now

JSON = dict[str, Any]
Controller = Callable[[Store, Resource, JSON], None]

REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
TEMPLATE_HASH = "pod-template-hash"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def reconcile(store: Store, resource: Resource, obj: JSON) -> None:
    for controller in _CONTROLLERS.get(resource.kind, ()):
        controller(store, resource, obj)


def template_hash(template: JSON) -> str:
    """A stable, label-safe digest of a pod template (the ``pod-template-hash`` label value)."""
    number = int(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest(), 16)
    digits = []
    for _ in range(10):
        number, digit = divmod(number, len(_HASH_ALPHABET))
        digits.append(_HASH_ALPHABET[digit])
    return "".join(digits)


# ---------------------------------------------------------------------- Deployment controller


def _revision(obj: JSON) -> int:
    return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))


def deployment_controller(store: Store, resource: Resource, deployment: JSON) -> None:
    spec = deployment["spec"]
    digest = template_hash(spec.get("template") or {})
    children = [o for r, o in store.dependents(deployment["metadata"]["uid"]) if r == REPLICASETS]
    newest = max((_revision(c) for c in children), default=0)
    current = next(
        (c for c in children if (c["metadata"].get("labels") or {}).get(TEMPLATE_HASH) == digest),
        None,
    )
    if current is not None and _revision(current) >= newest:
        revision = _revision(current)
    else:  # a new template, or one rolled back to: it becomes the newest revision
        revision = newest + 1
    replicas = int(spec.get("replicas", 1))
    if current is None:
        store.create(
            REPLICASETS, _namespace(deployment), _new_replicaset(deployment, digest, revision)
        )
    for child in children:
        if child is current:
            _sync_replicaset(store, child, revision, replicas)
        else:
            _sync_replicaset(store, child, None, 0)
    _prune_history(store, deployment, digest)
    deployment["metadata"].setdefault("annotations", {})[REVISION] = str(revision)


def _namespace(obj: JSON) -> str:
    return str(obj["metadata"].get("namespace", ""))


def _rs_name(deployment: JSON, digest: str) -> str:
    return f"{deployment['metadata']['name']}-{digest}"


def _new_replicaset(deployment: JSON, digest: str, revision: int) -> JSON:
    template = copy.deepcopy(deployment["spec"].get("template") or {})
    template_meta = template.setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), TEMPLATE_HASH: digest}
    selector = copy.deepcopy(deployment["spec"].get("selector") or {})
    selector.setdefault("matchLabels", {})[TEMPLATE_HASH] = digest
    meta = deployment["metadata"]
    return {
        "metadata": {
            "name": _rs_name(deployment, digest),
            "labels": template_meta["labels"],
            "annotations": {
                REVISION: str(revision),
                DESIRED_REPLICAS: str(deployment["spec"].get("replicas", 1)),
            },
            "ownerReferences": [
                {
                    "apiVersion": deployment.get("apiVersion", "apps/v1"),
                    "kind": "Deployment",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": deployment["spec"].get("replicas", 1),
            "selector": selector,
            "template": template,
        },
    }


def _sync_replicaset(store: Store, child: JSON, revision: int | None, replicas: int) -> None:
    """Bring one ReplicaSet to ``replicas`` and (for the current one) ``revision``."""
    updated = copy.deepcopy(child)
    if revision is not None:
        annotations = updated["metadata"].setdefault("annotations", {})
        annotations[REVISION] = str(revision)
        annotations[DESIRED_REPLICAS] = str(replicas)
    updated["spec"]["replicas"] = replicas
    if updated != child:
        meta = child["metadata"]
        store.replace(REPLICASETS, meta["namespace"], meta["name"], updated, check_rv=False)


def _prune_history(store: Store, deployment: JSON, digest: str) -> None:
    limit = int(deployment["spec"].get("revisionHistoryLimit", 10))
    old = sorted(
        (
            o
            for r, o in store.dependents(deployment["metadata"]["uid"])
            if r == REPLICASETS and o["metadata"].get("labels", {}).get(TEMPLATE_HASH) != digest
        ),
        key=_revision,
    )
    for child in old[: max(0, len(old) - limit)]:
        store.delete(REPLICASETS, child["metadata"]["namespace"], child["metadata"]["name"])


# ---------------------------------------------------------------------- workload status


def _counts(replicas: int, *names: str) -> JSON:
    return {name: replicas for name in names}


def deployment_status(store: Store, resource: Resource, deployment: JSON) -> None:
    replicas = int(deployment["spec"].get("replicas", 1))
    digest = template_hash(deployment["spec"].get("template") or {})
    stamp = now()
    counts = _counts(replicas, "replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    deployment["status"] = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        **{k: v for k, v in counts.items() if v},  # the real status omits zero counts
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{_rs_name(deployment, digest)}" has successfully '
                "progressed.",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
            },
        ],
    }


def replicaset_status(store: Store, resource: Resource, replicaset: JSON) -> None:
    replicas = int(replicaset["spec"].get("replicas", 1))
    counts = _counts(replicas, "fullyLabeledReplicas", "readyReplicas", "availableReplicas")
    replicaset["status"] = {
        "replicas": replicas,
        **{k: v for k, v in counts.items() if v},
        "observedGeneration": replicaset["metadata"].get("generation", 1),
    }


def statefulset_status(store: Store, resource: Resource, statefulset: JSON) -> None:
    replicas = int(statefulset["spec"].get("replicas", 1))
    digest = template_hash(statefulset["spec"].get("template") or {})
    revision = f"{statefulset['metadata']['name']}-{digest}"
    counts = _counts(replicas, "readyReplicas", "currentReplicas", "updatedReplicas")
    statefulset["status"] = {
        "observedGeneration": statefulset["metadata"].get("generation", 1),
        "replicas": replicas,
        "availableReplicas": replicas,
        **{k: v for k, v in counts.items() if v},
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    }


def daemonset_status(store: Store, resource: Resource, daemonset: JSON) -> None:
    """One pretend node: the DaemonSet wants, has and runs exactly one pod."""
    daemonset["status"] = {
        "observedGeneration": daemonset["metadata"].get("generation", 1),
        **_counts(
            1,
            "currentNumberScheduled",
            "desiredNumberScheduled",
            "numberReady",
            "updatedNumberScheduled",
            "numberAvailable",
        ),
        "numberMisscheduled": 0,
    }


def kubelet(store: Store, resource: Resource, pod: JSON) -> None:
    """A new Pod (no status yet) starts Running and Ready at once."""
    if pod.get("status"):
        return
    stamp = now()
    pod["status"] = {
        "phase": "Running",
        "conditions": [
            {"type": condition, "status": "True", "lastTransitionTime": stamp}
            for condition in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        "startTime": stamp,
        "containerStatuses": [
            _container_status(pod["metadata"]["uid"], container, stamp)
            for container in (pod.get("spec") or {}).get("containers") or []
        ],
    }


def _container_status(pod_uid: str, container: JSON, stamp: str) -> JSON:
    image = str(container.get("image"))
    return {
        "name": container.get("name"),
        "image": image,
        "imageID": f"{image}@sha256:{template_hash({'image': image})}",
        "containerID": f"containerd://{template_hash({'pod': pod_uid, **container})}",
        "ready": True,
        "started": True,
        "restartCount": 0,
        "state": {"running": {"startedAt": stamp}},
    }


_CONTROLLERS: dict[str, tuple[Controller, ...]] = {
    "Deployment": (deployment_controller, deployment_status),
    "ReplicaSet": (replicaset_status,),
    "StatefulSet": (statefulset_status,),
    "DaemonSet": (daemonset_status,),
    "Pod": (kubelet,),
}
