"""The vendor API half of the simulator: request checks in order, UserSig verification, faults, envelopes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from monitor.errors import UserSigError
from monitor.simulator.state import Faults, RecordedRequest, SimulatorState, _App, _uint_or_none
from monitor.tencent import usersig
from monitor.tencent.model import CallbackConfig

ACTIONS = ("get_callback", "set_callback", "update_callback", "delete_callback")
_SIG_CACHE_SIZE = 256
_UINT32_MAX = 4294967295

_SIG_CODES = {
    "expired": 70001,
    "malformed": 70003,
    "bad_signature": 70009,
    "identifier_mismatch": 70013,
    "sdkappid_mismatch": 70014,
}
ERROR_INFO: dict[int, str] = {
    60002: "HTTP parse error, please check the request URL parameters",
    60003: "HTTP request body is not valid JSON",
    60006: "SDKAppID is invalid",
    60007: "Request frequency exceeds the limit, please retry later",
    60010: "The request must be made by an App administrator",
    70001: "UserSig has expired, please generate a new one",
    70002: "UserSig is empty",
    70003: "UserSig is invalid",
    70005: "UserSig is invalid",
    70009: "UserSig verification failed: signed with another key",
    70013: "The identifier does not match the UserSig",
    70014: "The SDKAppID does not match the UserSig",
    70016: "Key or SDKAppID not found",
    100001: "Internal server error, please retry",
    100002: "Invalid parameter",
    100300: "Callback configuration already exists, use update_callback",
    100301: "Callback configuration does not exist, use set_callback",
}
_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>stgw</center>\r\n</body>\r\n</html>\r\n"
)
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Tencent Cloud</title></head>"
    "<body><p>The service is busy. Please try again later.</p></body></html>"
)


class _Reject(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class VendorAPI(SimulatorState):
    """Answers ``/v4/room_config/*`` against the state, with the injected clock and seeded randomness."""

    def __init__(self, *, clock: Callable[[], float] = time.time, seed: int | None = None) -> None:
        super().__init__()
        self._clock = clock
        self._rng = random.Random(seed)
        self._ids = random.Random(seed)
        self._seq = itertools.count(1)
        self._stopping = asyncio.Event()

    def _vendor_handler(self, action: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._handle(action, request)

        return handler

    async def _handle(self, action: str, request: web.Request) -> web.StreamResponse:
        query = request.query
        raw_sdkappid = query.get("sdkappid", "")
        sdkappid = _uint_or_none(raw_sdkappid)
        identifier = query.get("identifier", "")
        rand = _uint_or_none(query.get("random", ""))
        body = await request.read()
        now = self._clock()
        self._counts[(action, sdkappid)] += 1
        self.requests.append(
            RecordedRequest(action, sdkappid, identifier, rand, body.decode("utf-8", "replace"), now)
        )
        faults = self._faults if sdkappid is None else self._app_faults.get(sdkappid, self._faults)
        if faults.active:
            faulted = await self._apply_faults(faults, request)
            if faulted is not None:
                return faulted
        try:
            if sdkappid is None:
                raise _Reject(60006)
            if query.get("contenttype") != "json" or rand is None or rand > _UINT32_MAX or not identifier:
                raise _Reject(60002)
            app = self._apps.get(sdkappid)
            if app is None:
                raise _Reject(70016)
            self._verify(app, query.get("usersig", ""), identifier, now)
            if identifier not in app.admins:
                raise _Reject(60010)
            try:
                payload = json.loads(body)
            except ValueError:
                raise _Reject(60003) from None
            if not isinstance(payload, dict):
                raise _Reject(60003)
            response = self._act(app, action, payload)
        except _Reject as reject:
            return self._envelope(reject.code)
        return self._envelope(0, response)

    def _verify(self, app: _App, sig: str, identifier: str, now: float) -> None:
        if not sig:
            raise _Reject(70002)
        cache_key = (sig, identifier)
        expires_at = app.sig_cache.get(cache_key)
        if expires_at is None:
            try:
                doc = usersig.verify(sig, app.sdkappid, app.key, identifier, now)
            except UserSigError as exc:
                raise _Reject(_SIG_CODES.get(exc.problem, 70005)) from None
            if len(app.sig_cache) >= _SIG_CACHE_SIZE:
                app.sig_cache.clear()
            app.sig_cache[cache_key] = expires_at = doc.expires_at
        if now > expires_at:
            raise _Reject(70001)

    def _act(self, app: _App, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action == "get_callback":
            if app.callback is None:
                raise _Reject(100301)
            return {"Url": app.callback.url, "CallbackCommandList": list(app.callback.commands)}
        if action == "delete_callback":
            app.callback = None
            return None
        url = payload.get("Url")
        commands = payload.get("CallbackCommandList")
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            raise _Reject(100002)
        if not (isinstance(commands, list) and all(isinstance(c, str) for c in commands)):
            raise _Reject(100002)
        if action == "set_callback" and app.callback is not None:
            raise _Reject(100300)
        if action == "update_callback" and app.callback is None:
            raise _Reject(100301)
        app.callback = CallbackConfig(url, tuple(commands))
        return None

    def _envelope(self, code: int, response: dict[str, Any] | None = None) -> web.Response:
        return web.Response(body=self._envelope_bytes(code, response), content_type="application/json")

    def _envelope_bytes(self, code: int, response: dict[str, Any] | None = None) -> bytes:
        reply: dict[str, Any] = {
            "ActionStatus": "OK" if code == 0 else "FAIL",
            "ErrorCode": code,
            "ErrorInfo": "" if code == 0 else ERROR_INFO.get(code, f"simulated error {code}"),
            "RequestId": f"Id-{self._ids.getrandbits(128):032x}-O-Seq-{next(self._seq)}",
        }
        if response is not None:
            reply["Response"] = response
        return json.dumps(reply).encode("utf-8")

    async def _apply_faults(self, faults: Faults, request: web.Request) -> web.StreamResponse | None:
        if self._chance(faults.hang_rate):
            await self._wait_until_released(request)
            return _drop(request)
        if self._chance(faults.reset_rate):
            return _drop(request)
        if faults.latency > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), faults.latency)
        if self._chance(faults.http_502_rate):
            return web.Response(status=502, text=_GATEWAY_PAGE, content_type="text/html")
        if self._chance(faults.html_rate):
            return web.Response(text=_HTML_PAGE, content_type="text/html")
        if self._chance(faults.garbage_rate):
            whole = self._envelope_bytes(0)
            return web.Response(body=whole[: len(whole) // 2], content_type="application/json")
        if self._chance(faults.empty_rate):
            return web.Response(body=b"", content_type="application/json")
        if self._chance(faults.rate_limit_rate):
            return self._envelope(60007)
        if faults.error_code is not None and self._chance(faults.error_code_rate):
            return self._envelope(faults.error_code)
        return None

    def _chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        return rate >= 1 or self._rng.random() < rate

    async def _wait_until_released(self, request: web.Request) -> None:
        # Under start() aiohttp cancels this on disconnect; other runners may not, hence the polling.
        while not self._stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.2)


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer; aiohttp then gives up writing the returned response."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)
