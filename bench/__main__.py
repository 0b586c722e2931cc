"""``python -m bench``: run the measurements, print the table, write bench/results/bench-*.json."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import daemon_costs, footprint, schedule, throughput
from bench.harness import Workdir
from bench.report import Section, header, machine, notes, table, write_json
from monitor import logs

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("throughput", "memory", "scrape", "schedule", "idle", "detection", "startup", "sharding", "failing")


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run; FULL is what ``make bench`` runs, QUICK a smoke run."""

    throughput_runs: dict[int, int]
    footprint_sizes: tuple[int, ...]
    footprint_interval: float  # s; the first pass is spread over at most this
    scrapes: int
    schedule: tuple[int, float]  # apps, interval (s)
    idle: tuple[int, float, float]  # apps, interval (s), seconds measured
    detection: tuple[int, float, int]  # apps, interval (s), trials
    startup: tuple[int, int]  # apps, runs
    sharding: tuple[int, float]  # apps, requests/s per replica
    failing: tuple[int, float]  # apps, seconds measured
    budgets: dict[str, float] = field(default_factory=dict)  # seconds per measurement before it is cut


FULL = Plan(
    throughput_runs={100: 15, 1_000: 9, 10_000: 5},
    footprint_sizes=(0, 100, 1_000, 10_000),
    footprint_interval=60.0,
    scrapes=5,
    schedule=(10_000, 60.0),
    idle=(100, 60.0, 180.0),
    detection=(20, 10.0, 8),
    startup=(10_000, 5),
    sharding=(20_000, 500.0),
    failing=(10_000, 60.0),
    budgets={
        "throughput": 900,
        "footprint": 900,
        "schedule": 480,
        "idle": 360,
        "detection": 180,
        "startup": 180,
        "sharding": 420,
        "failing": 180,
    },
)
QUICK = Plan(
    throughput_runs={100: 3},
    footprint_sizes=(0, 100),
    footprint_interval=2.0,
    scrapes=2,
    schedule=(100, 1.0),
    idle=(100, 2.0, 3.0),
    detection=(5, 1.0, 3),
    startup=(1_000, 2),
    sharding=(1_000, 1_000.0),
    failing=(100, 3.0),
    budgets={
        "throughput": 120,
        "footprint": 120,
        "schedule": 120,
        "idle": 60,
        "detection": 60,
        "startup": 60,
        "sharding": 120,
        "failing": 60,
    },
)


def _jobs(
    plan: Plan, wanted: set[str], workdir: Workdir
) -> list[tuple[str, Callable[[Section], Awaitable[None]]]]:
    jobs: list[tuple[str, Callable[[Section], Awaitable[None]]]] = []
    if "throughput" in wanted:
        sizes = tuple(plan.throughput_runs)
        jobs.append(("throughput", lambda s: throughput.measure(s, workdir, sizes, plan.throughput_runs)))
    if wanted & {"memory", "scrape"}:
        name = (
            "memory+scrape" if {"memory", "scrape"} <= wanted else next(iter(wanted & {"memory", "scrape"}))
        )
        jobs.append(
            (
                name,
                lambda s: footprint.measure(
                    s,
                    workdir,
                    plan.footprint_sizes,
                    memory="memory" in wanted,
                    scrape="scrape" in wanted,
                    scrapes=plan.scrapes,
                    interval=plan.footprint_interval,
                ),
            )
        )
    if "schedule" in wanted:
        jobs.append(("schedule", lambda s: schedule.measure(s, workdir, *plan.schedule)))
    if "idle" in wanted:
        jobs.append(("idle", lambda s: daemon_costs.idle(s, workdir, *plan.idle)))
    if "detection" in wanted:
        jobs.append(("detection", lambda s: daemon_costs.detection(s, workdir, *plan.detection)))
    if "startup" in wanted:
        jobs.append(("startup", lambda s: daemon_costs.startup(s, workdir, *plan.startup)))
    if "sharding" in wanted:
        jobs.append(("sharding", lambda s: daemon_costs.sharding(s, workdir, *plan.sharding)))
    if "failing" in wanted:
        jobs.append(("failing", lambda s: daemon_costs.failing(s, workdir, *plan.failing)))
    return jobs


def _budget(plan: Plan, name: str) -> float:
    return plan.budgets.get("footprint" if name in ("memory", "scrape", "memory+scrape") else name, 600)


async def _run(plan: Plan, wanted: set[str], workdir: Workdir) -> list[Section]:
    sections = []
    for name, job in _jobs(plan, wanted, workdir):
        section = Section(name)
        section.raw["loadavg_before"] = os.getloadavg()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        budget = _budget(plan, name)
        try:
            await asyncio.wait_for(job(section), budget)
        except TimeoutError:
            section.error = f"did not finish within {budget:g}s"
        except Exception as exc:  # noqa: BLE001 - one failed measurement must not lose the others
            section.error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        section.seconds = time.monotonic() - started
        section.raw["loadavg_after"] = os.getloadavg()
        print(
            f"[bench] {name} took {section.seconds:.0f}s{' (FAILED)' if section.error else ''}",
            file=sys.stderr,
        )
        sections.append(section)
    return sections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run in well under a minute"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"run only this measurement ({', '.join(NAMES)}); repeatable",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where the JSON goes (default: bench/results)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch directory (configs, child logs)"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    wanted = set(args.only or NAMES)
    command = "python -m bench" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    info = machine()
    info["loadavg_at_start"] = os.getloadavg()
    load = info["loadavg_at_start"][0]
    if load > (info["cores"] or 1) * 0.5:
        print(
            f"[bench] warning: the load average is {load:.1f} before starting: figures will be noisy",
            file=sys.stderr,
        )
    started = time.time()
    workdir = Workdir(Path(tempfile.mkdtemp(prefix="callback-monitor-bench-")))
    # The check engine runs in this process for the throughput passes: its log lines go to a file.
    with (workdir.root / "in-process.log").open("w") as log_stream:
        logs.configure(fmt="json", level="info", stream=log_stream)
        try:
            sections = asyncio.run(_run(plan, wanted, workdir))
        finally:
            if not args.keep:
                workdir.cleanup()
            else:
                print(f"[bench] scratch directory kept: {workdir.root}", file=sys.stderr)
    info["loadavg_at_end"] = os.getloadavg()
    path = write_json(args.out, info, command, sections, started)
    print()
    print(header(info, command))
    print(table(sections))
    print(notes(sections))
    print(f"took {time.time() - started:.0f}s; results: {path}")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
