"""Alert events from probe results: like drift findings, on a change of state and never once per probe."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from monitor.probe_eval import EndpointState
from monitor.probe_model import CertProblem, Phase, ProbeResult, ProbeSettings
from monitor.probe_state import probe_transition, retire
from monitor.state import AppIdentity, fingerprint

URL = "https://hooks.example.com/room?token=abc"
NOW = 1_800_000_000.0
DAY = 86400.0
ON = ProbeSettings(enabled=True, failures_before_alert=2)
APP = AppIdentity(name="prod", sdkappid=1400000001, labels=MappingProxyType({"team": "rtc"}), desired=None)


def up(days_left: float = 90) -> ProbeResult:
    return ProbeResult(url=URL, started=NOW, total=0.1, status=204, cert_not_after=NOW + days_left * DAY)


def down(phase: Phase = Phase.CONNECT, url: str = URL) -> ProbeResult:
    return ProbeResult(url=url, started=NOW, total=0.1, phase=phase, error="x")


Seen = list[tuple[str, str, bool, str]]


def run(
    results: list[ProbeResult], settings: ProbeSettings = ON, ignore: frozenset[str] = frozenset()
) -> tuple[EndpointState, Seen]:
    state = EndpointState()
    seen: Seen = []
    for result in results:
        state, events = probe_transition(state, APP, result, settings, NOW, ignore)
        seen.extend((e.event, e.kind, e.changed, e.severity) for e in events)
    return state, seen


def test_unreachable_is_detected_once_and_resolved_once() -> None:
    _, seen = run([down(), down(), down(), down(), up()])
    assert seen == [
        ("drift_detected", "endpoint_unreachable", False, "critical"),
        ("drift_resolved", "endpoint_unreachable", False, "critical"),
    ]


def test_another_failing_phase_is_a_changed_detection() -> None:
    _, seen = run([down(), down(), down(Phase.DNS)])
    assert seen == [
        ("drift_detected", "endpoint_unreachable", False, "critical"),
        ("drift_detected", "endpoint_unreachable", True, "critical"),
    ]


def test_an_expiry_going_from_warning_to_critical_is_a_changed_detection() -> None:
    _, seen = run([up(10), up(9), up(2)])
    assert seen == [
        ("drift_detected", "endpoint_cert_expiring", False, "warning"),
        ("drift_detected", "endpoint_cert_expiring", True, "critical"),
    ]


def test_the_event_carries_the_app_the_url_and_a_stable_fingerprint() -> None:
    refused = ProbeResult(
        url=URL,
        started=NOW,
        total=0.1,
        phase=Phase.TLS,
        error="certificate refused: x",
        cert_problem=CertProblem.WRONG_HOST,
    )
    _, events = probe_transition(EndpointState(), APP, refused, ON, NOW)
    (event,) = events
    assert (event.app, event.sdkappid, event.kind, event.desired) == (
        "prod",
        1400000001,
        "endpoint_cert_invalid",
        URL,
    )
    assert event.observed == "certificate not valid for the host: x"
    assert event.fingerprint == fingerprint("prod", "endpoint_cert_invalid")
    assert dict(event.labels) == {"team": "rtc"}


def test_ignored_kinds_are_kept_but_never_alert() -> None:
    state, seen = run([down(), down(), down()], ignore=frozenset({"endpoint_unreachable"}))
    assert seen == []
    assert [f.kind.value for f in state.findings] == ["endpoint_unreachable"]
    assert state.counted == ()


def test_the_history_keeps_what_failures_before_alert_needs() -> None:
    state, _ = run([up(), down(), down(), down(), down()])
    assert len(state.history) == 3
    assert state.latest is not None
    assert state.latest.phase == Phase.CONNECT


def test_a_new_desired_url_starts_a_new_history() -> None:
    state, _ = run([down(), down(url="https://other.example.com/")])
    assert [r.url for r in state.history] == ["https://other.example.com/"]


def test_retiring_an_app_resolves_what_was_active() -> None:
    state, _ = run([down(), down()])
    assert [(e.event, e.kind) for e in retire(state, APP, NOW)] == [
        ("drift_resolved", "endpoint_unreachable")
    ]
    assert retire(EndpointState(), APP, NOW) == ()


def test_a_lower_threshold_after_a_reload_applies_to_the_next_probe() -> None:
    state, _ = run([down()])
    _, events = probe_transition(state, APP, down(), replace(ON, failures_before_alert=1), NOW)
    assert [e.kind for e in events] == ["endpoint_unreachable"]
