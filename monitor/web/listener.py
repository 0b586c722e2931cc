"""The listening socket: a deadline for request headers, a cap on open connections, a short backlog, and
accept errors counted and logged at most once a minute instead of once per attempt.

A client that connects and then sends nothing, or half a header, holds a file descriptor for as long
as the server lets it. aiohttp closes an idle keep-alive connection after ``keepalive_timeout``, but
how it treats a connection that never completes its first request depends on its version; this
module closes every connection whose request header is not complete ``HEADER_TIMEOUT`` seconds after
it was accepted, and refuses (closes at once) connections beyond ``MAX_CONNECTIONS``. When the process
runs out of descriptors anyway, asyncio reports every failed ``accept()`` through the loop's exception
handler, with a traceback; ``AcceptErrors`` turns that into a counter and one log line a minute.
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("monitor.web")

HEADER_TIMEOUT = 10.0  # s from accept to the end of the first request header
KEEPALIVE_TIMEOUT = 15.0  # s an idle keep-alive connection stays open (aiohttp closes it)
BACKLOG = 128  # aiohttp's own default: a longer queue only holds more clients nobody will serve soon
MAX_CONNECTIONS = 1000  # open at once; at most half the process's file descriptors (see connection_cap)
LOG_INTERVAL = 60.0  # s between two log lines about refused connections or failed accepts

_END_OF_HEADER = b"\r\n\r\n"
_ACCEPT_MESSAGE = "socket.accept() out of system resource"


def connection_cap(limit: int = MAX_CONNECTIONS) -> int:
    """``limit``, or half the soft limit on open files when that is lower: checks, secret reads and
    the Tencent API need descriptors too."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limit
    return max(1, min(limit, soft // 2))


class _Throttled:
    """Calls ``emit(count)`` at most once per ``interval`` with the number of events since the last."""

    def __init__(self, emit: Callable[[int], None], interval: float, clock: Callable[[], float]) -> None:
        self._emit = emit
        self._interval = interval
        self._clock = clock
        self._pending = 0
        self._next = float("-inf")

    def __call__(self) -> None:
        self._pending += 1
        now = self._clock()
        if now >= self._next:
            self._next = now + self._interval
            count, self._pending = self._pending, 0
            self._emit(count)


class ConnectionGuard:
    """A protocol factory around aiohttp's: caps open connections and enforces the header deadline."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        *,
        max_connections: int,
        header_timeout: float = HEADER_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open = 0
        self.refused = 0
        self.expired = 0
        self._log_refused = _Throttled(self._refused_line, LOG_INTERVAL, clock)

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    def _refused_line(self, count: int) -> None:
        log.warning(
            "connections_refused",
            open=self.open,
            cap=self.max_connections,
            refused=count,
            note=f"too many open connections; logged at most once every {LOG_INTERVAL:g}s",
        )


class _Guarded(asyncio.Protocol):
    """One connection: refused beyond the cap, closed if its first header is late, else aiohttp's."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        guard = self._guard
        if guard.open >= guard.max_connections:
            guard.refused += 1
            guard._log_refused()
            transport.abort()
            return
        guard.open += 1
        self._transport = transport
        self._deadline = asyncio.get_running_loop().call_later(guard.header_timeout, self._expire)
        self._inner = self._guard._factory()
        self._inner.connection_made(transport)

    def _expire(self) -> None:
        self._deadline = None
        if self._transport is not None:
            self._guard.expired += 1
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None:
            window = self._tail + data
            if _END_OF_HEADER in window:
                self._deadline.cancel()
                self._deadline = None
                self._tail = b""
            else:
                self._tail = window[-(len(_END_OF_HEADER) - 1) :]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._inner is not None:
            self._guard.open -= 1
            inner, self._inner, self._transport = self._inner, None, None
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class AcceptErrors:
    """The loop's exception handler: failed accepts are counted (``count()``) and logged at most once a
    minute, without a traceback; every other report goes to ``fallback`` (asyncio's default handler)."""

    def __init__(
        self,
        count: Callable[[], None],
        *,
        fallback: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = count
        self._fallback = fallback
        self._last_error = ""
        self._log = _Throttled(self._line, LOG_INTERVAL, clock)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != _ACCEPT_MESSAGE:
            if self._fallback is not None:
                self._fallback(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        exc = context.get("exception")
        code = exc.errno if isinstance(exc, OSError) and exc.errno else None
        self._last_error = f"{errno.errorcode.get(code, '')} {os.strerror(code)}".strip() if code else "?"
        self._count()
        self._log()

    def _line(self, count: int) -> None:
        log.error(
            "accept_failed",
            error=self._last_error,
            failures=count,
            note=f"the HTTP server cannot accept connections; logged at most once every {LOG_INTERVAL:g}s",
        )


async def listen(
    factory: Callable[[], asyncio.Protocol], host: str, port: int, *, max_connections: int
) -> tuple[asyncio.Server, ConnectionGuard]:
    """Listen on ``host:port`` with aiohttp's protocol ``factory`` (``AppRunner.server``) behind a guard."""
    guard = ConnectionGuard(factory, max_connections=max_connections)
    server = await asyncio.get_running_loop().create_server(guard, host, port, backlog=BACKLOG)
    return server, guard
