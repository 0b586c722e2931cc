"""Memory and scrape cost of ``serve`` at N apps, measured after its first full pass.

Memory is VmRSS of the serve process once every app has a ``last_check`` (and VmHWM, the peak, at
the end). A scrape is timed from this process over loopback (request sent to last byte read) in a
worker thread, while /healthz is requested every 10 ms: the worst /healthz latency during a scrape is
the equivalent of a 10 ms ticker inside the daemon (the daemon has none), since a blocked event loop
answers neither. The comparison renders the same samples with ``prometheus_client.generate_latest``
in this process, from a registry rebuilt from the scraped text.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import Fleet, Serve, Workdir, median, ping_while, serve, simulator
from bench.report import Section

RSS_TARGETS_MB = {100: 60, 10_000: 120}
SCRAPE_RATIO_TARGET = 1.1
LAG_TARGET_MS = 100


class _Replay:
    """A collector that yields fixed metric families (parsed from a scrape)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _fetch(url: str, path: str, headers: dict[str, str]) -> tuple[float, bytes]:
    """GET in a fresh connection; returns (seconds from sending to the last byte, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    try:
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {response.status}")
    return seconds, body


async def _scrape_with_pings(
    session: aiohttp.ClientSession, daemon: Serve, headers: dict[str, str]
) -> tuple[float, bytes, list[float]]:
    scrape = asyncio.ensure_future(asyncio.to_thread(_fetch, daemon.url, "/metrics", headers))
    pings = await ping_while(session, daemon.url, scrape)
    seconds, body = await scrape
    return seconds, body, pings


def _generate_latest_seconds(text: str, runs: int) -> tuple[float, bool]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Replay(list(text_string_to_metric_families(text))))
    times = []
    rendered = b""
    for _ in range(runs):
        started = time.perf_counter()
        rendered = generate_latest(registry)
        times.append(time.perf_counter() - started)
    return median(times), rendered == text.encode()


async def measure(
    section: Section,
    workdir: Workdir,
    sizes: Sequence[int],
    *,
    memory: bool,
    scrape: bool,
    scrapes: int,
    interval: float = 60.0,
) -> None:
    sizes_done: dict[int, dict[str, Any]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for n in sizes:
            fleet = Fleet(n)
            async with simulator(workdir, fleet, session, label=f"{section.name}-sim-{n}") as sim:
                config = workdir.write_config(
                    fleet, f"{section.name}-{n}", endpoint=sim.url, interval=f"{interval:g}s"
                )
                async with serve(workdir, config, session, label=f"{section.name}-serve-{n}") as daemon:
                    started = time.monotonic()
                    await sim.wait_all_seen(fleet, within=n / 200 + 60)
                    await daemon.wait_first_pass(fleet, within=30)
                    first_pass = time.monotonic() - started
                    raw: dict[str, Any] = {"first_pass_seconds": round(first_pass, 1)}
                    if memory:
                        await asyncio.sleep(1.0)
                        raw["after_first_pass_kib"] = daemon.child.memory_kib()
                        rss = raw["after_first_pass_kib"]["VmRSS"] * 1024 / 1e6
                        target = RSS_TARGETS_MB.get(n)
                        section.add(
                            n,
                            "serve resident memory after the first full pass (VmRSS)",
                            rss,
                            "MB",
                            target=f"< {target} MB" if target else "",
                            met=(rss < target) if target else None,
                            digits=1,
                        )
                    if scrape:
                        raw["scrape"] = await _scrape(section, n, session, daemon, scrapes)
                    raw["end_kib"] = daemon.child.memory_kib()
                    sizes_done[n] = raw
                    section.raw[f"n={n}"] = raw
            if memory and scrape:
                end, peak = raw["end_kib"]["VmRSS"] * 1024 / 1e6, raw["end_kib"]["VmHWM"] * 1024 / 1e6
                section.add(
                    n, f"serve resident memory after {2 * scrapes} scrapes (VmRSS)", end, "MB", digits=1
                )
                section.add(n, "serve peak resident memory (VmHWM)", peak, "MB", digits=1)
    if memory and 0 in sizes and max(sizes) > 0:
        top = max(sizes)
        rss = {k: v["after_first_pass_kib"]["VmRSS"] for k, v in sizes_done.items()}
        per_app = (rss[top] - rss[0]) * 1024 / top / 1000
        section.add(top, "resident memory per app ((RSS at N - RSS at 0) / N)", per_app, "kB", digits=1)


async def _scrape(
    section: Section, n: int, session: aiohttp.ClientSession, daemon: Serve, runs: int
) -> dict[str, Any]:
    idle = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(1.0, idle.set_result, None)
    idle_pings = await ping_while(session, daemon.url, idle)
    plain: list[float] = []
    zipped: list[float] = []
    pings: list[float] = []
    body = b""
    for _ in range(runs):
        seconds, body, lat = await _scrape_with_pings(session, daemon, {"Accept-Encoding": "identity"})
        plain.append(seconds)
        pings += lat
        seconds, zbody, lat = await _scrape_with_pings(session, daemon, {"Accept-Encoding": "gzip"})
        zipped.append(seconds)
        pings += lat
    text = body.decode()
    samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    reference, identical = await asyncio.to_thread(_generate_latest_seconds, text, runs)
    gzip_reference = reference + await asyncio.to_thread(_gzip_seconds, body)
    scrape_s = median(plain)
    ratio = scrape_s / reference
    lag_ms = max(pings) * 1000
    at_target = n >= 10_000
    section.add(n, "samples in /metrics", samples)
    section.add(n, f"/metrics time, plain text (median of {runs})", scrape_s * 1000, "ms", digits=1)
    section.add(n, "generate_latest on the same samples (median)", reference * 1000, "ms", digits=1)
    section.add(
        n,
        "/metrics time / generate_latest time",
        ratio,
        target=f"<= {SCRAPE_RATIO_TARGET}" if at_target else "",
        met=(ratio <= SCRAPE_RATIO_TARGET) if at_target else None,
        digits=2,
    )
    section.add(n, f"/metrics time, gzip (median of {runs})", median(zipped) * 1000, "ms", digits=1)
    section.add(n, "generate_latest + gzip.compress, same samples", gzip_reference * 1000, "ms", digits=1)
    section.add(
        n,
        "healthz latency during scrape (worst; = event-loop lag)",
        lag_ms,
        "ms",
        target=f"< {LAG_TARGET_MS} ms" if at_target else "",
        met=(lag_ms < LAG_TARGET_MS) if at_target else None,
        digits=1,
    )
    section.add(n, "healthz latency with no scrape (worst of 1 s)", max(idle_pings) * 1000, "ms", digits=1)
    return {
        "plain_seconds": plain,
        "gzip_seconds": zipped,
        "bytes": len(body),
        "gzip_bytes": len(zbody),
        "generate_latest_seconds": reference,
        "generate_latest_identical": identical,
        "pings_during_scrape": len(pings),
        "ping_p50_ms": median(pings) * 1000,
        "ping_max_ms": lag_ms,
        "idle_ping_max_ms": max(idle_pings) * 1000,
    }


def _gzip_seconds(body: bytes) -> float:
    started = time.perf_counter()
    gzip.compress(body, compresslevel=6, mtime=0)
    return time.perf_counter() - started
