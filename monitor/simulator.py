"""A fake of Tencent's room_config admin API: a real aiohttp server for tests, the demo and benchmarks.

It answers ``POST /v4/room_config/{get,set,update,delete}_callback`` as the vendor documents (see
shared/reference): the JSON envelope on HTTP 200, UserSig v2 checked against each app's key with the
injected clock, one callback configuration per SDKAppID. Checks run in this order, first failure wins:
sdkappid absent or not a number (60006), ``contenttype`` not ``json`` or ``random`` not a uint32 or
``identifier`` absent (60002), unknown app (70016), UserSig empty (70002) or failing verification
(expired 70001, malformed 70003, other app's key 70009, identifier 70013, sdkappid 70014), identifier
not an admin (60010), body empty or not a JSON object (60003), bad ``Url``/``CallbackCommandList``
(100002), then set-when-present (100300) and update/get-when-absent (100301). Delete always succeeds.

Faults (``Faults``) are decided per request with the seeded random source before normal handling, in
the order hang, reset, latency, 502, HTML, garbage, empty, rate limit (60007), error code; an app's own
faults replace the global ones. A faulted request changes no state. Every request is counted by
(action, sdkappid) and the last 1000 are kept in ``Simulator.requests`` (never with the UserSig).

State file (YAML, or JSON when the name ends in ``.json``), the same shape ``dump_state`` returns::

    apps:
      - sdkappid: 1400000001
        name: demo-in-sync            # optional label, kept but unused
        key: <the app's secret key>
        admins: [administrator]       # optional, this is the default
        callback:                     # or null: no configuration
          url: https://hooks.example.com/tencent/room
          commands: [Room.CallbackAfterCreateRoom]
    faults: {latency: 0.1}            # optional, global; fields of Faults
    app_faults:                       # optional, per SDKAppID; replaces the global faults
      1400000002: {http_502_rate: 1.0}

The control API under ``/_sim/`` (JSON) is a test tool: ``GET /_sim/state`` returns the state above
*including the secret keys*; ``PUT /_sim/apps/{sdkappid}`` (``{"key", "admins", "callback"}``, creates
or replaces), ``DELETE /_sim/apps/{sdkappid}``, ``PUT /_sim/apps/{sdkappid}/callback`` (``{"url",
"commands"}`` or null), ``PUT /_sim/faults`` and ``PUT /_sim/apps/{sdkappid}/faults`` (Faults fields;
``{}`` clears), ``GET /_sim/counts``, ``POST /_sim/reset-counts``, ``GET /_sim/requests``. Nothing it
logs carries a key, and the server runs without an access log because request URLs carry UserSigs.
The control API has no authentication: listen on loopback unless the network is a test's own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml
from aiohttp import web

from monitor.errors import ConfigError, Problem, UserSigError
from monitor.redact import redact_url
from monitor.tencent import usersig
from monitor.tencent.model import CallbackConfig

log = structlog.get_logger("monitor.simulator")

ACTIONS = ("get_callback", "set_callback", "update_callback", "delete_callback")
RECORDED_REQUESTS = 1000
_STATE_KEYS = frozenset({"apps", "faults", "app_faults"})
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


@dataclass(frozen=True)
class Faults:
    """Misbehaviour to inject; rates are probabilities 0..1, decided per request."""

    latency: float = 0.0
    http_502_rate: float = 0.0
    html_rate: float = 0.0
    garbage_rate: float = 0.0
    empty_rate: float = 0.0
    reset_rate: float = 0.0
    hang_rate: float = 0.0
    error_code: int | None = None
    error_code_rate: float = 0.0
    rate_limit_rate: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "error_code":
                if value is not None and (type(value) is not int or value <= 0):
                    raise ValueError("error_code must be a positive integer or null")
            elif type(value) not in (int, float) or not value >= 0:
                raise ValueError(f"{f.name} must be a number >= 0")
            elif f.name != "latency" and value > 1:
                raise ValueError(f"{f.name} must be between 0 and 1")

    @property
    def active(self) -> bool:
        return self != _NO_FAULTS

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Faults from JSON/YAML fields; raises ValueError on an unknown field or a bad value."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(map(str, unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that differ from the defaults."""
        default = Faults()
        return {k: v for k, v in dataclasses.asdict(self).items() if getattr(default, k) != v}


_NO_FAULTS = Faults()


@dataclass(frozen=True)
class RecordedRequest:
    """One vendor API request as received (the UserSig is deliberately not kept)."""

    action: str
    sdkappid: int | None
    identifier: str
    random: int | None
    body: str
    time: float

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(eq=False)
class _App:
    sdkappid: int
    key: str = field(repr=False)
    admins: tuple[str, ...]
    callback: CallbackConfig | None
    name: str | None = None
    # (usersig, identifier) -> expiry of a signature that verified; the expiry is rechecked each time.
    sig_cache: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)


class _Reject(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class Simulator:
    """The fake vendor API with its state, faults, counters and control API."""

    def __init__(self, *, clock: Callable[[], float] = time.time, seed: int | None = None) -> None:
        self._clock = clock
        self._rng = random.Random(seed)
        self._ids = random.Random(seed)
        self._seq = itertools.count(1)
        self._apps: dict[int, _App] = {}
        self._faults = Faults()
        self._app_faults: dict[int, Faults] = {}
        self._counts: collections.Counter[tuple[str, int | None]] = collections.Counter()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.requests: collections.deque[RecordedRequest] = collections.deque(maxlen=RECORDED_REQUESTS)
        self.url: str | None = None

    # ---- state -------------------------------------------------------------------------------

    def add_app(
        self,
        sdkappid: int,
        key: str,
        *,
        admins: Iterable[str] = ("administrator",),
        callback: CallbackConfig | None = None,
        name: str | None = None,
    ) -> None:
        """Create or replace an app (a replaced app forgets its cached UserSigs)."""
        if type(sdkappid) is not int or sdkappid <= 0:
            raise ValueError("sdkappid must be a positive integer")
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        admin_list = tuple(admins)
        if isinstance(admins, str) or not admin_list or not all(isinstance(a, str) and a for a in admin_list):
            raise ValueError("admins must be a non-empty list of non-empty strings")
        if name is not None and not isinstance(name, str):
            raise ValueError("name must be a string")
        self._apps[sdkappid] = _App(sdkappid, key, admin_list, callback, name)

    def remove_app(self, sdkappid: int) -> None:
        """Forget an app; raises KeyError when it does not exist. Its faults stay until cleared."""
        del self._apps[sdkappid]

    def set_callback(self, sdkappid: int, callback: CallbackConfig | None) -> None:
        self._apps[sdkappid].callback = callback

    def callback(self, sdkappid: int) -> CallbackConfig | None:
        return self._apps[sdkappid].callback

    def apps(self) -> list[int]:
        return sorted(self._apps)

    def set_faults(self, faults: Faults, sdkappid: int | None = None) -> None:
        """Global faults (``sdkappid`` None) or one app's; an all-default Faults clears an app's own."""
        if sdkappid is None:
            self._faults = faults
        elif faults.active:
            self._app_faults[sdkappid] = faults
        else:
            self._app_faults.pop(sdkappid, None)

    def faults(self, sdkappid: int | None = None) -> Faults:
        """The faults in force for requests naming ``sdkappid`` (None: the global ones)."""
        if sdkappid is None:
            return self._faults
        return self._app_faults.get(sdkappid, self._faults)

    def count(self, action: str | None = None, sdkappid: int | None = None) -> int:
        """Vendor API requests received, whatever their outcome, optionally filtered."""
        return sum(
            n
            for (a, s), n in self._counts.items()
            if (action is None or a == action) and (sdkappid is None or s == sdkappid)
        )

    def counts(self) -> dict[str, Any]:
        """The counters as JSON: totals, per action, and per sdkappid and action."""
        by_action: collections.Counter[str] = collections.Counter()
        by_app: dict[str, dict[str, int]] = {}
        for (action, sdkappid), n in self._counts.items():
            by_action[action] += n
            by_app.setdefault("invalid" if sdkappid is None else str(sdkappid), {})[action] = n
        return {"total": sum(by_action.values()), "by_action": dict(by_action), "by_sdkappid": by_app}

    def reset_counts(self) -> None:
        self._counts.clear()
        self.requests.clear()

    def load_state(self, path: Path) -> None:
        """Replace the whole state with a YAML or JSON state file; raises ConfigError."""
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            # Parser messages quote the offending text, which may be a key: give only where it broke.
            mark = getattr(exc, "problem_mark", None)
            line = None if mark is None else mark.line + 1
            raise ConfigError(source, [Problem("", f"cannot read: {type(exc).__name__}", line)]) from None
        self.load_dict(data, source=source)

    def load_dict(self, data: Any, *, source: str = "<state>") -> None:
        """Replace the whole state with ``data`` (the shape of ``dump_state``); raises ConfigError."""
        if not isinstance(data, Mapping):
            raise ConfigError(source, [Problem("", "the state must be a mapping with 'apps'")])
        problems = [Problem(k, "unknown key") for k in sorted(set(map(str, data)) - _STATE_KEYS)]
        specs: dict[int, _AppSpec] = {}
        app_faults: dict[int, Faults] = {}
        global_faults = Faults()
        raw_apps = data.get("apps") or []
        if not isinstance(raw_apps, list):
            problems.append(Problem("apps", "must be a list"))
            raw_apps = []
        for i, raw in enumerate(raw_apps):
            with _collect(problems, f"apps[{i}]"):
                spec = _parse_app(raw)
                if spec.sdkappid in specs:
                    raise ValueError(f"duplicate sdkappid {spec.sdkappid}")
                specs[spec.sdkappid] = spec
        with _collect(problems, "faults"):
            global_faults = Faults.from_dict(_mapping(data.get("faults") or {}))
        with _collect(problems, "app_faults"):
            for sdkappid, raw in _mapping(data.get("app_faults") or {}).items():
                with _collect(problems, f"app_faults.{sdkappid}"):
                    app_faults[_uint(sdkappid)] = Faults.from_dict(_mapping(raw))
        if problems:
            raise ConfigError(source, problems)
        self._apps.clear()
        for s in specs.values():
            self.add_app(s.sdkappid, s.key, admins=s.admins, callback=s.callback, name=s.name)
        self._faults = global_faults
        self._app_faults = {k: v for k, v in app_faults.items() if v.active}

    def dump_state(self) -> dict[str, Any]:
        """The whole state in the state-file shape, JSON-ready. It contains the secret keys."""
        apps = []
        for app in sorted(self._apps.values(), key=lambda a: a.sdkappid):
            entry: dict[str, Any] = {"sdkappid": app.sdkappid}
            if app.name is not None:
                entry["name"] = app.name
            entry["key"] = app.key
            entry["admins"] = list(app.admins)
            entry["callback"] = _callback_json(app.callback)
            apps.append(entry)
        return {
            "apps": apps,
            "faults": self._faults.to_dict(),
            "app_faults": {str(k): v.to_dict() for k, v in sorted(self._app_faults.items())},
        }

    # ---- server ------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application. Run it without an access log: request URLs carry UserSigs."""
        app = web.Application()
        for action in ACTIONS:
            app.router.add_post(f"/v4/room_config/{action}", self._vendor_handler(action))
        _add_control_routes(app, self)
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

    # ---- the vendor API ----------------------------------------------------------------------

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


# ---- the control API ---------------------------------------------------------------------------


def _add_control_routes(app: web.Application, sim: Simulator) -> None:
    async def state(_: web.Request) -> web.Response:
        return web.json_response(sim.dump_state())

    async def put_app(request: web.Request) -> web.Response:
        spec = _parse_app(await _json_body(request), _path_sdkappid(request))
        sim.add_app(spec.sdkappid, spec.key, admins=spec.admins, callback=spec.callback, name=spec.name)
        log.info(
            "simulator app set",
            sdkappid=spec.sdkappid,
            admins=list(spec.admins),
            callback=describe_callback(spec.callback),
        )
        return web.json_response({"sdkappid": spec.sdkappid})

    async def delete_app(request: web.Request) -> web.Response:
        sdkappid = _path_sdkappid(request)
        try:
            sim.remove_app(sdkappid)
        except KeyError:
            return web.json_response({"error": "no such app"}, status=404)
        log.info("simulator app removed", sdkappid=sdkappid)
        return web.json_response({"sdkappid": sdkappid})

    async def put_callback(request: web.Request) -> web.Response:
        sdkappid = _path_sdkappid(request)
        callback = parse_callback(await _json_body(request))
        try:
            sim.set_callback(sdkappid, callback)
        except KeyError:
            return web.json_response({"error": "no such app"}, status=404)
        log.info("simulator callback set", sdkappid=sdkappid, callback=describe_callback(callback))
        return web.json_response({"sdkappid": sdkappid, "callback": _callback_json(callback)})

    async def put_faults(request: web.Request) -> web.Response:
        sdkappid = _path_sdkappid(request) if "sdkappid" in request.match_info else None
        data = await _json_body(request)
        faults = Faults() if data is None else Faults.from_dict(_mapping(data))
        sim.set_faults(faults, sdkappid)
        log.info("simulator faults set", sdkappid=sdkappid, faults=faults.to_dict())
        return web.json_response(sim.faults(sdkappid).to_dict())

    async def counts(_: web.Request) -> web.Response:
        return web.json_response(sim.counts())

    async def reset_counts(_: web.Request) -> web.Response:
        sim.reset_counts()
        return web.json_response({"total": 0})

    async def requests(_: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(r) for r in sim.requests])

    routes = [
        ("GET", "/_sim/state", state),
        ("PUT", "/_sim/apps/{sdkappid}", put_app),
        ("DELETE", "/_sim/apps/{sdkappid}", delete_app),
        ("PUT", "/_sim/apps/{sdkappid}/callback", put_callback),
        ("PUT", "/_sim/faults", put_faults),
        ("PUT", "/_sim/apps/{sdkappid}/faults", put_faults),
        ("GET", "/_sim/counts", counts),
        ("POST", "/_sim/reset-counts", reset_counts),
        ("GET", "/_sim/requests", requests),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _bad_input_is_400(handler))


def _bad_input_is_400(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def guarded(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    return guarded


def _path_sdkappid(request: web.Request) -> int:
    return _uint(request.match_info["sdkappid"])


async def _json_body(request: web.Request) -> Any:
    """The request's JSON body; an empty body is null."""
    body = await request.read()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise ValueError("the body is not valid JSON") from None


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer; aiohttp then gives up writing the returned response."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)


def _callback_json(callback: CallbackConfig | None) -> dict[str, Any] | None:
    return None if callback is None else {"url": callback.url, "commands": list(callback.commands)}


def describe_callback(callback: CallbackConfig | None) -> str:
    """A log-safe description of a callback configuration (query values redacted)."""
    return "none" if callback is None else f"{redact_url(callback.url)} ({len(callback.commands)} commands)"


def parse_callback(data: Any) -> CallbackConfig | None:
    """``{"url": str, "commands": [str]}`` or None; raises ValueError."""
    if data is None:
        return None
    data = _mapping(data)
    url, commands = data.get("url"), data.get("commands")
    if set(data) - {"url", "commands"}:
        raise ValueError("callback takes only 'url' and 'commands'")
    if not isinstance(url, str) or not url:
        raise ValueError("callback url must be a non-empty string")
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise ValueError("callback commands must be a list of strings")
    return CallbackConfig(url, tuple(commands))


@dataclass(frozen=True)
class _AppSpec:
    sdkappid: int
    key: str = field(repr=False)
    admins: tuple[str, ...]
    callback: CallbackConfig | None
    name: str | None


def _parse_app(raw: Any, sdkappid: Any = None) -> _AppSpec:
    """One app from JSON/YAML (``sdkappid`` from the URL path, else from ``raw``); raises ValueError."""
    data = _mapping(raw)
    unknown = sorted(set(map(str, data)) - {"sdkappid", "name", "key", "admins", "callback"})
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(unknown)}")
    if sdkappid is None:
        sdkappid = data.get("sdkappid")
    if type(sdkappid) is not int or sdkappid <= 0:
        raise ValueError("sdkappid must be a positive integer")
    key, admins, name = data.get("key"), data.get("admins", ["administrator"]), data.get("name")
    if not isinstance(key, str) or not key:
        raise ValueError("key must be a non-empty string")
    if not isinstance(admins, list) or not admins or not all(isinstance(a, str) and a for a in admins):
        raise ValueError("admins must be a non-empty list of strings")
    if name is not None and not isinstance(name, str):
        raise ValueError("name must be a string")
    return _AppSpec(sdkappid, key, tuple(admins), parse_callback(data.get("callback")), name)


@contextlib.contextmanager
def _collect(problems: list[Problem], path: str) -> Any:
    try:
        yield
    except (ValueError, TypeError) as exc:
        problems.append(Problem(path, str(exc)))


def _mapping(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError("must be a mapping")
    return data


def _uint(value: Any) -> int:
    number = value if type(value) is int else _uint_or_none(str(value))
    if number is None or number <= 0:
        raise ValueError("sdkappid must be a positive integer")
    return number


def _uint_or_none(text: str) -> int | None:
    # str.isdigit alone accepts other scripts' digits, and int() accepts "+1", " 1" and "1_0".
    if text and len(text) <= 20 and text.isascii() and text.isdigit():
        return int(text)
    return None


# ---- the demo's sample apps and the stand-alone server ------------------------------------------

SAMPLE_DESIRED = CallbackConfig(
    "https://hooks.example.com/tencent/room",
    (
        "Room.CallbackAfterCreateRoom",
        "Room.CallbackAfterDestroyRoom",
        "Room.CallbackAfterMemberEnter",
        "Room.CallbackAfterMemberLeave",
    ),
)
"""The desired callback of every sample app except ``demo-no-config`` (which should have none)."""


def sample_key(sdkappid: int) -> str:
    """The made-up key of a sample app: a public demo value, never a real Tencent key."""
    return hashlib.sha256(f"callback-monitor demo key {sdkappid}".encode()).hexdigest()


def sample_state() -> dict[str, Any]:
    """The demo's five apps, in the state-file shape. Their keys are public demo keys (``sample_key``).

    Against ``SAMPLE_DESIRED`` (and ``callback: null`` for demo-no-config): 1400000001 is in sync,
    1400000002 points at another host, 1400000003 uses plain http, 1400000004 lacks two commands, and
    1400000005 has no configuration at all (in sync with its desired null).
    """
    want = SAMPLE_DESIRED
    callbacks: list[tuple[int, str, CallbackConfig | None]] = [
        (1400000001, "demo-in-sync", want),
        (
            1400000002,
            "demo-drifted-url",
            CallbackConfig("https://hooks.example.net/collect?token=demo", want.commands),
        ),
        (
            1400000003,
            "demo-plain-http",
            CallbackConfig(want.url.replace("https://", "http://"), want.commands),
        ),
        (1400000004, "demo-missing-commands", CallbackConfig(want.url, want.commands[:2])),
        (1400000005, "demo-no-config", None),
    ]
    apps = [
        {
            "sdkappid": sdkappid,
            "name": name,
            "key": sample_key(sdkappid),
            "admins": ["administrator"],
            "callback": _callback_json(callback),
        }
        for sdkappid, name, callback in callbacks
    ]
    return {"apps": apps, "faults": {}, "app_faults": {}}


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6HOST]:PORT`` (an empty host is 127.0.0.1); raises ValueError."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen address must be HOST:PORT, got {listen!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "127.0.0.1", int(port)


async def serve_forever(
    listen: str, state_file: Path | None, *, on_ready: Callable[[str], None] | None = None
) -> None:
    """Run a simulator on ``listen`` with ``state_file`` (or the sample apps) until cancelled."""
    host, port = parse_listen(listen)
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
