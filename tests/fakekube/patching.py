"""The three Kubernetes patch formats, on plain JSON values.

- JSON patch (RFC 6902): add, remove, replace, move, copy, test.
- JSON merge patch (RFC 7386): maps merge, ``null`` deletes, lists are replaced.
- Strategic merge patch: like a merge patch, but lists that Kubernetes declares with a merge
  key (containers and env by ``name``, volumeMounts by ``mountPath``, container ports by
  ``containerPort`` and Service ports by ``port``, ...) merge element by element, and the
  ``$patch`` (replace/delete/merge), ``$retainKeys``, ``$setElementOrder/<list>`` and
  ``$deleteFromPrimitiveList/<list>`` directives are honoured. The merge keys are looked up by
  field name, not by the full OpenAPI schema: good for the built-in kinds the fake serves.
"""

from __future__ import annotations

import copy
from typing import Any

# field name -> merge key candidates (the first one present in the list's elements is used)
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
    "resourceClaims": ("name",),
    "conditions": ("type",),
}
PRIMITIVE_MERGE_LISTS = frozenset({"finalizers"})  # lists of strings merged as a union

_PATCH = "$patch"
_RETAIN = "$retainKeys"
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """The patch cannot be applied; the server answers 422."""


# ---------------------------------------------------------------------- JSON merge patch


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


# ---------------------------------------------------------------------- strategic merge patch


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to a whole object."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch is a JSON object")
    return _merge_map(target if isinstance(target, dict) else {}, patch)


def _merge_map(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get(_PATCH)
    plain = {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "replace":
        return copy.deepcopy(plain)
    if directive not in (None, "merge"):
        raise PatchError(f"unknown $patch directive {directive!r} in a map")
    result = copy.deepcopy(target)
    for key, value in plain.items():
        if value is None or (isinstance(value, dict) and value.get(_PATCH) == "delete"):
            result.pop(key, None)
        else:
            result[key] = _merge_value(key, result.get(key), value)
    _apply_list_directives(result, patch)
    retain = patch.get(_RETAIN)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_value(field: str, target: Any, patch: Any) -> Any:
    if isinstance(patch, dict):
        return _merge_map(target if isinstance(target, dict) else {}, patch)
    if isinstance(patch, list) and isinstance(target, list):
        if field in PRIMITIVE_MERGE_LISTS:
            return [*target, *(v for v in patch if v not in target)]
        key = _merge_key(field, target, patch)
        if key is not None:
            return _merge_list(field, key, target, patch)
    return _strip_directives(patch)


def _merge_key(field: str, target: list[Any], patch: list[Any]) -> str | None:
    candidates = MERGE_KEYS.get(field, ())
    for candidate in candidates:
        if any(isinstance(item, dict) and candidate in item for item in [*patch, *target]):
            return candidate
    return candidates[0] if candidates else None


def _merge_list(field: str, key: str, target: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(item, dict) and item.get(_PATCH) == "replace" for item in patch):
        return [
            _strip_directives(item)
            for item in patch
            if not (isinstance(item, dict) and item.get(_PATCH) == "replace")
        ]
    merged = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"{field}: every element needs the merge key {key!r}")
        index = next(
            (i for i, e in enumerate(merged) if isinstance(e, dict) and e.get(key) == item[key]),
            None,
        )
        if item.get(_PATCH) == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(_strip_directives(item))
        else:
            merged[index] = _merge_map(merged[index], item)
    return merged


def _apply_list_directives(result: dict[str, Any], patch: dict[str, Any]) -> None:
    for directive, values in patch.items():
        if directive.startswith(_DELETE_PRIMITIVES) and isinstance(values, list):
            field = directive[len(_DELETE_PRIMITIVES) :]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in values]
        elif directive.startswith(_ORDER) and isinstance(values, list):
            field = directive[len(_ORDER) :]
            if isinstance(result.get(field), list):
                result[field] = _ordered(field, result[field], values)


def _ordered(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    """Put ``items`` in the order ``$setElementOrder`` gives; the others follow, in place."""
    key = _merge_key(field, items, order)

    def identity(item: Any) -> Any:
        return item.get(key) if key is not None and isinstance(item, dict) else item

    wanted = [identity(o) for o in order]
    ranked = sorted(
        (i for i in items if identity(i) in wanted), key=lambda i: wanted.index(identity(i))
    )
    return ranked + [i for i in items if identity(i) not in wanted]


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


# ---------------------------------------------------------------------- JSON patch


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid operation {operation!r}")
        doc = _operate(doc, operation)
    return doc


def _operate(doc: Any, operation: dict[str, Any]) -> Any:
    op, path = operation["op"], _pointer(operation["path"])
    if op == "add":
        return _add(doc, path, copy.deepcopy(operation.get("value")))
    if op == "remove":
        return _remove(doc, path)
    if op == "replace":
        _get(doc, path)  # the target must exist
        return _add(_remove(doc, path), path, copy.deepcopy(operation.get("value")))
    if op in ("move", "copy"):
        source = _pointer(str(operation.get("from", "")))
        value = copy.deepcopy(_get(doc, source))
        if op == "move":
            doc = _remove(doc, source)
        return _add(doc, path, value)
    if op == "test":
        if _get(doc, path) != operation.get("value"):
            raise PatchError(f"test failed at {operation['path']!r}")
        return doc
    raise PatchError(f"unknown JSON patch op {op!r}")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(node: list[Any], part: str, *, insert: bool = False) -> int:
    if insert and part == "-":
        return len(node)
    if not part.isdigit() or int(part) > len(node) - (0 if insert else 1):
        raise PatchError(f"index {part!r} is out of range")
    return int(part)


def _get(doc: Any, path: list[str]) -> Any:
    node = doc
    for part in path:
        if isinstance(node, list):
            node = node[_index(node, part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise PatchError(f"path /{'/'.join(path)} does not exist")
    return node


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, list):
        parent.insert(_index(parent, last, insert=True), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError(f"cannot add below a {type(parent).__name__}")
    return doc


def _remove(doc: Any, path: list[str]) -> Any:
    if not path:
        return None
    parent = _get(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, list):
        del parent[_index(parent, last)]
    elif isinstance(parent, dict) and last in parent:
        del parent[last]
    else:
        raise PatchError(f"path /{'/'.join(path)} does not exist")
    return doc
