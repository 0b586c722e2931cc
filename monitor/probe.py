"""One probe of one receiver URL: resolve, check the addresses, connect, TLS, request, status line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from monitor.probe_address import forbidden_reason
from monitor.probe_model import Phase, ProbeResult, ProbeSettings
from monitor.probe_tls import cert_problem, client_context, earliest_not_after, verify_message

_T = TypeVar("_T")
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_STATUS_LINE = 8192  # bytes read at most from the answer: its status line and nothing more
USER_AGENT = "callback-monitor-probe"
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?\r?\n")
_SENDABLE = re.compile(r"[\x21-\x7e]+")  # a request target with no space or control character


class _Failed(Exception):
    """A phase failed; carries what the result reports."""

    def __init__(self, phase: Phase, error: str, *, timed_out: bool = False) -> None:
        super().__init__(error)
        self.phase = phase
        self.error = error
        self.timed_out = timed_out


@dataclass
class _Run:
    """What one probe found so far."""

    loop: asyncio.AbstractEventLoop
    deadline: float  # loop time
    budget: float
    durations: list[tuple[Phase, float]] = field(default_factory=list)
    address: str | None = None
    status: int | None = None
    cert_not_after: float | None = None


class Lookups:
    """Name lookups in daemon threads of their own, at most ``limit`` running at once.

    ``getaddrinfo`` blocks and cannot be cancelled. In asyncio's default pool a lookup that hangs
    would hold a worker that the checks' own lookups (aiohttp's threaded resolver uses that pool) and
    the scrapes need, and the pool is joined at exit; here it holds only its own daemon thread, and once
    ``limit`` hang, probes fail in DNS at once instead of starting more.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._lock = threading.Lock()

    async def getaddrinfo(self, host: str, port: int) -> list[tuple[Any, ...]]:
        with self._lock:
            if self.running >= self.limit:
                raise OSError(f"{self.running} name lookups are still running")
            self.running += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[tuple[Any, ...]]] = loop.create_future()

        def settle(infos: list[tuple[Any, ...]] | None, error: OSError | None) -> None:
            if future.done():
                return  # the probe gave up waiting
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(infos or [])

        def work() -> None:
            infos: list[tuple[Any, ...]] | None = None
            error: OSError | None = None
            try:
                infos = [tuple(i) for i in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
            except OSError as exc:
                error = exc
            finally:
                with self._lock:
                    self.running -= 1
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(settle, infos, error)

        threading.Thread(target=work, name="probe-dns", daemon=True).start()
        return await future


LOOKUPS = Lookups(limit=32)


async def system_resolve(host: str, port: int) -> list[str]:
    """Every A and AAAA address of ``host``, in the resolver's order, each once."""
    infos = await LOOKUPS.getaddrinfo(host, port)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


async def probe(
    url: str,
    settings: ProbeSettings,
    *,
    resolve: Resolver = system_resolve,
    clock: Callable[[], float] = time.time,
) -> ProbeResult:
    """Probes ``url`` once as ``settings`` say; never raises for anything the receiver or network does.

    The connection goes to an address that was checked (no second lookup, so no DNS-rebinding
    window), TLS verifies the chain and host name, and the request holds the URL's path and query
    with the Host, User-Agent, Accept and ``Connection: close`` headers: no body, no credentials
    (user-info in the URL is not sent). Redirects are not followed. Every phase runs under what is
    left of ``settings.timeout``.
    """
    loop = asyncio.get_running_loop()
    started = clock()
    begin = loop.time()
    run = _Run(loop=loop, deadline=begin + settings.timeout, budget=settings.timeout)
    phase: Phase | None = None
    error = ""
    timed_out = False
    problem = None
    try:
        await _probe(url, settings, resolve, run)
    except _Failed as failed:
        phase, error, timed_out = failed.phase, failed.error, failed.timed_out
    except ssl.SSLCertVerificationError as exc:
        phase, error, problem = Phase.TLS, verify_message(exc), cert_problem(exc)
    if phase is None and run.status is not None and not settings.expects(run.status):
        expected = ", ".join(str(r) for r in settings.expect_status)
        phase, error = Phase.STATUS, f"answered {run.status}, expected {expected}"
    return ProbeResult(
        url=url,
        started=started,
        total=loop.time() - begin,
        phase=phase,
        error=error,
        timed_out=timed_out,
        address=run.address,
        status=run.status,
        cert_not_after=run.cert_not_after,
        cert_problem=problem,
        durations=tuple(run.durations),
    )


async def _probe(url: str, settings: ProbeSettings, resolve: Resolver, run: _Run) -> None:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:  # a bracketed host that is not an address, a port out of range
        raise _Failed(Phase.DNS, "the URL's host or port does not parse") from exc
    if scheme not in ("http", "https") or not host:
        raise _Failed(Phase.DNS, "the URL is not http(s)://host/...")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")  # the name DNS, SNI and Host know it by
        except UnicodeError as exc:
            raise _Failed(Phase.DNS, "the URL's host is not a valid internationalised name") from exc
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not _SENDABLE.fullmatch(target):
        raise _Failed(Phase.REQUEST, "the URL's path or query holds a space, control or non-ASCII character")

    addresses = await _phase(run, Phase.DNS, _resolve(resolve, host, port))
    await _phase(run, Phase.ADDRESS, _check_addresses(host, addresses, settings.allow_private))
    sock = await _phase(run, Phase.CONNECT, _connect(run, addresses, port))
    try:
        if scheme == "https":
            reader, writer = await _phase(run, Phase.TLS, _handshake(run, sock, host, settings))
        else:
            reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_STATUS_LINE)
    except BaseException:
        sock.close()
        raise
    try:
        request = _request(settings.method, target, host, port, scheme)
        await _phase(run, Phase.REQUEST, _send(writer, request))
        run.status = await _phase(run, Phase.RESPONSE, _status(reader))
    finally:
        writer.transport.abort()  # the answer's body is never read; close without waiting on the peer


async def _phase(run: _Run, phase: Phase, step: Awaitable[_T]) -> _T:
    """Runs ``step`` under what is left of the probe's budget and records how long it took."""
    begin = run.loop.time()
    try:
        async with asyncio.timeout_at(run.deadline):
            return await step
    except TimeoutError as exc:
        raise _Failed(phase, f"timed out after {run.budget:g}s in {phase}", timed_out=True) from exc
    finally:
        run.durations.append((phase, run.loop.time() - begin))


async def _resolve(resolve: Resolver, host: str, port: int) -> list[str]:
    try:
        addresses = await resolve(host, port)
    except OSError as exc:  # socket.gaierror and the rest
        raise _Failed(Phase.DNS, f"{host} does not resolve: {exc.strerror or exc}") from exc
    if not addresses:
        raise _Failed(Phase.DNS, f"{host} resolves to no address")
    return addresses


async def _check_addresses(host: str, addresses: list[str], allow_private: bool) -> None:
    if allow_private:
        return
    for address in addresses:
        reason = forbidden_reason(address)
        if reason is not None:
            raise _Failed(
                Phase.ADDRESS,
                f"{host} resolves to {address}, {reason}; probes go there only with allow_private",
            )


async def _connect(run: _Run, addresses: list[str], port: int) -> socket.socket:
    """A TCP connection to the first of ``addresses`` that accepts one, tried in order."""
    errors: list[str] = []
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        run.address = address
        try:
            await run.loop.sock_connect(sock, (address, port))
        except OSError as exc:
            sock.close()
            errors.append(f"{_show(address, port)}: {_words(exc)}")
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise _Failed(Phase.CONNECT, "no connection: " + "; ".join(errors))


async def _handshake(
    run: _Run, sock: socket.socket, host: str, settings: ProbeSettings
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        context = client_context(settings.ca_file, settings.ca_pem)
    except (OSError, ssl.SSLError) as exc:
        raise _Failed(Phase.TLS, f"ca_file {settings.ca_file} is not a readable PEM bundle") from exc
    try:
        reader, writer = await asyncio.open_connection(
            sock=sock,
            ssl=context,
            server_hostname=host,
            # past the probe's own deadline, so that its timeout (not asyncio's) reports a slow handshake
            ssl_handshake_timeout=max(run.deadline - run.loop.time(), 0.0) + 1.0,
            limit=MAX_STATUS_LINE,
        )
    except ssl.SSLCertVerificationError:
        raise
    except ssl.SSLError as exc:
        raise _Failed(Phase.TLS, f"TLS handshake failed: {exc.reason or exc}") from exc
    except OSError as exc:
        raise _Failed(Phase.TLS, f"TLS handshake failed: {_words(exc)}") from exc
    ssl_object = writer.get_extra_info("ssl_object")
    if isinstance(ssl_object, ssl.SSLObject):
        run.cert_not_after = earliest_not_after(ssl_object)
    return reader, writer


def _request(method: str, target: str, host: str, port: int, scheme: str) -> bytes:
    default = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    if port != default:
        shown = f"{shown}:{port}"
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {shown}",
        f"User-Agent: {USER_AGENT}",
        "Accept: */*",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def _send(writer: asyncio.StreamWriter, request: bytes) -> None:
    try:
        writer.write(request)
        await writer.drain()
    except OSError as exc:
        raise _Failed(Phase.REQUEST, f"request not sent: {_words(exc)}") from exc


async def _status(reader: asyncio.StreamReader) -> int:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise _Failed(Phase.RESPONSE, f"no status line in the first {MAX_STATUS_LINE} bytes") from exc
    except asyncio.IncompleteReadError as exc:
        raise _Failed(Phase.RESPONSE, "the receiver closed the connection without an answer") from exc
    except OSError as exc:
        raise _Failed(Phase.RESPONSE, f"no answer: {_words(exc)}") from exc
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise _Failed(Phase.RESPONSE, "the answer does not start with an HTTP/1.x status line")
    return int(match[1])


def _words(exc: OSError) -> str:
    """The system's words for an OS error ("Connection refused"), without asyncio's wrapping."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _show(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
