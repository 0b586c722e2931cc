"""Self-heal in serve: the async shell that feeds each check to the policy and makes the write it allows."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog

from monitor.config import AppConfig
from monitor.errors import CheckError, MonitorError
from monitor.remediate.executor import Effect, Executor, Result
from monitor.remediate.planner import command_changes, plan
from monitor.remediate.policy import APPLIED, FAILED, GAVE_UP, HealSettings, HealState, Step, observe, record
from monitor.state import AlertEvent, Outcome, Status, fingerprint
from monitor.tencent.client import Target

log = structlog.get_logger("monitor.remediate")

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
        target: Callable[[AppConfig], Awaitable[Target]],
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
            result = await self._executor.apply(app, await self._target(app), planned)
        except MonitorError as exc:  # the secret became unreadable since the check read it
            error = CheckError.of(exc)
            result = Result(planned, Effect.FAILED, planned.action, error=error, message=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must fail one attempt, never stop the app's checks
            error = CheckError.unexpected(exc, "inside self-heal")
            log.error(
                "remediation_internal_error", app=app.name, sdkappid=app.sdkappid, message=error.message
            )
            result = Result(planned, Effect.FAILED, planned.action, error=error, message=error.message)
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
