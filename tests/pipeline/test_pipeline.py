"""What on-call receives, end to end: ``serve`` against the simulator, scraped by a real Prometheus
that runs the shipped rules (durations sped up, see stack.py), alerts routed by a real Alertmanager,
one webhook notification per alert.

Times in comments are the rule's real durations; the test waits the sped-up ones. Scenarios that
need parts of the monitor not written yet are marked xfail(strict=True) naming the missing part:
when it lands they pass, the strict mark fails, and whoever landed it removes the mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.simulator import SAMPLE_DESIRED, Faults, Simulator
from monitor.tencent.model import CallbackConfig
from tests.pipeline.stack import Stack, free_port, scaled
from tests.serve_helpers import IN_SYNC, Serve, config_dict, write_keys

pytestmark = pytest.mark.slow

ELSEWHERE = CallbackConfig("https://hooks.example.com/old-receiver?token=s3cr3t", SAMPLE_DESIRED.commands)
SETTLE = 3.0  # seconds to wait for anything more after the last expected notification


def write_config(
    tmp_path: Path, endpoint: str, app: tuple[str, int], alerting: dict[str, Any] | None
) -> Path:
    keys = tmp_path / "keys"
    write_keys(keys, [app])
    config = config_dict(endpoint, keys, [app], interval="1s")
    if alerting is not None:
        config["alerting"] = alerting
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


async def start_serve(config: Path, port: int) -> Serve:
    serve = await Serve.start(config, "--listen", f"127.0.0.1:{port}")
    started = await serve.wait_event("started")
    serve.url = started["url"].rstrip("/")
    return serve


@contextlib.asynccontextmanager
async def serving(config: Path, port: int) -> AsyncIterator[list[Serve]]:
    """The serve processes started for one test (a restart adds one), all stopped at the end."""
    processes = [await start_serve(config, port)]
    try:
        yield processes
    finally:
        for serve in processes:
            await serve.close()


def report(scenario: str, stack: Stack, t0: float) -> None:
    """The notifications of a scenario, timed from t0: `pytest -s tests/pipeline` prints them."""
    print(f"\n{scenario}: {len(stack.webhook.received)} notification(s)")
    for n in stack.webhook.received:
        print(f"  {n.at - t0:6.1f}s {n.status:8} {n.name} {n.labels.get('kind', '')}")


def instant(stamp: str) -> datetime:
    """An RFC 3339 time as Alertmanager writes it (its fraction has 0 to 9 digits)."""
    whole, _, rest = stamp.removesuffix("Z").partition(".")
    return datetime.fromisoformat(whole + "." + (rest or "0").ljust(6, "0")[:6] + "+00:00")


async def settle() -> None:
    await asyncio.sleep(SETTLE)  # nothing to wait for: proving that nothing more arrives


async def test_url_drift_pages_once_and_resolves_once_on_the_rule_path(
    stack: Stack, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """No direct sink: the rules alone page a drift once, and its fix once."""
    config = write_config(tmp_path, simulator_url, IN_SYNC, alerting=None)
    async with serving(config, stack.serve_port):
        await asyncio.sleep(1)  # a few scrapes of the app in sync
        t0 = time.monotonic()
        simulator.set_callback(IN_SYNC[1], ELSEWHERE)
        fired = await stack.webhook.wait_for("CallbackConfigDrift", within=scaled("2m") + 20)
        assert fired.labels | {"severity": "critical", "kind": "url_mismatch"} == fired.labels
        assert fired.labels["app"] == IN_SYNC[0]
        fixed = time.monotonic()
        simulator.set_callback(IN_SYNC[1], SAMPLE_DESIRED)
        resolved = await stack.webhook.wait_for("CallbackConfigDrift", "resolved", within=scaled("5m") + 20)
        await settle()
        report("url drift, rule path", stack, t0)
        assert [(n.name, n.status) for n in stack.webhook.received] == [
            ("CallbackConfigDrift", "firing"),
            ("CallbackConfigDrift", "resolved"),
        ]
        assert resolved.starts_at == fired.starts_at
        assert resolved.at - fixed >= scaled("5m")  # kept firing through keep_firing_for


async def test_failing_checks_page_once(
    stack: Stack, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """Checks that fail from the start: one CallbackCheckFailing, nothing stale, no drift."""
    simulator.set_faults(Faults(error_code=70003, error_code_rate=1.0), IN_SYNC[1])
    config = write_config(tmp_path, simulator_url, IN_SYNC, alerting=None)
    t0 = time.monotonic()
    async with serving(config, stack.serve_port):
        fired = await stack.webhook.wait_for("CallbackCheckFailing", within=scaled("5m") + 20)
        await settle()
        report("failing checks", stack, t0)
        assert [(n.name, n.status) for n in stack.webhook.received] == [("CallbackCheckFailing", "firing")]
        assert fired.labels["app"] == IN_SYNC[0]
        assert fired.labels["severity"] == "warning"


async def test_a_killed_monitor_pages_down_and_nothing_resolves_before(
    stack: Stack, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """Drift is live when serve dies: CallbackMonitorDown (critical) pages; the drift alert is not
    resolved before it, although its series are gone."""
    simulator.set_callback(IN_SYNC[1], ELSEWHERE)
    config = write_config(tmp_path, simulator_url, IN_SYNC, alerting=None)
    async with serving(config, stack.serve_port) as processes:
        await stack.webhook.wait_for("CallbackConfigDrift", within=scaled("2m") + 20)
        t0 = time.monotonic()
        processes[0].proc.send_signal(signal.SIGKILL)
        down = await stack.webhook.wait_for("CallbackMonitorDown", within=scaled("90s") + 20)
        await settle()
        report("serve killed while drift is live", stack, t0)
        assert down.labels["severity"] == "critical"
        before = [n for n in stack.webhook.received if n.at <= down.at]
        assert [(n.name, n.status) for n in before] == [
            ("CallbackConfigDrift", "firing"),
            ("CallbackMonitorDown", "firing"),
        ]
        assert stack.webhook.of("CallbackMonitorAbsent") == []


async def test_a_restart_within_a_minute_sends_nothing_and_keeps_starts_at(
    stack: Stack, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """serve stops and starts again (on the same address) while drift is live: no notification,
    and Alertmanager keeps the alert's startsAt."""
    simulator.set_callback(IN_SYNC[1], ELSEWHERE)
    config = write_config(tmp_path, simulator_url, IN_SYNC, alerting=None)
    async with serving(config, stack.serve_port) as processes:
        fired = await stack.webhook.wait_for("CallbackConfigDrift", within=scaled("2m") + 20)
        (before,) = await stack.am_alerts("CallbackConfigDrift")
        t0 = time.monotonic()
        await processes[0].close()
        processes.append(await start_serve(config, stack.serve_port))
        gap = time.monotonic() - t0
        assert gap < scaled("60s"), f"the restart took {gap:.1f}s, longer than a sped-up minute"
        # Long enough for a resolved to go out, had the alert lapsed during the restart.
        await asyncio.sleep(scaled("5m") + 2)
        report(f"restart in {gap:.1f}s", stack, t0)
        assert [(n.name, n.status) for n in stack.webhook.received] == [("CallbackConfigDrift", "firing")]
        (after,) = await stack.am_alerts("CallbackConfigDrift")
        assert instant(after["startsAt"]) == instant(before["startsAt"]) == instant(fired.starts_at)
        assert after["status"]["state"] == "active"


async def test_with_direct_delivery_broken_the_rule_path_pages_instead(
    stack: Stack, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """The direct sink points at an address where nothing listens: the rules page the drift, once."""
    alerting = {"alertmanager": {"url": f"http://127.0.0.1:{free_port()}", "timeout": "1s"}}
    simulator.set_callback(IN_SYNC[1], ELSEWHERE)
    config = write_config(tmp_path, simulator_url, IN_SYNC, alerting=alerting)
    t0 = time.monotonic()
    async with serving(config, stack.serve_port):
        fired = await stack.webhook.wait_for("CallbackConfigDrift", within=scaled("2m") + 20)
        await settle()
        report("direct delivery broken", stack, t0)
        assert [(n.name, n.status) for n in stack.webhook.received] == [("CallbackConfigDrift", "firing")]
        assert fired.labels["app"] == IN_SYNC[0]


@pytest.mark.xfail(
    strict=False,  # not strict: when the rule copy lands in the direct copy's group it can pass by luck
    reason="needs the code side: callback_monitor_alert_delivery_healthy (the rules stand down) and "
    "direct alerts with the rules' labels and annotations (runbook_url)",
)
async def test_with_direct_delivery_healthy_a_drift_pages_once(
    stack: Stack, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """Both paths configured, the direct one delivering: one firing, then one resolved."""
    alerting = {"alertmanager": {"url": stack.alertmanager.url, "timeout": "2s"}}
    config = write_config(tmp_path, simulator_url, IN_SYNC, alerting=alerting)
    async with serving(config, stack.serve_port):
        await asyncio.sleep(1)
        t0 = time.monotonic()
        simulator.set_callback(IN_SYNC[1], ELSEWHERE)
        fired = await stack.webhook.wait_for("CallbackConfigDrift", within=scaled("2m") + 20)
        await asyncio.sleep(scaled("2m") + SETTLE)  # the rule copy would have joined by now
        simulator.set_callback(IN_SYNC[1], SAMPLE_DESIRED)
        await stack.webhook.wait_for("CallbackConfigDrift", "resolved", within=scaled("5m") + 20)
        await settle()
        report("url drift, direct sink healthy", stack, t0)
        assert [(n.name, n.status) for n in stack.webhook.received] == [
            ("CallbackConfigDrift", "firing"),
            ("CallbackConfigDrift", "resolved"),
        ]
        assert fired.labels["team"] == "rtc"
        assert "runbook_url" not in fired.labels


@pytest.mark.xfail(
    strict=True,
    reason="needs the code side: flap damping (drift_flapping, callback_monitor_flapping, one "
    "direct alert while flapping)",
)
async def test_a_flapping_app_pages_once_as_flapping(
    stack: Stack, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """The live URL alternates on every check, with the direct sink on: one CallbackConfigFlapping
    and no drift notifications."""
    alerting = {"alertmanager": {"url": stack.alertmanager.url, "timeout": "2s"}}
    config = write_config(tmp_path, simulator_url, IN_SYNC, alerting=alerting)
    async with serving(config, stack.serve_port) as processes:
        t0 = time.monotonic()
        mark = 0
        for flip in range(16):
            simulator.set_callback(IN_SYNC[1], ELSEWHERE if flip % 2 == 0 else SAMPLE_DESIRED)
            mark = await processes[0].wait_checks(IN_SYNC[0], 1, after=mark)
        await asyncio.sleep(scaled("1m") + SETTLE)
        report("flapping", stack, t0)
        assert [(n.name, n.status) for n in stack.webhook.received] == [("CallbackConfigFlapping", "firing")]


@pytest.mark.xfail(
    strict=True,
    reason="needs the code side: callback_monitor_alert_delivery_healthy (the rules stand down), "
    "direct alerts with the rules' labels, and a direct endsAt that outlasts CallbackMonitorDown",
)
async def test_with_the_direct_sink_on_a_restart_sends_nothing_and_a_death_pages_down(
    stack: Stack, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """Drift is live and paged through the direct sink: a restart sends nothing and keeps startsAt;
    then serve dies, and CallbackMonitorDown arrives with no "resolved" before it."""
    simulator.set_callback(IN_SYNC[1], ELSEWHERE)
    alerting = {"alertmanager": {"url": stack.alertmanager.url, "timeout": "2s"}}
    config = write_config(tmp_path, simulator_url, IN_SYNC, alerting=alerting)
    async with serving(config, stack.serve_port) as processes:
        fired = await stack.webhook.wait_for("CallbackConfigDrift", within=scaled("2m") + 20)
        t0 = time.monotonic()
        await processes[0].close()
        processes.append(await start_serve(config, stack.serve_port))
        await asyncio.sleep(scaled("5m") + 2)
        assert [(n.name, n.status) for n in stack.webhook.received] == [("CallbackConfigDrift", "firing")]
        (alert,) = await stack.am_alerts("CallbackConfigDrift")
        assert instant(alert["startsAt"]) == instant(fired.starts_at)
        processes[-1].proc.send_signal(signal.SIGKILL)
        down = await stack.webhook.wait_for("CallbackMonitorDown", within=scaled("90s") + 20)
        await settle()
        report("direct sink: restart, then death", stack, t0)
        assert [(n.name, n.status) for n in stack.webhook.received if n.at <= down.at + SETTLE] == [
            ("CallbackConfigDrift", "firing"),
            ("CallbackMonitorDown", "firing"),
        ]
