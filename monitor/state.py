"""Pure per-app state machine: (previous state, outcome of a check, now) -> (new state, alert events)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from monitor.drift import Finding, Verdict, same_config
from monitor.errors import CheckError
from monitor.kinds import SEVERITY, Kind
from monitor.probe_eval import EndpointState
from monitor.tencent.commands import canonical_set
from monitor.tencent.model import CallbackConfig

HISTORY_LIMIT = 20

DRIFT_DETECTED = "drift_detected"
DRIFT_RESOLVED = "drift_resolved"
CHECK_FAILING = "check_failing"
CHECK_RECOVERED = "check_recovered"

# design.md fixes severities for finding kinds only; a failing check means "we are blind", not
# "the config is wrong", so it pages less urgently than a critical drift.
CHECK_SEVERITY = "warning"


class Status(StrEnum):
    UNKNOWN = "unknown"
    IN_SYNC = "in_sync"
    DRIFT = "drift"
    ERROR = "error"


@dataclass(frozen=True)
class AppIdentity:
    """What the state machine needs to know about an app from the config."""

    name: str
    sdkappid: int
    labels: Mapping[str, str]
    desired: CallbackConfig | None
    error_threshold: int = 3


@dataclass(frozen=True)
class Outcome:
    """How one check ended: exactly one of a verdict or an error."""

    started: float
    finished: float
    verdict: Verdict | None = None
    error: CheckError | None = None

    def __post_init__(self) -> None:
        if (self.verdict is None) == (self.error is None):
            raise ValueError("an Outcome holds exactly one of verdict and error")


@dataclass(frozen=True)
class ConfigChange:
    """The live config changed between two verdicts."""

    at: float
    before: CallbackConfig | None
    after: CallbackConfig | None


@dataclass(frozen=True)
class AlertEvent:
    """One alert: emitted on a change of state, never once per check."""

    event: str  # drift_detected | drift_resolved | check_failing | check_recovered | remediation_*
    severity: str
    app: str
    sdkappid: int
    kind: str  # the finding kind; for check_* events the error reason
    desired: str | None
    observed: str | None
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    labels: Mapping[str, str]
    fingerprint: str
    timestamp: float
    changed: bool = False
    error: CheckError | None = None
    action: str | None = None  # remediation_* events: the call made (set_callback, update_callback, ...)


def _no_failures() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True)
class AppState:
    """Everything remembered about one app between checks."""

    identity: AppIdentity
    status: Status = Status.UNKNOWN
    verdict: Verdict | None = None  # the last verdict, kept through errors
    stale: bool = False  # the last check failed, so ``verdict`` (if any) is from before it
    consecutive_errors: int = 0
    failing: bool = False  # check_failing emitted and check_recovered not yet
    failing_error: CheckError | None = None  # the error check_failing was emitted for
    last_error: CheckError | None = None
    last_check: float | None = None
    last_success: float | None = None
    checks: int = 0
    failures_by_reason: Mapping[str, int] = field(default_factory=_no_failures)
    history: tuple[ConfigChange, ...] = ()  # the last HISTORY_LIMIT changes of the live config
    endpoint: EndpointState = field(default_factory=EndpointState)  # receiver probes (see probe_state)

    @classmethod
    def initial(cls, identity: AppIdentity) -> AppState:
        return cls(identity=identity)


def fingerprint(app: str, kind: str) -> str:
    """Stable across runs and replicas: the same app and kind always give the same fingerprint."""
    return hashlib.sha256(f"{app}\0{kind}".encode()).hexdigest()[:16]


def reidentify(state: AppState, identity: AppIdentity) -> AppState:
    """The state after a config reload changed the app's identity (desired state, labels, threshold).

    Verdict and history are kept, so the next verdict is compared with the findings active before the
    reload: a desired state changed to match the live one resolves its drift. A changed sdkappid is
    another Tencent app, whose state starts afresh.
    """
    if identity.sdkappid != state.identity.sdkappid:
        return AppState.initial(identity)
    return replace(state, identity=identity)


def transition(prev: AppState, outcome: Outcome, now: float) -> tuple[AppState, tuple[AlertEvent, ...]]:
    """The state after ``outcome`` and the alerts that change of state causes (often none)."""
    reasons = dict(prev.failures_by_reason)
    base = replace(prev, checks=prev.checks + 1, last_check=outcome.finished)
    if outcome.error is not None:
        error = outcome.error
        reasons[error.reason] = reasons.get(error.reason, 0) + 1
        state = replace(
            base,
            status=Status.ERROR,
            stale=True,
            consecutive_errors=prev.consecutive_errors + 1,
            last_error=error,
            failures_by_reason=MappingProxyType(reasons),
        )
        if state.consecutive_errors >= state.identity.error_threshold and not state.failing:
            state = replace(state, failing=True, failing_error=error)
            return state, (_check_event(state, CHECK_FAILING, error, now),)
        return state, ()

    verdict = outcome.verdict
    assert verdict is not None  # Outcome guarantees one of the two
    events: list[AlertEvent] = []
    if prev.failing:
        failed = prev.failing_error or prev.last_error or CheckError(reason="unknown", message="")
        events.append(_check_event(prev, CHECK_RECOVERED, failed, now))
    events.extend(_drift_events(prev, verdict, now))

    history = prev.history
    if prev.verdict is not None and not same_config(prev.verdict.observed, verdict.observed):
        change = ConfigChange(at=outcome.finished, before=prev.verdict.observed, after=verdict.observed)
        history = (*history, change)[-HISTORY_LIMIT:]

    state = replace(
        base,
        status=Status.IN_SYNC if verdict.in_sync else Status.DRIFT,
        verdict=verdict,
        stale=False,
        consecutive_errors=0,
        failing=False,
        failing_error=None,
        last_success=outcome.finished,
        history=history,
    )
    return state, tuple(events)


def _drift_events(prev: AppState, verdict: Verdict, now: float) -> list[AlertEvent]:
    before = _active(prev.verdict)
    after = _active(verdict)
    events: list[AlertEvent] = []
    for kind in Kind:
        old, new = before.get(kind), after.get(kind)
        if new is not None and old is None:
            events.append(_drift_event(prev.identity, DRIFT_DETECTED, new, now))
        elif new is not None and old is not None and _observed_value(old) != _observed_value(new):
            events.append(_drift_event(prev.identity, DRIFT_DETECTED, new, now, changed=True))
        elif new is None and old is not None:
            events.append(_drift_event(prev.identity, DRIFT_RESOLVED, old, now))
    return events


def _active(verdict: Verdict | None) -> dict[Kind, Finding]:
    return {} if verdict is None else {f.kind: f for f in verdict.counted}


def _observed_value(finding: Finding) -> object:
    """What a finding saw, for deciding whether it changed: the commands for command kinds, else the URL."""
    if finding.kind == Kind.MISSING_COMMANDS:
        return canonical_set(finding.missing)
    if finding.kind == Kind.UNEXPECTED_COMMANDS:
        return canonical_set(finding.unexpected)
    return finding.observed


def _drift_event(
    identity: AppIdentity, event: str, finding: Finding, now: float, *, changed: bool = False
) -> AlertEvent:
    return AlertEvent(
        event=event,
        severity=SEVERITY[finding.kind],
        app=identity.name,
        sdkappid=identity.sdkappid,
        kind=finding.kind.value,
        desired=finding.desired,
        observed=finding.observed,
        missing=finding.missing,
        unexpected=finding.unexpected,
        labels=identity.labels,
        fingerprint=fingerprint(identity.name, finding.kind.value),
        timestamp=now,
        changed=changed,
    )


def _check_event(state: AppState, event: str, error: CheckError, now: float) -> AlertEvent:
    """check_failing, or check_recovered with the reason check_failing had, so both share a fingerprint."""
    identity = state.identity
    return AlertEvent(
        event=event,
        severity=CHECK_SEVERITY,
        app=identity.name,
        sdkappid=identity.sdkappid,
        kind=error.reason,
        desired=identity.desired.url if identity.desired is not None else None,
        observed=None,
        missing=(),
        unexpected=(),
        labels=identity.labels,
        fingerprint=fingerprint(identity.name, error.reason),
        timestamp=now,
        error=error,
    )
