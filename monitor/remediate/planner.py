"""The pure planner: a verdict in, the one room_config call that restores the desired state (or none) out.

A write changes only what counts: a difference the app tolerates (a kind in ``ignore``, or live
commands under ``unexpected_commands: ignore``) is kept as it is live, so that fixing one finding never
undoes a difference somebody chose to allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from monitor.config import Policy
from monitor.drift import Verdict, compare, urls_equal
from monitor.kinds import POLICY_KINDS, Kind
from monitor.redact import redact_url
from monitor.tencent.commands import canonical
from monitor.tencent.model import CallbackConfig

URL_KINDS = frozenset({Kind.URL_MISMATCH, *POLICY_KINDS})


class Action(StrEnum):
    NONE = "none"
    SET = "set_callback"
    UPDATE = "update_callback"
    DELETE = "delete_callback"


@dataclass(frozen=True)
class Plan:
    """The one call that brings an app to its desired state, or why there is none.

    ``blocked`` says why no call may be made although findings count (the desired state itself
    violates the policy); ``fixes`` lists the counted findings the call removes.
    """

    action: Action
    before: CallbackConfig | None
    after: CallbackConfig | None
    fixes: tuple[Kind, ...] = ()
    blocked: str = ""

    @property
    def writes(self) -> bool:
        return self.action is not Action.NONE


def policy_problem(desired: CallbackConfig, policy: Policy) -> str:
    """Why ``desired`` breaks its own policy, or "" (config validation makes this "" for loaded files)."""
    broken = [f.kind.value for f in compare(desired, desired, policy).findings if f.policy]
    if not broken:
        return ""
    return f"the desired URL {redact_url(desired.url)} violates the policy ({', '.join(broken)})"


def plan(
    desired: CallbackConfig | None, observed: CallbackConfig | None, verdict: Verdict, policy: Policy
) -> Plan:
    """The call that removes every counted finding of ``verdict`` (reached on ``observed``)."""
    fixes = tuple(f.kind for f in verdict.counted)
    if not fixes:
        return Plan(Action.NONE, observed, observed)
    if desired is not None and (problem := policy_problem(desired, policy)):
        return Plan(Action.NONE, observed, observed, fixes, blocked=problem)
    if desired is None:  # findings count, so there is a config, and none is wanted
        return Plan(Action.DELETE, observed, None, fixes)
    if observed is None:
        return Plan(Action.SET, None, desired, fixes)
    after = _merge(desired, observed, frozenset(fixes))
    if after == observed:  # cannot happen for a verdict reached on ``observed``; never write a no-op
        return Plan(Action.NONE, observed, observed, fixes, blocked="the write would change nothing")
    return Plan(Action.UPDATE, observed, after, fixes)


def _merge(desired: CallbackConfig, observed: CallbackConfig, fixes: frozenset[Kind]) -> CallbackConfig:
    """``observed`` with the counted findings fixed, or exactly ``desired`` when nothing tolerated remains."""
    url = desired.url if fixes & URL_KINDS else observed.url
    commands = list(observed.commands)
    if Kind.UNEXPECTED_COMMANDS in fixes:
        commands = [c for c in commands if canonical(c) in desired.command_set]
    if Kind.MISSING_COMMANDS in fixes:
        have = {canonical(c) for c in commands}
        for command in desired.commands:
            if canonical(command) not in have:
                commands.append(command)
                have.add(canonical(command))
    merged = CallbackConfig(url, tuple(commands))
    if urls_equal(merged.url, desired.url) and merged.command_set == desired.command_set:
        return desired  # the common case: the write is exactly the desired state, as spelled in git
    return merged


def command_changes(
    before: CallbackConfig | None, after: CallbackConfig | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The commands a write adds and those it removes, each in its config's own spelling, sorted."""
    old = before.command_set if before is not None else frozenset()
    new = after.command_set if after is not None else frozenset()
    added = sorted({c for c in (after.commands if after else ()) if canonical(c) not in old})
    removed = sorted({c for c in (before.commands if before else ()) if canonical(c) not in new})
    return tuple(added), tuple(removed)
