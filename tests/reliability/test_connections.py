"""Half-open HTTP clients: connections that never finish a request header are closed after a deadline,
connections beyond a cap are closed at once, and an accept() that fails for want of file descriptors
is counted and logged once in a while instead of once per attempt with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from tests.serve_helpers import config_yaml, running, write_keys

pytestmark = pytest.mark.slow

DEADLINE = 10.0  # seconds a client may take to send its first request header (the README says so)
PARTIAL = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def closed_after(reader: asyncio.StreamReader, opened: float) -> float:
    """Seconds from ``opened`` until the server closed the connection (EOF or reset)."""
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass
    return time.monotonic() - opened


async def test_clients_that_never_finish_a_header_are_closed_after_the_deadline(tmp_path: Path) -> None:
    write_keys(tmp_path / "keys", ())
    config = tmp_path / "monitor.yaml"
    config.write_text(config_yaml("http://127.0.0.1:9", tmp_path / "keys", (), interval="1h"))
    async with running(config) as serve:
        host, port = serve.url.removeprefix("http://").rsplit(":", 1)
        opened = time.monotonic()
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for i in range(60):
            reader, writer = await asyncio.open_connection(host, int(port))
            if i % 2:
                writer.write(PARTIAL)  # half a header; the other half sends nothing at all
            held.append((reader, writer))
        status, _ = await serve.get("/healthz")  # a client that finishes its header is served
        assert status == 200
        closed = await asyncio.wait_for(
            asyncio.gather(*(closed_after(reader, opened) for reader, _ in held)), DEADLINE + 10
        )
        for _, writer in held:
            writer.close()
    assert min(closed) >= DEADLINE - 1, closed  # not cut short ...
    assert max(closed) < DEADLINE + 5, closed  # ... and not left open


@contextlib.asynccontextmanager
async def guarded_app(max_connections: int) -> AsyncIterator[tuple[str, int, Any]]:
    """The daemon's listener around a one-route aiohttp app, in this process."""
    from monitor.web.listener import listen

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    assert runner.server is not None
    server, guard = await listen(runner.server, "127.0.0.1", 0, max_connections=max_connections)
    try:
        yield "127.0.0.1", server.sockets[0].getsockname()[1], guard
    finally:
        server.close()
        await runner.cleanup()


async def test_connections_beyond_the_cap_are_closed_at_once() -> None:
    async with guarded_app(max_connections=3) as (host, port, guard):
        opened = time.monotonic()
        held = [await asyncio.open_connection(host, port) for _ in range(5)]
        refused = await asyncio.wait_for(
            asyncio.gather(*(closed_after(reader, opened) for reader, _ in held[3:])), 5
        )
        assert max(refused) < 2
        assert (guard.open, guard.refused) == (3, 2)
        for _, writer in held:
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.1)  # the server sees the three close
        async with aiohttp.ClientSession() as session, session.get(f"http://{host}:{port}/") as response:
            assert response.status == 200  # room again once they are gone


@contextlib.contextmanager
def no_descriptors_left() -> Iterator[None]:
    """Lower this process's open-file limit to what is open now, fill every free number below it,
    and put everything back on exit: the next socket the server accepts fails with EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    top = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1, hard))
    try:
        with pytest.raises(OSError, match="Too many open files"):  # noqa: PT012 - fill until it says so
            while True:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_failed_accepts_are_counted_and_logged_once_not_once_per_attempt() -> None:
    from monitor.web.listener import AcceptErrors

    loop = asyncio.get_running_loop()
    counted: list[int] = []
    others: list[dict[str, Any]] = []
    got_one = asyncio.Event()

    def count() -> None:
        counted.append(1)
        got_one.set()

    previous = loop.get_exception_handler()
    loop.set_exception_handler(AcceptErrors(count, fallback=lambda _loop, ctx: others.append(ctx)))
    clients = [socket.socket() for _ in range(20)]  # made before the limit: connecting needs no new fd
    for client in clients:
        client.setblocking(False)
    try:
        async with guarded_app(max_connections=100) as (host, port, _guard):
            with capture_logs() as logs, no_descriptors_left():
                for client in clients:
                    with contextlib.suppress(BlockingIOError):
                        client.connect((host, port))
                await asyncio.wait_for(got_one.wait(), 5)
                await asyncio.sleep(0.3)  # asyncio retries the accept a second later, and again
    finally:
        for client in clients:
            client.close()
        loop.set_exception_handler(previous)
    failed = [line for line in logs if line["event"] == "accept_failed"]
    assert len(counted) > 1  # asyncio tries again and again within one turn of the loop
    assert len(failed) == 1, logs
    assert failed[0]["error"] == "EMFILE Too many open files"
    assert failed[0]["log_level"] == "error"
    assert others == []  # nothing went to asyncio's handler, which logs a traceback per attempt
