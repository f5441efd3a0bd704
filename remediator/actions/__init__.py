"""The action registry: every action type a rule may name, by name.

Adding an action is one module with an :class:`~remediator.actions.base.Action` subclass and
one line in ``REGISTRY``; the rule schema, ``remediator actions`` and the docs pick it up.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from remediator.actions.base import Action, ActionParams, RbacRule, StepContext, StepResult
from remediator.actions.rollout_restart import RolloutRestart
from remediator.actions.scale import Scale

REGISTRY: Mapping[str, Action[Any]] = MappingProxyType(
    {action.name: action for action in (Scale(), RolloutRestart())}
)

__all__ = ["REGISTRY", "Action", "ActionParams", "RbacRule", "StepContext", "StepResult"]
