"""Scheduling pieces: the shard hash, the rate limiter, and APScheduler jobs over real timers."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from monitor.ratelimit import RateLimiter
from monitor.scheduler import jitter_for, shard_of


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


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


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
