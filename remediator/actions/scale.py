"""``scale``: set a Deployment's or StatefulSet's replicas through the scale subresource."""

from __future__ import annotations

import math
import re
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from remediator.actions.base import (
    Action,
    ActionParams,
    RbacRule,
    StepContext,
    StepResult,
)
from remediator.targets import Target

_RELATIVE = re.compile(r"^(?P<sign>[+-])(?P<amount>\d+)(?P<percent>%?)$")


class ScaleParams(ActionParams):
    replicas: int | str = Field(
        description="Absolute (5), relative ('+2', '-1') or percent ('+50%', '-25%')."
    )
    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ScaleParams:
        mode = self.mode
        if isinstance(self.replicas, int) and self.replicas < 0:
            raise ValueError("replicas must be 0 or more")
        if mode != "absolute" and (self.min_replicas is None or self.max_replicas is None):
            raise ValueError(
                f"relative or percent replicas ({self.replicas!r}) need both "
                "min_replicas and max_replicas"
            )
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is greater than "
                f"max_replicas ({self.max_replicas})"
            )
        return self

    @property
    def mode(self) -> Literal["absolute", "relative", "percent"]:
        if isinstance(self.replicas, int):
            return "absolute"
        match = _RELATIVE.match(self.replicas.strip())
        if match is None:
            raise ValueError(
                f"replicas {self.replicas!r} is not a whole number, '+N'/'-N' or '+N%'/'-N%'"
            )
        return "percent" if match.group("percent") else "relative"

    def desired(self, current: int) -> int:
        """The replica count to set, given the current one, clamped to the bounds."""
        if isinstance(self.replicas, int):
            wanted = self.replicas
        else:
            match = _RELATIVE.match(self.replicas.strip())
            assert match is not None  # checked at load time
            sign = 1 if match.group("sign") == "+" else -1
            amount = int(match.group("amount"))
            if match.group("percent"):
                # Round away from the current count so "+10%" of 3 still adds one replica.
                delta = current * amount / 100
                wanted = current + sign * math.ceil(delta)
            else:
                wanted = current + sign * amount
        if self.min_replicas is not None:
            wanted = max(wanted, self.min_replicas)
        if self.max_replicas is not None:
            wanted = min(wanted, self.max_replicas)
        return max(wanted, 0)

    def describe(self) -> str:
        bounds = ""
        if self.min_replicas is not None or self.max_replicas is not None:
            bounds = f" within [{self.min_replicas}, {self.max_replicas}]"
        return f"replicas {self.replicas}{bounds}"


class Scale(Action[ScaleParams]):
    name: ClassVar[str] = "scale"
    description: ClassVar[str] = (
        "Set the replica count of a Deployment or StatefulSet through its scale subresource: "
        "absolute, relative or percent, clamped to min/max. Records replicas before and after."
    )
    params_model: ClassVar[type[ActionParams]] = ScaleParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({"Deployment", "StatefulSet"})
    rbac: ClassVar[tuple[RbacRule, ...]] = (
        RbacRule("apps", ("deployments/scale", "statefulsets/scale"), ("get", "update")),
    )
    example: ClassVar[str] = """\
- name: checkout-high-cpu
  match:
    alertname: HighCPUUsage
  threshold:
    value_from: {annotation: description, regex: 'is (?P<value>[0-9.]+)%'}
    op: ">="
    value: 85
  target: {kind: Deployment, namespace: "{labels.namespace}", name: "{labels.deployment}"}
  action:
    type: scale
    params: {replicas: "+2", min_replicas: 2, max_replicas: 10}
  cooldown: 10m
"""

    async def run(self, params: ScaleParams, target: Target, ctx: StepContext) -> StepResult:
        if ctx.gateway is None:
            return StepResult(
                request={"spec": {"replicas": f"<{params.describe()}>"}},
                note="no cluster configured: current replicas unknown, nothing was sent",
            )
        change = await ctx.gateway.update_scale(target, params.desired, dry_run=ctx.dry_run)
        note = "" if change.before != change.after else "already at the desired replicas"
        if ctx.dry_run:
            note = "server-side dry run (dryRun=All)" + (f"; {note}" if note else "")
        return StepResult(
            before={"replicas": change.before},
            after={"replicas": change.after},
            request=change.request,
            note=note,
        )
