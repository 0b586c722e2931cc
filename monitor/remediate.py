"""Opt-in remediation: plan the one call that restores the desired state, decide when to make it, make it.

Three layers, lowest first. ``plan`` is pure: a verdict in, the one room_config call (or none) out,
with the config before and after. ``observe`` and ``record`` are the pure self-heal policy of
``serve``: how long drift must persist, one attempt per interval, backoff, giving up. ``Executor``
makes the call and reads the config back; nothing else in the monitor writes to Tencent, and an
executor built read-only refuses every write.

A write changes only what counts: a difference the app tolerates (a kind in ``ignore``, or live
commands under ``unexpected_commands: ignore``) is kept as it is live, so that fixing one finding never
undoes a difference somebody chose to allow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

import structlog

from monitor.checker import run_timeout
from monitor.config import AppConfig, Policy
from monitor.drift import POLICY_KINDS, Kind, Verdict, compare, urls_equal
from monitor.errors import BadRequest, MonitorError, TencentError
from monitor.redact import redact_url
from monitor.state import AlertEvent, CheckError, Outcome, Status, fingerprint
from monitor.tencent.client import RoomConfigClient, Target
from monitor.tencent.codes import NO_CONFIGURATION
from monitor.tencent.commands import canonical
from monitor.tencent.model import CallbackConfig

log = structlog.get_logger("monitor.remediate")

ALREADY_EXISTS = 100300  # set_callback's answer when a configuration exists: use update
URL_KINDS = frozenset({Kind.URL_MISMATCH, *POLICY_KINDS})
MAX_BACKOFF = 3600.0  # seconds: the longest wait between two self-heal attempts on one app


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


def same_config(a: CallbackConfig | None, b: CallbackConfig | None) -> bool:
    """The same URL, exactly, and the same commands in any order or alias spelling."""
    if a is None or b is None:
        return a is b
    return a.url == b.url and a.command_set == b.command_set


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


# ---- the self-heal policy of serve (pure) ---------------------------------------------------------


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


APPLIED, FAILED, GAVE_UP = "remediation_applied", "remediation_failed", "remediation_gave_up"


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


# ---- making the call ------------------------------------------------------------------------------


class Effect(StrEnum):
    APPLIED = "applied"  # written and read back in sync
    FAILED = "failed"  # the write or the read-back failed, or the read-back still differs
    REFUSED = "refused"  # read-only: nothing was sent
    NOTHING = "nothing"  # the plan makes no call


@dataclass(frozen=True)
class Result:
    plan: Plan
    effect: Effect
    action: Action  # the call made last: a race turns a set into an update and back
    check: Outcome | None = None  # the read-back, compared with the desired state
    error: CheckError | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.effect is Effect.APPLIED


class Executor:
    """Makes a plan's call and reads the config back; built with ``read_only`` it sends nothing."""

    def __init__(
        self, client: RoomConfigClient, *, read_only: bool, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self.read_only = read_only
        self._clock = clock

    async def apply(
        self, app: AppConfig, target: Target, planned: Plan, *, expect_unchanged: bool = False
    ) -> Result:
        """Make the call and read back. ``expect_unchanged`` reads the config first and writes nothing
        if it is no longer ``planned.before`` (a person confirmed that plan, not another one)."""
        if not planned.writes:
            return Result(planned, Effect.NOTHING, Action.NONE, message=planned.blocked or "nothing to do")
        if self.read_only:
            return Result(planned, Effect.REFUSED, Action.NONE, message="read-only mode: nothing was written")
        limit = run_timeout(app)
        if expect_unchanged:
            now = await self._read_back(app, target, limit)
            if now.error is not None:
                message = f"nothing written: cannot read the config again: {now.error.message}"
                return Result(planned, Effect.FAILED, Action.NONE, now, now.error, message)
            assert now.verdict is not None
            if not same_config(now.verdict.observed, planned.before):
                message = "nothing written: the live config changed since the plan was made; plan again"
                return Result(planned, Effect.FAILED, Action.NONE, now, message=message)
        action = planned.action
        try:
            action = await asyncio.wait_for(self._write(target, planned), limit)
        except TencentError as exc:
            error = CheckError(exc.reason, str(exc), exc.code, exc.request_id)
            return Result(planned, Effect.FAILED, Action(exc.action or action), error=error, message=str(exc))
        except TimeoutError:
            error = CheckError("timeout", f"{action} took longer than {limit:g}s")
            return Result(planned, Effect.FAILED, action, error=error, message=error.message)
        check = await self._read_back(app, target, limit)
        if check.verdict is None:
            assert check.error is not None
            message = f"written, but the read-back failed: {check.error.message}"
            return Result(planned, Effect.FAILED, action, check, check.error, message)
        if not check.verdict.in_sync:
            kinds = ", ".join(f.kind.value for f in check.verdict.counted)
            return Result(planned, Effect.FAILED, action, check, message=f"written, but read back: {kinds}")
        return Result(planned, Effect.APPLIED, action, check, message="written and read back in sync")

    async def _write(self, target: Target, planned: Plan) -> Action:
        """Make the call; a race with another writer turns set into update, update into set, once."""
        client = self._client
        if planned.action is Action.DELETE:
            await client.delete_callback(target)
            return Action.DELETE
        after = planned.after
        assert after is not None
        first, fallback, race_code = (
            (client.set_callback, Action.UPDATE, ALREADY_EXISTS)
            if planned.action is Action.SET
            else (client.update_callback, Action.SET, NO_CONFIGURATION)
        )
        try:
            await first(target, after)
        except BadRequest as exc:
            if exc.code != race_code:
                raise
        else:
            return planned.action
        # Someone created (or deleted) the config since it was read: the other call does the same job.
        second = client.update_callback if fallback is Action.UPDATE else client.set_callback
        await second(target, after)
        return fallback

    async def _read_back(self, app: AppConfig, target: Target, limit: float) -> Outcome:
        started = self._clock()
        try:
            observed = await asyncio.wait_for(self._client.get_callback(target), limit)
        except TencentError as exc:
            error = CheckError(exc.reason, str(exc), exc.code, exc.request_id)
        except TimeoutError:
            error = CheckError("timeout", f"the read-back took longer than {limit:g}s")
        else:
            verdict = compare(app.callback, observed, app.policy, app.ignore)
            return Outcome(started=started, finished=self._clock(), verdict=verdict)
        return Outcome(started=started, finished=self._clock(), error=error)


# ---- self-heal in serve (the async shell around the policy) ---------------------------------------

SEVERITY = {APPLIED: "info", FAILED: "warning", GAVE_UP: "critical"}
OUTCOME_LABEL = {APPLIED: "applied", FAILED: "failed", GAVE_UP: "gave_up"}
READ_BACK_DIFFERS = "read_back_differs"  # the error reason of a failure whose write itself succeeded


class Remediator:
    """Feeds every check of an app with ``remediate: true`` to the policy and makes the write it allows.

    ``serve`` builds one only when it is not read-only; ``emit`` sends alert events and ``count``
    counts outcomes (applied, failed, gave_up) for the metrics.
    """

    def __init__(
        self,
        executor: Executor,
        target: Callable[[AppConfig], Target],
        *,
        emit: Callable[[tuple[AlertEvent, ...]], None],
        count: Callable[[str, int, str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._executor = executor
        self._target = target
        self._emit = emit
        self._count = count
        self._clock = clock
        # app name -> (what the state was built for, the state); a changed desired state starts afresh
        self._states: dict[str, tuple[object, HealState]] = {}

    async def after_check(self, app: AppConfig, status: Status, outcome: Outcome) -> Outcome | None:
        """Run self-heal after one check; returns the read-back when a write was made."""
        settings = HealSettings.of(app)
        key = (app.sdkappid, app.callback, app.policy, app.ignore, settings)
        built_for, heal = self._states.get(app.name, (None, HealState()))
        if built_for != key:
            heal = HealState()
        verdict = outcome.verdict
        planned = None
        if verdict is not None and status in (Status.DRIFT, Status.IN_SYNC):
            planned = plan(app.callback, verdict.observed, verdict, app.policy)
        heal, step = observe(heal, planned, settings, self._clock())
        self._states[app.name] = (key, heal)
        if step is Step.BLOCKED:
            assert planned is not None
            log.warning("remediation_blocked", app=app.name, sdkappid=app.sdkappid, reason=planned.blocked)
        if step is not Step.ATTEMPT or planned is None:
            return None
        started = self._clock()
        try:
            result = await self._executor.apply(app, self._target(app), planned)
        except MonitorError as exc:  # the secret became unreadable since the check read it
            error = CheckError("auth", str(exc))
            result = Result(planned, Effect.FAILED, planned.action, error=error, message=str(exc))
        if result.effect is Effect.REFUSED:
            return None
        now = self._clock()
        heal, names = record(heal, result.ok, settings, now)
        self._states[app.name] = (key, heal)
        log.info(
            "remediation",
            app=app.name,
            sdkappid=app.sdkappid,
            action=result.action.value,
            result=result.effect.value,
            message=result.message,
            failures=heal.failures,
            seconds=round(now - started, 3),
        )
        self._emit(tuple(self._event(app, name, result, now) for name in names))
        for name in names:
            self._count(app.name, app.sdkappid, OUTCOME_LABEL[name])
        return result.check

    @staticmethod
    def _event(app: AppConfig, name: str, result: Result, now: float) -> AlertEvent:
        before, after = result.plan.before, result.plan.after
        added, removed = command_changes(before, after)
        error = result.error
        if name != APPLIED and error is None:
            error = CheckError(READ_BACK_DIFFERS, result.message)
        return AlertEvent(
            event=name,
            severity=SEVERITY[name],
            app=app.name,
            sdkappid=app.sdkappid,
            kind="remediation",
            desired=app.callback.url if app.callback is not None else None,
            observed=before.url if before is not None else None,
            missing=added,
            unexpected=removed,
            labels=app.labels,
            fingerprint=fingerprint(app.name, "remediation"),
            timestamp=now,
            error=error if name != APPLIED else None,
            action=result.action.value,
        )


# ---- what plan and apply print -------------------------------------------------------------------


def _config_lines(label: str, config: CallbackConfig | None) -> list[str]:
    if config is None:
        return [f"  {label:<7}(no callback configured)"]
    commands = ", ".join(config.commands) if config.commands else "(none)"
    return [f"  {label:<7}url       {redact_url(config.url)}", f"  {'':<7}commands  {commands}"]


def command_changes(
    before: CallbackConfig | None, after: CallbackConfig | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The commands a write adds and those it removes, each in its config's own spelling, sorted."""
    old = before.command_set if before is not None else frozenset()
    new = after.command_set if after is not None else frozenset()
    added = sorted({c for c in (after.commands if after else ()) if canonical(c) not in old})
    removed = sorted({c for c in (before.commands if before else ()) if canonical(c) not in new})
    return tuple(added), tuple(removed)


def render_plan(app: AppConfig, planned: Plan) -> list[str]:
    """One app's plan as a person reads it: the call, what it fixes, the config before and after."""
    head = f"{app.name} ({app.sdkappid}): "
    if planned.blocked:
        return [head + "CANNOT FIX", f"  reason {planned.blocked}"]
    if not planned.writes:
        return [head + "nothing to do"]
    lines = [head + planned.action.value, f"  fixes  {', '.join(k.value for k in planned.fixes)}"]
    lines += _config_lines("before", planned.before)
    lines += _config_lines("after", planned.after)
    if planned.before is not None and planned.after is not None:
        added, removed = command_changes(planned.before, planned.after)
        lines += [f"  + {word}" for word in added] + [f"  - {word}" for word in removed]
    return lines
