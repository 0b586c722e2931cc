"""The commands that fix drift: plan (writes nothing) and apply (writes after a confirmation)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli.oneshot import (
    EXIT_USAGE,
    Progress,
    ca_bundle_of,
    check_apps,
    fail,
    gather_bounded,
    load,
    print_warnings,
    select,
    vendor_client,
)
from monitor.cli.options import read_only_requested
from monitor.config import AppConfig, Config
from monitor.errors import CheckError, MonitorError
from monitor.output import text_lines
from monitor.settings import env_name

if TYPE_CHECKING:  # the HTTP stack loads only when a command talks to Tencent
    from monitor.remediate import Plan, Result


Planned = list[tuple[AppConfig, "Plan | CheckError"]]


def _plans(config: Config, apps: Sequence[AppConfig], ca_bundle: Path | None) -> Planned:
    """Each app with its Plan, or with the CheckError that kept it from being checked."""
    from monitor.remediate import plan

    out: Planned = []
    for r in asyncio.run(check_apps(config, apps, verb="planned", ca_bundle=ca_bundle)):
        verdict = r.outcome.verdict
        if verdict is None:
            assert r.outcome.error is not None  # an Outcome holds one of the two
            out.append((r.app, r.outcome.error))
        else:
            out.append((r.app, plan(r.app.callback, verdict.observed, verdict, r.app.policy)))
    return out


def _print_plans(planned: Planned) -> tuple[int, int, int]:
    """Print every app's plan; returns (changes planned, nothing to do, not checked or not fixable)."""
    from monitor.remediate import Plan, render_plan

    lines: list[str] = []
    counts = [0, 0, 0]
    for app, item in planned:
        if isinstance(item, Plan):
            lines += render_plan(app, item)
            counts[2 if item.blocked else 0 if item.writes else 1] += 1
        else:
            lines.append(f"{app.name} ({app.sdkappid}): ERROR {item.reason}: {item.message}")
            counts[2] += 1
    changes, nothing, bad = counts
    lines += [
        "",
        f"{len(planned)} apps: {changes} to change, {nothing} nothing to do, {bad} not checked or not fixed",
    ]
    sys.stdout.write(text_lines(lines))
    return changes, nothing, bad


def cmd_plan(args: argparse.Namespace) -> int:
    config = load(args)
    print_warnings(config)
    changes, _nothing, bad = _print_plans(_plans(config, select(config, args.app), ca_bundle_of(args)))
    return 2 if bad else 1 if changes else 0


async def _execute(config: Config, todo: dict[str, Plan], ca_bundle: Path | None) -> dict[str, Result]:
    from monitor.checker import Checker
    from monitor.remediate import Effect, Executor, Result

    async with vendor_client(config, ca_bundle=ca_bundle) as client:
        checker = Checker(client)
        executor = Executor(client, read_only=False)

        async def work(app: AppConfig) -> Result:
            planned = todo[app.name]
            try:
                target = await checker.target(app)
            except MonitorError as exc:
                return Result(planned, Effect.FAILED, planned.action, message=f"nothing written: {exc}")
            # The person confirmed this plan: if the live config moved since, write nothing.
            return await executor.apply(app, target, planned, expect_unchanged=True)

        apps = [app for app in config.apps if app.name in todo]
        results = await gather_bounded(
            apps, config.limits.concurrency, work, Progress(len(apps), verb="applied")
        )
        return {app.name: result for app, result in zip(apps, results, strict=True)}


def _confirm(calls: int) -> bool:
    sys.stderr.write(f"make {calls} call{'s' if calls != 1 else ''} to Tencent? type yes to continue: ")
    sys.stderr.flush()
    return sys.stdin.readline().strip() == "yes"


def cmd_apply(args: argparse.Namespace) -> int:
    from monitor.remediate import Plan

    if read_only_requested(os.environ):  # a UsageError for an unknown word: never taken as "off"
        return fail(f"read-only mode ({env_name('--read-only')} is set): apply writes nothing; use plan")
    if not args.yes and not sys.stdin.isatty():
        return fail("apply writes to Tencent and has no terminal to ask for confirmation on: pass --yes")
    config = load(args)
    print_warnings(config)
    planned = _plans(config, select(config, args.app), ca_bundle_of(args))
    _print_plans(planned)
    todo = {app.name: p for app, p in planned if isinstance(p, Plan) and p.writes}
    if todo and not args.yes and not _confirm(len(todo)):
        print("aborted: nothing was written", file=sys.stderr)
        return EXIT_USAGE
    results = asyncio.run(_execute(config, todo, ca_bundle_of(args))) if todo else {}
    lines, fine = ["", "result:"], 0
    for app, item in planned:
        head = f"{app.name} ({app.sdkappid}): "
        result = results.get(app.name)
        if not isinstance(item, Plan):
            lines.append(f"{head}ERROR not checked: {item.reason}: {item.message}")
        elif result is not None:
            fine += result.ok
            verb = "applied" if result.ok else "FAILED" if result.action != "none" else "NOT WRITTEN"
            call = f" {result.action}" if result.action != "none" else ""
            lines.append(f"{head}{verb}{call}: {result.message}")
        elif item.blocked:
            lines.append(f"{head}CANNOT FIX: {item.blocked}")
        else:
            fine += 1
            lines.append(f"{head}in sync, nothing to do")
    lines.append(f"{fine} of {len(planned)} apps in sync")
    sys.stdout.write(text_lines(lines))
    return 0 if fine == len(planned) else EXIT_USAGE
