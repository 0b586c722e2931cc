"""The status page and /status show each app's receiver: its findings and its last probe."""

from __future__ import annotations

import json
from dataclasses import replace
from types import MappingProxyType

from monitor.drift import Verdict
from monitor.probe_eval import EndpointState
from monitor.probe_model import Phase, ProbeResult, ProbeSettings
from monitor.probe_state import probe_transition
from monitor.state import AppIdentity, AppState, Outcome, transition
from monitor.store import Store
from monitor.web.page import status_html
from monitor.web.view import View, status_json

NOW = 1_800_000_000.0
URL = "https://hooks.example.com/room?token=s3cret"


def state(name: str, result: ProbeResult | None) -> AppState:
    ident = AppIdentity(name=name, sdkappid=1, labels=MappingProxyType({}), desired=None)
    in_sync = Outcome(started=NOW - 1, finished=NOW - 1, verdict=Verdict(findings=(), observed=None))
    app, _ = transition(AppState.initial(ident), in_sync, NOW - 1)
    if result is None:
        return app
    settings = ProbeSettings(enabled=True, failures_before_alert=1)
    endpoint, _ = probe_transition(EndpointState(), ident, result, settings, NOW)
    return replace(app, endpoint=endpoint)


def view() -> View:
    store = Store()
    down = ProbeResult(
        url=URL, started=NOW - 5, total=0.25, phase=Phase.STATUS, error="answered 503", status=503
    )
    store.states = {"a-fine": state("a-fine", None), "z-down": state("z-down", down)}
    return View.of(store, NOW)


def test_the_page_lists_a_down_receiver_first_with_its_finding_and_probe() -> None:
    page = status_html(view())
    assert page.index("z-down") < page.index("a-fine")
    assert "endpoint_unreachable</b> <small>(critical)</small>" in page
    assert "receiver: <code>https://hooks.example.com/room?token=REDACTED</code>" in page
    assert "probe 5 s ago: receiver down in status, HTTP 503 (0.25s)" in page
    assert "2 apps: 2 in sync, 0 drift, 0 error, 0 unknown; 1 with a receiver problem" in page
    assert "s3cret" not in page


def test_status_json_has_the_endpoint_finding_and_the_last_probe() -> None:
    apps = {a["name"]: a for a in json.loads(status_json(view()))["apps"]}
    assert apps["a-fine"]["probe"] is None
    down = apps["z-down"]
    assert [f["kind"] for f in down["findings"]] == ["endpoint_unreachable"]
    assert down["probe"]["phase"] == "status"
    assert down["probe"]["status"] == 503
    assert down["findings"][0]["desired"] == "https://hooks.example.com/room?token=REDACTED"
