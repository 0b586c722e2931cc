"""Check throughput: full passes of the check engine over N apps, against a bare aiohttp client loop.

Both sides run in this process, one after the other (alternating which goes first), against the same
simulator process, with the same concurrency (``limits.concurrency``, 32). The monitor's rate limit
is set to 100,000 requests/s so that it is not what is measured. The monitor side is what ``check``
does per app (``cli.gather_bounded`` over ``Checker.check``: secret file read, UserSig from the
client's cache, the rate limiter, the POST, strict envelope parsing, the drift comparison) on one
warmed client, as the daemon runs it; the baseline makes the same signed POST (UserSigs signed once
up front, as the client caches them), reads the body and parses its JSON, and nothing else.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
from collections.abc import Sequence

import aiohttp

from bench.harness import Fleet, Simulator, Workdir, median, simulator
from bench.report import Section
from monitor.checker import Checker
from monitor.cli import oneshot as cli
from monitor.config import AppConfig, Config, load_config
from monitor.state import Outcome
from monitor.tencent.usersig import sign

TARGET_RATIO = 0.85
UNLIMITED_RATE = 100_000


async def _monitor_pass(checker: Checker, apps: Sequence[AppConfig], concurrency: int) -> tuple[float, int]:
    async def work(app: AppConfig) -> Outcome:
        return await checker.check(app)

    progress = cli.Progress(len(apps), stream=io.StringIO())
    outcomes: list[Outcome] = await cli.gather_bounded(apps, concurrency, work, progress)
    bad = sum(1 for o in outcomes if o.verdict is None or not o.verdict.in_sync)
    return time.perf_counter(), bad


async def _baseline_pass(
    session: aiohttp.ClientSession, apps: Sequence[AppConfig], sigs: dict[int, str], concurrency: int
) -> tuple[float, int]:
    queue = iter(apps)
    rng = random.Random()

    async def worker() -> int:
        bad = 0
        for app in queue:  # one shared iterator: each app is taken by exactly one worker
            params = {
                "sdkappid": str(app.sdkappid),
                "identifier": app.identifier,
                "usersig": sigs[app.sdkappid],
                "random": str(rng.randrange(2**32)),
                "contenttype": "json",
            }
            async with session.post(
                f"{app.endpoint}/v4/room_config/get_callback", params=params, json={}
            ) as r:
                body = await r.read()
            if json.loads(body).get("ErrorCode") != 0:
                bad += 1
        return bad

    bad = sum(await asyncio.gather(*(worker() for _ in range(concurrency))))
    return time.perf_counter(), bad


async def measure(section: Section, workdir: Workdir, sizes: Sequence[int], runs_at: dict[int, int]) -> None:
    section.notes.append(
        f"monitor side: limits.requests_per_second set to {UNLIMITED_RATE:,} so the rate limit is not "
        "what is measured; both sides use limits.concurrency (32) requests in flight"
    )
    async with aiohttp.ClientSession() as control:
        for n in sizes:
            fleet = Fleet(n)
            async with simulator(workdir, fleet, control, label=f"throughput-sim-{n}") as sim:
                config = load_config(
                    workdir.write_config(
                        fleet, f"throughput-{n}", endpoint=sim.url, requests_per_second=UNLIMITED_RATE
                    )
                )
                await _measure_size(section, config, runs_at.get(n, 5), sim)


async def _measure_size(section: Section, config: Config, runs: int, sim: Simulator) -> None:
    apps, concurrency, n = config.apps, config.limits.concurrency, len(config.apps)
    now = time.time()
    sigs = {app.sdkappid: sign(app.sdkappid, app.secret.read(), app.identifier, now, 86400) for app in apps}
    results: dict[str, list[dict[str, float]]] = {"monitor": [], "baseline": []}
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    async with (
        cli.vendor_client(config) as client,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        checker = Checker(client)

        async def one(side: str, record: bool) -> None:
            sim_cpu = sim.child.cpu_seconds()
            cpu = time.process_time()
            started = time.perf_counter()
            if side == "monitor":
                ended, bad = await _monitor_pass(checker, apps, concurrency)
            else:
                ended, bad = await _baseline_pass(session, apps, sigs, concurrency)
            wall = ended - started
            if bad:
                section.notes.append(
                    f"{side} pass at {n:,} apps: {bad} checks not in sync (simulator errors?)"
                )
            if record:
                results[side].append(
                    {
                        "seconds": wall,
                        "checks_per_second": n / wall,
                        "client_cpu_us_per_check": (time.process_time() - cpu) / n * 1e6,
                        "simulator_cpu_share": (sim.child.cpu_seconds() - sim_cpu) / wall,
                        "bad": bad,
                    }
                )

        await one("monitor", False)  # warm-up: UserSig cache, connections, code paths
        await one("baseline", False)
        for run in range(runs):
            order = ("monitor", "baseline") if run % 2 == 0 else ("baseline", "monitor")
            for side in order:
                await one(side, True)

    def med(side: str, key: str) -> float:
        return median([r[key] for r in results[side]])

    mon, base = med("monitor", "checks_per_second"), med("baseline", "checks_per_second")
    ratio = mon / base
    target = f">= {TARGET_RATIO}" if n >= 10_000 else ""
    section.add(n, f"monitor checks/s (median of {runs} passes)", mon, digits=0)
    section.add(n, f"baseline checks/s (median of {runs} passes)", base, digits=0)
    section.add(
        n,
        "monitor / baseline",
        ratio,
        target=target,
        met=(ratio >= TARGET_RATIO) if target else None,
        digits=2,
    )
    section.add(n, "client CPU per check, monitor", med("monitor", "client_cpu_us_per_check"), "us", digits=0)
    section.add(
        n, "client CPU per check, baseline", med("baseline", "client_cpu_us_per_check"), "us", digits=0
    )
    sim_share = max(med("monitor", "simulator_cpu_share"), med("baseline", "simulator_cpu_share"))
    section.add(
        n, "simulator CPU during a pass (max of the two medians)", sim_share * 100, "% of a core", digits=0
    )
    section.raw[str(n)] = results
