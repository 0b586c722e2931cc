"""Hostile neighbours: the daemon's web server bounds what a request may carry and how many pages
it renders at once, serves only GET (and HEAD) on its routes, and keeps answering /healthz while
another process floods /metrics or holds hundreds of half-sent requests open.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from monitor.simulator import Simulator
from monitor.web import CLIENT_MAX_SIZE
from tests.reliability.lab import FIGURES, Fleet, Leaks, SimServer, flood_in_a_process, lines_of
from tests.serve_helpers import Serve, running

pytestmark = pytest.mark.slow

ROUTES = ("/metrics", "/healthz", "/readyz", "/status", "/")
PROBE_EVERY = 0.05
PROBE_LIMIT = 1.0  # seconds: far under any liveness probe's timeout


@contextlib.asynccontextmanager
async def neighbourhood(tmp_path: Path, leaks: Leaks, apps: int) -> AsyncIterator[Serve]:
    """A running serve over ``apps`` apps checked every 5 s, each app checked once already."""
    sim = Simulator(seed=41)
    fleet = Fleet(sim, tmp_path, leaks, first_sdkappid=1400500000)
    for i in range(apps):
        fleet.add(f"neighbour-{i}", ("in_sync", "foreign", "missing")[i % 3])
    async with SimServer(sim, leaks) as server, running(fleet.write(server.url, interval="5s")) as serve:
        for name in fleet.apps:
            await serve.wait_checks(name, 1, after=0, within=30)
        yield serve
    leaks.output("serve stdout (hostile)", "\n".join(serve.raw))
    leaks.output("serve stderr (hostile)", "".join(serve.stderr))


async def probe(url: str, until: asyncio.Event) -> list[tuple[int, float]]:
    """GET ``url`` every PROBE_EVERY s, each on a new connection as a kubelet does: (status, seconds)."""
    results: list[tuple[int, float]] = []
    timeout = aiohttp.ClientTimeout(total=10)
    while not until.is_set():
        started = time.monotonic()
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            await response.read()
            results.append((response.status, time.monotonic() - started))
        await asyncio.sleep(PROBE_EVERY)
    return results


async def test_healthz_keeps_answering_while_another_process_floods_metrics(
    tmp_path: Path, leaks: Leaks
) -> None:
    async with neighbourhood(tmp_path, leaks, 300) as serve:
        await flood_while_probing(serve)


async def flood_while_probing(serve: Serve) -> None:
    mark = serve.mark
    done = asyncio.Event()
    prober = asyncio.create_task(probe(serve.url + "/healthz", done))
    try:
        counts = await flood_in_a_process(serve.url + "/metrics", seconds=4, clients=200)
    finally:
        done.set()
    probes = await prober
    checks_meanwhile = len(list(lines_of(serve.lines[mark:], "check", "check_error")))

    assert set(counts) <= {"200", "503"}, counts  # no error, no reset, no other status
    assert counts.get("503", 0) > 0, counts  # the bound was reached ...
    assert counts.get("200", 0) > 0, counts  # ... and scrapes still got through
    assert [status for status, _ in probes] == [200] * len(probes)
    latencies = [seconds for _, seconds in probes]
    assert len(latencies) >= 10
    assert max(latencies) < PROBE_LIMIT, latencies
    assert checks_meanwhile > 0  # the checks went on too
    status, _ = await serve.get("/metrics")
    assert status == 200
    FIGURES["/metrics flood"] = (
        f"200 clients for 4 s from another process: {counts.get('200', 0)} scrapes served, "
        f"{counts.get('503', 0)} refused with 503; /healthz {len(probes)} probes all 200, "
        f"median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
        f"{checks_meanwhile} checks ran meanwhile"
    )


async def test_only_small_get_and_head_requests_are_served(tmp_path: Path, leaks: Leaks) -> None:
    async with neighbourhood(tmp_path, leaks, 2) as serve, aiohttp.ClientSession() as session:
        for path in ROUTES:
            for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
                async with session.request(method, serve.url + path, data=b"x" * 100) as response:
                    assert response.status == 405, (method, path)
                    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD"}
            async with session.head(serve.url + path) as response:
                assert response.status in (200, 503 if path == "/readyz" else 200)

        big = b"x" * (CLIENT_MAX_SIZE + 1)
        async with session.get(serve.url + "/status", data=big) as response:
            assert response.status == 413

        async def chunks() -> AsyncIterator[bytes]:
            yield b"x" * 10

        async with session.get(serve.url + "/metrics", data=chunks()) as response:
            assert response.status == 413  # a body of unknown length
        async with session.get(serve.url + "/", headers={"X-Big": "y" * 65536}) as response:
            assert response.status in (400, 431)
        async with session.get(serve.url + "/" + "p" * 65536) as response:
            assert response.status in (400, 404, 414)
        async with session.get(serve.url + "/status", data=b"x" * 1000) as response:
            assert response.status == 200  # a small body is ignored, not refused
        async with session.get(serve.url + "/healthz") as response:
            assert response.status == 200


async def test_hundreds_of_half_sent_requests_do_not_block_the_probes(tmp_path: Path, leaks: Leaks) -> None:
    async with neighbourhood(tmp_path, leaks, 2) as serve:
        await hold_half_sent_requests(serve)


async def hold_half_sent_requests(serve: Serve) -> None:
    host, port = serve.url.removeprefix("http://").rsplit(":", 1)
    writers = []
    try:
        for _ in range(500):
            _reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: neighbour\r\nX-Slow: ")  # never finished
            writers.append(writer)
        done = asyncio.Event()
        prober = asyncio.create_task(probe(serve.url + "/healthz", done))
        await asyncio.sleep(1.0)
        done.set()
        probes = await prober
        assert probes
        assert all(status == 200 and seconds < PROBE_LIMIT for status, seconds in probes), probes
        status, _ = await serve.get("/metrics")
        assert status == 200
    finally:
        for writer in writers:
            writer.close()
    assert serve.proc.returncode is None
