"""The three Kubernetes patch formats, on plain JSON values.

Strategic merge patch here knows the merge keys of the fields remediation touches (containers,
initContainers, env, ports, volumes, volumeMounts, imagePullSecrets, tolerations by key): lists
of those merge element-by-element by key; every other list is replaced, as the real server
does for fields without a patch strategy. ``$patch: delete`` and ``$retainKeys`` directives are
not implemented (see GAPS.md).
"""

from __future__ import annotations

import copy
from typing import Any

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "ports": "containerPort",
    "ownerReferences": "uid",
}


class PatchError(ValueError):
    """The patch cannot be applied; the server answers 422 (or 400 for malformed JSON)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str | None = None) -> Any:
    if isinstance(patch, dict) and isinstance(target, dict):
        result = dict(target)
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value, key)
        return result
    if isinstance(patch, list) and isinstance(target, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        merged = [copy.deepcopy(item) for item in target]
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise PatchError(f"{field}: every element needs the merge key {key!r}")
            for index, existing in enumerate(merged):
                if isinstance(existing, dict) and existing.get(key) == item[key]:
                    merged[index] = strategic_merge_patch(existing, item)
                    break
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise PatchError(f"path segment {part!r} does not exist")
    return node, parts[-1]


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind = op["op"]
        parts = _pointer(op["path"])
        if kind in ("move", "copy"):
            source_parent, source_key = _parent(doc, _pointer(op["from"]))
            value = copy.deepcopy(_get(source_parent, source_key))
            if kind == "move":
                _remove(source_parent, source_key)
            doc = _add(doc, parts, value)
        elif kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            parent, key = _parent(doc, parts)
            _remove(parent, key)
        elif kind == "replace":
            if not parts:
                doc = copy.deepcopy(op.get("value"))
                continue
            parent, key = _parent(doc, parts)
            _get(parent, key)  # must exist
            if isinstance(parent, list):
                parent[int(key)] = copy.deepcopy(op.get("value"))
            else:
                parent[key] = copy.deepcopy(op.get("value"))
        elif kind == "test":
            parent, key = (None, "") if not parts else _parent(doc, parts)
            actual = doc if not parts else _get(parent, key)
            if actual != op.get("value"):
                raise PatchError(f"test failed at {op['path']}")
        else:
            raise PatchError(f"unknown op {kind!r}")
    return doc


def _get(parent: Any, key: str) -> Any:
    try:
        return parent[int(key)] if isinstance(parent, list) else parent[key]
    except (KeyError, IndexError, ValueError) as exc:
        raise PatchError(f"path {key!r} does not exist") from exc


def _remove(parent: Any, key: str) -> None:
    _get(parent, key)
    if isinstance(parent, list):
        del parent[int(key)]
    else:
        del parent[key]


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, key = _parent(doc, parts)
    if isinstance(parent, list):
        if key == "-":
            parent.append(value)
        else:
            parent.insert(int(key), value)
    elif isinstance(parent, dict):
        parent[key] = value
    else:
        raise PatchError(f"cannot add below a {type(parent).__name__}")
    return doc
