"""The simulator as an aiohttp server: the application, start and stop, and the stand-alone runner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from aiohttp import web

from monitor.simulator.api import ACTIONS, VendorAPI
from monitor.simulator.control import add_control_routes
from monitor.simulator.state import sample_state

log = structlog.get_logger("monitor.simulator")


class Simulator(VendorAPI):
    """The fake vendor API with its state, faults, counters and control API."""

    def __init__(self, *, clock: Callable[[], float] = time.time, seed: int | None = None) -> None:
        super().__init__(clock=clock, seed=seed)
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    def make_app(self) -> web.Application:
        """The aiohttp application. Run it without an access log: request URLs carry UserSigs."""
        app = web.Application()
        for action in ACTIONS:
            app.router.add_post(f"/v4/room_config/{action}", self._vendor_handler(action))
        add_control_routes(app, self)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port); returns the base URL."""
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            self.make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        url_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.url = f"http://{url_host}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        """Stop serving; hanging and delayed requests are released (their connections closed)."""
        self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


async def serve_forever(
    host: str, port: int, state_file: Path | None, *, on_ready: Callable[[str], None] | None = None
) -> None:
    """Run a simulator on ``host:port`` with ``state_file`` (or the sample apps) until cancelled."""
    sim = Simulator()
    if state_file is None:
        sim.load_dict(sample_state(), source="sample_state()")
    else:
        sim.load_state(state_file)
    url = await sim.start(host, port)
    try:
        log.info("simulator listening", url=url, apps=len(sim.apps()))
        if on_ready is not None:
            on_ready(url)
        await asyncio.Event().wait()
    finally:
        await sim.stop()
