"""APScheduler wiring: one job per app, jitter, a spread start, bounded concurrency, sharding."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import AppConfig

log = structlog.get_logger("monitor.scheduler")

MAX_JITTER = 5.0  # seconds; a check starts up to 10% of its interval late, at most this much


def shard_of(sdkappid: int, count: int) -> int:
    """The shard an app belongs to: a hash that is the same in every process and every release."""
    digest = hashlib.sha256(str(sdkappid).encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") % count


def in_shard(apps: Iterable[AppConfig], index: int, count: int) -> tuple[AppConfig, ...]:
    return tuple(app for app in apps if count == 1 or shard_of(app.sdkappid, count) == index)


def jitter_for(interval: float) -> float:
    return min(interval * 0.1, MAX_JITTER)


class Scheduler:
    """Runs ``run_check(app)`` for every app on its interval, bounded by a semaphore.

    The first check of each app is placed in its own slot of the first ``spread`` seconds so that a
    restart with thousands of apps does not fire them all at once.
    """

    def __init__(
        self,
        run_check: Callable[[AppConfig], Awaitable[None]],
        *,
        concurrency: int,
        on_planned: Callable[[str, float | None], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._run_check = run_check
        self._semaphore = asyncio.Semaphore(concurrency)
        self._on_planned = on_planned or (lambda _name, _when: None)
        self._rng = rng or random.Random()
        self._apps: dict[str, AppConfig] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1},
        )

    @property
    def running_checks(self) -> int:
        return len(self._tasks)

    def set_concurrency(self, concurrency: int) -> None:
        # A new semaphore applies to checks started from now on; running ones finish under the old.
        self._semaphore = asyncio.Semaphore(concurrency)

    def start(self) -> None:
        self._scheduler.start()

    def sync(self, apps: Iterable[AppConfig], *, rate: float) -> tuple[int, int, int]:
        """Make the jobs match ``apps``: add new ones, drop removed ones, reschedule changed ones.

        Returns (added, removed, rescheduled). An app whose interval is unchanged keeps its place.
        """
        wanted = {app.name: app for app in apps}
        removed = [name for name in self._apps if name not in wanted]
        for name in removed:
            self._scheduler.remove_job(name)
            del self._apps[name]
            self._on_planned(name, None)
        new = [app for name, app in wanted.items() if name not in self._apps]
        # The first checks of new apps are spread evenly (a random point in each app's slot) over
        # long enough that they arrive at 80% of the rate limit: at exactly the limit, a queue
        # would build up at every interval and checks would run late.
        spread = max(5.0, len(new) / (0.8 * rate))
        slot = {app.name: i for i, app in enumerate(new)}
        added = rescheduled = 0
        now = datetime.now(UTC)
        for name, app in wanted.items():
            old = self._apps.get(name)
            self._apps[name] = app
            if old is not None and old.interval == app.interval:
                continue
            window = min(spread, app.interval)
            index = slot.get(name, self._rng.randrange(max(1, len(new))))
            offset = (index + self._rng.random()) * window / max(1, len(new))
            first = now + timedelta(seconds=offset)
            trigger = IntervalTrigger(
                seconds=app.interval, jitter=jitter_for(app.interval), start_date=first, timezone=UTC
            )
            self._scheduler.add_job(
                self._job,
                trigger=trigger,
                args=(name,),
                id=name,
                name=name,
                replace_existing=True,
                misfire_grace_time=max(1, int(app.interval)),
                next_run_time=first,
            )
            self._on_planned(name, first.timestamp())
            if old is None:
                added += 1
            else:
                rescheduled += 1
        return added, len(removed), rescheduled

    async def _job(self, name: str) -> None:
        app = self._apps.get(name)
        if app is None or self._closing:
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            async with self._semaphore:
                if not self._closing:
                    await self._run_check(app)
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # Cancelled by shutdown() after its grace: the end we asked for, not an error. Raising
            # would make APScheduler log it as a job failure with a traceback.
        finally:
            self._tasks.discard(task)
            job = self._scheduler.get_job(name) if not self._closing else None
            nxt = job.next_run_time if job is not None else None
            self._on_planned(name, nxt.timestamp() if nxt is not None else None)

    async def shutdown(self, grace: float) -> None:
        """Stop starting checks; give running ones ``grace`` seconds, then cancel them."""
        self._closing = True
        if self._scheduler.running:
            # Not shutdown() yet: APScheduler's asyncio executor cancels every running job at once.
            self._scheduler.pause()
        pending = set(self._tasks)
        if pending:
            _done, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
                log.info("checks_cancelled", count=len(still))
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
