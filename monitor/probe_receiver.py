"""A small callback receiver on loopback for the demo and the probe tests: set statuses, seen requests."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web


@dataclass(frozen=True)
class Seen:
    """One request the receiver got, as it arrived."""

    method: str
    path_qs: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Receiver:
    """Answers every request with the status set for its path (``default`` for the others).

    A path whose status is a 3xx answers with a Location header pointing at ``/moved``. With a
    certificate and key it speaks HTTPS only; it listens on 127.0.0.1 and a free port.
    """

    def __init__(
        self,
        statuses: Mapping[str, int] | None = None,
        *,
        default: int = 204,
        cert_file: Path | None = None,
        key_file: Path | None = None,
    ) -> None:
        self.statuses = dict(statuses or {})
        self.default = default
        self.seen: list[Seen] = []
        self._context: ssl.SSLContext | None = None
        if cert_file is not None and key_file is not None:
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(cert_file, key_file)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def scheme(self) -> str:
        return "https" if self._context is not None else "http"

    async def start(self) -> int:
        """Starts listening; returns the port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _answer(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path_qs, tuple(request.headers.items()), body))
        status = self.statuses.get(request.path, self.default)
        headers = {"Location": "/moved"} if 300 <= status < 400 else None
        return web.Response(status=status, headers=headers)
