"""The aiohttp application: the routes of /metrics, /healthz, /readyz, /status and /.

Every page is built from a snapshot taken on the event loop and rendered in a worker thread: at
10,000 apps a page is a second of CPU, and the loop must keep running checks meanwhile. Every URL
shown passes through ``redact_url``; metrics carry none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import hdrs, web

from monitor.metrics import Metrics
from monitor.store import Store
from monitor.web.guard import CLIENT_MAX_SIZE, MAX_BUSY, bounded, headers
from monitor.web.page import status_html
from monitor.web.view import View, status_json


def make_app(
    store: Store, metrics: Metrics, *, now: Callable[[], float] = time.time, max_busy: int = MAX_BUSY
) -> web.Application:
    """The daemon's HTTP surface. GET (and HEAD) only; other methods get 405; see the module's
    docstring (monitor.web.guard) for the bounds on request size and pages in progress."""

    async def scrape(request: web.Request) -> web.Response:
        snapshot = metrics.snapshot()
        accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
        encoding = ",".join(request.headers.getall(hdrs.ACCEPT_ENCODING, []))
        exposition = await asyncio.to_thread(metrics.expose, snapshot, accept, encoding)
        return web.Response(
            body=exposition.body, headers={**exposition.headers, "Vary": "Accept, Accept-Encoding"}
        )

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        if store.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready: the config is not loaded yet\n")

    async def status(_request: web.Request) -> web.Response:
        view = View.of(store, now())
        text = await asyncio.to_thread(status_json, view)
        response = web.Response(text=text, content_type="application/json", charset="utf-8")
        response.enable_compression()
        return response

    async def page(_request: web.Request) -> web.Response:
        view = View.of(store, now())
        text = await asyncio.to_thread(status_html, view)
        response = web.Response(text=text, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        response.enable_compression()
        return response

    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[headers, bounded(max_busy)])
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    app.router.add_get("/", page)
    return app
