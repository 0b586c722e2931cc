"""Pure per-app probe state: (previous state, a probe's result, now) -> (new state, alert events)."""

from __future__ import annotations

from monitor.kinds import ENDPOINT_KINDS
from monitor.probe_eval import EndpointFinding, EndpointState, evaluate
from monitor.probe_model import ProbeResult, ProbeSettings
from monitor.state import DRIFT_DETECTED, DRIFT_RESOLVED, AlertEvent, AppIdentity, fingerprint


def probe_transition(
    prev: EndpointState,
    identity: AppIdentity,
    result: ProbeResult,
    settings: ProbeSettings,
    now: float,
    ignore: frozenset[str] = frozenset(),
) -> tuple[EndpointState, tuple[AlertEvent, ...]]:
    """The state after ``result`` and the events its change of findings causes (often none).

    A result for another URL than the history's (the desired URL changed) starts a new history.
    Events are those of drift findings: ``drift_detected`` when a kind appears or what it is about
    changes (another failing phase, another certificate problem, warning to critical), with
    ``changed: true`` for the latter; ``drift_resolved`` when it goes.
    """
    keep = max(settings.failures_before_alert, 1) + 1
    history = prev.history if prev.history and prev.history[-1].url == result.url else ()
    history = (*history, result)[-keep:]
    findings = evaluate(history, settings, now, ignore)
    state = EndpointState(history=history, findings=findings)
    return state, _events(prev.counted, state.counted, identity, now)


def retire(prev: EndpointState, identity: AppIdentity, now: float) -> tuple[AlertEvent, ...]:
    """``drift_resolved`` for each active finding of an app whose probes were turned off or removed."""
    return _events(prev.counted, (), identity, now)


def _events(
    before: tuple[EndpointFinding, ...],
    after: tuple[EndpointFinding, ...],
    identity: AppIdentity,
    now: float,
) -> tuple[AlertEvent, ...]:
    old = {f.kind: f for f in before}
    new = {f.kind: f for f in after}
    events: list[AlertEvent] = []
    for kind in ENDPOINT_KINDS:
        was, now_found = old.get(kind), new.get(kind)
        if now_found is not None and was is None:
            events.append(_event(identity, DRIFT_DETECTED, now_found, now))
        elif now_found is not None and was is not None and _about(was) != _about(now_found):
            events.append(_event(identity, DRIFT_DETECTED, now_found, now, changed=True))
        elif now_found is None and was is not None:
            events.append(_event(identity, DRIFT_RESOLVED, was, now))
    return tuple(events)


def _about(finding: EndpointFinding) -> object:
    """What a finding is about, for deciding whether it changed; its words change at every probe."""
    return (finding.phase, finding.cert_problem, finding.severity)


def _event(
    identity: AppIdentity, event: str, finding: EndpointFinding, now: float, *, changed: bool = False
) -> AlertEvent:
    return AlertEvent(
        event=event,
        severity=finding.severity,
        app=identity.name,
        sdkappid=identity.sdkappid,
        kind=finding.kind.value,
        desired=finding.desired,
        observed=finding.observed,
        missing=(),
        unexpected=(),
        labels=identity.labels,
        fingerprint=fingerprint(identity.name, finding.kind.value),
        timestamp=now,
        changed=changed,
    )
