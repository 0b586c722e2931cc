"""The room_config simulator, driven over loopback HTTP like the vendor API it stands in for."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from monitor.errors import ConfigError
from monitor.simulator import (
    SAMPLE_DESIRED,
    Faults,
    Simulator,
    sample_key,
    sample_state,
    serve_forever,
)
from monitor.tencent.model import CallbackConfig
from monitor.tencent.usersig import sign
from tests.fakes import FakeClock

KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
OTHER_KEY = "ffffeeeeddddccccbbbbaaaa9999888877776666555544443333222211110000"
APP = 1400000001
OTHER_APP = 1400000002
START = 1_700_000_000.0
CONFIG = CallbackConfig("https://hooks.example.com/room?token=t0k3n", ("Room.CallbackAfterCreateRoom",))
REQUEST_ID = re.compile(r"^Id-[0-9a-f]{32}-O-Seq-\d+$")


@dataclass
class Env:
    sim: Simulator
    url: str
    clock: FakeClock
    session: aiohttp.ClientSession

    def query(self, sdkappid: int = APP, identifier: str = "administrator", **over: str) -> dict[str, str]:
        query = {
            "sdkappid": str(sdkappid),
            "identifier": identifier,
            "usersig": sign(sdkappid, KEY, identifier, self.clock.now, 3600),
            "random": "12345",
            "contenttype": "json",
        }
        query.update(over)
        return {k: v for k, v in query.items() if v != "<absent>"}

    async def raw(
        self, action: str, body: Any = None, *, data: bytes | None = None, **query: Any
    ) -> tuple[int, bytes]:
        payload = data if data is not None else json.dumps({} if body is None else body).encode()
        async with self.session.post(
            f"{self.url}/v4/room_config/{action}", params=self.query(**query), data=payload
        ) as resp:
            return resp.status, await resp.read()

    async def call(self, action: str, body: Any = None, **query: Any) -> dict[str, Any]:
        status, raw = await self.raw(action, body, **query)
        assert status == 200
        reply: dict[str, Any] = json.loads(raw)
        assert REQUEST_ID.match(reply["RequestId"])
        assert reply["ActionStatus"] == ("OK" if reply["ErrorCode"] == 0 else "FAIL")
        return reply

    async def code(self, action: str, body: Any = None, **query: Any) -> int:
        return int((await self.call(action, body, **query))["ErrorCode"])

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, f"{self.url}/_sim/{path}", json=body) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock(START)
    sim = Simulator(clock=clock, seed=7)
    sim.add_app(APP, KEY, admins=["administrator", "ops"], callback=CONFIG)
    sim.add_app(OTHER_APP, KEY)
    url = await sim.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            yield Env(sim, url, clock, session)
    finally:
        await sim.stop()


SET_BODY = {"Url": "https://new.example.com/cb", "CallbackCommandList": ["Room.CallbackAfterMemberEnter"]}


# ---- the vendor API ------------------------------------------------------------------------------


async def test_get_callback_answers_the_documented_envelope(env: Env) -> None:
    reply = await env.call("get_callback")
    assert reply["ErrorCode"] == 0
    assert reply["ErrorInfo"] == ""
    assert reply["Response"] == {"Url": CONFIG.url, "CallbackCommandList": list(CONFIG.commands)}


async def test_request_ids_are_fresh(env: Env) -> None:
    first, second = await env.call("get_callback"), await env.call("get_callback")
    assert first["RequestId"] != second["RequestId"]


async def test_set_update_delete_round_trip(env: Env) -> None:
    assert await env.code("get_callback", sdkappid=OTHER_APP) == 100301
    assert await env.code("set_callback", SET_BODY, sdkappid=OTHER_APP) == 0
    reply = await env.call("get_callback", sdkappid=OTHER_APP)
    assert reply["Response"] == SET_BODY
    updated = {"Url": "http://plain.example.com/", "CallbackCommandList": []}
    assert await env.code("update_callback", updated, sdkappid=OTHER_APP) == 0
    assert env.sim.callback(OTHER_APP) == CallbackConfig("http://plain.example.com/", ())
    assert await env.code("delete_callback", sdkappid=OTHER_APP) == 0
    assert env.sim.callback(OTHER_APP) is None
    assert await env.code("get_callback", sdkappid=OTHER_APP) == 100301


async def test_set_when_a_configuration_exists_is_100300(env: Env) -> None:
    assert await env.code("set_callback", SET_BODY) == 100300
    assert env.sim.callback(APP) == CONFIG


async def test_update_when_none_exists_is_100301(env: Env) -> None:
    assert await env.code("update_callback", SET_BODY, sdkappid=OTHER_APP) == 100301
    assert env.sim.callback(OTHER_APP) is None


async def test_delete_without_a_configuration_still_succeeds(env: Env) -> None:
    assert await env.code("delete_callback", sdkappid=OTHER_APP) == 0


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"sdkappid": "<absent>"}, 60006),
        ({"sdkappid": "14000abc"}, 60006),
        ({"sdkappid": "+1400000001"}, 60006),
        ({"sdkappid": "1400009999"}, 70016),
        ({"contenttype": "<absent>"}, 60002),
        ({"contenttype": "xml"}, 60002),
        ({"contenttype": "JSON"}, 60002),
        ({"random": "<absent>"}, 60002),
        ({"random": "abc"}, 60002),
        ({"random": "-1"}, 60002),
        ({"random": "4294967296"}, 60002),
        ({"identifier": "<absent>"}, 60002),
        ({"usersig": ""}, 70002),
        ({"usersig": "<absent>"}, 70002),
        ({"usersig": "not-a-usersig"}, 70003),
        ({"usersig": sign(APP, OTHER_KEY, "administrator", START, 3600)}, 70009),
        ({"usersig": sign(APP, KEY, "ops", START, 3600)}, 70013),
        ({"usersig": sign(OTHER_APP, KEY, "administrator", START, 3600)}, 70014),
        ({"usersig": sign(APP, KEY, "administrator", START - 7200, 3600)}, 70001),
        ({"identifier": "alice", "usersig": sign(APP, KEY, "alice", START, 3600)}, 60010),
    ],
)
async def test_request_errors_answer_the_vendor_codes(env: Env, query: dict[str, str], code: int) -> None:
    reply = await env.call("get_callback", **query)
    assert (reply["ErrorCode"], reply["ActionStatus"]) == (code, "FAIL")
    assert reply["ErrorInfo"]
    assert "Response" not in reply


async def test_random_accepts_the_full_uint32_range(env: Env) -> None:
    assert await env.code("get_callback", random="0") == 0
    assert await env.code("get_callback", random="4294967295") == 0


@pytest.mark.parametrize("data", [b"", b"   ", b"{", b"not json", b"[]", b"\xff\xfe"])
async def test_a_body_that_is_not_a_json_object_is_60003(env: Env, data: bytes) -> None:
    status, raw = await env.raw("delete_callback", data=data)
    assert status == 200
    assert json.loads(raw)["ErrorCode"] == 60003
    assert env.sim.callback(APP) == CONFIG


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"Url": "https://x.example.com/"},
        {"CallbackCommandList": ["Room.CallbackAfterCreateRoom"]},
        {"Url": "ftp://x.example.com/", "CallbackCommandList": []},
        {"Url": "HTTPS://x.example.com/", "CallbackCommandList": []},
        {"Url": 7, "CallbackCommandList": []},
        {"Url": "https://x.example.com/", "CallbackCommandList": "Room.CallbackAfterCreateRoom"},
        {"Url": "https://x.example.com/", "CallbackCommandList": [1]},
    ],
)
@pytest.mark.parametrize("action", ["set_callback", "update_callback"])
async def test_writes_without_a_valid_url_and_command_list_are_100002(
    env: Env, action: str, body: dict[str, Any]
) -> None:
    assert await env.code(action, body, sdkappid=OTHER_APP) == 100002
    assert env.sim.callback(OTHER_APP) is None


async def test_only_post_is_served(env: Env) -> None:
    async with env.session.get(f"{env.url}/v4/room_config/get_callback", params=env.query()) as resp:
        assert resp.status == 405


async def test_a_cached_usersig_still_expires_with_the_clock(env: Env) -> None:
    sig = sign(APP, KEY, "administrator", START, 60)
    assert await env.code("get_callback", usersig=sig) == 0
    env.clock.now = START + 60
    assert await env.code("get_callback", usersig=sig) == 0
    env.clock.now = START + 61
    assert await env.code("get_callback", usersig=sig) == 70001


async def test_a_replaced_app_checks_sigs_against_its_new_key(env: Env) -> None:
    sig = sign(APP, KEY, "administrator", START, 3600)
    assert await env.code("get_callback", usersig=sig) == 0
    env.sim.add_app(APP, OTHER_KEY, callback=CONFIG)
    assert await env.code("get_callback", usersig=sig) == 70009


# ---- faults --------------------------------------------------------------------------------------


async def test_502_fault_answers_an_html_gateway_page(env: Env) -> None:
    env.sim.set_faults(Faults(http_502_rate=1.0))
    async with env.session.post(
        f"{env.url}/v4/room_config/get_callback", params=env.query(), data=b"{}"
    ) as resp:
        assert resp.status == 502
        assert resp.content_type == "text/html"
        assert "502 Bad Gateway" in await resp.text()


async def test_html_fault_answers_200_with_a_page(env: Env) -> None:
    env.sim.set_faults(Faults(html_rate=1.0))
    async with env.session.post(
        f"{env.url}/v4/room_config/get_callback", params=env.query(), data=b"{}"
    ) as resp:
        assert (resp.status, resp.content_type) == (200, "text/html")
        assert (await resp.text()).startswith("<!DOCTYPE html>")


async def test_garbage_fault_answers_invalid_json(env: Env) -> None:
    env.sim.set_faults(Faults(garbage_rate=1.0))
    status, raw = await env.raw("get_callback")
    assert status == 200
    assert raw.startswith(b"{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


async def test_empty_fault_answers_an_empty_body(env: Env) -> None:
    env.sim.set_faults(Faults(empty_rate=1.0))
    assert await env.raw("get_callback") == (200, b"")


async def test_reset_fault_closes_the_connection_without_an_answer(env: Env) -> None:
    env.sim.set_faults(Faults(reset_rate=1.0))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await env.raw("get_callback")


async def test_hang_fault_never_answers(env: Env) -> None:
    env.sim.set_faults(Faults(hang_rate=1.0))
    with pytest.raises(TimeoutError):
        async with env.session.post(
            f"{env.url}/v4/room_config/get_callback",
            params=env.query(),
            data=b"{}",
            timeout=aiohttp.ClientTimeout(total=0.3),
        ):
            pass


async def test_stop_releases_hanging_requests(env: Env) -> None:
    env.sim.set_faults(Faults(hang_rate=1.0))
    pending = asyncio.create_task(env.raw("get_callback"))
    await env.clock.read.wait()
    started = time.monotonic()
    await env.sim.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await pending
    assert time.monotonic() - started < 1.5


async def test_latency_fault_delays_the_answer(env: Env) -> None:
    env.sim.set_faults(Faults(latency=0.25))
    started = time.monotonic()
    assert await env.code("get_callback") == 0
    assert time.monotonic() - started >= 0.25


async def test_rate_limit_fault_answers_60007(env: Env) -> None:
    env.sim.set_faults(Faults(rate_limit_rate=1.0))
    assert await env.code("get_callback") == 60007


async def test_error_code_fault_answers_that_code_and_changes_nothing(env: Env) -> None:
    env.sim.set_faults(Faults(error_code=100001, error_code_rate=1.0))
    reply = await env.call("delete_callback")
    assert (reply["ErrorCode"], reply["ErrorInfo"]) == (100001, "Internal server error, please retry")
    assert env.sim.callback(APP) == CONFIG


async def test_partial_rates_are_reproducible_with_a_seed(env: Env) -> None:
    async def outcomes(seed: int) -> list[int]:
        sim = Simulator(clock=env.clock, seed=seed)
        sim.add_app(APP, KEY, callback=CONFIG)
        sim.set_faults(Faults(error_code=100001, error_code_rate=0.5))
        url = await sim.start()
        try:
            codes = []
            for _ in range(40):
                async with env.session.post(
                    f"{url}/v4/room_config/get_callback", params=env.query(), data=b"{}"
                ) as resp:
                    codes.append((await resp.json())["ErrorCode"])
            return codes
        finally:
            await sim.stop()

    first, second = await outcomes(3), await outcomes(3)
    assert first == second
    assert 5 < first.count(100001) < 35
    assert 5 < first.count(0) < 35


async def test_an_apps_faults_replace_the_global_ones(env: Env) -> None:
    env.sim.set_faults(Faults(rate_limit_rate=1.0))
    env.sim.set_faults(Faults(error_code=70500, error_code_rate=1.0), APP)
    assert await env.code("get_callback") == 70500
    assert await env.code("get_callback", sdkappid=OTHER_APP) == 60007
    env.sim.set_faults(Faults(), APP)
    assert await env.code("get_callback") == 60007
    env.sim.set_faults(Faults())
    assert await env.code("get_callback") == 0


def test_fault_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Faults(html_rate=1.5)
    with pytest.raises(ValueError, match=">= 0"):
        Faults(latency=-1)
    with pytest.raises(ValueError, match="unknown fault"):
        Faults.from_dict({"typo_rate": 1})


# ---- counts and the record of requests -----------------------------------------------------------


async def test_every_request_is_counted_by_action_and_app(env: Env) -> None:
    await env.call("get_callback")
    await env.call("get_callback", usersig="garbage")
    await env.call("delete_callback", sdkappid=OTHER_APP)
    env.sim.set_faults(Faults(empty_rate=1.0))
    await env.raw("set_callback", SET_BODY)
    assert env.sim.count() == 4
    assert env.sim.count("get_callback") == 2
    assert env.sim.count(sdkappid=APP) == 3
    assert env.sim.count("set_callback", APP) == 1
    assert env.sim.count("delete_callback", APP) == 0
    env.sim.reset_counts()
    assert env.sim.count() == 0


async def test_requests_are_recorded_without_the_usersig(env: Env) -> None:
    query = env.query(random="99")
    await env.call("set_callback", SET_BODY, sdkappid=OTHER_APP, random="99")
    [recorded] = env.sim.requests
    assert (recorded.action, recorded.sdkappid, recorded.identifier, recorded.random, recorded.time) == (
        "set_callback",
        OTHER_APP,
        "administrator",
        99,
        START,
    )
    assert recorded.json() == SET_BODY
    assert query["usersig"] not in repr(recorded)


# ---- the control API -----------------------------------------------------------------------------


async def test_control_api_manages_apps_and_callbacks(env: Env) -> None:
    new_app = 1400000077
    with capture_logs() as logs:
        status, _ = await env.control(
            "PUT", f"apps/{new_app}", {"key": KEY, "admins": ["administrator"], "callback": None}
        )
        assert status == 200
        assert await env.code("get_callback", sdkappid=new_app) == 100301
        callback = {
            "url": "https://a.example.com/?secret=s3cr3t",
            "commands": ["Mic.CallbackAfterSeatInfoChanged"],
        }
        assert (await env.control("PUT", f"apps/{new_app}/callback", callback))[0] == 200
        reply = await env.call("get_callback", sdkappid=new_app)
        assert reply["Response"] == {"Url": callback["url"], "CallbackCommandList": callback["commands"]}
        assert (await env.control("PUT", f"apps/{new_app}/callback", None))[0] == 200
        assert env.sim.callback(new_app) is None
        assert (await env.control("DELETE", f"apps/{new_app}"))[0] == 200
        assert await env.code("get_callback", sdkappid=new_app) == 70016
    logged = json.dumps(logs)
    assert KEY not in logged
    assert "s3cr3t" not in logged
    assert any(entry["event"] == "simulator app set" for entry in logs)


async def test_control_api_rejects_bad_input_and_unknown_apps(env: Env) -> None:
    assert (await env.control("PUT", "apps/1400000077", {"admins": ["a"]}))[0] == 400
    assert (await env.control("PUT", "apps/abc", {"key": KEY}))[0] == 400
    assert (await env.control("PUT", f"apps/{APP}/callback", {"url": "x"}))[0] == 400
    assert (await env.control("PUT", "faults", {"html_rate": 2}))[0] == 400
    assert (await env.control("DELETE", "apps/1400000077"))[0] == 404
    assert (await env.control("PUT", "apps/1400000077/callback", None))[0] == 404


async def test_control_api_sets_and_clears_faults(env: Env) -> None:
    status, body = await env.control("PUT", "faults", {"rate_limit_rate": 1.0})
    assert (status, body) == (200, {"rate_limit_rate": 1.0})
    await env.control("PUT", f"apps/{APP}/faults", {"error_code": 100001, "error_code_rate": 1.0})
    assert await env.code("get_callback") == 100001
    assert await env.code("get_callback", sdkappid=OTHER_APP) == 60007
    await env.control("PUT", f"apps/{APP}/faults", {})
    assert await env.code("get_callback") == 60007
    await env.control("PUT", "faults", {})
    assert await env.code("get_callback") == 0


async def test_control_api_reports_and_resets_counts(env: Env) -> None:
    await env.call("get_callback")
    await env.call("get_callback", sdkappid="junk")
    status, counts = await env.control("GET", "counts")
    assert status == 200
    assert counts == {
        "total": 2,
        "by_action": {"get_callback": 2},
        "by_sdkappid": {str(APP): {"get_callback": 1}, "invalid": {"get_callback": 1}},
    }
    await env.control("POST", "reset-counts")
    assert (await env.control("GET", "counts"))[1]["total"] == 0


async def test_control_api_state_includes_everything(env: Env) -> None:
    await env.control("PUT", f"apps/{APP}/faults", {"hang_rate": 0.5})
    status, state = await env.control("GET", "state")
    assert status == 200
    assert state["apps"][0] == {
        "sdkappid": APP,
        "key": KEY,
        "admins": ["administrator", "ops"],
        "callback": {"url": CONFIG.url, "commands": list(CONFIG.commands)},
    }
    assert state["app_faults"] == {str(APP): {"hang_rate": 0.5}}


# ---- state files and the sample apps --------------------------------------------------------------

STATE_YAML = f"""
apps:
  - sdkappid: {APP}
    name: prod
    key: {KEY}
    admins: [administrator, ops]
    callback:
      url: https://hooks.example.com/room
      commands: [Room.CallbackAfterCreateRoom, Room.CallbackUpdateRoomInfo]
  - sdkappid: {OTHER_APP}
    key: {OTHER_KEY}
    callback: null
faults: {{latency: 0.5}}
app_faults:
  {OTHER_APP}: {{http_502_rate: 1.0}}
"""


def test_a_yaml_state_file_loads_and_dumps_back(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(STATE_YAML)
    sim = Simulator()
    sim.add_app(1400000999, KEY)
    sim.load_state(path)
    assert sim.apps() == [APP, OTHER_APP]
    assert sim.callback(APP) == CallbackConfig(
        "https://hooks.example.com/room", ("Room.CallbackAfterCreateRoom", "Room.CallbackUpdateRoomInfo")
    )
    assert sim.faults(APP) == Faults(latency=0.5)
    assert sim.faults(OTHER_APP) == Faults(http_502_rate=1.0)
    dumped = sim.dump_state()
    assert dumped["apps"][1] == {
        "sdkappid": OTHER_APP,
        "key": OTHER_KEY,
        "admins": ["administrator"],
        "callback": None,
    }
    json_path = tmp_path / "state.json"
    json_path.write_text(json.dumps(dumped))
    again = Simulator()
    again.load_state(json_path)
    assert again.dump_state() == dumped


def test_an_invalid_state_file_lists_every_problem_without_keys(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(
        f"apps:\n  - sdkappid: -1\n    key: {KEY}\n  - sdkappid: {APP}\n    key: ''\n"
        f"  - sdkappid: {OTHER_APP}\n    key: {KEY}\n    callback: {{url: 5}}\n"
        "faults: {html_rate: 3}\nextra: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        Simulator().load_state(path)
    assert [p.path for p in info.value.problems] == ["extra", "apps[0]", "apps[1]", "apps[2]", "faults"]
    assert KEY not in str(info.value)


def test_an_unparsable_state_file_does_not_quote_its_text(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(f"apps:\n  - key: {KEY}\n   bad: [\n")
    with pytest.raises(ConfigError) as info:
        Simulator().load_state(path)
    assert KEY not in str(info.value)
    assert info.value.problems[0].line is not None


async def test_the_sample_apps_show_each_demo_case() -> None:
    sim = Simulator()
    sim.load_dict(sample_state())
    by_name = {app["name"]: app["sdkappid"] for app in sim.dump_state()["apps"]}
    assert sim.callback(by_name["demo-in-sync"]) == SAMPLE_DESIRED
    drifted = sim.callback(by_name["demo-drifted-url"])
    assert drifted is not None
    assert drifted.url != SAMPLE_DESIRED.url
    assert drifted.command_set == SAMPLE_DESIRED.command_set
    plain = sim.callback(by_name["demo-plain-http"])
    assert plain is not None
    assert plain.url.startswith("http://")
    missing = sim.callback(by_name["demo-missing-commands"])
    assert missing is not None
    assert missing.command_set < SAMPLE_DESIRED.command_set
    assert sim.callback(by_name["demo-no-config"]) is None
    assert len({sample_key(sdkappid) for sdkappid in by_name.values()}) == 5


async def test_serve_forever_serves_the_sample_apps_until_cancelled() -> None:
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_forever("127.0.0.1", 0, None, on_ready=ready.set_result))
    url = await asyncio.wait_for(ready, 5)
    query = {
        "sdkappid": "1400000001",
        "identifier": "administrator",
        "usersig": sign(1400000001, sample_key(1400000001), "administrator", time.time(), 600),
        "random": "1",
        "contenttype": "json",
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/v4/room_config/get_callback", params=query, data=b"{}") as resp:
            reply = await resp.json()
        assert reply["Response"]["Url"] == SAMPLE_DESIRED.url
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/_sim/counts")


async def test_the_shared_fixture_serves_the_sample_apps(simulator: Simulator, simulator_url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{simulator_url}/_sim/state") as resp:
        state = await resp.json()
    assert state == simulator.dump_state() == sample_state()
