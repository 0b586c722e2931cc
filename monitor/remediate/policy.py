"""The pure self-heal policy of serve: when drift has lasted enough, one attempt per interval, backoff."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from monitor.config import AppConfig
from monitor.remediate.planner import Plan

MAX_BACKOFF = 3600.0  # seconds: the longest wait between two self-heal attempts on one app

APPLIED, FAILED, GAVE_UP = "remediation_applied", "remediation_failed", "remediation_gave_up"


@dataclass(frozen=True)
class HealSettings:
    enabled: bool = False
    after: int = 2  # consecutive verdicts that plan the same write before it is made
    max_failures: int = 3  # consecutive failed attempts before giving up
    interval: float = 60.0  # at most one attempt per this many seconds (the app's check interval)
    max_backoff: float = MAX_BACKOFF

    @classmethod
    def of(cls, app: AppConfig) -> HealSettings:
        return cls(app.remediate, app.remediate_after, app.remediate_max_failures, app.interval)


@dataclass(frozen=True)
class HealState:
    """What self-heal remembers about one app between checks."""

    streak: int = 0  # consecutive verdicts that planned ``pending``
    pending: Plan | None = None
    attempts: int = 0
    failures: int = 0  # consecutive failed attempts
    not_before: float = 0.0  # no attempt before this time
    gave_up: bool = False


class Step(StrEnum):
    """What self-heal does after one check."""

    DISABLED = "disabled"
    NO_VERDICT = "no_verdict"  # the check failed: nothing is known, nothing is written
    NOTHING = "nothing"  # in sync
    BLOCKED = "blocked"
    WAITING = "waiting"  # drift, not yet seen on ``after`` consecutive verdicts
    BACKING_OFF = "backing_off"
    GAVE_UP = "gave_up"
    ATTEMPT = "attempt"


def observe(
    state: HealState, planned: Plan | None, settings: HealSettings, now: float
) -> tuple[HealState, Step]:
    """The state after one check whose verdict planned ``planned`` (None: the check reached no verdict)."""
    if not settings.enabled:
        return HealState(), Step.DISABLED
    if planned is None:
        # An error proves nothing about the drift: the streak starts again from the next verdict.
        return replace(state, streak=0, pending=None), Step.NO_VERDICT
    if planned.blocked:
        return replace(state, streak=0, pending=None), Step.BLOCKED
    if not planned.writes:
        # In sync again: this episode of drift is over, whoever ended it.
        return HealState(attempts=state.attempts), Step.NOTHING
    # A different write (the live config changed again) restarts the streak: let an edit settle.
    streak = state.streak + 1 if planned == state.pending else 1
    state = replace(state, streak=streak, pending=planned)
    if state.gave_up:
        return state, Step.GAVE_UP
    if streak < settings.after:
        return state, Step.WAITING
    if now < state.not_before:
        return state, Step.BACKING_OFF
    return state, Step.ATTEMPT


def record(
    state: HealState, ok: bool, settings: HealSettings, now: float
) -> tuple[HealState, tuple[str, ...]]:
    """The state after an attempt, and the alert events it causes."""
    attempts = state.attempts + 1
    if ok:
        done = HealState(attempts=attempts, not_before=now + settings.interval)
        return done, (APPLIED,)
    failures = state.failures + 1
    wait = min(settings.max_backoff, settings.interval * 2**failures)
    state = replace(state, attempts=attempts, failures=failures, not_before=now + wait)
    if failures >= settings.max_failures:
        return replace(state, gave_up=True), (FAILED, GAVE_UP)
    return state, (FAILED,)
