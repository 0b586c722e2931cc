"""Probes in serve: results reach every app sharing a URL, alerts go out, metrics and reloads follow."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.config import Config, load_config
from monitor.probe_receiver import Receiver
from monitor.probe_service import ProbeService
from monitor.state import AlertEvent, AppIdentity, AppState
from monitor.store import Store


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(default=503)
    await receiver.start()
    yield receiver
    await receiver.stop()


def config(tmp_path: Path, port: int, probe: str = "{enabled: true, failures_before_alert: 1}") -> Config:
    text = f"""\
        version: 1
        defaults:
          endpoint: http://127.0.0.1:9
          secret_key_env: KEY
          policy: {{require_https: false}}
          callback:
            url: "http://127.0.0.1:{port}/hook?token=t0ken"
            commands: [Room.CallbackAfterCreateRoom]
          probe: {{allow_private: true, timeout: 5s}}
        apps:
          - {{name: one, sdkappid: 1, probe: {probe}}}
          - {{name: two, sdkappid: 2, probe: {probe}}}
          - {{name: plain, sdkappid: 3}}
        """
    path = tmp_path / "monitor.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path, environ={"KEY": "made-up"})


class Ticks:
    """The schedule's wait: returns when the test says so."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[None] = asyncio.Queue()

    async def wait(self, seconds: float) -> None:
        await self.queue.get()


def store_for(cfg: Config) -> tuple[Store, asyncio.Queue[AlertEvent]]:
    store = Store(config=cfg)
    for app in cfg.apps:
        store.states[app.name] = AppState.initial(
            AppIdentity(app.name, app.sdkappid, app.labels, app.callback)
        )
    events: asyncio.Queue[AlertEvent] = asyncio.Queue()
    store.listeners.append(events.put_nowait)
    return store, events


async def test_one_probe_serves_both_apps_and_each_gets_its_alert(receiver: Receiver, tmp_path: Path) -> None:
    cfg = config(tmp_path, receiver.port)
    store, events = store_for(cfg)
    ticks = Ticks()
    service = ProbeService(store, wait=ticks.wait, clock=lambda: 1_800_000_000.0)
    assert service.apply(cfg.apps) == 1
    service.start()
    ticks.queue.put_nowait(None)
    first, second = await events.get(), await events.get()
    assert {(e.app, e.event, e.kind) for e in (first, second)} == {
        ("one", "drift_detected", "endpoint_unreachable"),
        ("two", "drift_detected", "endpoint_unreachable"),
    }
    assert len(receiver.seen) == 1
    assert store.states["plain"].endpoint.history == ()

    registry = CollectorRegistry()
    registry.register(service.collector)
    text = generate_latest(registry).decode()
    assert 'callback_monitor_endpoint_up{app="one",sdkappid="1"} 0.0' in text
    assert 'callback_monitor_endpoint_http_status{app="two",sdkappid="2"} 503.0' in text
    assert 'app="plain"' not in text
    assert 'callback_monitor_endpoint_probe_failures_total{phase="status"} 1.0' in text
    await service.stop()


async def test_turning_probes_off_resolves_what_they_found(receiver: Receiver, tmp_path: Path) -> None:
    cfg = config(tmp_path, receiver.port)
    store, events = store_for(cfg)
    ticks = Ticks()
    service = ProbeService(store, wait=ticks.wait)
    service.apply(cfg.apps)
    service.start()
    ticks.queue.put_nowait(None)
    await events.get()
    await events.get()
    off = config(tmp_path, receiver.port, probe="{enabled: false}")
    assert service.apply(off.apps) == 0
    resolved = [events.get_nowait(), events.get_nowait()]
    assert sorted((e.app, e.event) for e in resolved) == [
        ("one", "drift_resolved"),
        ("two", "drift_resolved"),
    ]
    assert store.states["one"].endpoint.findings == ()
    assert service.schedule.targets == ()
    await service.stop()
