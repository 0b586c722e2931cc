"""Which probes to run and how many at once: one probe per shared URL, under the probes' own limit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from monitor.probe import probe
from monitor.probe_model import ProbeResult, ProbeSettings, StatusRange

ProbeFn = Callable[[str, ProbeSettings], Awaitable[ProbeResult]]
TargetKey = tuple[str, str, float, tuple[StatusRange, ...], bool, Path | None, str | None]

DEFAULT_CONCURRENCY = 8  # probes in flight at once, apart from the checks' limit and the vendor's rate


@dataclass(frozen=True)
class ProbeTarget:
    """One probe to run each ``settings.interval``, and the apps that read its result.

    Apps share a target when they probe the same URL the same way (method, timeout, expected
    statuses, private addresses, CA file); the shortest of their intervals is the target's.
    """

    url: str
    settings: ProbeSettings
    apps: tuple[str, ...]

    @property
    def key(self) -> TargetKey:
        return target_key(self.url, self.settings)


def target_key(url: str, settings: ProbeSettings) -> TargetKey:
    s = settings
    return (url, s.method, s.timeout, s.expect_status, s.allow_private, s.ca_file, s.ca_pem)


def plan(apps: Iterable[tuple[str, str | None, ProbeSettings]]) -> tuple[ProbeTarget, ...]:
    """The targets for ``(app name, desired URL, probe settings)`` triples, in first-seen order.

    Apps with probes off or no desired URL (``callback: null``) have no target.
    """
    grouped: dict[TargetKey, ProbeTarget] = {}
    for name, url, settings in apps:
        if not settings.enabled or not url:
            continue
        key = target_key(url, settings)
        seen = grouped.get(key)
        if seen is None:
            grouped[key] = ProbeTarget(url, settings, (name,))
            continue
        interval = min(seen.settings.interval, settings.interval)
        grouped[key] = ProbeTarget(url, replace(seen.settings, interval=interval), (*seen.apps, name))
    return tuple(grouped.values())


class ProbeRunner:
    """Runs targets with at most ``concurrency`` probes in flight; a target already running is joined,
    not started twice."""

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY, probe_fn: ProbeFn = probe) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._limit = asyncio.Semaphore(concurrency)
        self._probe = probe_fn
        self._running: dict[TargetKey, asyncio.Task[ProbeResult]] = {}
        self.started = 0  # probes started since creation, for tests and logs

    async def run(self, target: ProbeTarget) -> ProbeResult:
        task = self._running.get(target.key)
        if task is None:
            task = asyncio.create_task(self._run(target))
            self._running[target.key] = task
            task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    async def run_all(self, targets: Sequence[ProbeTarget]) -> dict[TargetKey, ProbeResult]:
        results = await asyncio.gather(*(self.run(t) for t in targets))
        return {t.key: r for t, r in zip(targets, results, strict=True)}

    def _finished(self, task: asyncio.Task[ProbeResult]) -> None:
        for key, running in list(self._running.items()):
            if running is task:
                del self._running[key]

    async def _run(self, target: ProbeTarget) -> ProbeResult:
        async with self._limit:
            self.started += 1
            return await self._probe(target.url, target.settings)
