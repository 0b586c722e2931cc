"""What running ``serve`` costs and gives: idle CPU, detection latency, start-up time, sharding."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import Any

import aiohttp

from bench.harness import (
    DESIRED_COMMANDS,
    DRIFTED_URL,
    BenchError,
    Fleet,
    Workdir,
    command,
    median,
    ping_while,
    serve,
    simulator,
)
from bench.report import Section
from monitor.scheduler import shard_of

IDLE_TARGET = 1.0  # % of one core
VALIDATE_TARGET = 2.0  # seconds
HELP_TARGET = 0.5  # seconds
DETECTION_SLACK = 2.0  # seconds beyond interval + jitter


async def idle(section: Section, workdir: Workdir, n: int, interval: float, seconds: float) -> None:
    """CPU of serve between checks: utime + stime over ``seconds`` after the first pass."""
    fleet = Fleet(n)
    async with (
        aiohttp.ClientSession() as session,
        simulator(workdir, fleet, session, label="idle-sim") as sim,
    ):
        config = workdir.write_config(fleet, "idle", endpoint=sim.url, interval=f"{interval:g}s")
        async with serve(workdir, config, session, label="idle-serve") as daemon:
            await sim.wait_all_seen(fleet, within=n / 200 + 60)
            await daemon.wait_first_pass(fleet, within=30)
            await sim.reset_counts()
            cpu, started = daemon.child.cpu_seconds(), time.monotonic()
            await asyncio.sleep(seconds)
            used, elapsed = daemon.child.cpu_seconds() - cpu, time.monotonic() - started
            checks = sum((await sim.counts_by_app()).values())
    share = used / elapsed * 100
    section.notes.append(
        f"{n} apps at a {interval:g} s interval, CPU counted over {elapsed:.0f} s after the first pass"
    )
    section.add(
        n,
        f"serve CPU, average over {elapsed:.0f} s",
        share,
        "% of a core",
        target=f"< {IDLE_TARGET:g}%" if interval >= 60 else "",
        met=(share < IDLE_TARGET) if interval >= 60 else None,
        digits=2,
    )
    if checks:
        section.add(
            n, "serve CPU per check (all of it, idle time included)", used / checks * 1000, "ms", digits=2
        )
    section.raw.update({"cpu_seconds": used, "elapsed": elapsed, "checks": checks})


async def detection(section: Section, workdir: Workdir, n: int, interval: float, trials: int) -> None:
    """Time from changing an app's callback at the simulator to serve's drift_detected line."""
    fleet = Fleet(n)
    jitter = min(interval * 0.1, 5.0)
    bound = interval + jitter + DETECTION_SLACK
    rng = random.Random(8)
    async with (
        aiohttp.ClientSession() as session,
        simulator(workdir, fleet, session, label="detect-sim") as sim,
    ):
        config = workdir.write_config(fleet, "detect", endpoint=sim.url, interval=f"{interval:g}s")
        async with serve(workdir, config, session, label="detect-serve") as daemon:
            await sim.wait_all_seen(fleet, within=n / 200 + 60, poll=0.2)
            await daemon.wait_first_pass(fleet, within=30)

            async def trial(sdkappid: int, delay: float) -> float:
                await asyncio.sleep(delay)
                mark = len(daemon.child.lines)
                changed = time.time()
                await sim.put(
                    f"/_sim/apps/{sdkappid}/callback",
                    {"url": DRIFTED_URL, "commands": list(DESIRED_COMMANDS)},
                )
                name = Fleet.name(sdkappid)
                line = await daemon.child.wait_line(
                    lambda f: f.get("event") == "drift_detected" and f.get("app") == name,
                    within=3 * bound,
                    start=mark,
                )
                return line.received - changed

            chosen = list(fleet.sdkappids)[:trials]
            latencies = await asyncio.gather(*(trial(s, rng.uniform(0, 1.5 * interval)) for s in chosen))
    worst = max(latencies)
    section.notes.append(
        f"{trials} apps changed at random moments, interval {interval:g}s, jitter up to {jitter:g}s"
    )
    section.add(n, "change to drift_detected, median", median(latencies), "s", digits=2)
    section.add(
        n,
        "change to drift_detected, worst",
        worst,
        "s",
        target=f"<= {bound:g} s (interval + jitter + 2)",
        met=worst <= bound,
        digits=2,
    )
    section.raw["latencies"] = latencies


async def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv[-3:])} exited {proc.returncode}: {err.decode()[-300:]}")
    return seconds


async def startup(section: Section, workdir: Workdir, n: int, runs: int) -> None:
    """Wall time of ``validate`` on an n-app config and of ``--help``, as a user runs them."""
    config = workdir.write_config(Fleet(n), "startup", endpoint="http://127.0.0.1:9")
    times: dict[str, list[float]] = {"validate": [], "help": [], "python": []}
    for _ in range(runs):
        times["validate"].append(await _timed([*command(), "validate", "--config", str(config)]))
        times["help"].append(await _timed([*command(), "--help"]))
        times["python"].append(await _timed([sys.executable, "-c", "pass"]))
    validate, help_ = median(times["validate"]), median(times["help"])
    section.add(
        n,
        f"validate, median of {runs}",
        validate,
        "s",
        target=f"< {VALIDATE_TARGET:g} s",
        met=validate < VALIDATE_TARGET,
        digits=2,
    )
    section.add(
        None,
        f"--help, median of {runs}",
        help_,
        "s",
        target=f"< {HELP_TARGET:g} s",
        met=help_ < HELP_TARGET,
        digits=3,
    )
    section.add(None, "python -c pass (the interpreter's own start)", median(times["python"]), "s", digits=3)
    section.raw.update(times)


async def sharding(section: Section, workdir: Workdir, n: int, rate: float) -> None:
    """Two replicas with --shard-count 2 over n apps: each checks about half, none twice, none missed."""
    fleet = Fleet(n)
    async with (
        aiohttp.ClientSession() as session,
        simulator(workdir, fleet, session, label="shard-sim") as sim,
    ):
        # An interval far longer than the run: every app is due exactly once while we watch.
        config = workdir.write_config(
            fleet, "shard", endpoint=sim.url, interval="1h", requests_per_second=rate
        )
        async with (
            serve(
                workdir, config, session, label="shard-0", extra=["--shard-index", "0", "--shard-count", "2"]
            ) as r0,
            serve(
                workdir, config, session, label="shard-1", extra=["--shard-index", "1", "--shard-count", "2"]
            ) as r1,
        ):
            started = time.monotonic()
            await sim.wait_all_seen(fleet, within=n / 2 / rate + 90, poll=2.0)
            elapsed = time.monotonic() - started
            await asyncio.sleep(2.0)
            counts = await sim.counts_by_app()
            statuses = [await r0.status(), await r1.status()]
            memory = [r0.child.memory_kib(), r1.child.memory_kib()]
    owned = [{a["sdkappid"] for a in s["apps"]} for s in statuses]
    checked = [{a["sdkappid"] for a in s["apps"] if a["last_check"]} for s in statuses]
    both = len(owned[0] & owned[1])
    twice = sum(1 for c in counts.values() if c > 1)
    missed = sum(1 for s in fleet.sdkappids if counts.get(s, 0) == 0)
    foreign = sum(1 for i in (0, 1) for s in owned[i] if shard_of(s, 2) != i)
    for i in (0, 1):
        section.add(n, f"apps checked by replica {i}", len(checked[i]), target="about half")
        section.add(n, f"share of replica {i}", len(owned[i]) / n * 100, "%", digits=1)
    section.add(n, "apps owned by both replicas", both, target="0", met=both == 0)
    section.add(n, "apps checked more than once", twice, target="0", met=twice == 0)
    section.add(n, "apps never checked", missed, target="0", met=missed == 0)
    section.add(n, "apps on the wrong replica (by shard_of)", foreign, target="0", met=foreign == 0)
    section.notes.append(
        f"{n:,} apps, 2 replicas at {rate:g} requests/s each; both finished their pass in {elapsed:.0f} s"
    )
    raw: dict[str, Any] = {"elapsed": elapsed, "memory_kib": memory, "owned": [len(o) for o in owned]}
    section.raw.update(raw)


async def failing(section: Section, workdir: Workdir, n: int, seconds: float) -> None:
    """serve's first pass when every check fails (the vendor answers 70009 to all): a fleet-wide outage.

    Each failed check writes one ``check_error`` log line, so this measures what a log line costs at
    N apps as much as anything. Counted in three equal parts of the first ``seconds`` after start: a
    cost that grows with the number of apps checked so far shows as a falling rate.
    """
    fleet = Fleet(n)
    faults = {"error_code": 70009, "error_code_rate": 1.0}  # not retried: one request per check
    planned_rate = n / max(5.0, n / 200)  # the first pass is spread over max(5 s, N / 200 per s)
    parts: list[tuple[float, float, int, int]] = []  # (elapsed, cpu, requests, check_error lines)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        simulator(workdir, fleet, session, label="failing-sim", faults=faults) as sim,
    ):
        config = workdir.write_config(fleet, "failing", endpoint=sim.url, interval="60s")
        async with serve(workdir, config, session, label="failing-serve") as daemon:
            started = time.monotonic()

            async def sample() -> None:
                errors = sum(1 for line in daemon.child.lines if line.fields.get("event") == "check_error")
                requests = sum((await sim.counts_by_app()).values())
                parts.append((time.monotonic() - started, daemon.child.cpu_seconds(), requests, errors))

            await sample()
            pings: list[float] = []
            for _ in range(3):
                window = asyncio.get_running_loop().create_future()
                asyncio.get_running_loop().call_later(seconds / 3, window.set_result, None)
                pings += await ping_while(session, daemon.url, window, period=0.05)
                await sample()
    section.notes.append(
        f"every request answered 70009 (not retried), {n:,} apps, first {seconds:g} s after start"
    )
    section.add(n, "checks/s planned during the first pass", planned_rate, digits=0)
    rates = []
    for label, (a, b) in (("first", (parts[0], parts[1])), ("last", (parts[2], parts[3]))):
        elapsed = b[0] - a[0]
        rates.append((b[2] - a[2]) / elapsed)
        section.add(n, f"checks/s done, {label} third of the window", rates[-1], digits=0)
        section.add(
            n, f"serve CPU, {label} third of the window", (b[1] - a[1]) / elapsed * 100, "% of a core"
        )
        if b[3] > a[3]:
            per_check = (b[1] - a[1]) / (b[3] - a[3]) * 1000
            section.add(n, f"serve CPU per failed check, {label} third", per_check, "ms", digits=2)
    section.add(n, "healthz latency while every check fails (worst)", max(pings) * 1000, "ms", digits=0)
    section.raw["parts"] = parts
