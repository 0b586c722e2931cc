"""Fakes tests inject in place of time: settable and shifted clocks, sleeps that record or wait for ticks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class FakeClock:
    """A settable clock. ``step`` is added after each reading (a clock that moves on its own); ``read``
    is set once something has looked at it (for the simulator: a request arrived)."""

    def __init__(self, now: float = 0.0, step: float = 0.0) -> None:
        self.now = now
        self.step = step
        self.read = asyncio.Event()

    def __call__(self) -> float:
        self.read.set()
        now = self.now
        self.now += self.step
        return now


class ShiftClock:
    """Real wall-clock time plus an offset the test moves: a clock step, or every UserSig expired."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Sleeps:
    """Records each delay and returns at once; ``then`` runs on each call (e.g. to clear a fault). A
    wait of exactly ``forever`` (a resend timer) never returns: the tests ask for resends themselves."""

    def __init__(self, forever: float | None = None, then: Callable[[], None] | None = None) -> None:
        self.delays: list[float] = []
        self.forever = forever
        self.then = then

    async def __call__(self, seconds: float) -> None:
        if seconds == self.forever:
            await asyncio.Event().wait()
        self.delays.append(seconds)
        if self.then is not None:
            self.then()


class FakeTime:
    """A clock and a sleep that moves it: waits cost no real time and add up exactly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Ticks:
    """A wait that returns only when the test gives a tick; each wait is recorded."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.ticks: asyncio.Queue[None] = asyncio.Queue()

    async def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self.ticks.get()
