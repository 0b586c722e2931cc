"""Runs each probe target on its own interval in serve, apart from the checks and their scheduler."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from monitor.probe_model import ProbeResult
from monitor.probe_shared import ProbeRunner, ProbeTarget, TargetKey
from monitor.redact import redact_url

log = structlog.get_logger("monitor.probes")

FIRST_SPREAD = 5.0  # seconds over which the first probes after a start or reload are spread

OnResult = Callable[[ProbeTarget, ProbeResult], Awaitable[None] | None]


class ProbeSchedule:
    """One task per target: probe, hand the result on, wait the target's interval, again.

    ``sync`` makes the tasks match a new set of targets (after a load or reload): a target whose
    key and interval are unchanged keeps its task and its place; others start within FIRST_SPREAD
    seconds. ``wait`` is injected so that tests need not sleep.
    """

    def __init__(
        self,
        runner: ProbeRunner,
        on_result: OnResult,
        *,
        wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._runner = runner
        self._on_result = on_result
        self._wait = wait
        self._rng = rng or random.Random()
        self._tasks: dict[TargetKey, tuple[ProbeTarget, asyncio.Task[None]]] = {}

    @property
    def targets(self) -> tuple[ProbeTarget, ...]:
        return tuple(target for target, _ in self._tasks.values())

    def sync(self, targets: Iterable[ProbeTarget]) -> None:
        wanted = {t.key: t for t in targets}
        for key in [k for k in self._tasks if k not in wanted]:
            self._tasks.pop(key)[1].cancel()
        for key, target in wanted.items():
            running = self._tasks.get(key)
            if running is not None and running[0].settings.interval == target.settings.interval:
                self._tasks[key] = (target, running[1])  # new app list, same rhythm
                continue
            if running is not None:
                running[1].cancel()
            delay = self._rng.random() * min(FIRST_SPREAD, target.settings.interval)
            task = asyncio.create_task(self._loop(key, delay), name=f"probe {redact_url(target.url)}")
            task.add_done_callback(_report_failure)
            self._tasks[key] = (target, task)

    async def _loop(self, key: TargetKey, delay: float) -> None:
        await self._wait(delay)
        while key in self._tasks:
            target = self._tasks[key][0]
            result = await self._runner.run(target)
            current = self._tasks.get(key)
            if current is None:
                return
            outcome = self._on_result(current[0], result)
            if outcome is not None:
                await outcome
            await self._wait(target.settings.interval)

    async def stop(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _report_failure(task: asyncio.Task[Any]) -> None:
    """A probe loop must never die quietly: its failure is logged the moment it happens."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("probe_loop_failed", task=task.get_name(), error=type(error).__name__)
