"""Scheduling pieces: the shard hash, the rate limiter, APScheduler jobs over real timers, and clock steps."""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.config import AppConfig, load_config_text
from monitor.heap import collector_paused
from monitor.ratelimit import RateLimiter
from monitor.scheduler import Scheduler, jitter_for, shard_of
from tests.fakes import FakeTime, ShiftClock


def test_shards_split_apps_evenly_and_stably() -> None:
    ids = range(1400000000, 1400020000)
    counts = Counter(shard_of(i, 2) for i in ids)
    assert set(counts) == {0, 1}
    assert abs(counts[0] - counts[1]) < 0.03 * len(ids)
    # The same app lands in the same shard every time (no per-process hash seed).
    assert [shard_of(i, 5) for i in range(1, 50)] == [shard_of(i, 5) for i in range(1, 50)]
    assert shard_of(1400000001, 5) == shard_of(1400000001, 5)


def test_shard_count_one_keeps_everything() -> None:
    assert {shard_of(i, 1) for i in range(100)} == {0}


def test_jitter_is_a_tenth_of_the_interval_capped() -> None:
    assert jitter_for(10) == 1.0
    assert jitter_for(3600) == 5.0


async def test_rate_limiter_allows_a_burst_then_paces() -> None:
    fake = FakeTime()
    limiter = RateLimiter(10, burst=3, clock=fake.clock, sleep=fake.sleep)
    for _ in range(3):
        await limiter.acquire()
    assert fake.slept == []
    for _ in range(5):
        await limiter.acquire()
    assert len(fake.slept) == 5
    assert fake.now == pytest.approx(0.5)


async def test_rate_limiter_refills_with_time() -> None:
    fake = FakeTime()
    limiter = RateLimiter(100, burst=1, clock=fake.clock, sleep=fake.sleep)
    await limiter.acquire()
    fake.now += 1.0
    await limiter.acquire()
    assert fake.slept == []


async def test_rate_limiter_serves_concurrent_waiters_at_the_rate() -> None:
    fake = FakeTime()
    limiter = RateLimiter(20, burst=1, clock=fake.clock, sleep=fake.sleep)
    await asyncio.gather(*(limiter.acquire() for _ in range(21)))
    assert fake.now == pytest.approx(1.0)


async def test_rate_limiter_keeps_its_rate_when_sleeps_overshoot() -> None:
    """Real sleeps wake a little late; the bucket must credit that time, not lose it each wait."""
    fake = FakeTime()

    async def late_sleep(seconds: float) -> None:
        await fake.sleep(seconds + 0.002)

    limiter = RateLimiter(200, burst=20, clock=fake.clock, sleep=late_sleep)
    for _ in range(1001):
        await limiter.acquire()
    # 20 tokens at hand, 981 more at 200/s: 4.905 s. Losing 2 ms at every wait would take 6.9 s.
    assert fake.now == pytest.approx(4.905, abs=0.01)


def one_app(tmp_path: Path, interval: str = "60s") -> AppConfig:
    key = tmp_path / "key"
    key.write_text("k" * 32, encoding="utf-8")
    config = load_config_text(
        "version: 1\n"
        "defaults:\n"
        "  endpoint: http://127.0.0.1:9\n"
        f"  interval: {interval}\n"
        f"  secret_key_file: {key}\n"
        "  callback: null\n"
        "apps:\n"
        "  - {name: one, sdkappid: 1400000001}\n"
    )
    return config.apps[0]


async def test_a_wall_clock_step_moves_every_planned_check_by_the_step(tmp_path: Path) -> None:
    clocks = ShiftClock()
    planned: dict[str, float | None] = {}

    async def never(_app: AppConfig) -> None:
        raise AssertionError("no check is due in this test")

    scheduler = Scheduler(
        never,
        concurrency=1,
        on_planned=planned.__setitem__,
        wall=clocks,
        monotonic=time.monotonic,
    )
    scheduler.start()
    try:
        await scheduler.sync([one_app(tmp_path)], rate=200)
        first = planned["one"]
        assert first is not None
        clocks.offset = 0.4  # drift within the tolerance: nothing moves
        assert scheduler.undo_clock_step() == 0.0
        assert planned["one"] == first
        clocks.offset = -39.6  # the wall clock goes 40 s back (from the drifted 0.4)
        assert scheduler.undo_clock_step() == pytest.approx(-40.0, abs=0.05)
        assert planned["one"] == pytest.approx(first - 40.0, abs=0.05)
        clocks.offset = 560.4  # ... and then 10 minutes forward
        assert scheduler.undo_clock_step() == pytest.approx(600.0, abs=0.05)
        assert planned["one"] == pytest.approx(first + 560.0, abs=0.05)
        assert scheduler.steps == 2
    finally:
        await scheduler.shutdown(0.1)


async def test_apscheduler_looks_for_a_step_before_it_reads_its_plan(tmp_path: Path) -> None:
    """Pins the hook into APScheduler 3.x (``_process_jobs``): adding a job makes it plan again."""
    clocks = ShiftClock()

    async def never(_app: AppConfig) -> None:
        raise AssertionError("no check is due in this test")

    scheduler = Scheduler(never, concurrency=1, wall=clocks, monotonic=time.monotonic)
    scheduler.start()
    try:
        clocks.offset = -40.0
        await scheduler.sync([one_app(tmp_path)], rate=200)  # APScheduler plans again after a sync
        await asyncio.sleep(0.05)  # the wake-up runs on the loop
        assert scheduler.steps == 1
    finally:
        await scheduler.shutdown(0.1)


async def test_syncing_thousands_of_jobs_yields_to_the_loop_and_wakes_apscheduler_once(
    tmp_path: Path,
) -> None:
    """A big reload must not hold the event loop (probes) for the seconds it takes to add the jobs."""
    looks = 0

    def wall() -> float:
        nonlocal looks
        looks += 1  # APScheduler looked at its plan (the scheduler checks the clock first)
        return time.time()

    async def never(_app: AppConfig) -> None:
        raise AssertionError("no check is due in this test")

    app = one_app(tmp_path, interval="1h")
    apps = [replace(app, name=f"app-{i}", sdkappid=1400000000 + i) for i in range(2000)]
    scheduler = Scheduler(never, concurrency=1, wall=wall, rng=random.Random(7))  # first check at 0.6 s
    scheduler.start()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    running = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0.01)
        before = looks
        # A low rate spreads the first checks over the whole hour: none is due during the test.
        assert await scheduler.sync(apps, rate=0.01) == (2000, 0, 0)
        for _ in range(3):
            await asyncio.sleep(0)  # the wake-up queued by the resume runs
        assert ticks > 2  # the loop ran other work while the jobs were added
        assert looks - before == 1  # APScheduler planned once when resumed, not once per job
        ticks = 0
        assert await scheduler.sync(apps[:1], rate=0.01) == (0, 1999, 0)
        assert ticks > 2
    finally:
        running.cancel()
        await scheduler.shutdown(0.1)


def test_a_big_load_gets_no_full_collection_and_what_it_made_is_frozen() -> None:
    threshold = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        with collector_paused():
            assert gc.get_threshold()[:2] == threshold[:2]  # young passes go on as usual
            assert gc.get_threshold()[2] >= 10**9  # the full pass does not come
            kept = [[i] for i in range(1000)]
        assert gc.get_threshold() == threshold
        assert gc.get_freeze_count() >= frozen + len(kept)
    finally:
        gc.unfreeze()
