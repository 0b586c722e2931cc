"""The room_config client against the simulator on loopback: envelopes, errors, retries, sigs, failover."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from monitor.errors import (
    AppInvalid,
    AuthError,
    BadRequest,
    HttpStatusError,
    InvalidResponse,
    NetworkError,
    PermissionDenied,
    RateLimited,
    RequestTimeout,
    ServerError,
    TencentError,
)
from monitor.simulator import Faults, Simulator
from monitor.tencent.client import RetryPolicy, RoomConfigClient, Target
from monitor.tencent.envelope import Answer, code_label, parse_envelope
from monitor.tencent.model import CallbackConfig
from tests.fakes import FakeClock, Sleeps
from tests.serve_helpers import post_receiver

T0 = 1_700_000_000.0
KEY = "k3y-5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
OTHER_KEY = "0ther-9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
WITH_CONFIG = 1400000001
WITHOUT_CONFIG = 1400000002
LIVE = CallbackConfig(
    "https://hooks.example.com/tencent/room?token=s3cret",
    ("Room.CallbackAfterCreateRoom", "Room.CallbackAfterDestroyRoom"),
)


class MaxJitter(random.Random):
    """Jitter that always picks the top of its range, so delays can be compared exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass
class Seen:
    """What left the client: the UserSig of each request (read from aiohttp's own tracing)."""

    usersigs: list[str] = field(default_factory=list)
    observed: list[tuple[str, str, float]] = field(default_factory=list)

    def trace_config(self) -> aiohttp.TraceConfig:
        async def on_start(_s: Any, _c: Any, params: aiohttp.TraceRequestStartParams) -> None:
            self.usersigs.append(params.url.query["usersig"])

        config = aiohttp.TraceConfig()
        config.on_request_start.append(on_start)
        return config

    def observe(self, action: str, code: str, seconds: float) -> None:
        self.observed.append((action, code, seconds))

    @property
    def codes(self) -> list[str]:
        return [code for _, code, _ in self.observed]


@pytest.fixture
def sim_clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def clock(sim_clock: FakeClock) -> FakeClock:
    """The client's clock; the same as the simulator's unless a test moves one of them alone."""
    return sim_clock


@pytest.fixture
async def sim(sim_clock: FakeClock) -> AsyncIterator[Simulator]:
    simulator = Simulator(clock=sim_clock, seed=7)
    simulator.add_app(WITH_CONFIG, KEY, callback=LIVE)
    simulator.add_app(WITHOUT_CONFIG, KEY)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def session(seen: Seen) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trace_configs=[seen.trace_config()]) as s:
        yield s


@pytest.fixture
def sleeper() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(
    session: aiohttp.ClientSession, clock: FakeClock, sleeper: Sleeps, seen: Seen
) -> Callable[..., RoomConfigClient]:
    def make(**overrides: Any) -> RoomConfigClient:
        options: dict[str, Any] = {
            "clock": clock,
            "rng": random.Random(3),
            "sleep": sleeper,
            "observer": seen.observe,
        }
        options.update(overrides)
        return RoomConfigClient(session, **options)

    return make


@pytest.fixture
def client(make_client: Callable[..., RoomConfigClient]) -> RoomConfigClient:
    return make_client()


def target_for(sim: Simulator, sdkappid: int = WITH_CONFIG, **changes: Any) -> Target:
    assert sim.url is not None
    return replace(Target(sdkappid, "administrator", sim.url, KEY, timeout=2.0), **changes)


@pytest.fixture
async def not_http_url() -> AsyncIterator[str]:
    """A loopback server that answers with bytes that are not HTTP at all."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---- the four calls -------------------------------------------------------------------------------


async def test_get_returns_the_live_configuration(client: RoomConfigClient, sim: Simulator) -> None:
    assert await client.get_callback(target_for(sim)) == LIVE
    [request] = sim.requests
    assert (request.action, request.sdkappid, request.identifier) == (
        "get_callback",
        WITH_CONFIG,
        "administrator",
    )
    assert request.json() == {}


async def test_no_configuration_is_none_not_an_error(
    client: RoomConfigClient, sim: Simulator, seen: Seen
) -> None:
    assert await client.get_callback(target_for(sim, WITHOUT_CONFIG)) is None
    assert seen.codes == ["100301"]
    assert sim.count() == 1


async def test_set_update_and_delete_round_trip(client: RoomConfigClient, sim: Simulator) -> None:
    target = target_for(sim, WITHOUT_CONFIG)
    await client.set_callback(target, LIVE)
    assert sim.requests[-1].json() == {"Url": LIVE.url, "CallbackCommandList": list(LIVE.commands)}
    assert await client.get_callback(target) == LIVE
    changed = CallbackConfig("https://hooks.example.com/v2", ("Mic.CallbackAfterSeatInfoChanged",))
    await client.update_callback(target, changed)
    assert sim.callback(WITHOUT_CONFIG) == changed
    await client.delete_callback(target)
    assert sim.requests[-1].json() == {}
    assert await client.get_callback(target) is None


async def test_set_over_an_existing_configuration_is_a_bad_request(
    client: RoomConfigClient, sim: Simulator
) -> None:
    with pytest.raises(BadRequest) as caught:
        await client.set_callback(target_for(sim), LIVE)
    assert caught.value.code == 100300
    assert "update_callback" in caught.value.message


async def test_update_without_a_configuration_is_an_error_not_none(
    client: RoomConfigClient, sim: Simulator
) -> None:
    """100301 means "nothing to compare" only for get_callback; for update it is a failed write."""
    with pytest.raises(BadRequest) as caught:
        await client.update_callback(target_for(sim, WITHOUT_CONFIG), LIVE)
    assert caught.value.code == 100301


async def test_random_is_fresh_per_request_and_drawn_from_the_injected_source(
    make_client: Callable[..., RoomConfigClient], sim: Simulator
) -> None:
    client = make_client(rng=random.Random(99))
    for _ in range(20):
        await client.get_callback(target_for(sim))
    randoms = [r.random for r in sim.requests]
    expected = random.Random(99)
    assert randoms == [expected.randrange(2**32) for _ in range(20)]
    assert len(set(randoms)) == 20
    assert all(r is not None and 0 <= r <= 4294967295 for r in randoms)


async def test_throttle_is_awaited_before_every_attempt(
    make_client: Callable[..., RoomConfigClient], sim: Simulator
) -> None:
    calls = 0

    async def throttle() -> None:
        nonlocal calls
        calls += 1

    sim.set_faults(Faults(http_502_rate=1.0))
    with pytest.raises(HttpStatusError):
        await make_client(throttle=throttle).get_callback(target_for(sim))
    assert calls == sim.count() == 3


async def test_one_debug_line_per_attempt_without_the_query(client: RoomConfigClient, sim: Simulator) -> None:
    sim.set_faults(Faults(http_502_rate=1.0))
    with structlog.testing.capture_logs() as logs, pytest.raises(HttpStatusError):
        await client.get_callback(target_for(sim))
    lines = [entry for entry in logs if entry["event"] == "api_request"]
    assert len(lines) == 3
    assert all(entry["log_level"] == "debug" for entry in lines)
    assert {(e["action"], e["sdkappid"], e["host"], e["code"]) for e in lines} == {
        ("get_callback", WITH_CONFIG, "127.0.0.1", "http_502")
    }
    assert "usersig" not in repr(logs)


# ---- every reason class ---------------------------------------------------------------------------

REASONS = [
    pytest.param(Faults(http_502_rate=1.0), HttpStatusError, "http_502", id="http_status"),
    pytest.param(Faults(html_rate=1.0), InvalidResponse, "invalid_response", id="html"),
    pytest.param(Faults(garbage_rate=1.0), InvalidResponse, "invalid_response", id="garbage"),
    pytest.param(Faults(empty_rate=1.0), InvalidResponse, "invalid_response", id="empty"),
    pytest.param(Faults(reset_rate=1.0), NetworkError, "network", id="reset"),
    pytest.param(Faults(error_code=100001, error_code_rate=1.0), ServerError, "100001", id="server_error"),
    pytest.param(Faults(error_code=12345, error_code_rate=1.0), ServerError, "12345", id="unknown_code"),
    pytest.param(Faults(rate_limit_rate=1.0), RateLimited, "60007", id="rate_limited"),
]


@pytest.mark.parametrize(("faults", "expected", "code"), REASONS)
async def test_each_fault_raises_its_reason(
    make_client: Callable[..., RoomConfigClient],
    sim: Simulator,
    seen: Seen,
    faults: Faults,
    expected: type[TencentError],
    code: str,
) -> None:
    sim.set_faults(faults)
    with pytest.raises(TencentError) as caught:
        await make_client(retry=RetryPolicy(attempts=1)).get_callback(target_for(sim))
    assert type(caught.value) is expected
    assert caught.value.host == "127.0.0.1"
    assert caught.value.action == "get_callback"
    assert seen.codes[-1] == code


async def test_no_answer_in_time_is_a_timeout(
    make_client: Callable[..., RoomConfigClient], sim: Simulator, seen: Seen
) -> None:
    sim.set_faults(Faults(hang_rate=1.0))
    with pytest.raises(RequestTimeout) as caught:
        await make_client(retry=RetryPolicy(attempts=1)).get_callback(target_for(sim, timeout=0.2))
    assert "0.2s" in str(caught.value)
    assert seen.codes == ["timeout"]


async def test_an_answer_that_is_not_http_is_an_invalid_response(
    make_client: Callable[..., RoomConfigClient], not_http_url: str, seen: Seen
) -> None:
    target = Target(WITH_CONFIG, "administrator", not_http_url, KEY, timeout=2.0)
    with pytest.raises(InvalidResponse) as caught:
        await make_client(retry=RetryPolicy(attempts=1)).get_callback(target)
    assert "ClientResponseError" in str(caught.value)
    assert seen.codes == ["invalid_response"]


async def test_a_wrong_key_is_an_auth_error(client: RoomConfigClient, sim: Simulator) -> None:
    with pytest.raises(AuthError) as caught:
        await client.get_callback(target_for(sim, key=OTHER_KEY))
    assert caught.value.code == 70009
    assert caught.value.request_id.startswith("Id-")
    assert caught.value.info
    assert sim.count() == 1


async def test_a_non_admin_identifier_is_permission_denied(client: RoomConfigClient, sim: Simulator) -> None:
    with pytest.raises(PermissionDenied) as caught:
        await client.get_callback(target_for(sim, identifier="alice"))
    assert caught.value.code == 60010
    assert "`identifier`" in str(caught.value)


async def test_an_app_unknown_at_this_host_is_app_invalid(client: RoomConfigClient, sim: Simulator) -> None:
    with pytest.raises(AppInvalid) as caught:
        await client.get_callback(target_for(sim, sdkappid=1499999999))
    assert caught.value.code == 70016
    assert "region" in str(caught.value)


@pytest.mark.parametrize(
    ("field_name", "endpoint"),
    [
        ("endpoint", "http://adminapisgp.im.qcloud.com"),
        ("endpoint", "https://adminapisgp.im.qcloud.com/v4"),
        ("backup_endpoint", "http://adminapisgp.my-imcloud.com"),
    ],
)
async def test_an_unusable_endpoint_is_a_bad_request_before_any_request(
    client: RoomConfigClient, sim: Simulator, seen: Seen, field_name: str, endpoint: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await client.get_callback(target_for(sim, **{field_name: endpoint}))
    assert field_name in str(caught.value)
    assert seen.observed == []
    assert sim.count() == 0


# ---- retries --------------------------------------------------------------------------------------


async def test_transient_errors_are_tried_attempts_times_with_capped_backoff(
    make_client: Callable[..., RoomConfigClient], sim: Simulator, sleeper: Sleeps
) -> None:
    sim.set_faults(Faults(http_502_rate=1.0))
    client = make_client(rng=MaxJitter(), retry=RetryPolicy(attempts=6, base_delay=0.2, max_delay=1.0))
    with pytest.raises(HttpStatusError) as caught:
        await client.get_callback(target_for(sim))
    assert caught.value.http_status == 502
    assert sim.count() == 6
    assert sleeper.delays == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


async def test_backoff_jitter_stays_within_its_bounds(
    make_client: Callable[..., RoomConfigClient], sim: Simulator, sleeper: Sleeps
) -> None:
    sim.set_faults(Faults(reset_rate=1.0))
    with pytest.raises(NetworkError):
        await make_client(rng=random.Random(5)).get_callback(target_for(sim))
    assert sim.count() == 3
    assert len(sleeper.delays) == 2
    assert 0 <= sleeper.delays[0] <= 0.2
    assert 0 <= sleeper.delays[1] <= 0.4
    assert sleeper.delays[0] != sleeper.delays[1]


async def test_a_transient_error_then_success_returns_the_answer(
    client: RoomConfigClient, sim: Simulator, sleeper: Sleeps, seen: Seen
) -> None:
    sim.set_faults(Faults(garbage_rate=1.0))
    sleeper.then = lambda: sim.set_faults(Faults())
    assert await client.get_callback(target_for(sim)) == LIVE
    assert seen.codes == ["invalid_response", "0"]
    assert len(sleeper.delays) == 1


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(Faults(error_code=60010, error_code_rate=1.0), id="permission"),
        pytest.param(Faults(error_code=70050, error_code_rate=1.0), id="signature_lockout"),
        pytest.param(Faults(error_code=100002, error_code_rate=1.0), id="bad_request"),
        pytest.param(Faults(error_code=70020, error_code_rate=1.0), id="app_invalid"),
    ],
)
async def test_errors_a_retry_cannot_fix_are_raised_at_once(
    client: RoomConfigClient, sim: Simulator, sleeper: Sleeps, faults: Faults
) -> None:
    sim.set_faults(faults)
    with pytest.raises(TencentError) as caught:
        await client.get_callback(target_for(sim))
    assert caught.value.code == faults.error_code
    assert sim.count() == 1
    assert sleeper.delays == []


async def test_a_rate_limit_is_retried_once_after_the_rate_limit_delay(
    make_client: Callable[..., RoomConfigClient], sim: Simulator, sleeper: Sleeps
) -> None:
    sim.set_faults(Faults(rate_limit_rate=1.0))
    client = make_client(rng=MaxJitter(), retry=RetryPolicy(rate_limit_delay=1.0))
    with pytest.raises(RateLimited) as caught:
        await client.get_callback(target_for(sim))
    assert caught.value.code == 60007
    assert sim.count() == 2
    assert sleeper.delays == [1.5]


async def test_a_rate_limit_delay_is_jittered_but_never_shorter(
    client: RoomConfigClient, sim: Simulator, sleeper: Sleeps
) -> None:
    sim.set_faults(Faults(rate_limit_rate=1.0))
    sleeper.then = lambda: sim.set_faults(Faults())
    assert await client.get_callback(target_for(sim)) == LIVE
    assert sim.count() == 2
    [delay] = sleeper.delays
    assert 1.0 <= delay <= 1.5


async def test_an_expired_sig_answer_signs_anew_and_retries_once(
    client: RoomConfigClient, sim: Simulator, clock: FakeClock, seen: Seen, sleeper: Sleeps
) -> None:
    clock.step = 1.0  # a sig signed in the same second as the last one would be the same string
    sim.set_faults(Faults(error_code=70001, error_code_rate=1.0))
    with pytest.raises(AuthError) as caught:
        await client.get_callback(target_for(sim))
    assert caught.value.code == 70001
    assert sim.count() == 2
    assert len(set(seen.usersigs)) == 2
    assert sleeper.delays == []


async def test_70001_after_a_clock_jump_is_healed_by_a_new_sig(
    make_client: Callable[..., RoomConfigClient], sim: Simulator, sim_clock: FakeClock, seen: Seen
) -> None:
    """The server's clock leaps a day ahead of ours (a resumed VM): its 70001 makes us sign again."""
    client_clock = FakeClock(T0)
    client = make_client(clock=client_clock)
    target = target_for(sim)
    assert await client.get_callback(target) == LIVE
    sim_clock.now = T0 + 86400 + 1
    client_clock.now = T0 + 100
    assert await client.get_callback(target) == LIVE
    assert seen.codes == ["0", "70001", "0"]
    assert len(set(seen.usersigs)) == 2
    assert seen.usersigs[1] == seen.usersigs[0]


async def test_the_sig_is_reused_then_renewed_before_it_expires(
    client: RoomConfigClient, sim: Simulator, clock: FakeClock, seen: Seen
) -> None:
    target = target_for(sim)
    await client.get_callback(target)
    clock.now = T0 + 43200  # exactly sig_renew_before left: still good
    await client.get_callback(target)
    assert len(set(seen.usersigs)) == 1
    clock.now = T0 + 43201
    await client.get_callback(target)
    assert len(set(seen.usersigs)) == 2
    clock.now = T0 + 86400 * 3  # long after both would have expired
    await client.get_callback(target)
    assert len(set(seen.usersigs)) == 3
    assert seen.codes == ["0", "0", "0", "0"]


async def test_a_rotated_key_gets_a_new_sig_at_once(
    client: RoomConfigClient, sim: Simulator, seen: Seen
) -> None:
    await client.get_callback(target_for(sim))
    sim.add_app(WITH_CONFIG, OTHER_KEY, callback=LIVE)
    assert await client.get_callback(target_for(sim, key=OTHER_KEY)) == LIVE
    assert len(set(seen.usersigs)) == 2
    assert seen.codes == ["0", "0"]


async def test_forget_sig_makes_the_next_request_sign_anew(
    client: RoomConfigClient, sim: Simulator, clock: FakeClock, seen: Seen
) -> None:
    clock.step = 1.0
    target = target_for(sim)
    await client.get_callback(target)
    await client.get_callback(target)
    client.forget_sig(target)
    await client.get_callback(target)
    assert seen.usersigs[0] == seen.usersigs[1] != seen.usersigs[2]


def test_a_renewal_window_as_long_as_the_sig_is_refused(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="sig_renew_before"):
        RoomConfigClient(session, sig_ttl=3600, sig_renew_before=3600)


# ---- failover -------------------------------------------------------------------------------------


async def test_a_connection_failure_fails_over_to_the_backup_host(
    client: RoomConfigClient, sim: Simulator, seen: Seen, sleeper: Sleeps
) -> None:
    target = target_for(sim, endpoint=closed_port_url(), backup_endpoint=sim.url)
    with structlog.testing.capture_logs() as logs:
        assert await client.get_callback(target) == LIVE
    assert seen.codes == ["network", "0"]
    assert sim.count() == 1
    assert sleeper.delays == []
    [failover] = [entry for entry in logs if entry["event"] == "api_failover"]
    assert failover["sdkappid"] == WITH_CONFIG
    assert failover["host"] == failover["backup_host"] == "127.0.0.1"


async def test_without_a_backup_a_connection_failure_is_retried_in_place(
    client: RoomConfigClient, sleeper: Sleeps, seen: Seen
) -> None:
    target = Target(WITH_CONFIG, "administrator", closed_port_url(), KEY, timeout=2.0)
    with structlog.testing.capture_logs() as logs, pytest.raises(NetworkError) as caught:
        await client.get_callback(target)
    assert seen.codes == ["network"] * 3
    assert len(sleeper.delays) == 2
    assert "Connect" in str(caught.value) or "refused" in str(caught.value).lower()
    assert not [entry for entry in logs if entry["event"] == "api_failover"]


async def test_a_timeout_does_not_fail_over(
    make_client: Callable[..., RoomConfigClient], sim: Simulator, seen: Seen
) -> None:
    """A slow primary is not a dead one: the backup (here a closed port) is never tried."""
    sim.set_faults(Faults(hang_rate=1.0))
    client = make_client(retry=RetryPolicy(attempts=2))
    with pytest.raises(RequestTimeout):
        await client.get_callback(target_for(sim, timeout=0.2, backup_endpoint=closed_port_url()))
    assert seen.codes == ["timeout", "timeout"]


# ---- secrets --------------------------------------------------------------------------------------


def _leaks(text: str, secrets: set[str]) -> list[str]:
    return [s for s in secrets if s in text]


async def _error_of(client: RoomConfigClient, target: Target) -> TencentError:
    """The error a caller catches; this frame stands for the caller's (the test's own holds secrets)."""
    try:
        await client.get_callback(target)
    except TencentError as err:
        return err
    raise AssertionError("get_callback succeeded")


async def test_no_secret_in_any_error_traceback_or_log(
    make_client: Callable[..., RoomConfigClient], sim: Simulator, seen: Seen, not_http_url: str
) -> None:
    client = make_client(retry=RetryPolicy(attempts=2))
    scenarios: list[tuple[Faults, Target]] = [
        (Faults(reset_rate=1.0), target_for(sim)),
        (Faults(hang_rate=1.0), target_for(sim, timeout=0.2)),
        (Faults(http_502_rate=1.0), target_for(sim)),
        (Faults(html_rate=1.0), target_for(sim)),
        (Faults(garbage_rate=1.0), target_for(sim)),
        (Faults(error_code=70001, error_code_rate=1.0), target_for(sim)),
        (Faults(), target_for(sim, key=OTHER_KEY)),
        (Faults(), target_for(sim, endpoint=closed_port_url())),
        # aiohttp's own error for this one quotes the whole request URL, UserSig included.
        (Faults(), target_for(sim, endpoint=not_http_url)),
        (Faults(), target_for(sim, endpoint=closed_port_url(), backup_endpoint=closed_port_url())),
    ]
    errors: list[TencentError] = []
    with structlog.testing.capture_logs() as logs:
        for faults, target in scenarios:
            sim.set_faults(faults)
            errors.append(await _error_of(client, target))
    secrets = {KEY, OTHER_KEY, *seen.usersigs}
    assert len(seen.usersigs) > 10
    assert len(errors) == len(scenarios)
    for err in errors:
        assert err.__cause__ is None
        assert err.__context__ is None
        texts = [
            str(err),
            repr(err),
            "".join(traceback.format_exception(err)),
            # Even a traceback that shows every frame's locals (as rich tracebacks do) holds none.
            "".join(traceback.TracebackException.from_exception(err, capture_locals=True).format()),
        ]
        for text in texts:
            assert _leaks(text, secrets) == [], text
    assert _leaks(repr(logs), secrets) == []
    assert {entry["event"] for entry in logs} >= {"api_request", "api_failover"}


def test_the_key_is_not_in_the_target_repr() -> None:
    target = Target(WITH_CONFIG, "administrator", "https://adminapisgp.im.qcloud.com", KEY)
    assert KEY not in repr(target)
    assert KEY not in str(target)


def test_error_info_echoing_a_secret_is_scrubbed() -> None:
    sig = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwhWZiflZpXlQ"
    body = json.dumps(
        {"ErrorCode": 70003, "ErrorInfo": f"bad sig {sig} in ?usersig={sig}&key={KEY}", "RequestId": "Id-1"}
    ).encode()
    err = parse_envelope(
        200, "application/json", body, action="get_callback", host="h", secrets=frozenset({sig, KEY})
    )
    assert isinstance(err, AuthError)
    assert _leaks(str(err), {sig, KEY}) == []
    assert "REDACTED" in err.info


@pytest.mark.parametrize("code", [0, 70003, "not a code"])
def test_a_request_id_echoing_a_secret_is_scrubbed(code: Any) -> None:
    """Whether the answer is an Answer, a vendor error or an invalid response, its RequestId is clean."""
    sig = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwhWZiflZpXlQ"
    key = "k3y-5bd2850fff3ecb11d7c8"
    request_id = f"Id-{sig}-{key}?usersig=abc"  # 93 characters: inside the RequestId bound
    body = json.dumps({"ErrorCode": code, "ErrorInfo": "", "RequestId": request_id}).encode()
    outcome = parse_envelope(
        200, "application/json", body, action="set_callback", host="h", secrets=frozenset({sig, key})
    )
    assert outcome.request_id == "Id-REDACTED-REDACTED?usersig=REDACTED"
    assert _leaks(f"{outcome} {outcome!r}", {sig, key, "abc"}) == []


def test_a_request_id_of_exactly_the_bound_is_kept_whole_and_escaped() -> None:
    request_id = "Id-\x1b[2J\n" + "x" * 120  # 128 characters
    answer = _parse({"ErrorCode": 0, "RequestId": request_id}, action="set_callback")
    assert answer == Answer(0, "Id-\\x1b[2J\\n" + "x" * 120)
    assert _parse({"ErrorCode": 0, "RequestId": 7}, action="set_callback") == Answer(0, "")


def test_a_request_id_one_beyond_the_bound_is_an_invalid_response() -> None:
    err = _parse({"ErrorCode": 0, "RequestId": "I" * 129}, action="set_callback")
    assert isinstance(err, InvalidResponse)
    assert err.message == "set_callback at h: the RequestId is longer than 128 characters (129)"
    assert (err.action, err.host, err.request_id) == ("set_callback", "h", "")


# ---- the envelope, read strictly ------------------------------------------------------------------

GOOD_GET = {
    "ErrorCode": 0,
    "ErrorInfo": "",
    "ActionStatus": "OK",
    "RequestId": "Id-1",
    "Response": {"Url": "https://x/y", "CallbackCommandList": ["Room.CallbackAfterCreateRoom"]},
}


def _parse(payload: Any, action: str = "get_callback", status: int = 200) -> Answer | TencentError:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_envelope(status, "application/json", body, action=action, host="h")


def test_a_good_get_answer_parses() -> None:
    answer = _parse(GOOD_GET)
    assert answer == Answer(0, "Id-1", CallbackConfig("https://x/y", ("Room.CallbackAfterCreateRoom",)))
    assert code_label(answer) == "0"


def test_a_write_needs_no_response_object() -> None:
    assert _parse({"ErrorCode": 0, "RequestId": "Id-2"}, action="set_callback") == Answer(0, "Id-2")


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"  \n", id="blank"),
        pytest.param(b"<html>busy</html>", id="html"),
        pytest.param(b'{"ErrorCode": 0', id="truncated"),
        pytest.param(b"\xff\xfe", id="not_utf8"),
        pytest.param(b"[" * 100_000, id="deeply_nested"),
        pytest.param(None, id="null"),
        pytest.param([GOOD_GET], id="array"),
        pytest.param({}, id="no_error_code"),
        pytest.param({**GOOD_GET, "ErrorCode": "0"}, id="code_as_string"),
        pytest.param({**GOOD_GET, "ErrorCode": False}, id="code_as_bool"),
        pytest.param({**GOOD_GET, "ErrorCode": 0.0}, id="code_as_float"),
        pytest.param({**GOOD_GET, "ErrorInfo": 5}, id="info_not_string"),
        pytest.param({**GOOD_GET, "ActionStatus": None}, id="status_not_string"),
        pytest.param({k: v for k, v in GOOD_GET.items() if k != "Response"}, id="no_response"),
        pytest.param({**GOOD_GET, "Response": []}, id="response_not_object"),
        pytest.param({**GOOD_GET, "Response": {"CallbackCommandList": []}}, id="no_url"),
        pytest.param({**GOOD_GET, "Response": {"Url": 1, "CallbackCommandList": []}}, id="url_not_string"),
        pytest.param({**GOOD_GET, "Response": {"Url": "https://x"}}, id="no_commands"),
        pytest.param(
            {**GOOD_GET, "Response": {"Url": "https://x", "CallbackCommandList": "Room.X"}}, id="commands_str"
        ),
        pytest.param(
            {**GOOD_GET, "Response": {"Url": "https://x", "CallbackCommandList": [1]}}, id="command_not_str"
        ),
    ],
)
def test_anything_but_the_documented_envelope_is_an_invalid_response(payload: Any) -> None:
    outcome = _parse(payload)
    assert type(outcome) is InvalidResponse
    assert outcome.retryable
    assert code_label(outcome) == "invalid_response"


def test_a_non_200_status_is_an_http_status_error_whatever_the_body() -> None:
    outcome = _parse(GOOD_GET, status=502)
    assert isinstance(outcome, HttpStatusError)
    assert outcome.http_status == 502
    assert code_label(outcome) == "http_502"


def test_a_4xx_status_is_not_retried() -> None:
    outcome = _parse(GOOD_GET, status=404)
    assert isinstance(outcome, HttpStatusError)
    assert not outcome.retryable


def test_no_configuration_is_an_answer_only_for_get() -> None:
    assert _parse({"ErrorCode": 100301, "RequestId": "Id-3"}) == Answer(100301, "Id-3")
    err = _parse({"ErrorCode": 100301, "RequestId": "Id-3"}, action="update_callback")
    assert isinstance(err, BadRequest)
    assert (err.code, err.request_id, code_label(err)) == (100301, "Id-3", "100301")


# ---- the body cap, at and beyond 1 MiB, with and without a Content-Length ----------------------------


@pytest.fixture
async def sized_answers() -> AsyncIterator[str]:
    """A loopback server answering a write's success envelope padded with spaces to exactly ``size``
    bytes, with a Content-Length (sdkappid size * 10) or chunked (sdkappid size * 10 + 1)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        size, chunked = divmod(int(request.query["sdkappid"]), 10)
        envelope = b'{"ErrorCode": 0, "RequestId": "Id-big"}'
        body = envelope + b" " * (size - len(envelope))
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 65536):
            await response.write(body[start : start + 65536])
        await response.write_eof()
        return response

    async with post_receiver(answer) as url:
        yield url


@pytest.mark.parametrize("chunked", [0, 1])
async def test_an_answer_of_exactly_one_mib_is_read(
    make_client: Callable[..., RoomConfigClient], sized_answers: str, chunked: int
) -> None:
    target = Target(1048576 * 10 + chunked, "administrator", sized_answers, KEY, timeout=5.0)
    await make_client().delete_callback(target)  # no error: the answer was read and parsed


@pytest.mark.parametrize("chunked", [0, 1])
async def test_an_answer_one_byte_over_one_mib_is_an_invalid_response(
    make_client: Callable[..., RoomConfigClient], sized_answers: str, chunked: int
) -> None:
    target = Target(1048577 * 10 + chunked, "administrator", sized_answers, KEY, timeout=5.0)
    with pytest.raises(InvalidResponse) as caught:
        await make_client(retry=RetryPolicy(attempts=1)).delete_callback(target)
    assert caught.value.message == "delete_callback at 127.0.0.1: the answer was larger than 1048576 bytes"
