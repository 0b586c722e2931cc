"""Opt-in remediation: plan the one call that restores the desired state, decide when to make it, make it.

The rooms, lowest first: ``planner`` is pure (a verdict in, the one room_config call or none out, with
the config before and after); ``policy`` is the pure self-heal policy of ``serve`` (how long drift must
persist, one attempt per interval, backoff, giving up); ``executor`` makes the call and reads the config
back, and is the only writer to Tencent; ``selfheal`` runs the policy after each check in ``serve``;
``render`` is what ``plan`` and ``apply`` print.
"""

from monitor.remediate.executor import Effect, Executor, Result
from monitor.remediate.planner import Action, Plan, command_changes, plan, policy_problem
from monitor.remediate.policy import (
    APPLIED,
    CONTESTED,
    FAILED,
    GAVE_UP,
    HealSettings,
    HealState,
    Step,
    WriteBudget,
    observe,
    record,
)
from monitor.remediate.render import render_plan
from monitor.remediate.selfheal import Remediator

__all__ = [
    "APPLIED",
    "CONTESTED",
    "FAILED",
    "GAVE_UP",
    "Action",
    "Effect",
    "Executor",
    "HealSettings",
    "HealState",
    "Plan",
    "Remediator",
    "Result",
    "Step",
    "WriteBudget",
    "command_changes",
    "observe",
    "plan",
    "policy_problem",
    "record",
    "render_plan",
]
