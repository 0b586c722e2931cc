"""A token bucket shared by every request of the process (limits.requests_per_second)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    """A token bucket shared by every request of the process: ``rate`` per second, bursts of ``burst``.

    Waiters are served in arrival order; the clock and the sleep are injected for tests.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1 - 1e-9:  # float rounding must not cost another tiny sleep
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                # A sleep overshoots a little; the refill above credits the overshoot, so the
                # bucket delivers its full rate instead of losing the extra time at every wait.
                await self._sleep((1 - self._tokens) / self.rate)
