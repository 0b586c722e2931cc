"""Endpoint findings as Alertmanager alerts and as the alert log line."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from monitor.alerts import alert_fields, app_alerts
from monitor.probe_eval import EndpointState
from monitor.probe_model import Phase, ProbeResult, ProbeSettings
from monitor.probe_state import probe_transition
from monitor.state import AppIdentity, AppState

URL = "https://hooks.example.com/room?token=s3cret"
NOW = 1_800_000_000.0
APP = AppIdentity(name="prod", sdkappid=1400000001, labels=MappingProxyType({"team": "rtc"}), desired=None)
ON = ProbeSettings(enabled=True, failures_before_alert=1)


def down() -> ProbeResult:
    error = "no connection: 192.0.2.7:443: Connection refused"
    return ProbeResult(url=URL, started=NOW, total=0.1, phase=Phase.CONNECT, error=error)


def test_an_active_endpoint_finding_is_one_alert_named_for_its_kind() -> None:
    endpoint, events = probe_transition(EndpointState(), APP, down(), ON, NOW)
    state = replace(AppState.initial(APP), endpoint=endpoint)
    (alert,) = app_alerts(state, static_labels={"env": "test"}, external_url=None, now=NOW).values()
    assert dict(alert.labels) == {
        "alertname": "CallbackEndpointUnreachable",
        "app": "prod",
        "sdkappid": "1400000001",
        "severity": "critical",
        "kind": "endpoint_unreachable",
        "team": "rtc",
        "env": "test",
    }
    annotations = dict(alert.annotations)
    assert annotations["summary"] == (
        "prod (1400000001) has a callback receiver that probes cannot reach [endpoint_unreachable]"
    )
    assert annotations["description"] == (
        "Desired URL: https://hooks.example.com/room?token=REDACTED. Probe: connect failed: "
        "no connection: 192.0.2.7:443: Connection refused (1 probe in a row)."
    )
    (event,) = events
    fields = alert_fields(event)
    assert (fields["event"], fields["kind"], fields["severity"]) == (
        "drift_detected",
        "endpoint_unreachable",
        "critical",
    )
    assert fields["desired"] == "https://hooks.example.com/room?token=REDACTED"
    assert "s3cret" not in str(fields)


def test_an_ignored_endpoint_finding_sends_no_alert() -> None:
    endpoint, _ = probe_transition(EndpointState(), APP, down(), ON, NOW, frozenset({"endpoint_unreachable"}))
    state = replace(AppState.initial(APP), endpoint=endpoint)
    assert app_alerts(state, static_labels={}, external_url=None, now=NOW) == {}
