"""Schedule keeping: how close to its planned time each app's check actually reaches the API.

After the first full pass, /status is read once per interval: its ``next_check`` of each app is the
planned time of that app's next check (APScheduler's next run time, jitter included). The actual time
is when the simulator received that app's next request, read from the simulator's request log
(``/_sim/requests``, polled twice a second: it keeps the last 1,000). The delay therefore includes
waiting for the concurrency limit and the rate limit, which is what a user sees. A planned check with
no request within half an interval counts as missed.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import time
from typing import Any

import aiohttp

from bench.harness import Fleet, Simulator, Workdir, epoch, median, quantile, serve, simulator
from bench.report import Section

ON_TIME = 2.0  # seconds: the target says 99% of checks within this of their planned time
ON_TIME_SHARE = 0.99
EARLY_TOLERANCE = 0.05  # /status times are rounded to the millisecond


class RequestLog:
    """Every vendor request the simulator receives, per SDKAppID, collected by polling its recent log."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.times: dict[int, list[float]] = collections.defaultdict(list)
        self.possible_gaps = 0
        self._seen: set[tuple[Any, ...]] = set()
        self._newest = 0.0

    async def poll(self) -> None:
        records = await self.sim.get("/_sim/requests")
        if records and self._newest and len(records) >= 1000 and records[0]["time"] > self._newest:
            self.possible_gaps += 1  # the ring buffer turned over between two polls
        for r in records:
            key = (r["sdkappid"], r["random"], r["time"])
            if key in self._seen or r["sdkappid"] is None:
                continue
            self._seen.add(key)
            bisect.insort(self.times[r["sdkappid"]], r["time"])
            self._newest = max(self._newest, r["time"])

    async def run(self, period: float = 0.5) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(period)


async def measure(section: Section, workdir: Workdir, n: int, interval: float, intervals: int = 2) -> None:
    fleet = Fleet(n)
    jitter = min(interval * 0.1, 5.0)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        simulator(workdir, fleet, session, label="schedule-sim") as sim,
    ):
        config = workdir.write_config(fleet, "schedule", endpoint=sim.url, interval=f"{interval:g}s")
        log = RequestLog(sim)
        poller = asyncio.create_task(log.run())
        try:
            async with serve(workdir, config, session, label="schedule-serve") as daemon:
                await sim.wait_all_seen(fleet, within=n / 200 + 60)
                await daemon.wait_first_pass(fleet, within=30)
                plans: dict[tuple[int, float], None] = {}
                snapshots = []
                for k in range(intervals):
                    status = await daemon.status()
                    snapshots.append(time.time())
                    for app in status["apps"]:
                        if app["next_check"]:
                            plans[(app["sdkappid"], epoch(app["next_check"]))] = None
                    if k < intervals - 1:
                        await asyncio.sleep(interval)
                # Every slot planned in the last snapshot is due within interval + jitter.
                await asyncio.sleep(max(0.0, snapshots[-1] + interval + jitter + interval / 2 - time.time()))
                await log.poll()
                warnings = [
                    line.fields
                    for line in daemon.child.lines
                    if str(line.fields.get("logger", "")).startswith("apscheduler")
                ]
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
    _evaluate(section, n, interval, jitter, list(plans), log, warnings)


def _evaluate(
    section: Section,
    n: int,
    interval: float,
    jitter: float,
    plans: list[tuple[int, float]],
    log: RequestLog,
    warnings: list[dict[str, Any]],
) -> None:
    delays: list[float] = []
    missed = 0
    for sdkappid, planned in plans:
        times = log.times.get(sdkappid, [])
        i = bisect.bisect_left(times, planned - EARLY_TOLERANCE)
        if i == len(times) or times[i] - planned > interval / 2:
            missed += 1
            continue
        delays.append(max(0.0, times[i] - planned))
    slots = len(plans)
    on_time = sum(1 for d in delays if d <= ON_TIME)
    share = on_time / slots if slots else 0.0
    section.notes.append(
        f"{n:,} apps, interval {interval:g}s (jitter up to {jitter:g}s), limits at their defaults "
        "(200 requests/s, 32 in flight); the first pass is spread over N/200 s"
    )
    section.add(n, "planned checks observed", slots)
    if delays:
        section.add(n, "delay after planned time, median", median(delays), "s", digits=3)
        section.add(n, "delay after planned time, p99", quantile(delays, 0.99), "s", digits=3)
        section.add(n, "delay after planned time, worst", max(delays), "s", digits=3)
    section.add(
        n,
        f"checks within {ON_TIME:g} s of planned time",
        share * 100,
        "%",
        target=f">= {ON_TIME_SHARE * 100:g}%",
        met=share >= ON_TIME_SHARE,
        digits=2,
    )
    section.add(n, "checks that missed their slot", missed, target="0", met=missed == 0)
    section.add(n, "APScheduler warnings logged (missed runs, max instances)", len(warnings))
    if log.possible_gaps:
        section.notes.append(f"the simulator's request log may have turned over {log.possible_gaps} time(s)")
    section.raw.update(
        {
            "slots": slots,
            "missed": missed,
            "delays_quantiles": {q: quantile(delays, q) for q in (0.5, 0.9, 0.99, 0.999, 1.0)}
            if delays
            else {},
            "warnings": warnings[:20],
            "request_log_gaps": log.possible_gaps,
        }
    )
