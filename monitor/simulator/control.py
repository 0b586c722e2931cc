"""The simulator's ``/_sim/`` control API (JSON, unauthenticated, for tests and the demo)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from monitor.redact import redact_url
from monitor.simulator.state import (
    Faults,
    SimulatorState,
    _callback_json,
    _mapping,
    _parse_app,
    _uint,
    parse_callback,
)
from monitor.tencent.model import CallbackConfig

log = structlog.get_logger("monitor.simulator")


def add_control_routes(app: web.Application, sim: SimulatorState) -> None:
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


def describe_callback(callback: CallbackConfig | None) -> str:
    """A log-safe description of a callback configuration (query values redacted)."""
    return "none" if callback is None else f"{redact_url(callback.url)} ({len(callback.commands)} commands)"
