"""Receiver probes in ``serve``: targets from the config, results into the store, alerts, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace

import structlog

from monitor.config import AppConfig
from monitor.probe_eval import EndpointState
from monitor.probe_metrics import EndpointCollector, EndpointRow, ProbeCounts
from monitor.probe_model import ProbeResult
from monitor.probe_schedule import ProbeSchedule
from monitor.probe_shared import ProbeRunner, ProbeTarget, plan
from monitor.probe_state import probe_transition, retire
from monitor.redact import redact_text, redact_url
from monitor.store import Store

log = structlog.get_logger("monitor.probes")


class ProbeService:
    """Keeps the probe schedule in step with the config and each app's endpoint state in the store.

    Probes never touch the Tencent API: they have their own runner (and concurrency limit) and do
    not count against the vendor's rate limit.
    """

    def __init__(
        self,
        store: Store,
        *,
        runner: ProbeRunner | None = None,
        wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock
        self.counts = ProbeCounts()
        self.runner = runner or ProbeRunner()
        self.schedule = ProbeSchedule(self.runner, self.on_result, wait=wait)
        self.collector = EndpointCollector(self.rows, self.counts, active=lambda: bool(self._apps))
        self._apps: dict[str, AppConfig] = {}  # the apps with probes on
        self._targets: tuple[ProbeTarget, ...] = ()
        self._started = False

    def apply(self, apps: Iterable[AppConfig]) -> int:
        """Probe ``apps`` (those with probes on) from now; returns how many targets that makes.

        Apps whose probes were turned off (or whose desired state became ``callback: null``) have
        their endpoint findings resolved and their endpoint state cleared.
        """
        probed = {a.name: a for a in apps if a.probe.enabled and a.callback is not None}
        now = self.clock()
        for name in [n for n in self._apps if n not in probed]:
            state = self.store.states.get(name)
            if state is not None and state.endpoint != EndpointState():
                self.store.emit(retire(state.endpoint, state.identity, now))
                self.store.states[name] = replace(state, endpoint=EndpointState())
        self._apps = probed
        self._targets = plan(
            (a.name, a.callback.url if a.callback else None, a.probe) for a in probed.values()
        )
        if self._started:
            self.schedule.sync(self._targets)
        return len(self._targets)

    def start(self) -> None:
        self._started = True
        self.schedule.sync(self._targets)

    async def stop(self) -> None:
        self._started = False
        await self.schedule.stop()

    def on_result(self, target: ProbeTarget, result: ProbeResult) -> None:
        """One probe's result, handed to every app that shares its target (its line before their alerts)."""
        self.counts.count(result)
        log.info(
            "probe_finished",
            url=redact_url(result.url),
            apps=len(target.apps),
            up=result.up,
            phase=str(result.phase) if result.phase is not None else None,
            error=redact_text(result.error) or None,
            status=result.status,
            seconds=round(result.total, 3),
        )
        now = self.clock()
        for name in target.apps:
            app = self._apps.get(name)
            state = self.store.states.get(name)
            if app is None or state is None or app.callback is None or app.callback.url != result.url:
                continue  # a reload removed the app or changed its URL while the probe ran
            endpoint, events = probe_transition(
                state.endpoint, state.identity, result, app.probe, now, app.ignore
            )
            self.store.states[name] = replace(state, endpoint=endpoint)
            self.store.emit(events)

    def rows(self) -> Sequence[EndpointRow]:
        """The endpoint metrics' rows: apps with probes on that have been probed."""
        rows = []
        for name in self._apps:
            state = self.store.states.get(name)
            if state is None:
                continue
            row = EndpointRow.of(name, state.identity.sdkappid, state.endpoint.history)
            if row is not None:
                rows.append(row)
        return rows
