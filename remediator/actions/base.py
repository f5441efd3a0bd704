"""What an action is, what it may ask of Kubernetes, and what it reports back.

Owns: the :class:`Action` contract (typed params, description, RBAC, example, target kinds),
the :class:`Gateway` protocol actions talk to, and :class:`StepResult`.
Must not: import ``kubernetes`` (only ``remediator.kube`` does) or decide whether to act
(guardrails did that before an action runs).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from remediator.targets import Target


class ActionParams(BaseModel):
    """Base of every action's parameters: frozen, and a typo is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class RbacRule:
    """One rule of the Role the service account needs for an action."""

    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "apiGroups": [self.api_group],
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }


@dataclass(frozen=True)
class ScaleChange:
    before: int
    after: int
    request: dict[str, Any]
    server_dry_run: bool


class Gateway(Protocol):
    """The Kubernetes operations actions may use. Implemented by ``remediator.kube``."""

    async def update_scale(
        self, target: Target, compute: Callable[[int], int], *, dry_run: bool
    ) -> ScaleChange:
        """Read the scale subresource, write ``compute(current)`` with the read
        resourceVersion; on 409 read again and recompute."""
        ...

    async def read(self, target: Target) -> dict[str, Any]:
        """The object as the server has it now."""
        ...

    async def patch(self, target: Target, body: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        """Strategic merge patch of the object; returns the object as the server answered."""
        ...


@dataclass(frozen=True)
class StepContext:
    """Everything a running step may use. ``gateway`` is None when no cluster is configured;
    then only dry-run is possible and nothing is sent anywhere."""

    gateway: Gateway | None
    dry_run: bool
    now: datetime


@dataclass(frozen=True)
class StepResult:
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] | None = None
    note: str = ""


P = TypeVar("P", bound=ActionParams)


class Action(ABC, Generic[P]):
    """A self-describing remediation step. Subclasses set the class attributes and ``run``."""

    name: ClassVar[str]
    description: ClassVar[str]
    params_model: ClassVar[type[ActionParams]]
    target_kinds: ClassVar[frozenset[str]]
    rbac: ClassVar[tuple[RbacRule, ...]]
    example: ClassVar[str]

    @abstractmethod
    async def run(self, params: P, target: Target, ctx: StepContext) -> StepResult:
        """Do the step (or, with ``ctx.dry_run``, show exactly what would be sent)."""
