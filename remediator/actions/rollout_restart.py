"""``rollout_restart``: what ``kubectl rollout restart`` does.

kubectl stamps ``kubectl.kubernetes.io/restartedAt`` on the pod template, which changes the
template and makes the controller roll every pod. We send the same strategic merge patch.
"""

from __future__ import annotations

from typing import Any, ClassVar

from remediator.actions.base import (
    Action,
    ActionParams,
    RbacRule,
    StepContext,
    StepResult,
)
from remediator.targets import Target

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _restart_state(obj: dict[str, Any]) -> dict[str, Any]:
    """What an auditor needs to see a restart happened: the generation and the stamp."""
    template_meta = obj.get("spec", {}).get("template", {}).get("metadata") or {}
    return {
        "generation": obj.get("metadata", {}).get("generation"),
        "restartedAt": (template_meta.get("annotations") or {}).get(RESTARTED_AT),
    }


class RolloutRestartParams(ActionParams):
    """No parameters: the restart is stamped with the decision's time."""


class RolloutRestart(Action[RolloutRestartParams]):
    name: ClassVar[str] = "rollout_restart"
    description: ClassVar[str] = (
        "Restart every pod of a Deployment, StatefulSet or DaemonSet the way "
        "`kubectl rollout restart` does: stamp kubectl.kubernetes.io/restartedAt on the pod "
        "template so the controller rolls the pods under its update strategy."
    )
    params_model: ClassVar[type[ActionParams]] = RolloutRestartParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
    rbac: ClassVar[tuple[RbacRule, ...]] = (
        RbacRule("apps", ("deployments", "statefulsets", "daemonsets"), ("get", "patch")),
    )
    example: ClassVar[str] = """\
- name: payments-db-pool-exhausted
  match:
    alertname: DatabaseConnectionPoolExhausted
    labels: ['severity="critical"']
  target: {kind: Deployment, namespace: "{labels.namespace}", name: "{labels.deployment}"}
  action:
    type: rollout_restart
  cooldown: 30m
"""

    async def run(
        self, params: RolloutRestartParams, target: Target, ctx: StepContext
    ) -> StepResult:
        stamp = ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        if ctx.gateway is None:
            return StepResult(request=body, note="no cluster configured: nothing was sent")
        before = _restart_state(await ctx.gateway.read(target))
        after = _restart_state(await ctx.gateway.patch(target, body, dry_run=ctx.dry_run))
        return StepResult(
            before=before,
            after=after,
            request=body,
            note="server-side dry run (dryRun=All)" if ctx.dry_run else "",
        )
