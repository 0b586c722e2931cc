"""The pure self-heal policy of serve: when to write, how often, when to stop."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from enum import StrEnum

from monitor.config import AppConfig
from monitor.remediate.planner import Plan

MAX_BACKOFF = 3600.0  # seconds: the longest wait between two self-heal attempts on one app
HOUR = 3600.0

APPLIED, FAILED, GAVE_UP = "remediation_applied", "remediation_failed", "remediation_gave_up"
CONTESTED = "remediation_contested"  # another writer keeps changing the config: self-heal stops


@dataclass(frozen=True)
class HealSettings:
    enabled: bool = False
    after: int = 2  # consecutive verdicts that plan the same write before it is made
    max_failures: int = 3  # consecutive failed attempts before giving up
    interval: float = 60.0  # at most one attempt per this many seconds (the app's check interval)
    max_backoff: float = MAX_BACKOFF
    max_reverts: int = 3  # writes undone by another writer within ``revert_window`` before stopping
    revert_window: float = 600.0  # seconds; also how long a contested app must stay in sync

    @classmethod
    def of(cls, app: AppConfig) -> HealSettings:
        return cls(
            app.remediate,
            app.remediate_after,
            app.remediate_max_failures,
            app.interval,
            MAX_BACKOFF,
            app.remediate_max_reverts,
            app.remediate_revert_window,
        )


@dataclass(frozen=True)
class HealState:
    """What self-heal remembers about one app between checks."""

    streak: int = 0  # consecutive verdicts that planned ``pending``
    pending: Plan | None = None
    attempts: int = 0
    failures: int = 0  # consecutive failed attempts
    not_before: float = 0.0  # no attempt before this time
    gave_up: bool = False
    written: bool = False  # the last attempt wrote and read back in sync: drift now means it was undone
    reverts: tuple[float, ...] = ()  # when a write was undone or raced by another writer
    contested: bool = False  # another writer keeps changing the config: hands off
    in_sync_since: float | None = None  # the first of the current run of in-sync verdicts


class Step(StrEnum):
    """What self-heal does after one check."""

    DISABLED = "disabled"
    NO_VERDICT = "no_verdict"  # the check failed: nothing is known, nothing is written
    NOTHING = "nothing"  # in sync
    BLOCKED = "blocked"
    WAITING = "waiting"  # drift, not yet seen on ``after`` consecutive verdicts
    BACKING_OFF = "backing_off"
    GAVE_UP = "gave_up"
    CONTESTED = "contested"  # this check made the app contested: alert once, then hands off
    HANDS_OFF = "hands_off"  # contested: another writer owns the config for now
    ATTEMPT = "attempt"


def _recent(times: tuple[float, ...], settings: HealSettings, now: float) -> tuple[float, ...]:
    return tuple(t for t in times if now - t < settings.revert_window)


def _revert(state: HealState, settings: HealSettings, now: float) -> HealState:
    """``state`` with one more write undone (or raced) at ``now``, contested once there are enough."""
    reverts = (*_recent(state.reverts, settings, now), now)
    return replace(state, written=False, reverts=reverts, contested=len(reverts) >= settings.max_reverts)


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
        return replace(state, streak=0, pending=None, in_sync_since=None), Step.BLOCKED
    if not planned.writes:
        since = now if state.in_sync_since is None else state.in_sync_since
        if state.contested and now - since < settings.revert_window:
            return replace(state, streak=0, pending=None, in_sync_since=since), Step.HANDS_OFF
        if state.contested:  # in sync for a whole window: the other writer is gone, start afresh
            return HealState(attempts=state.attempts, in_sync_since=since), Step.NOTHING
        # In sync again: this episode of drift is over, whoever ended it. Reverts are remembered.
        kept = HealState(attempts=state.attempts, written=state.written, reverts=state.reverts)
        return replace(kept, in_sync_since=since), Step.NOTHING
    state = replace(state, in_sync_since=None)
    if state.written:  # drift after a write that read back in sync: someone undid it
        state = _revert(state, settings, now)
        if state.contested:
            return replace(state, streak=0, pending=None), Step.CONTESTED
    if state.contested:
        return replace(state, streak=0, pending=None), Step.HANDS_OFF
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
    state: HealState, ok: bool, settings: HealSettings, now: float, *, contested: bool = False
) -> tuple[HealState, tuple[str, ...]]:
    """The state after an attempt, and the alert events it causes.

    ``contested``: the vendor refused the write because another writer changed the config since it
    was read; nothing was written. It counts as a revert, not as a failure of the monitor's own.
    """
    attempts = state.attempts + 1
    if ok:
        done = HealState(
            attempts=attempts, not_before=now + settings.interval, written=True, reverts=state.reverts
        )
        return done, (APPLIED,)
    if contested:
        raced = _revert(state, settings, now)
        raced = replace(raced, attempts=attempts, streak=0, pending=None, not_before=now + settings.interval)
        return raced, ((FAILED, CONTESTED) if raced.contested else (FAILED,))
    failures = state.failures + 1
    wait = min(settings.max_backoff, settings.interval * 2**failures)
    state = replace(state, attempts=attempts, failures=failures, not_before=now + wait, written=False)
    if failures >= settings.max_failures:
        return replace(state, gave_up=True), (FAILED, GAVE_UP)
    return state, (FAILED,)


class WriteBudget:
    """The process-wide cap on self-heal writes: at most ``per_hour`` in any hour (pure: ``now`` given)."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._spent: deque[float] = deque()

    def allows(self, now: float) -> bool:
        while self._spent and now - self._spent[0] >= HOUR:
            self._spent.popleft()
        return len(self._spent) < self.per_hour

    def spend(self, now: float) -> None:
        self._spent.append(now)
