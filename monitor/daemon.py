"""Lifecycle of ``serve``: start in order, reload on change or SIGHUP, stop in reverse on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from monitor import __version__
from monitor.alerts import LogSink
from monitor.checker import Checker
from monitor.config import AppConfig, Config, load_config
from monitor.deadlines import ExitDeadline, Stuck, ThreadedCalls
from monitor.errors import ConfigError, MonitorError
from monitor.filestat import file_signature
from monitor.heap import collector_paused
from monitor.metrics import Metrics
from monitor.probe_service import ProbeService
from monitor.ratelimit import RateLimiter
from monitor.remediate import Executor, Remediator
from monitor.scheduler import CHUNK, Scheduler, in_shard
from monitor.settings import ServeSettings, tls_context
from monitor.sinks import AlertSinks
from monitor.state import AppIdentity, AppState, reidentify, transition
from monitor.store import Store
from monitor.tencent.client import RoomConfigClient
from monitor.web import AccessLogger, make_app
from monitor.web.listener import KEEPALIVE_TIMEOUT, AcceptErrors, ConnectionGuard, connection_cap, listen

log = structlog.get_logger("monitor.daemon")

EXIT_CANNOT_START = 2  # as for an invalid config: the operator must change how it is started
EXIT_FAILED = 1  # a background task failed, or the shutdown overran its deadline
ALERT_FLUSH = 2.0  # seconds the alert sinks get at shutdown to deliver what they hold
SHUTDOWN_DEADLINE = 5.0  # seconds from SIGTERM to the end of the process, whatever is stuck
RELOAD_TIMEOUT = 60.0  # seconds a reload may take to read and parse the file before it counts as failed
MAX_STUCK_RELOADS = 2  # reads still hanging (in threads left behind) before reloads stop being tried

Loader = Callable[..., Config]


def identity_of(app: AppConfig) -> AppIdentity:
    return AppIdentity(
        name=app.name,
        sdkappid=app.sdkappid,
        labels=app.labels,
        desired=app.callback,
        error_threshold=app.error_threshold,
    )


def _carried(prev: AppState | None, identity: AppIdentity) -> AppState:
    """An app's state under its (possibly changed) identity; a new app, or a new sdkappid, starts over."""
    if prev is None or prev.identity.sdkappid != identity.sdkappid:
        return AppState.initial(identity)
    return reidentify(prev, identity)


class Daemon:
    def __init__(
        self,
        settings: ServeSettings,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        loader: Loader = load_config,
        reload_timeout: float = RELOAD_TIMEOUT,
        exit_deadline: ExitDeadline | None = None,
    ) -> None:
        self.settings = settings
        self.loader = loader
        self.reload_timeout = reload_timeout
        self.exit_deadline = exit_deadline  # None in tests: the process is theirs
        self._reads = ThreadedCalls("config-reload")
        self.failed: list[str] = []  # background tasks that ended with an exception
        self.clock = clock
        self.environ = environ
        self.store = Store(config=config, started=clock(), shard=(settings.shard.index, settings.shard.count))
        self.store.listeners.append(LogSink())
        self.metrics = Metrics(self.store, version=__version__)
        # Receiver probes: their own runner and schedule, apart from the checks and the vendor's limit.
        self.probes = ProbeService(self.store, clock=clock)
        self.metrics.registry.register(self.probes.collector)
        self.sinks = AlertSinks(
            self.store, self.metrics, external_url=settings.external_url, clock=clock, environ=environ
        )
        self.limiter = RateLimiter(config.limits.requests_per_second)
        self.scheduler = Scheduler(
            self._run_check, concurrency=config.limits.concurrency, on_planned=self._planned
        )
        # The check path, built before anything runs; run() closes the session last. The scheduler's
        # semaphore bounds requests in flight, so the pool need not bound them again.
        tls = tls_context(settings.ca_bundle)  # MonitorError when the bundle is unusable
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=tls)
        )
        client = RoomConfigClient(
            self.session, observer=self.metrics.observe_request, throttle=self.limiter.acquire
        )
        self.checker = Checker(client, clock=clock, environ=environ)
        # Read-only: no writer exists at all, whatever the config says.
        self.remediator: Remediator | None = None
        if not settings.read_only:
            self.remediator = Remediator(
                Executor(client, read_only=False, clock=clock),
                self.checker.target,
                emit=self.store.emit,
                count=self.metrics.count_remediation,
                clock=clock,
            )
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._config_signature = file_signature(settings.config)
        self.connections: ConnectionGuard | None = None  # the HTTP server's, once it listens

    # -- the parts -------------------------------------------------------------------------

    def _planned(self, name: str, when: float | None) -> None:
        if when is None:
            self.store.next_check.pop(name, None)
        else:
            self.store.next_check[name] = when

    async def _run_check(self, app: AppConfig) -> None:
        outcome = await self.checker.check(app)
        prev = self.store.states.get(app.name)
        if prev is None or prev.identity != identity_of(app):
            # A reload removed the app or changed its desired state while the check ran: this
            # verdict answers a question nobody asks any more; the next check asks the new one.
            return
        state, events = transition(prev, outcome, self.clock())
        self.store.states[app.name] = state
        self.store.emit(events)
        if self.remediator is not None and app.remediate:
            read_back = await self.remediator.after_check(app, state.status, outcome)
            if read_back is not None and self.store.states.get(app.name) is state:
                # The read-back after a write is a check too: drift_resolved goes out now, not later.
                state, events = transition(state, read_back, self.clock())
                self.store.states[app.name] = state
                self.store.emit(events)

    async def _apply(self, config: Config) -> tuple[int, int, int]:
        """Make the running state match ``config``, keeping the state of apps that stay.

        At 40,000 apps this is a second of work: it yields to the event loop every CHUNK apps, so
        probes and checks go on meanwhile, and the new states replace the old ones in one step.
        """
        shard = self.settings.shard
        apps = in_shard(config.apps, shard.index, shard.count)
        before = dict(self.store.states)
        states: dict[str, AppState] = {}
        for i, app in enumerate(apps, 1):
            states[app.name] = _carried(before.get(app.name), identity_of(app))
            if i % CHUNK == 0:
                await asyncio.sleep(0)
        # A check that ended while the new states were built: carry its result over too.
        current = self.store.states
        for name, state in states.items():
            latest = current.get(name)
            if latest is not None and latest is not before.get(name):
                states[name] = _carried(latest, state.identity)
        self.store.states = states
        self.store.config = config
        self.probes.apply(apps)
        del before, current
        self.scheduler.set_concurrency(config.limits.concurrency)
        self.limiter.rate = config.limits.requests_per_second
        if self.remediator is not None:
            self.remediator.budget.per_hour = config.limits.remediation_writes_per_hour
        return await self.scheduler.sync(apps, rate=config.limits.requests_per_second)

    async def reload(self, reason: str) -> bool:
        """Load the config file again; on success apply it, on failure keep the last good one."""
        with collector_paused():
            return await self._load_and_apply(reason)

    async def _load_and_apply(self, reason: str) -> bool:
        """Load the config file again; on success apply it, on failure keep the last good one.

        The file is read and parsed in a thread of its own: a large file takes a second or more, and
        the event loop must keep answering probes and running checks meanwhile. A read that has not
        finished after ``reload_timeout`` seconds (a FIFO at the path) is a failed reload; its thread
        is left behind and never holds up the exit. Whatever goes wrong, the last good config runs on.
        """
        now = self.clock()
        self.store.reload.last_attempt = now
        path = self.settings.config
        try:
            if self._reads.stuck >= MAX_STUCK_RELOADS:
                raise Stuck(f"{self._reads.stuck} earlier reads of the file never finished")
            config = await self._reads.run(
                lambda: self.loader(path, environ=self.environ), self.reload_timeout
            )
        except ConfigError as exc:
            return self._rejected(reason, str(exc), problems=[str(p) for p in exc.problems])
        except Stuck as exc:
            return self._rejected(reason, f"{path}: cannot be read: {exc}")
        except Exception as exc:  # a loader bug must not end the daemon: it is a rejected reload
            log.error("config_loader_failed", file=str(path), error=type(exc).__name__, exc_info=exc)
            return self._rejected(reason, f"{path}: the config loader failed ({type(exc).__name__})")
        for warning in config.warnings:
            log.warning("config_warning", file=str(path), problem=str(warning))
        added, removed, rescheduled = await self._apply(config)
        self.sinks.apply(config.alerting)
        self.store.reload.successful = True
        self.store.reload.last_success = now
        self.store.reload.last_error = ""
        log.info(
            "config_reloaded",
            reason=reason,
            apps=len(self.store.states),
            added=added,
            removed=removed,
            rescheduled=rescheduled,
        )
        return True

    def _rejected(self, reason: str, error: str, problems: list[str] | None = None) -> bool:
        self.store.reload.successful = False
        self.store.reload.last_error = error
        log.error(
            "config_reload_failed",
            reason=reason,
            file=str(self.settings.config),
            error=error if problems is None else None,
            problems=problems or [],
            keeping="the last good config",
        )
        return False

    async def _watch(self) -> None:
        """Reload when the file changes (also through a symlink swap) or on SIGHUP."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload.wait(), self.settings.watch_interval)
            signature = file_signature(self.settings.config)
            if self._reload.is_set():
                self._reload.clear()
                self._config_signature = signature
                await self.reload("SIGHUP")
            elif signature != self._config_signature and signature is not None:
                self._config_signature = signature
                await self.reload("file changed")

    def spawn(self, coro: Any, name: str) -> None:
        """Run ``coro`` for the daemon's lifetime: if it fails, the daemon stops with status 1."""
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.failed.append(task.get_name())
            log.error(
                "background_task_failed",
                task=task.get_name(),
                error=type(exc).__name__,
                exit_status=EXIT_FAILED,
                exc_info=exc,
            )
            self.stop()

    def stop(self) -> None:
        """What SIGTERM and SIGINT do: stop in reverse order; the exit deadline starts counting."""
        if self.exit_deadline is not None:
            self.exit_deadline.arm()
        self._stop.set()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        """Start in order, wait for SIGTERM or SIGINT, stop in reverse (an exit stack owns each part)."""
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.session.close)
            loop = asyncio.get_running_loop()
            for sig, handler in (
                (signal.SIGTERM, self.stop),
                (signal.SIGINT, self.stop),
                (signal.SIGHUP, self._reload.set),
            ):
                loop.add_signal_handler(sig, handler)
                stack.callback(loop.remove_signal_handler, sig)
            runner = web.AppRunner(
                make_app(self.store, self.metrics),
                access_log_class=AccessLogger,
                handle_signals=False,
                keepalive_timeout=KEEPALIVE_TIMEOUT,
                shutdown_timeout=1.0,  # pages in progress at shutdown: the exit deadline is 5 s in all
            )
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            previous = loop.get_exception_handler()
            loop.set_exception_handler(AcceptErrors(self.metrics.count_accept_error, fallback=previous))
            stack.callback(loop.set_exception_handler, previous)
            host, port = self.settings.listen
            assert runner.server is not None
            try:
                server, self.connections = await listen(
                    runner.server, host, port, max_connections=connection_cap()
                )
            except OSError as exc:  # address in use, not an address of this host, no permission
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                log.error("listen_failed", host=host, port=port, error=reason)
                print(f"callback-monitor: error: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
                return EXIT_CANNOT_START
            stack.callback(server.close)  # stop accepting first; runner.cleanup then closes connections
            assert self.store.config is not None
            await self.sinks.start(self.store.config.alerting)
            stack.push_async_callback(self.sinks.stop, ALERT_FLUSH)
            with collector_paused():
                await self._apply(self.store.config)
            self.store.reload.last_success = self.clock()
            self.scheduler.start()
            stack.push_async_callback(self.scheduler.shutdown, self.settings.grace)
            self.probes.start()
            stack.push_async_callback(self.probes.stop)
            self.store.ready = True
            stack.callback(setattr, self.store, "ready", False)
            stack.push_async_callback(self._cancel_background)
            self.spawn(self._watch(), "config-watch")
            log.info(
                "started",
                version=__version__,
                url=_site_url(server, host),
                apps=len(self.store.states),
                shard=f"{self.settings.shard.index}/{self.settings.shard.count}",
                config=str(self.settings.config),
                read_only=self.settings.read_only,
            )
            await self._stop.wait()
            log.info("stopping", grace=self.settings.grace, running_checks=self.scheduler.running_checks)
        if self.failed:
            log.error("stopped", failed_tasks=self.failed, exit_status=EXIT_FAILED)
            return EXIT_FAILED
        log.info("stopped")
        return 0

    async def _cancel_background(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


def _site_url(server: asyncio.Server, host: str) -> str:
    sockets = server.sockets
    port = sockets[0].getsockname()[1] if sockets else 0
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - shown, not bound
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


async def run(settings: ServeSettings, *, environ: Mapping[str, str] | None = None) -> int:
    """The ``serve`` command: 2 when the config is invalid at start, 0 after a clean stop, 1 after a
    background task failed or the stop overran SHUTDOWN_DEADLINE."""
    try:
        config = load_config(settings.config, environ=environ)
    except ConfigError as exc:
        log.error(
            "config_invalid",
            file=str(settings.config),
            problems=[str(p) for p in exc.problems],
            warnings=[str(w) for w in exc.warnings],
        )
        print(str(exc), file=sys.stderr)
        return 2
    for warning in config.warnings:
        log.warning("config_warning", file=str(settings.config), problem=str(warning))
    try:
        daemon = Daemon(settings, config, environ=environ, exit_deadline=ExitDeadline(SHUTDOWN_DEADLINE))
    except MonitorError as exc:
        log.error("ca_bundle_unusable", error=str(exc))
        print(f"callback-monitor: error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return await daemon.run()
