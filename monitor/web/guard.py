"""What keeps hostile neighbours from hurting the HTTP surface: body and concurrency bounds, headers,
and an access log without the probes and scrapes.

Only GET and HEAD are routed (405 otherwise), a request may carry at most ``CLIENT_MAX_SIZE`` bytes
of body (413 otherwise, before anything is read), and at most ``MAX_BUSY`` pages are rendered at
once: more get 503 with ``Retry-After`` at once instead of queueing up CPU and memory. The probes
are exempt, so liveness holds while /metrics is flooded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_log import AccessLogger as _AiohttpAccessLogger

CLIENT_MAX_SIZE = 64 * 1024  # every route is a GET; nothing legitimate sends a body
MAX_BUSY = 4  # pages (/metrics, /status, /) in progress at once: two Prometheus replicas and a person
PROBES = frozenset({"/healthz", "/readyz"})
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


class AccessLogger(_AiohttpAccessLogger):
    """aiohttp's access log without the probes and scrapes that would drown it."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path in QUIET_PATHS:
            return
        super().log(request, response, time)


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def headers(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """No content sniffing, no caching: every page is a snapshot of now."""
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def bounded(max_busy: int) -> Middleware:
    """A middleware refusing bodies over CLIENT_MAX_SIZE (or of unknown length) and pages beyond
    ``max_busy`` in progress; the probes are never refused for being busy."""
    busy = 0

    @web.middleware
    async def bounded(request: web.Request, handler: _Handler) -> web.StreamResponse:
        nonlocal busy
        length = request.content_length
        if request.body_exists and (length is None or length > CLIENT_MAX_SIZE):
            return web.Response(status=413, text=f"a request body may be at most {CLIENT_MAX_SIZE} bytes\n")
        if request.path in PROBES:
            return await handler(request)
        if busy >= max_busy:
            return web.Response(
                status=503, text="too many requests at once; retry shortly\n", headers={"Retry-After": "1"}
            )
        busy += 1
        try:
            return await handler(request)
        finally:
            busy -= 1

    return bounded
