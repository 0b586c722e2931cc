"""Argument parsing and the commands; the only place that wires everything together."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from monitor import __version__, logs
from monitor.config import AppConfig, Config, load_config
from monitor.errors import CheckError, ConfigError, MonitorError, Problem
from monitor.report import AppResult, exit_code, export_yaml, render_text, to_json
from monitor.settings import DEFAULT_LISTEN, Shard, env_name, parse_listen, parse_switch, tls_context
from monitor.tencent.model import CallbackConfig

if TYPE_CHECKING:  # the HTTP stack loads only when a command talks to Tencent
    from monitor.remediate import Plan, Result

EXIT_USAGE = 2

EPILOG = """\
every option can also be set in the environment: --config is CALLBACK_MONITOR_CONFIG,
--listen is CALLBACK_MONITOR_LISTEN, --shard-index is CALLBACK_MONITOR_SHARD_INDEX, and so on.

examples:
  callback-monitor demo                                  try it with the built-in simulator
  callback-monitor validate --config monitor.yaml        check the file before you commit it
  callback-monitor check --config monitor.yaml           one pass; exit 0 in sync, 1 drift, 2 error
  callback-monitor export --config monitor.yaml > live.yaml
  callback-monitor plan --config monitor.yaml            the calls that would fix drift; writes nothing
  callback-monitor apply --config monitor.yaml           make them after you confirm, read back
  callback-monitor serve --config monitor.yaml           the daemon: /metrics, /status, alerts
"""


def _env(option: str, default: str | None = None) -> str | None:
    return os.environ.get(env_name(option), default)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        default=_env("--config"),
        help="the desired-state YAML file (env CALLBACK_MONITOR_CONFIG)",
    )


def _add_logging(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-format",
        choices=("json", "console"),
        default=_env("--log-format"),
        help="log line format (default: json unless stdout is a terminal)",
    )
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=_env("--log-level", "info"),
        help="the least important log level written (default: info)",
    )


def _add_ca_bundle(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ca-bundle",
        metavar="FILE",
        default=_env("--ca-bundle"),
        help="verify the Tencent API's certificate against only the CAs in this PEM file instead of "
        "the system's (env CALLBACK_MONITOR_CA_BUNDLE); verification itself is always on",
    )


def _ca_bundle(args: argparse.Namespace) -> Path | None:
    return Path(args.ca_bundle) if args.ca_bundle else None


def _add_apps(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--app",
        action="append",
        metavar="NAME",
        default=[],
        help="only this app (repeat for several; default: every app in the file)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callback-monitor",
        description=(
            "Watch the Tencent RTC (TUIRoomKit) room callback configuration of each app and report "
            "drift from the desired state kept in git."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the daemon: scheduled checks, /metrics, /status, alerts, hot reload",
        description="Check every app on its interval, serve /metrics, /healthz, /readyz, /status and "
        "a status page, and log an alert line whenever an app drifts or recovers. Reloads the config "
        "file when it changes or on SIGHUP; stops cleanly on SIGTERM.",
    )
    _add_config(serve)
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=_env("--listen", DEFAULT_LISTEN),
        help=f"where the HTTP endpoints listen (default: {DEFAULT_LISTEN})",
    )
    serve.add_argument(
        "--shard-index",
        type=int,
        metavar="I",
        default=int(_env("--shard-index", "0") or 0),
        help="this replica's shard, 0..N-1 (default: 0)",
    )
    serve.add_argument(
        "--shard-count",
        type=int,
        metavar="N",
        default=int(_env("--shard-count", "1") or 1),
        help="how many replicas share the apps (default: 1, no sharding)",
    )
    serve.add_argument(
        "--external-url",
        metavar="URL",
        default=_env("--external-url"),
        help="the URL people use to reach this monitor's status page (used in alert links)",
    )
    serve.add_argument(
        "--read-only",
        action="store_true",
        help="never write to Tencent, whatever the config says: self-heal (remediate: true) is "
        "switched off (env CALLBACK_MONITOR_READ_ONLY=1, true or yes)",
    )
    _add_ca_bundle(serve)
    _add_logging(serve)

    check = sub.add_parser(
        "check",
        help="check the apps once and print a report",
        description="Check the apps once and print a report. Exit status: 0 every app in sync, "
        "1 drift or a policy violation found, 2 some app could not be checked or the config is "
        "invalid (2 wins over 1).",
    )
    _add_config(check)
    check.add_argument(
        "--format",
        choices=("text", "json"),
        default=_env("--format", "text"),
        help="text for people (default), json for programs (see the README for its fields)",
    )
    _add_apps(check)
    _add_ca_bundle(check)
    _add_logging(check)

    validate = sub.add_parser(
        "validate",
        help="check the config file without calling Tencent",
        description="Load and validate the config file: schema, secrets readable, policies "
        "consistent. Makes no API call. Exit 0 valid, 2 invalid (every problem listed).",
    )
    _add_config(validate)
    _add_logging(validate)

    export = sub.add_parser(
        "export",
        help="print the live configs as callback: YAML for the desired state",
        description="Read the live callback configuration of each app and print it as YAML that "
        "can be pasted into the desired-state file. Query values in URLs are redacted unless "
        "--reveal is given. Exit status: 0 every app exported, 2 some app could not be read or the "
        "config is invalid (then nothing is printed on stdout and each failing app is named on stderr).",
    )
    _add_config(export)
    _add_apps(export)
    export.add_argument(
        "--reveal",
        action="store_true",
        help="print URLs exactly, query values included (the output then holds secrets)",
    )
    _add_ca_bundle(export)
    _add_logging(export)

    plan = sub.add_parser(
        "plan",
        help="show the call that would restore each app's desired state; writes nothing",
        description="Read each app's live callback configuration and print the one call that would "
        "bring it to the desired state (set_callback, update_callback or delete_callback), with the "
        "URL (query values redacted) and the command list before and after. Makes no write. Exit "
        "status: 0 nothing to do, 1 changes planned, 2 some app could not be checked or fixed, or the "
        "config is invalid.",
    )
    _add_config(plan)
    _add_apps(plan)
    _add_ca_bundle(plan)
    _add_logging(plan)

    apply = sub.add_parser(
        "apply",
        help="make the planned calls, then read every config back",
        description="Plan as the plan command does, ask for confirmation, make the calls, and read "
        "each config back. (remediate: true in the config switches on self-heal in serve; apply is "
        "the explicit, confirmed write and does not need it.) Without a terminal to ask on "
        "it refuses unless --yes is given; with CALLBACK_MONITOR_READ_ONLY set it refuses. Exit status: "
        "0 every app is in sync (read back after its call), 2 otherwise.",
    )
    _add_config(apply)
    _add_apps(apply)
    apply.add_argument("--yes", "-y", action="store_true", help="make the calls without asking")
    _add_ca_bundle(apply)
    _add_logging(apply)

    demo = sub.add_parser(
        "demo",
        help="run the daemon against the built-in simulator with sample apps",
        description="Start the simulator of the Tencent API with sample apps (in sync, drifted URL, "
        "plain-http URL, missing commands, no config) and run serve against it.",
    )
    demo.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=_env("--listen", "127.0.0.1:9765"),
        help="where the daemon's pages listen (default: 127.0.0.1:9765)",
    )
    demo.add_argument(
        "--simulator-listen",
        metavar="HOST:PORT",
        default="127.0.0.1:0",
        help="where the simulator listens (default: a free port on 127.0.0.1)",
    )
    demo.add_argument(
        "--interval",
        default="10s",
        help="how often the demo checks each app (default: 10s)",
    )
    _add_logging(demo)

    simulate = sub.add_parser(
        "simulate",
        help="run the simulator of the Tencent room_config API alone",
        description="Serve a fake of Tencent's room_config admin API for trying things out, for "
        "tests of other tools and for benchmarks. Without --state it serves the demo's sample apps.",
    )
    simulate.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=_env("--simulator-listen", "127.0.0.1:8080"),
        help="where to listen (default: 127.0.0.1:8080)",
    )
    simulate.add_argument("--state", metavar="FILE", help="YAML or JSON state file (apps, keys, callbacks)")
    _add_logging(simulate)
    return parser


def _fail(message: str) -> int:
    print(f"callback-monitor: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load(args: argparse.Namespace) -> Config:
    if not args.config:
        raise MonitorError("no config file given: use --config FILE or set CALLBACK_MONITOR_CONFIG")
    return load_config(args.config)


def _print_warnings(config: Config) -> None:
    for warning in config.warnings:
        print(f"{config.source}: {warning}", file=sys.stderr)


def _select(config: Config, names: Sequence[str]) -> tuple[AppConfig, ...]:
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
async def _client(config: Config, observer: Any = None, ca_bundle: Path | None = None) -> AsyncIterator[Any]:
    import aiohttp  # here, not at the top: validate and --help need no HTTP stack

    from monitor.scheduler import RateLimiter
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


async def _gather_bounded(
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


async def _check(
    config: Config, apps: Sequence[AppConfig], verb: str = "checked", ca_bundle: Path | None = None
) -> list[AppResult]:
    from monitor.checker import Checker

    async with _client(config, ca_bundle=ca_bundle) as client:
        checker = Checker(client)

        async def work(app: AppConfig) -> AppResult:
            return AppResult(app, await checker.check(app))

        return await _gather_bounded(apps, config.limits.concurrency, work, Progress(len(apps), verb=verb))


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args)
    _print_warnings(config)
    apps = _select(config, args.app)
    results = asyncio.run(_check(config, apps, ca_bundle=_ca_bundle(args)))
    if args.format == "json":
        doc = to_json(results, source=config.source, generated=time.time())
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(render_text(results))
    return exit_code(results)


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load(args)
    _print_warnings(config)
    n = len(config.apps)
    print(f"{config.source}: valid, {n} app{'s' if n != 1 else ''}, {len(config.warnings)} warning(s)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    config = _load(args)
    _print_warnings(config)
    apps = _select(config, args.app)
    # A check's outcome carries the live config, or an error already classified like check's.
    results = asyncio.run(_check(config, apps, verb="exported", ca_bundle=_ca_bundle(args)))
    items: list[tuple[AppConfig, CallbackConfig | None]] = []
    failed = 0
    for r in results:
        error, verdict = r.outcome.error, r.outcome.verdict
        if error is not None:
            failed += 1
            _fail(f"cannot export app {r.app.name} ({r.app.sdkappid}): {error.reason}: {error.message}")
        elif verdict is not None:
            items.append((r.app, verdict.observed))
    if failed:
        # Half an export pasted into the desired state would silently drop apps: print none of it.
        return _fail(f"nothing exported: {failed} of {len(results)} apps could not be read")
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


def cmd_serve(args: argparse.Namespace) -> int:
    from monitor.daemon import run
    from monitor.settings import ServeSettings

    if not args.config:
        return _fail("no config file given: use --config FILE or CALLBACK_MONITOR_CONFIG")
    try:
        settings = ServeSettings(
            config=Path(args.config),
            listen=parse_listen(args.listen),
            shard=Shard(args.shard_index, args.shard_count),
            external_url=args.external_url,
            ca_bundle=_ca_bundle(args),
            read_only=args.read_only or _read_only_env(),
        )
    except ValueError as exc:
        return _fail(str(exc))
    return asyncio.run(run(settings))


# ---- plan and apply ------------------------------------------------------------------------------


def _read_only_env() -> bool:
    """CALLBACK_MONITOR_READ_ONLY as a switch; an unknown word is a ValueError, never "off"."""
    name = env_name("--read-only")
    try:
        return parse_switch(os.environ.get(name, ""))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


Planned = list[tuple[AppConfig, "Plan | CheckError"]]


def _plans(config: Config, apps: Sequence[AppConfig], ca_bundle: Path | None) -> Planned:
    """Each app with its Plan, or with the CheckError that kept it from being checked."""
    from monitor.remediate import plan

    out: Planned = []
    for r in asyncio.run(_check(config, apps, verb="planned", ca_bundle=ca_bundle)):
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
    sys.stdout.write("\n".join(lines) + "\n")
    return changes, nothing, bad


def cmd_plan(args: argparse.Namespace) -> int:
    config = _load(args)
    _print_warnings(config)
    changes, _nothing, bad = _print_plans(_plans(config, _select(config, args.app), _ca_bundle(args)))
    return 2 if bad else 1 if changes else 0


async def _execute(config: Config, todo: dict[str, Plan], ca_bundle: Path | None) -> dict[str, Result]:
    from monitor.checker import Checker
    from monitor.remediate import Effect, Executor, Result

    async with _client(config, ca_bundle=ca_bundle) as client:
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
        results = await _gather_bounded(
            apps, config.limits.concurrency, work, Progress(len(apps), verb="applied")
        )
        return {app.name: result for app, result in zip(apps, results, strict=True)}


def _confirm(calls: int) -> bool:
    sys.stderr.write(f"make {calls} call{'s' if calls != 1 else ''} to Tencent? type yes to continue: ")
    sys.stderr.flush()
    return sys.stdin.readline().strip() == "yes"


def cmd_apply(args: argparse.Namespace) -> int:
    from monitor.remediate import Plan

    try:
        if _read_only_env():
            return _fail(f"read-only mode ({env_name('--read-only')} is set): apply writes nothing; use plan")
    except ValueError as exc:
        return _fail(str(exc))
    if not args.yes and not sys.stdin.isatty():
        return _fail("apply writes to Tencent and has no terminal to ask for confirmation on: pass --yes")
    config = _load(args)
    _print_warnings(config)
    planned = _plans(config, _select(config, args.app), _ca_bundle(args))
    _print_plans(planned)
    todo = {app.name: p for app, p in planned if isinstance(p, Plan) and p.writes}
    if todo and not args.yes and not _confirm(len(todo)):
        print("aborted: nothing was written", file=sys.stderr)
        return EXIT_USAGE
    results = asyncio.run(_execute(config, todo, _ca_bundle(args))) if todo else {}
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
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if fine == len(planned) else EXIT_USAGE


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    try:
        listen = parse_listen(args.listen)
        sim_listen = parse_listen(args.simulator_listen)
    except ValueError as exc:
        return _fail(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_demo(listen, sim_listen, args.interval))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from monitor.simulator import serve_forever

    def ready(url: str) -> None:
        print(f"simulator listening on {url}", file=sys.stderr, flush=True)

    state = Path(args.state) if args.state else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(args.listen, state, on_ready=ready))
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "check": cmd_check,
    "validate": cmd_validate,
    "export": cmd_export,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "demo": cmd_demo,
    "simulate": cmd_simulate,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # Logs go to stderr for the one-shot commands so that stdout stays a clean report.
    stream = sys.stdout if args.command in ("serve", "demo", "simulate") else sys.stderr
    logs.configure(fmt=args.log_format, level=args.log_level, stream=stream)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except MonitorError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
