"""The demo's receivers show the three cases the demo promises, through a real probe of each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.demo import demo_state, write_demo_files
from monitor.probe import probe
from monitor.probe_demo import DemoReceivers, ReceiverApp
from monitor.probe_eval import evaluate
from monitor.probe_model import Phase, ProbeSettings


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[DemoReceivers, tuple[ReceiverApp, ...]]]:
    receivers = DemoReceivers(tmp_path)
    apps = await receivers.start()
    yield receivers, apps
    await receivers.stop()


async def test_one_works_one_expires_in_five_days_one_answers_503(
    demo: tuple[DemoReceivers, tuple[ReceiverApp, ...]],
) -> None:
    receivers, apps = demo
    settings = ProbeSettings(enabled=True, timeout=5.0, allow_private=True, ca_file=receivers.ca_file)
    settings = replace(settings, failures_before_alert=1)
    seen: dict[str, tuple[Phase | None, int | None, list[tuple[str, str]]]] = {}
    for app in apps:
        result = await probe(app.url, settings)
        findings = evaluate([result], settings, result.started)
        seen[app.name] = (result.phase, result.status, [(f.kind.value, f.severity) for f in findings])
    assert seen == {
        "demo-receiver-ok": (None, 204, []),
        "demo-receiver-cert-expiring": (None, 204, [("endpoint_cert_expiring", "warning")]),
        "demo-receiver-503": (Phase.STATUS, 503, [("endpoint_unreachable", "critical")]),
    }
    assert all(app.url.startswith("https://127.0.0.1:") for app in apps)


async def test_the_demo_config_probes_exactly_the_receiver_apps(
    demo: tuple[DemoReceivers, tuple[ReceiverApp, ...]], tmp_path: Path
) -> None:
    receivers, apps = demo
    (tmp_path / "files").mkdir()
    path = write_demo_files(tmp_path / "files", "http://127.0.0.1:9", "10s", apps, receivers.ca_file)
    config = load_config(path)
    probed = {app.name: app.probe for app in config.apps if app.probe.enabled}
    assert sorted(probed) == ["demo-receiver-503", "demo-receiver-cert-expiring", "demo-receiver-ok"]
    assert {(p.allow_private, p.ca_file) for p in probed.values()} == {(True, receivers.ca_file)}
    state = demo_state(apps)
    live = {a["name"]: a["callback"]["url"] for a in state["apps"] if a["name"] in probed}
    assert live == {app.name: app.url for app in apps}  # in sync: only the receivers can be wrong
    ok = config.app("demo-receiver-ok")
    assert ok.callback is not None
    result = await probe(ok.callback.url, ok.probe)  # the demo CA as the loader read it
    assert (result.up, result.status) == (True, 204), result.error
