"""A bounded outbox drained by one task: alerts leave the check path at once and go out with retries.

``put`` never blocks and never raises: when the queue is full the oldest item is dropped (and
counted), so a sink that is down costs memory bounded by the queue and nothing else. One task sends
batches in order, retrying a failed batch a bounded number of times with exponential backoff and
jitter; a batch that still fails is given up (and counted). Nothing leaves this module as an
exception: an unexpected one is logged and its batch counted as dropped.

``more`` (Alertmanager's periodic resend) is asked for items whenever the queue runs empty; they
join the same queue, so they keep their order with changes, but do not count against its size: they
repeat state the sink holds anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import structlog

log = structlog.get_logger("monitor.delivery")

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class DeliveryObserver(Protocol):
    """Where the outbox reports what it did (the daemon's metrics); ``sink`` is the sink's name."""

    def count_alerts_sent(self, sink: str, count: int) -> None: ...
    def count_alert_send_failures(self, sink: str, count: int) -> None: ...
    def count_alerts_dropped(self, sink: str, count: int) -> None: ...
    def set_alert_queue_length(self, sink: str, length: int) -> None: ...


class NoObserver:
    def count_alerts_sent(self, sink: str, count: int) -> None:
        pass

    def count_alert_send_failures(self, sink: str, count: int) -> None:
        pass

    def count_alerts_dropped(self, sink: str, count: int) -> None:
        pass

    def set_alert_queue_length(self, sink: str, length: int) -> None:
        pass


@dataclass(frozen=True)
class Attempt:
    """How one send went; ``problem`` is shown in logs, so it must hold no secret (URLs redacted)."""

    ok: bool
    retry: bool = False  # worth trying again (network, timeout, 5xx, 429), not a refusal
    problem: str = ""


SENT = Attempt(ok=True)


@dataclass(frozen=True)
class Retry:
    """Bounded retries: attempt n waits a random time in [d/2, d], d = min(cap, base * 2**(n-1))."""

    attempts: int = 5
    base: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        full = min(self.cap, self.base * 2 ** (attempt - 1))
        return rng.uniform(full / 2, full)


class Outbox(Generic[T]):
    """One sink's queue and the task that empties it through ``send``."""

    def __init__(
        self,
        sink: str,
        send: Callable[[list[T]], Awaitable[Attempt]],
        *,
        size: int,
        batch: int = 1,
        observer: DeliveryObserver | None = None,
        retry: Retry | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        more: Callable[[], list[T]] | None = None,
    ) -> None:
        self.sink = sink
        self._send = send
        self._queue: deque[T] = deque()
        self.size = max(1, size)
        self._batch = max(1, batch)
        self._observer = observer or NoObserver()
        self._retry = retry or Retry()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._more = more  # items to send when the queue is empty (Alertmanager's resends)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        for report in (
            self._observer.count_alerts_sent,
            self._observer.count_alert_send_failures,
            self._observer.count_alerts_dropped,
            self._observer.set_alert_queue_length,
        ):
            report(sink, 0)  # every series exists from the start, so rate() sees the first increase

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, items: Iterable[T]) -> None:
        """Queue ``items`` without ever waiting; the oldest queued ones make room when it is full."""
        dropped = 0
        for item in items:
            if len(self._queue) >= self.size:
                self._queue.popleft()
                dropped += 1
            self._queue.append(item)
        if dropped:
            self._observer.count_alerts_dropped(self.sink, dropped)
            log.warning("alert_queue_full", sink=self.sink, dropped=dropped, size=self.size)
        self._report_length()
        self.poke()

    def resize(self, size: int) -> None:
        self.size = max(1, size)
        self.put(())  # drops the oldest beyond the new size

    def poke(self) -> None:
        """Wake the task (something is queued, or ``more`` may have something to send)."""
        self._idle.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Return once everything queued (and any resend asked for) has been dealt with."""
        await self._idle.wait()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"alerts-{self.sink}")

    async def stop(self, flush: float) -> None:
        """Give the queue up to ``flush`` seconds to empty, then stop; what is left counts as dropped."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), flush)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        left = len(self._queue) + self._in_flight
        self._queue.clear()
        self._in_flight = 0
        self._report_length()
        if left:
            self._observer.count_alerts_dropped(self.sink, left)
            log.warning("alerts_undelivered", sink=self.sink, alerts=left, reason="shutting down")

    def _report_length(self) -> None:
        self._observer.set_alert_queue_length(self.sink, len(self._queue))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                if self._queue:
                    batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
                    self._report_length()
                elif extra := self._extra():
                    self._queue.extend(extra)  # through the queue: sent in batches, in order
                    continue
                else:
                    break
                self._in_flight = len(batch)
                await self._deliver(batch)
                self._in_flight = 0
            if not self._wake.is_set():
                self._idle.set()

    def _extra(self) -> list[T]:
        if self._more is None:
            return []
        try:
            return self._more()
        except Exception:  # as in _deliver: logged, and the task goes on
            log.exception("alert_sink_error", sink=self.sink)
            return []

    async def _deliver(self, batch: list[T]) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self._send(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one sink must not stop its task, nor the daemon
                log.exception("alert_sink_error", sink=self.sink)
                result = Attempt(ok=False, retry=False, problem="internal error (logged)")
            if result.ok:
                self._observer.count_alerts_sent(self.sink, len(batch))
                return
            self._observer.count_alert_send_failures(self.sink, 1)
            if not result.retry or attempt >= self._retry.attempts:
                self._observer.count_alerts_dropped(self.sink, len(batch))
                log.error(
                    "alerts_undelivered",
                    sink=self.sink,
                    alerts=len(batch),
                    attempts=attempt,
                    error=result.problem,
                )
                return
            delay = self._retry.delay(attempt, self._rng)
            log.warning(
                "alert_send_failed",
                sink=self.sink,
                alerts=len(batch),
                attempt=attempt,
                error=result.problem,
                retry_in=round(delay, 3),
            )
            await self._sleep(delay)
