"""The project's own error types for talking to Kubernetes.

The gateway (``remediator.kube``) turns every exception of the ``kubernetes`` library into one
of these, chaining the original, so nothing above the gateway ever sees a library type.
"""

from __future__ import annotations


class GatewayError(Exception):
    """A Kubernetes call did not do what was asked."""

    status: int | None = None
    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFound(GatewayError):
    status = 404


class Forbidden(GatewayError):
    """401/403: the service account lacks the RBAC the action declares."""

    status = 403


class Conflict(GatewayError):
    """409: the object changed between our read and our write."""

    status = 409


class Invalid(GatewayError):
    """422 or 400: the API server refused the request body."""

    status = 422


class Rejected(GatewayError):
    """Any other 4xx: not retried."""


class Transient(GatewayError):
    """5xx, 429, connection errors and timeouts: worth another attempt."""

    retryable = True

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class Unavailable(GatewayError):
    """Transient failures went on past the retry budget (attempts or total time)."""


class NoCluster(GatewayError):
    """No Kubernetes cluster is configured (dry-run without a cluster)."""
