"""The one-shot commands that read: check, validate and export, and what plan and apply share with them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from monitor import __version__
from monitor.config import AppConfig, Config, load_config
from monitor.errors import ConfigError, MonitorError, Problem
from monitor.output import printable
from monitor.report import AppResult, exit_code, export_yaml, render_text, to_json
from monitor.settings import tls_context
from monitor.tencent.model import CallbackConfig

if TYPE_CHECKING:  # the HTTP stack loads only when a command talks to Tencent
    pass

EXIT_USAGE = 2


def fail(message: str) -> int:
    print(f"callback-monitor: error: {printable(message)}", file=sys.stderr)
    return EXIT_USAGE


def ca_bundle_of(args: argparse.Namespace) -> Path | None:
    return Path(args.ca_bundle) if args.ca_bundle else None


def load(args: argparse.Namespace) -> Config:
    if not args.config:
        raise MonitorError("no config file given: use --config FILE or set CALLBACK_MONITOR_CONFIG")
    return load_config(args.config)


def print_warnings(config: Config) -> None:
    for warning in config.warnings:
        print(f"{config.source}: {warning}", file=sys.stderr)


def select(config: Config, names: Sequence[str]) -> tuple[AppConfig, ...]:
    if not names:
        return config.apps
    known = {app.name for app in config.apps}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            config.source,
            [Problem("--app", f"no app named {n!r} in the config file") for n in unknown],
        )
    return tuple(app for app in config.apps if app.name in set(names))


@contextlib.asynccontextmanager
async def vendor_client(
    config: Config, observer: Any = None, ca_bundle: Path | None = None
) -> AsyncIterator[Any]:
    import aiohttp  # here, not at the top: validate and --help need no HTTP stack

    from monitor.ratelimit import RateLimiter
    from monitor.tencent.client import RoomConfigClient

    limiter = RateLimiter(config.limits.requests_per_second)
    # the semaphore bounds requests; certificates are always verified
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=tls_context(ca_bundle))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield RoomConfigClient(session, observer=observer, throttle=limiter.acquire)


class Progress:
    """``checked 120/1000`` on stderr, rewritten in place; only when stderr is a terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, verb: str = "checked") -> None:
        self.total = total
        self.done = 0
        self.verb = verb
        self.stream = stream
        self.enabled = stream.isatty() and total >= 10
        self._last = 0.0

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done == self.total):
            self._last = now
            self.stream.write(f"\r{self.verb} {self.done}/{self.total}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


async def gather_bounded(
    apps: Sequence[AppConfig], concurrency: int, work: Callable[[AppConfig], Any], progress: Progress
) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(app: AppConfig) -> Any:
        async with semaphore:
            result = await work(app)
        progress.step()
        return result

    try:
        return await asyncio.gather(*(one(app) for app in apps))
    finally:
        progress.close()


async def check_apps(
    config: Config, apps: Sequence[AppConfig], verb: str = "checked", ca_bundle: Path | None = None
) -> list[AppResult]:
    from monitor.checker import Checker

    async with vendor_client(config, ca_bundle=ca_bundle) as client:
        checker = Checker(client)

        async def work(app: AppConfig) -> AppResult:
            return AppResult(app, await checker.check(app))

        return await gather_bounded(apps, config.limits.concurrency, work, Progress(len(apps), verb=verb))


async def check_and_probe(
    config: Config, apps: Sequence[AppConfig], ca_bundle: Path | None
) -> list[AppResult]:
    """The checks, and at the same time one probe of each receiver of the apps with probes on."""
    from monitor.probe_check import probe_apps
    from monitor.probe_shared import ProbeRunner

    checks, probes = await asyncio.gather(
        check_apps(config, apps, ca_bundle=ca_bundle), probe_apps(apps, ProbeRunner())
    )
    return [replace(r, endpoint=probes.get(r.app.name)) for r in checks]


def cmd_check(args: argparse.Namespace) -> int:
    config = load(args)
    print_warnings(config)
    apps = select(config, args.app)
    if args.no_probe or not any(app.probe.enabled for app in apps):
        results = asyncio.run(check_apps(config, apps, ca_bundle=ca_bundle_of(args)))
    else:
        results = asyncio.run(check_and_probe(config, apps, ca_bundle_of(args)))
    if args.format == "json":
        doc = to_json(results, source=config.source, generated=time.time())
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(render_text(results))
    return exit_code(results)


def cmd_validate(args: argparse.Namespace) -> int:
    config = load(args)
    print_warnings(config)
    n = len(config.apps)
    print(f"{config.source}: valid, {n} app{'s' if n != 1 else ''}, {len(config.warnings)} warning(s)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    config = load(args)
    print_warnings(config)
    apps = select(config, args.app)
    # A check's outcome carries the live config, or an error already classified like check's.
    results = asyncio.run(check_apps(config, apps, verb="exported", ca_bundle=ca_bundle_of(args)))
    items: list[tuple[AppConfig, CallbackConfig | None]] = []
    failed = 0
    for r in results:
        error, verdict = r.outcome.error, r.outcome.verdict
        if error is not None:
            failed += 1
            fail(f"cannot export app {r.app.name} ({r.app.sdkappid}): {error.reason}: {error.message}")
        elif verdict is not None:
            items.append((r.app, verdict.observed))
    if failed:
        # Half an export pasted into the desired state would silently drop apps: print none of it.
        return fail(f"nothing exported: {failed} of {len(results)} apps could not be read")
    header = (
        f"# live callback configurations, exported by callback-monitor {__version__}\n"
        f"# from {config.source}; paste each callback: block into the app of the same name\n"
    )
    if not args.reveal:
        header += "# query values are REDACTED: use --reveal for the exact URLs\n"
    else:
        print(
            "callback-monitor: warning: --reveal prints URLs with their query values, which may be "
            "secrets (tokens): do not paste this output anywhere public",
            file=sys.stderr,
        )
    sys.stdout.write(export_yaml(items, reveal=args.reveal, header=header))
    return 0
