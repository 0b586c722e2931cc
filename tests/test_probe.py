"""Receiver probes against real receivers on 127.0.0.1, with certificates the tests make."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.probe import MAX_STATUS_LINE, Lookups, probe, system_resolve
from monitor.probe_model import CertProblem, Phase, ProbeSettings, parse_expect_status
from monitor.probe_receiver import Receiver
from tests.probe_pki import HOST, Pki, make_pki

SECRET = "s3cret-token-value"
StartReceiver = Callable[..., Awaitable[Receiver]]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def settings(pki: Pki) -> ProbeSettings:
    return ProbeSettings(enabled=True, timeout=5.0, allow_private=True, ca_file=pki.ca_file)


async def to_loopback(host: str, port: int) -> list[str]:
    """The tests' resolver: the test host name is 127.0.0.1, every other name resolves as usual."""
    if host == HOST:
        return ["127.0.0.1"]
    return await system_resolve(host, port)


@pytest.fixture
async def start_receiver(pki: Pki) -> AsyncIterator[StartReceiver]:
    started: list[Receiver] = []

    async def start(cert: str | None = "valid", **kwargs: object) -> Receiver:
        files = pki.pair(cert) if cert is not None else (None, None)
        receiver = Receiver(cert_file=files[0], key_file=files[1], **kwargs)  # type: ignore[arg-type]
        await receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.stop()


def url_of(receiver: Receiver, path: str = "/hook") -> str:
    return f"{receiver.scheme}://{HOST}:{receiver.port}{path}?token={SECRET}"


async def test_a_valid_chain_is_up_with_its_status_and_every_phase_timed(
    start_receiver: StartReceiver, settings: ProbeSettings, pki: Pki
) -> None:
    receiver = await start_receiver("valid")
    result = await probe(url_of(receiver), settings, resolve=to_loopback)
    assert result.up, result.error
    assert result.status == 204
    assert result.address == "127.0.0.1"
    assert result.cert_problem is None
    assert [p for p, _ in result.durations] == ["dns", "address", "connect", "tls", "request", "response"]
    assert all(seconds >= 0 for _, seconds in result.durations)
    assert result.total >= sum(seconds for _, seconds in result.durations) * 0.99


async def test_the_request_holds_the_urls_path_and_query_a_host_header_and_no_body(
    start_receiver: StartReceiver, settings: ProbeSettings
) -> None:
    receiver = await start_receiver("valid")
    for method in ("HEAD", "GET", "OPTIONS"):
        await probe(url_of(receiver), replace(settings, method=method), resolve=to_loopback)
    assert [seen.method for seen in receiver.seen] == ["HEAD", "GET", "OPTIONS"]
    for seen in receiver.seen:
        assert seen.path_qs == f"/hook?token={SECRET}"
        assert seen.body == b""
        headers = {name.lower(): value for name, value in seen.headers}
        assert headers["host"] == f"{HOST}:{receiver.port}"
        assert headers["connection"] == "close"
        assert set(headers) == {"host", "user-agent", "accept", "connection"}


async def test_the_earliest_not_after_of_the_chain_is_read_not_only_the_leafs(
    start_receiver: StartReceiver, settings: ProbeSettings, pki: Pki
) -> None:
    """The intermediate expires in 5 days, its leaf in 60: the probe reports the intermediate's date."""
    receiver = await start_receiver("short_intermediate")
    result = await probe(url_of(receiver), settings, resolve=to_loopback)
    assert result.up, result.error
    assert result.cert_not_after == pki.not_after("short_intermediate")
    assert result.cert_not_after == pytest.approx(pki.now.timestamp() + 5 * 86400, abs=1)


@pytest.mark.parametrize(("cert", "days"), [("expiring_2d", 2), ("expiring_10d", 10), ("valid", 90)])
async def test_an_expiring_certificate_still_works_and_reports_its_date(
    start_receiver: StartReceiver, settings: ProbeSettings, pki: Pki, cert: str, days: int
) -> None:
    receiver = await start_receiver(cert)
    result = await probe(url_of(receiver), settings, resolve=to_loopback)
    assert result.up, result.error
    assert result.cert_not_after == pytest.approx(pki.now.timestamp() + days * 86400, abs=1)


@pytest.mark.parametrize(
    ("cert", "problem"),
    [
        ("expired", CertProblem.EXPIRED),
        ("not_yet_valid", CertProblem.NOT_YET_VALID),
        ("wrong_host", CertProblem.WRONG_HOST),
        ("self_signed", CertProblem.UNTRUSTED),
        ("no_intermediate", CertProblem.UNTRUSTED),
    ],
)
async def test_a_refused_certificate_fails_in_tls_and_says_why(
    start_receiver: StartReceiver, settings: ProbeSettings, cert: str, problem: CertProblem
) -> None:
    receiver = await start_receiver(cert)
    result = await probe(url_of(receiver), settings, resolve=to_loopback)
    assert result.phase == Phase.TLS
    assert result.cert_problem == problem
    assert result.error.startswith("certificate refused: ")
    assert result.status is None
    assert receiver.seen == []  # nothing was sent to a receiver we could not verify


async def test_the_system_cas_do_not_trust_the_test_ca(
    start_receiver: StartReceiver, settings: ProbeSettings
) -> None:
    receiver = await start_receiver("valid")
    result = await probe(url_of(receiver), replace(settings, ca_file=None), resolve=to_loopback)
    assert result.cert_problem == CertProblem.UNTRUSTED


async def test_an_unreadable_ca_file_fails_in_tls_with_its_name(
    start_receiver: StartReceiver, settings: ProbeSettings, tmp_path: Path
) -> None:
    receiver = await start_receiver("valid")
    missing = tmp_path / "missing.pem"
    result = await probe(url_of(receiver), replace(settings, ca_file=missing), resolve=to_loopback)
    assert result.phase == Phase.TLS
    assert str(missing) in result.error


async def test_a_503_answer_is_down_in_the_status_phase_with_the_code(
    start_receiver: StartReceiver, settings: ProbeSettings
) -> None:
    receiver = await start_receiver("valid", default=503)
    result = await probe(url_of(receiver), settings, resolve=to_loopback)
    assert result.phase == Phase.STATUS
    assert result.status == 503
    assert result.error == "answered 503, expected 100-499"
    assert result.cert_not_after is not None  # the certificate was read before the answer


async def test_a_redirect_is_reported_not_followed(
    start_receiver: StartReceiver, settings: ProbeSettings
) -> None:
    receiver = await start_receiver(None, statuses={"/hook": 302})
    result = await probe(url_of(receiver), settings, resolve=to_loopback)
    assert result.up
    assert result.status == 302
    assert [seen.path_qs for seen in receiver.seen] == [f"/hook?token={SECRET}"]  # /moved never asked for
    strict = replace(settings, expect_status=parse_expect_status("2xx"))
    result = await probe(url_of(receiver), strict, resolve=to_loopback)
    assert (result.phase, result.status) == (Phase.STATUS, 302)


async def test_plain_http_has_no_tls_phase_and_no_certificate(
    start_receiver: StartReceiver, settings: ProbeSettings
) -> None:
    receiver = await start_receiver(None)
    result = await probe(url_of(receiver), settings, resolve=to_loopback)
    assert result.up
    assert result.cert_not_after is None
    assert Phase.TLS not in [p for p, _ in result.durations]


async def test_a_name_that_does_not_resolve_fails_in_dns(settings: ProbeSettings) -> None:
    result = await probe(f"https://no-such-receiver.invalid/hook?token={SECRET}", settings)
    assert result.phase == Phase.DNS
    assert result.address is None
    assert [p for p, _ in result.durations] == ["dns"]


async def test_a_refused_port_fails_in_connect(settings: ProbeSettings) -> None:
    with socket.socket() as bound:  # bound, never listening: connecting to it is refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        result = await probe(f"https://{HOST}:{port}/hook", settings, resolve=to_loopback)
    assert result.phase == Phase.CONNECT
    assert not result.timed_out
    assert result.error == f"no connection: 127.0.0.1:{port}: Connection refused"


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never says or reads anything until the test ends."""
    done = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    done.set()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize(("scheme", "phase"), [("http", Phase.RESPONSE), ("https", Phase.TLS)])
async def test_a_receiver_that_hangs_times_out_in_the_phase_it_hangs_in(
    silent_port: int, settings: ProbeSettings, scheme: str, phase: Phase
) -> None:
    short = replace(settings, timeout=0.3)
    result = await probe(f"{scheme}://{HOST}:{silent_port}/hook", short, resolve=to_loopback)
    assert (result.phase, result.timed_out) == (phase, True)
    assert result.error == f"timed out after 0.3s in {phase}"
    assert 0.3 <= result.total < 2.0


async def test_an_endless_status_line_is_cut_at_the_bound() -> None:
    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 " + b"x" * (MAX_STATUS_LINE * 4))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(babble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        allowed = ProbeSettings(enabled=True, timeout=5.0, allow_private=True)
        result = await probe(f"http://{HOST}:{port}/", allowed, resolve=to_loopback)
    finally:
        server.close()
        await server.wait_closed()
    assert result.phase == Phase.RESPONSE
    assert result.error == f"no status line in the first {MAX_STATUS_LINE} bytes"


async def test_a_name_resolving_to_loopback_is_refused_without_allow_private(
    start_receiver: StartReceiver, settings: ProbeSettings
) -> None:
    """``localhost`` goes through the system resolver; nothing is connected to."""
    receiver = await start_receiver(None)
    refused = replace(settings, allow_private=False)
    result = await probe(f"http://localhost:{receiver.port}/hook", refused)
    assert result.phase == Phase.ADDRESS
    assert "a loopback address" in result.error
    assert "allow_private" in result.error
    assert receiver.seen == []
    allowed = await probe(f"http://localhost:{receiver.port}/hook", settings)
    assert allowed.up, allowed.error


async def test_one_forbidden_record_among_public_ones_refuses_the_host(
    start_receiver: StartReceiver, settings: ProbeSettings
) -> None:
    """A name that mixes public and private records is refused whole, whatever the order."""

    async def mixed(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "::ffff:127.0.0.1"]  # never connected to: the check comes first

    result = await probe("https://mixed.test/hook", replace(settings, allow_private=False), resolve=mixed)
    assert result.phase == Phase.ADDRESS
    assert "::ffff:127.0.0.1" in result.error
    assert result.duration(Phase.CONNECT) is None


async def test_the_address_checked_is_the_address_connected_to(
    start_receiver: StartReceiver, settings: ProbeSettings
) -> None:
    """The name is looked up once: a resolver that would answer differently later is never asked again."""
    receiver = await start_receiver("valid")
    answers = [["127.0.0.1"], ["192.0.2.1"]]
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[len(asked) - 1]

    result = await probe(url_of(receiver), settings, resolve=rebinding)
    assert result.up, result.error
    assert asked == [HOST]
    assert result.address == "127.0.0.1"


async def test_no_error_text_holds_the_urls_query_values(settings: ProbeSettings) -> None:
    for url in (
        f"https://no-such-receiver.invalid/hook?token={SECRET}",
        f"https://{HOST}:1/hook?token={SECRET}",
        f"https://{HOST}/hook?token={SECRET} x",
    ):
        result = await probe(url, settings, resolve=to_loopback)
        assert result.phase is not None
        assert SECRET not in result.error


@pytest.mark.parametrize(
    ("url", "phase", "error"),
    [
        ("https://[::1/hook", Phase.DNS, "the URL's host or port does not parse"),
        ("https://receiver.test:99999/hook", Phase.DNS, "the URL's host or port does not parse"),
        ("ftp://receiver.test/hook", Phase.DNS, "the URL is not http(s)://host/..."),
        ("https:///hook", Phase.DNS, "the URL is not http(s)://host/..."),
        (
            "https://receiver.test/ä",
            Phase.REQUEST,
            "the URL's path or query holds a space, control or non-ASCII character",
        ),
        ("https://a\u0300b..test/hook", Phase.DNS, "the URL's host is not a valid internationalised name"),
    ],
)
async def test_a_url_that_cannot_be_probed_is_a_failed_probe_not_an_exception(
    settings: ProbeSettings, url: str, phase: Phase, error: str
) -> None:
    result = await probe(url, settings, resolve=to_loopback)
    assert (result.phase, result.error) == (phase, error)


async def test_an_internationalised_host_is_looked_up_and_named_as_idna(settings: ProbeSettings) -> None:
    asked: list[str] = []

    async def record(host: str, port: int) -> list[str]:
        asked.append(host)
        return []

    result = await probe("https://bücher.test/hook", settings, resolve=record)
    assert asked == ["xn--bcher-kva.test"]
    assert result.error == "xn--bcher-kva.test resolves to no address"


async def test_name_lookups_run_in_threads_of_their_own_and_are_bounded() -> None:
    """A lookup in flight holds one daemon thread; past the limit a probe fails in DNS at once."""
    lookups = Lookups(limit=1)
    infos = await lookups.getaddrinfo("localhost", 80)
    assert "127.0.0.1" in {str(info[4][0]) for info in infos}
    assert lookups.running == 0
    full = Lookups(limit=0)
    with pytest.raises(OSError, match=r"^0 name lookups are still running$"):
        await full.getaddrinfo("localhost", 80)

    async def through_full(host: str, port: int) -> list[str]:
        return [str(info[4][0]) for info in await full.getaddrinfo(host, port)]

    settings = ProbeSettings(enabled=True, allow_private=True)
    result = await probe("https://localhost/hook", settings, resolve=through_full)
    assert (result.phase, result.error) == (
        Phase.DNS,
        "localhost does not resolve: 0 name lookups are still running",
    )
