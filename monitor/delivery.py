"""A bounded outbox drained by one task: alerts leave the check path at once and go out with retries.

``put`` never blocks and never raises: when the queue is full the oldest item is dropped (and
counted), so a sink that is down costs memory bounded by the queue and nothing else. One task sends
batches in order, retrying a failed batch a bounded number of times with exponential backoff and
jitter, or after what the receiver's ``Retry-After`` asks (capped); a batch that still fails is
given up (and counted). Nothing leaves this module as an exception: an unexpected one is logged and
its batch counted as dropped.

``more`` (Alertmanager's periodic resend) is asked for items whenever the queue runs empty. Resends
never enter the queue: they wait beside it, go out only while it is empty (a failed one is not
retried once new items wait), and an item put with the same ``key`` replaces its pending resend (so
a resend never follows a newer word on the same alert). They repeat state the sink holds anyway, so
they are never counted as dropped.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
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
    retry_after: float | None = None  # seconds the receiver asked to wait (Retry-After), if it did


SENT = Attempt(ok=True)


@dataclass(frozen=True)
class Retry:
    """Bounded retries: attempt n waits a random time in [d/2, d], d = min(cap, base * 2**(n-1)), or
    longer when the receiver asked for it with Retry-After (at most ``retry_after_cap``)."""

    attempts: int = 5
    base: float = 1.0
    cap: float = 30.0
    retry_after_cap: float = 60.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        full = min(self.cap, self.base * 2 ** (attempt - 1))
        backoff = rng.uniform(full / 2, full)
        if retry_after is None:
            return backoff
        return max(backoff, min(retry_after, self.retry_after_cap))


_DELAY_SECONDS = re.compile(r"[0-9]{1,10}")
_MAX_HTTP_DATE = 64  # "Sun, 06 Nov 1994 08:49:37 GMT" is 29 characters


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """What a ``Retry-After`` header asks, in seconds from ``now``: delay-seconds or an HTTP-date
    (a date in the past asks for no wait); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    if len(value) > _MAX_HTTP_DATE:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's unknown zone; an HTTP-date is always GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


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
        key: Callable[[T], Hashable] | None = None,
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
        self._more = more  # items to send again when the queue is empty (Alertmanager's resends)
        self._key = key or id
        self._resends: dict[Hashable, T] = {}  # the resend being sent, by key, never in the queue
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._hurry = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0  # queued items being sent (a resend batch is not counted)
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
            if self._resends:
                self._resends.pop(self._key(item), None)  # this item is newer than its resend
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

    def hurry(self) -> None:
        """End the flush of a ``stop`` now (or make the next one end at once)."""
        self._hurry.set()

    async def stop(self, flush: float) -> None:
        """Give the queue up to ``flush`` seconds to empty (less if hurried), then stop; what is left
        of the queue counts as dropped, a resend left unsent does not."""
        task, self._task = self._task, None
        if task is None:
            return
        waits = [asyncio.ensure_future(self._idle.wait()), asyncio.ensure_future(self._hurry.wait())]
        try:
            await asyncio.wait(waits, timeout=flush, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            task.cancel()
            await asyncio.gather(task, *waits, return_exceptions=True)
        left = len(self._queue) + self._in_flight
        self._queue.clear()
        self._resends.clear()
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
                    self._in_flight = len(batch)
                    await self._deliver(batch, resend=False)
                    self._in_flight = 0
                elif self._resends or self._ask_more():
                    keys = list(self._resends)[: self._batch]
                    batch = [self._resends.pop(k) for k in keys]
                    if not await self._deliver(batch, resend=True):
                        self._resends.clear()  # the sink is down: the next resend repeats it all
                else:
                    break
            if not self._wake.is_set():
                self._idle.set()

    def _ask_more(self) -> bool:
        if self._more is None:
            return False
        try:
            extra = self._more()
        except Exception:  # as in _deliver: logged, and the task goes on
            log.exception("alert_sink_error", sink=self.sink)
            return False
        for item in extra:
            self._resends[self._key(item)] = item  # the last word on one key wins, in first place
        return bool(self._resends)

    async def _deliver(self, batch: list[T], *, resend: bool) -> bool:
        """Send ``batch`` with retries; True once it was accepted."""
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
                return True
            self._observer.count_alert_send_failures(self.sink, 1)
            # A resend is not worth keeping new alerts waiting: they go first, the next resend repeats.
            if not result.retry or attempt >= self._retry.attempts or (resend and self._queue):
                if resend:  # repeats of what the sink was told already: nothing is lost
                    log.warning(
                        "alert_resend_failed",
                        sink=self.sink,
                        alerts=len(batch),
                        attempts=attempt,
                        error=result.problem,
                    )
                    return False
                self._observer.count_alerts_dropped(self.sink, len(batch))
                log.error(
                    "alerts_undelivered",
                    sink=self.sink,
                    alerts=len(batch),
                    attempts=attempt,
                    error=result.problem,
                )
                return False
            delay = self._retry.delay(attempt, self._rng, result.retry_after)
            log.warning(
                "alert_send_failed",
                sink=self.sink,
                alerts=len(batch),
                attempt=attempt,
                error=result.problem,
                retry_in=round(delay, 3),
            )
            await self._sleep(delay)
