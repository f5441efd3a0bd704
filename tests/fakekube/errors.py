"""API errors as kube-apiserver reports them: a ``kind: Status`` body with reason and code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakekube.resources import Resource

JSON = dict[str, Any]

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_body(code: int, reason: str, message: str, details: JSON | None = None) -> JSON:
    body: JSON = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def reason_for(code: int) -> str:
    return REASONS.get(code, "Unknown")


class ApiError(Exception):
    """Raised anywhere in the fake; the HTTP layer turns it into a Status response."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> JSON:
        return status_body(self.code, self.reason, self.message, self.details)


def _details(resource: Resource, name: str) -> JSON:
    return {"name": name, "group": resource.group, "kind": resource.plural}


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name)
    )


def namespace_not_found(namespace: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'namespaces "{namespace}" not found',
        {"name": namespace, "kind": "namespaces"},
    )


def already_exists(resource: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{resource.qualified} "{name}" already exists',
        _details(resource, name),
    )


def conflict(resource: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        _details(resource, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(method: str, what: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"{method} is not supported on {what}")


def unknown_path(path: str) -> ApiError:
    return ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")


@dataclass(frozen=True)
class Cause:
    """One field error of a 422: ``field`` is the JSON path, as in ``spec.replicas``."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def describe(self) -> str:
        return f"{self.field}: {self.message}"


def invalid(resource: Resource, name: str, causes: list[Cause]) -> ApiError:
    described = [c.describe() for c in causes]
    summary = described[0] if len(described) == 1 else "[" + ", ".join(described) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{resource.qualified_kind} "{name}" is invalid: {summary}',
        {
            "name": name,
            "group": resource.group,
            "kind": resource.kind,
            "causes": [
                {"reason": c.reason, "message": c.message, "field": c.field} for c in causes
            ],
        },
    )
