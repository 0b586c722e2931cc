"""APScheduler wiring: one job per app, jitter, a spread start, bounded concurrency, sharding, and
steps of the wall clock undone.

APScheduler 3.x plans on wall-clock datetimes, so a step of the clock (an NTP correction, a restored
VM snapshot) moves every planned check with it: 40 s back means 40 s without a check, an hour back
an hour blind. Before APScheduler looks at its plan, the scheduler compares how far the wall clock
and the monotonic clock moved since it last looked; when they disagree by more than
``STEP_TOLERANCE``, every job's next run is moved by the step, so each app keeps its interval as
the monotonic clock measures it. Times shown and exported stay wall-clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import AppConfig

log = structlog.get_logger("monitor.scheduler")

MAX_JITTER = 5.0  # seconds; a check starts up to 10% of its interval late, at most this much
STEP_TOLERANCE = 1.0  # seconds the wall clock may drift from the monotonic one before it is a step
CHUNK = 100  # jobs added or removed between two yields to the event loop (a few ms of work)


class _Watched(AsyncIOScheduler):  # type: ignore[misc]  # APScheduler ships no types
    """AsyncIOScheduler that calls ``before_planning()`` each time, just before it reads its plan.

    ``_process_jobs`` is APScheduler 3.x's one entry point for that (pinned below 4 in pyproject;
    tests/test_scheduler.py fails if it stops being called).
    """

    def __init__(self, before_planning: Callable[[], object], **options: Any) -> None:
        super().__init__(**options)
        self._before_planning = before_planning

    def _process_jobs(self) -> float | None:
        self._before_planning()
        wait: float | None = super()._process_jobs()
        return wait


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
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run_check = run_check
        self._semaphore = asyncio.Semaphore(concurrency)
        self._on_planned = on_planned or (lambda _name, _when: None)
        self._rng = rng or random.Random()
        self._apps: dict[str, AppConfig] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._wall = wall
        self._monotonic = monotonic
        self._seen = (wall(), monotonic())
        self.steps = 0  # clock steps seen and undone
        self._scheduler = _Watched(
            self.undo_clock_step,
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

    async def sync(self, apps: Iterable[AppConfig], *, rate: float) -> tuple[int, int, int]:
        """Make the jobs match ``apps``: add new ones, drop removed ones, reschedule changed ones.

        Returns (added, removed, rescheduled). An app whose interval is unchanged keeps its place.
        Tens of thousands of jobs take seconds to add or remove: the work yields to the event loop
        every CHUNK jobs, and APScheduler is paused meanwhile, so that it wakes up once at the end
        instead of once per job (each wake-up a pass over its plan, all queued on the loop at once).
        """
        pause = self._scheduler.state == STATE_RUNNING
        if pause:
            self._scheduler.pause()
        try:
            return await self._sync(apps, rate)
        finally:
            if pause and not self._closing:
                self._scheduler.resume()

    async def _sync(self, apps: Iterable[AppConfig], rate: float) -> tuple[int, int, int]:
        wanted = {app.name: app for app in apps}
        removed = [name for name in self._apps if name not in wanted]
        for i, name in enumerate(removed, 1):
            if self._closing:
                return 0, 0, 0
            self._scheduler.remove_job(name)
            del self._apps[name]
            self._on_planned(name, None)
            if i % CHUNK == 0:
                await asyncio.sleep(0)
        new = [app for name, app in wanted.items() if name not in self._apps]
        # The first checks of new apps are spread evenly (a random point in each app's slot) over
        # long enough that they arrive at 80% of the rate limit: at exactly the limit, a queue
        # would build up at every interval and checks would run late.
        spread = max(5.0, len(new) / (0.8 * rate))
        slot = {app.name: i for i, app in enumerate(new)}
        added = rescheduled = 0
        now = datetime.now(UTC)
        for name, app in wanted.items():
            if self._closing:
                break
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
            if (added + rescheduled) % CHUNK == 0:
                await asyncio.sleep(0)
        return added, len(removed), rescheduled

    def undo_clock_step(self) -> float:
        """Move every planned check by the wall clock's step since the last look; returns the step."""
        if self._scheduler.state != STATE_RUNNING:
            return 0.0  # paused (a reload, the shutdown): looked at once it runs again
        wall, mono = self._wall(), self._monotonic()
        step = (wall - self._seen[0]) - (mono - self._seen[1])
        self._seen = (wall, mono)
        if abs(step) < STEP_TOLERANCE:
            return 0.0
        self.steps += 1
        shift = timedelta(seconds=step)
        jobs = self._scheduler.get_jobs()
        log.warning("clock_step", seconds=round(step, 3), rescheduled=len(jobs))
        self._scheduler.pause()  # no wake-up per job moved: one when resumed
        try:
            for job in jobs:
                if job.next_run_time is not None:
                    moved = job.next_run_time + shift
                    self._scheduler.modify_job(job.id, next_run_time=moved)
                    self._on_planned(job.id, moved.timestamp())
        finally:
            self._scheduler.resume()
        return step

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
