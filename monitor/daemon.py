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
from monitor.errors import ConfigError, MonitorError
from monitor.filestat import file_signature
from monitor.metrics import Metrics
from monitor.remediate import Executor, Remediator
from monitor.scheduler import RateLimiter, Scheduler, in_shard
from monitor.settings import ServeSettings, tls_context
from monitor.sinks import AlertSinks
from monitor.state import AppIdentity, AppState, reidentify, transition
from monitor.store import Store
from monitor.tencent.client import RoomConfigClient
from monitor.web import AccessLogger, make_app

log = structlog.get_logger("monitor.daemon")

EXIT_CANNOT_START = 2  # as for an invalid config: the operator must change how it is started
ALERT_FLUSH = 2.0  # seconds the alert sinks get at shutdown to deliver what they hold


def identity_of(app: AppConfig) -> AppIdentity:
    return AppIdentity(
        name=app.name,
        sdkappid=app.sdkappid,
        labels=app.labels,
        desired=app.callback,
        error_threshold=app.error_threshold,
    )


class Daemon:
    def __init__(
        self,
        settings: ServeSettings,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.environ = environ
        self.store = Store(config=config, started=clock(), shard=(settings.shard.index, settings.shard.count))
        self.store.listeners.append(LogSink())
        self.metrics = Metrics(self.store, version=__version__)
        self.sinks = AlertSinks(
            self.store, self.metrics, external_url=settings.external_url, clock=clock, environ=environ
        )
        self.limiter = RateLimiter(config.limits.requests_per_second)
        self.scheduler = Scheduler(
            self._run_check, concurrency=config.limits.concurrency, on_planned=self._planned
        )
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._config_signature = file_signature(settings.config)

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

    def _apply(self, config: Config) -> tuple[int, int, int]:
        """Make the running state match ``config``, keeping the state of apps that stay."""
        shard = self.settings.shard
        apps = in_shard(config.apps, shard.index, shard.count)
        states: dict[str, AppState] = {}
        for app in apps:
            prev = self.store.states.get(app.name)
            identity = identity_of(app)
            if prev is None or prev.identity.sdkappid != app.sdkappid:
                states[app.name] = AppState.initial(identity)
            else:
                states[app.name] = reidentify(prev, identity)
        self.store.states = states
        self.store.config = config
        self.scheduler.set_concurrency(config.limits.concurrency)
        self.limiter.rate = config.limits.requests_per_second
        return self.scheduler.sync(apps, rate=config.limits.requests_per_second)

    async def reload(self, reason: str) -> bool:
        """Load the config file again; on success apply it, on failure keep the last good one.

        The file is parsed in a worker thread: a large file takes a second or more, and the event
        loop must keep answering probes and running checks meanwhile.
        """
        now = self.clock()
        self.store.reload.last_attempt = now
        try:
            config = await asyncio.to_thread(load_config, self.settings.config, environ=self.environ)
        except ConfigError as exc:
            self.store.reload.successful = False
            self.store.reload.last_error = str(exc)
            log.error(
                "config_reload_failed",
                reason=reason,
                file=str(self.settings.config),
                problems=[str(p) for p in exc.problems],
                warnings=[str(w) for w in exc.warnings],
                keeping="the last good config",
            )
            return False
        for warning in config.warnings:
            log.warning("config_warning", file=str(self.settings.config), problem=str(warning))
        added, removed, rescheduled = self._apply(config)
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

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_task_failed", task=task.get_name(), exc_info=task.exception())
            self._stop.set()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            tls = tls_context(self.settings.ca_bundle)
        except MonitorError as exc:
            log.error("ca_bundle_unusable", error=str(exc))
            print(f"callback-monitor: error: {exc}", file=sys.stderr)
            return EXIT_CANNOT_START
        loop = asyncio.get_running_loop()
        for sig, handler in (
            (signal.SIGTERM, self._stop.set),
            (signal.SIGINT, self._stop.set),
            (signal.SIGHUP, self._reload.set),
        ):
            loop.add_signal_handler(sig, handler)
        # The scheduler's semaphore bounds requests in flight; the pool need not bound them again.
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=tls))
        client = RoomConfigClient(
            session, observer=self.metrics.observe_request, throttle=self.limiter.acquire
        )
        self.checker = Checker(client, clock=self.clock, environ=self.environ)
        # Read-only: no writer exists at all, whatever the config says.
        self.remediator: Remediator | None = None
        if not self.settings.read_only:
            executor = Executor(client, read_only=False, clock=self.clock)
            self.remediator = Remediator(
                executor,
                self.checker.target,
                emit=self.store.emit,
                count=self.metrics.count_remediation,
                clock=self.clock,
            )
        runner = web.AppRunner(
            make_app(self.store, self.metrics), access_log_class=AccessLogger, handle_signals=False
        )
        try:
            await runner.setup()
            host, port = self.settings.listen
            # A burst of connections (a scraper flood) must not overflow the accept queue: the kernel
            # would drop the kubelet's probe SYN too, and its retry comes only a second later.
            site = web.TCPSite(runner, host, port, backlog=1024)
            try:
                await site.start()
            except OSError as exc:  # address in use, not an address of this host, no permission
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                log.error("listen_failed", host=host, port=port, error=reason)
                print(f"callback-monitor: error: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
                return EXIT_CANNOT_START
            url = _site_url(runner, host)
            assert self.store.config is not None
            await self.sinks.start(self.store.config.alerting)
            self._apply(self.store.config)
            self.store.reload.last_success = self.clock()
            self.scheduler.start()
            self.store.ready = True
            self._spawn(self._watch(), "config-watch")
            log.info(
                "started",
                version=__version__,
                url=url,
                apps=len(self.store.states),
                shard=f"{self.settings.shard.index}/{self.settings.shard.count}",
                config=str(self.settings.config),
                read_only=self.settings.read_only,
            )
            await self._stop.wait()
            log.info("stopping", grace=self.settings.grace, running_checks=self.scheduler.running_checks)
        finally:
            self.store.ready = False
            await self.scheduler.shutdown(self.settings.grace)
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await self.sinks.stop(ALERT_FLUSH)
            await runner.cleanup()
            await session.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("stopped")
        return 0


def _site_url(runner: web.AppRunner, host: str) -> str:
    addresses = runner.addresses
    port = addresses[0][1] if addresses else 0
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - shown, not bound
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


async def run(settings: ServeSettings, *, environ: Mapping[str, str] | None = None) -> int:
    """The ``serve`` command: 2 when the config is invalid at start, 0 after a clean stop."""
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
    return await Daemon(settings, config, environ=environ).run()
