"""Self-heal in serve: the async shell that feeds each check to the policy and makes the write it allows."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog

from monitor.config import AppConfig
from monitor.errors import CheckError, MonitorError
from monitor.remediate.executor import Effect, Executor, Result
from monitor.remediate.planner import Plan, command_changes, plan
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
from monitor.state import AlertEvent, Outcome, Status, fingerprint
from monitor.tencent.client import Target

log = structlog.get_logger("monitor.remediate")

SEVERITY = {APPLIED: "info", FAILED: "warning", GAVE_UP: "critical", CONTESTED: "critical"}
OUTCOME_LABEL = {APPLIED: "applied", FAILED: "failed", GAVE_UP: "gave_up", CONTESTED: "contested"}
READ_BACK_DIFFERS = "read_back_differs"  # the error reason of a failure whose write itself succeeded
CONTESTED_REASON = "contested"  # the error reason of remediation_contested
WRITES_PER_HOUR = 120


class Remediator:
    """Feeds every check of an app with ``remediate: true`` to the policy and makes the write it allows.

    ``serve`` builds one only when it is not read-only; ``emit`` sends alert events and ``count``
    counts outcomes (applied, failed, gave_up, contested) for the metrics. ``budget`` caps the writes
    of all apps together per hour (``serve`` sets it from ``limits.remediation_writes_per_hour``).
    """

    def __init__(
        self,
        executor: Executor,
        target: Callable[[AppConfig], Awaitable[Target]],
        *,
        emit: Callable[[tuple[AlertEvent, ...]], None],
        count: Callable[[str, int, str], None],
        clock: Callable[[], float] = time.time,
        writes_per_hour: int = WRITES_PER_HOUR,
    ) -> None:
        self._executor = executor
        self._target = target
        self._emit = emit
        self._count = count
        self._clock = clock
        self.budget = WriteBudget(writes_per_hour)
        self._capped = False  # the cap was hit and logged; logged again only after it freed up
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
        now = self._clock()
        heal, step = observe(heal, planned, settings, now)
        self._states[app.name] = (key, heal)
        if step is Step.BLOCKED:
            assert planned is not None
            log.warning("remediation_blocked", app=app.name, sdkappid=app.sdkappid, reason=planned.blocked)
        if step is Step.CONTESTED:
            self._contested(app, heal, settings, now)
        if step is not Step.ATTEMPT or planned is None or not self._affordable(app, now):
            return None
        started = self._clock()
        self.budget.spend(started)
        result = await self._attempt(app, planned)
        if result.effect is Effect.REFUSED:
            return None
        now = self._clock()
        heal, names = record(heal, result.ok, settings, now, contested=result.effect is Effect.CONTESTED)
        self._states[app.name] = (key, heal)
        log.info(
            "remediation",
            app=app.name,
            sdkappid=app.sdkappid,
            action=result.action.value,
            result=result.effect.value,
            message=result.message,
            failures=heal.failures,
            reverts=len(heal.reverts),
            seconds=round(now - started, 3),
        )
        events = [self._event(app, name, result, now) for name in names if name != CONTESTED]
        if CONTESTED in names:
            events.append(self._contested_event(app, heal, settings, now))
        self._emit(tuple(events))
        for name in names:
            self._count(app.name, app.sdkappid, OUTCOME_LABEL[name])
        return result.check

    async def _attempt(self, app: AppConfig, planned: Plan) -> Result:
        try:
            return await self._executor.apply(app, await self._target(app), planned)
        except MonitorError as exc:  # the secret became unreadable since the check read it
            error = CheckError.of(exc)
            return Result(planned, Effect.FAILED, planned.action, error=error, message=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must fail one attempt, never stop the app's checks
            error = CheckError.unexpected(exc, "inside self-heal")
            return Result(planned, Effect.FAILED, planned.action, error=error, message=error.message)

    def _affordable(self, app: AppConfig, now: float) -> bool:
        """Whether the process-wide cap allows a write now; the first refusal of a run is logged."""
        if self.budget.allows(now):
            self._capped = False
            return True
        if not self._capped:
            self._capped = True
            log.warning(
                "remediation_capped",
                app=app.name,
                sdkappid=app.sdkappid,
                writes_per_hour=self.budget.per_hour,
                message="the process-wide cap on self-heal writes is reached: writes wait until it frees up",
            )
        return False

    def _contested(self, app: AppConfig, heal: HealState, settings: HealSettings, now: float) -> None:
        event = self._contested_event(app, heal, settings, now)
        assert event.error is not None
        log.warning("remediation_stopped", app=app.name, sdkappid=app.sdkappid, message=event.error.message)
        self._emit((event,))
        self._count(app.name, app.sdkappid, OUTCOME_LABEL[CONTESTED])

    @staticmethod
    def _contested_event(app: AppConfig, heal: HealState, settings: HealSettings, now: float) -> AlertEvent:
        message = (
            f"another writer keeps changing this config: {len(heal.reverts)} self-heal writes undone or "
            f"raced within {settings.revert_window:g}s; self-heal stops for this app until its desired "
            f"state changes or it stays in sync for {settings.revert_window:g}s"
        )
        return _event(app, CONTESTED, now, error=CheckError(CONTESTED_REASON, message))

    @staticmethod
    def _event(app: AppConfig, name: str, result: Result, now: float) -> AlertEvent:
        before, after = result.plan.before, result.plan.after
        added, removed = command_changes(before, after)
        error = result.error
        if name != APPLIED and error is None:
            error = CheckError(READ_BACK_DIFFERS, result.message)
        return _event(
            app,
            name,
            now,
            observed=before.url if before is not None else None,
            changes=(added, removed),
            error=error if name != APPLIED else None,
            action=result.action.value,
        )


def _event(
    app: AppConfig,
    name: str,
    now: float,
    *,
    observed: str | None = None,
    changes: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    error: CheckError | None = None,
    action: str | None = None,
) -> AlertEvent:
    """A remediation_* alert event: ``changes`` are the commands the write adds and removes."""
    return AlertEvent(
        event=name,
        severity=SEVERITY[name],
        app=app.name,
        sdkappid=app.sdkappid,
        kind="remediation",
        desired=app.callback.url if app.callback is not None else None,
        observed=observed,
        missing=changes[0],
        unexpected=changes[1],
        labels=app.labels,
        fingerprint=fingerprint(app.name, "remediation"),
        timestamp=now,
        error=error,
        action=action,
    )
