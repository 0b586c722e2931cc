"""Hostile answers at the body limit: a fake of the vendor API on loopback sends strings shaped to make
a backtracking pattern quadratic ("a." * n, "?" * n) in every field the monitor reads, each answer just
under the 1 MiB body limit. Every check ends quickly as invalid_response, no line or page grows with
the answer, and /healthz of the running serve answers throughout.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.simulator import Simulator
from tests.reliability.lab import FIGURES, Fleet, Leaks, lines_of
from tests.serve_helpers import running

pytestmark = pytest.mark.slow

BODY_LIMIT = 1 << 20  # the client's cap on an answer, written out
PROBE_LIMIT = 1.0  # seconds for one /healthz answer


def _fill(shape: str, room: int) -> str:
    return (shape * (room // len(shape) + 1))[:room]


def _answer(build: Callable[[str], dict[str, Any]], shape: str) -> bytes:
    """The envelope ``build`` makes around a filler, the filler grown until the body is just under
    the limit (JSON escapes nothing in these shapes, so one step gets there)."""
    empty = json.dumps(build("")).encode()
    return json.dumps(build(_fill(shape, BODY_LIMIT - len(empty) - 16))).encode()


def _ok(response: dict[str, Any], request_id: str = "Id-1") -> dict[str, Any]:
    return {
        "ErrorCode": 0,
        "ErrorInfo": "",
        "ActionStatus": "OK",
        "RequestId": request_id,
        "Response": response,
    }


SHAPES: list[tuple[str, Callable[[str], dict[str, Any]], str]] = [
    (
        "RequestId a.",
        lambda s: _ok({"Url": "https://hooks.example.com/c", "CallbackCommandList": []}, s),
        "a.",
    ),
    ("RequestId ?", lambda s: _ok({"Url": "https://hooks.example.com/c", "CallbackCommandList": []}, s), "?"),
    (
        "ErrorInfo ?",
        lambda s: {"ErrorCode": 70003, "ErrorInfo": s, "ActionStatus": "FAIL", "RequestId": "I"},
        "?",
    ),
    (
        "ErrorInfo a.",
        lambda s: {"ErrorCode": 70003, "ErrorInfo": s, "ActionStatus": "FAIL", "RequestId": "I"},
        "a.",
    ),
    ("Url a.", lambda s: _ok({"Url": "https://" + s, "CallbackCommandList": []}), "a."),
    ("Url ?", lambda s: _ok({"Url": "https://h/" + s, "CallbackCommandList": []}), "?"),
    ("a command a.", lambda s: _ok({"Url": "https://hooks.example.com/c", "CallbackCommandList": [s]}), "a."),
    (
        "60,000 commands",
        lambda s: _ok(
            {"Url": "https://hooks.example.com/c", "CallbackCommandList": ["Room.X?"] * (len(s) // 11)}
        ),
        "a",
    ),
]


class HostileVendor:
    """Answers every request of an app with that app's body (by the sdkappid of the query)."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies
        self.served = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> HostileVendor:
        async def answer(request: web.Request) -> web.Response:
            body = self.bodies[request.query["sdkappid"]]
            self.served += 1
            return web.Response(body=body, content_type="application/json")

        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def _probe(url: str, until: asyncio.Event) -> AsyncIterator[tuple[int, float]]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not until.is_set():
            started = time.monotonic()
            async with session.get(url) as response:
                await response.read()
                yield response.status, time.monotonic() - started
            await asyncio.sleep(0.05)


def test_every_body_is_just_under_the_limit() -> None:
    for name, build, shape in SHAPES:
        size = len(_answer(build, shape))
        assert BODY_LIMIT - 64 < size <= BODY_LIMIT, (name, size)


async def test_pathological_answers_at_the_body_limit_never_stall_healthz(
    tmp_path: Path, leaks: Leaks
) -> None:
    fleet = Fleet(Simulator(seed=3), tmp_path, leaks, first_sdkappid=1400900000)
    bodies = {
        str(fleet.add(f"hostile-{i}", "in_sync").sdkappid): _answer(build, shape)
        for i, (_, build, shape) in enumerate(SHAPES)
    }
    async with HostileVendor(bodies) as vendor, running(fleet.write(vendor.url, interval="1s")) as serve:
        done = asyncio.Event()
        probes: list[tuple[int, float]] = []

        async def probe() -> None:
            async for result in _probe(serve.url + "/healthz", done):
                probes.append(result)

        prober = asyncio.create_task(probe())
        try:
            for name in fleet.apps:  # three checks of each app, each ending on its hostile answer
                await serve.wait_checks(name, 3, after=0, within=60)
        finally:
            done.set()
            await prober
        status = await serve.status()
        leaks.output("serve stdout (vendor bounds)", "\n".join(serve.raw))

    errors = list(lines_of(serve.lines, "check_error"))
    assert errors, serve.tail()
    assert {line["reason"] for line in errors} == {"invalid_response"}, {line["reason"] for line in errors}
    messages = {line.get("message", "") for line in errors}
    assert any("the RequestId is longer than 128 characters" in m for m in messages), messages
    assert any("the ErrorInfo is longer than 1024 characters" in m for m in messages), messages
    assert any("Response.Url is longer than 4096 characters" in m for m in messages), messages
    assert any("has more than 64 commands" in m for m in messages), messages
    assert max(len(raw) for raw in serve.raw) < 4096  # no log line carries the answer
    assert len(json.dumps(status)) < 64 * 1024  # nor does the status page
    assert probes, "no probe answered"
    assert [code for code, _ in probes] == [200] * len(probes)
    slowest = max(seconds for _, seconds in probes)
    assert slowest < PROBE_LIMIT, probes
    FIGURES["vendor bounds"] = (
        f"{vendor.served} answers of ~1 MiB in {len(SHAPES)} hostile shapes; {len(probes)} /healthz probes, "
        f"slowest {slowest * 1000:.0f} ms"
    )
