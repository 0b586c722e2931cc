"""The room_config REST client: one session, envelope parsing, typed errors, retries and failover."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import structlog

from monitor.errors import (
    BadRequest,
    InvalidResponse,
    NetworkError,
    RequestTimeout,
    TencentError,
)
from monitor.redact import redact_url
from monitor.tencent import codes
from monitor.tencent.envelope import (
    Answer,
    code_label,
    hostname,
    parse_envelope,
)
from monitor.tencent.model import CallbackConfig
from monitor.tencent.regions import endpoint_problem
from monitor.tencent.usersig import sign

_log = structlog.get_logger(__name__)

MAX_BODY = 1 << 20
"""A real answer is a few hundred bytes; anything beyond a MiB is not the documented envelope."""


@dataclass(frozen=True)
class Target:
    """One app as the client sees it."""

    sdkappid: int
    identifier: str
    endpoint: str  # base URL, e.g. https://adminapisgp.im.qcloud.com or http://127.0.0.1:PORT
    key: str = field(repr=False)  # read fresh by the caller for each check, so rotation just works
    backup_endpoint: str | None = None
    timeout: float = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # tries for transient errors, the first included
    base_delay: float = 0.2  # full jitter: uniform(0, min(max_delay, base_delay * 2**n))
    max_delay: float = 2.0
    rate_limit_delay: float = 1.0  # one retry after uniform(d, 1.5 d) for rate limits other than 70050


DEFAULT_RETRY = RetryPolicy()


class RequestObserver(Protocol):
    """Told about every HTTP attempt. ``code`` is the ErrorCode as text ("0", "100301", ...), or
    ``http_<status>``, ``timeout``, ``network`` or ``invalid_response``."""

    def __call__(self, action: str, code: str, seconds: float) -> None: ...


class RoomConfigClient:
    """Calls the four room_config actions for any number of apps over one aiohttp session.

    Retries, sig renewal and failover happen inside one call; the caller sees a result or exactly
    one ``TencentError`` whose message, cause and context carry no secret.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        sig_ttl: int = 86400,
        sig_renew_before: int = 43200,
        observer: RequestObserver | None = None,
        throttle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if not 0 <= sig_renew_before < sig_ttl:
            raise ValueError("sig_renew_before must be at least 0 and less than sig_ttl")
        if retry.attempts < 1:
            raise ValueError("retry.attempts must be at least 1")
        self._session = session
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._retry = retry
        self._sleep = sleep
        self._sig_ttl = sig_ttl
        self._sig_renew_before = sig_renew_before
        self._observer = observer
        self._throttle = throttle
        # (sdkappid, identifier) -> (sha256 of the key, UserSig, expiry). One entry per account, so a
        # rotated key replaces the old sig instead of piling up beside it.
        self._sigs: dict[tuple[int, str], tuple[str, str, int]] = {}

    async def get_callback(self, target: Target) -> CallbackConfig | None:
        """The app's live callback configuration, or None when it has none (ErrorCode 100301)."""
        answer = await self._call(target, "get_callback", {})
        return answer.config

    async def set_callback(self, target: Target, config: CallbackConfig) -> None:
        await self._call(target, "set_callback", _config_body(config))

    async def update_callback(self, target: Target, config: CallbackConfig) -> None:
        await self._call(target, "update_callback", _config_body(config))

    async def delete_callback(self, target: Target) -> None:
        await self._call(target, "delete_callback", {})

    def forget_sig(self, target: Target) -> None:
        """Drop the cached UserSig of ``target``'s account; the next request signs a new one."""
        self._sigs.pop((target.sdkappid, target.identifier), None)

    def _usersig(self, target: Target) -> str:
        now = self._clock()
        account = (target.sdkappid, target.identifier)
        key_hash = hashlib.sha256(target.key.encode("utf-8")).hexdigest()
        cached = self._sigs.get(account)
        if cached is not None and cached[0] == key_hash and cached[2] - now >= self._sig_renew_before:
            return cached[1]
        usersig = sign(target.sdkappid, target.key, target.identifier, now, self._sig_ttl)
        self._sigs[account] = (key_hash, usersig, int(now) + self._sig_ttl)
        return usersig

    async def _call(self, target: Target, action: str, body: dict[str, Any]) -> Answer:
        """Attempts until an answer, a final error, or the retry budget is spent.

        Errors are raised here, outside any ``except`` block and away from the frames that hold the
        UserSig, so that neither the exception chain nor a traceback with locals can show it.
        """
        for name, endpoint in (("endpoint", target.endpoint), ("backup_endpoint", target.backup_endpoint)):
            problem = endpoint_problem(endpoint) if endpoint is not None else None
            if problem is not None:
                raise BadRequest(
                    f"{action}: {name} {redact_url(endpoint or '')} {problem}",
                    action=action,
                    host=hostname(endpoint or ""),
                )
        endpoint = target.endpoint
        transient_failures = 0
        renewed_sig = False
        rate_limit_retried = False
        while True:
            outcome = await self._attempt(target, endpoint, action, body)
            if isinstance(outcome, Answer):
                return outcome
            if outcome.code == codes.SIG_EXPIRED and not renewed_sig:
                renewed_sig = True
                self.forget_sig(target)
                continue
            if outcome.code in codes.RATE_LIMIT_RETRY_CODES and not rate_limit_retried:
                rate_limit_retried = True
                delay = self._retry.rate_limit_delay
                await self._sleep(self._rng.uniform(delay, 1.5 * delay))
                continue
            if not outcome.retryable:
                raise outcome
            transient_failures += 1
            if transient_failures >= self._retry.attempts:
                raise outcome
            backup = target.backup_endpoint
            if isinstance(outcome, NetworkError) and backup is not None and endpoint == target.endpoint:
                # Another host: waiting first would not help it answer.
                _log.warning(
                    "api_failover",
                    action=action,
                    sdkappid=target.sdkappid,
                    host=outcome.host,
                    backup_host=hostname(backup),
                    error=outcome.message,
                )
                endpoint = backup
                continue
            cap = min(self._retry.max_delay, self._retry.base_delay * 2 ** (transient_failures - 1))
            await self._sleep(self._rng.uniform(0, cap))

    async def _attempt(
        self, target: Target, endpoint: str, action: str, body: dict[str, Any]
    ) -> Answer | TencentError:
        """One HTTP request, observed and logged; failures are returned, not raised."""
        host = hostname(endpoint)
        if self._throttle is not None:
            await self._throttle()
        started = time.perf_counter()
        outcome = await self._exchange(target, endpoint, host, action, body)
        seconds = time.perf_counter() - started
        code = code_label(outcome)
        if self._observer is not None:
            self._observer(action, code, seconds)
        _log.debug(
            "api_request",
            action=action,
            sdkappid=target.sdkappid,
            host=host,
            code=code,
            seconds=round(seconds, 6),
            request_id=outcome.request_id,
        )
        return outcome

    async def _exchange(
        self, target: Target, endpoint: str, host: str, action: str, body: dict[str, Any]
    ) -> Answer | TencentError:
        where = f"{action} at {host}"
        usersig = self._usersig(target)
        params = {
            "sdkappid": str(target.sdkappid),
            "identifier": target.identifier,
            "usersig": usersig,
            "random": str(self._rng.randrange(2**32)),
            "contenttype": "json",
        }
        try:
            async with self._session.post(
                f"{endpoint.rstrip('/')}/v4/room_config/{action}",
                params=params,
                json=body,
                timeout=aiohttp.ClientTimeout(total=target.timeout),
                allow_redirects=False,
            ) as response:
                data = await _read_capped(response)
                if data is None:
                    return InvalidResponse(
                        f"{where}: the answer was larger than {MAX_BODY} bytes", action=action, host=host
                    )
                return parse_envelope(
                    response.status,
                    response.headers.get("Content-Type", ""),
                    data,
                    action=action,
                    host=host,
                    secrets=frozenset({usersig, target.key}),
                )
        # aiohttp's exceptions carry the request URL, and with it the UserSig: only their class name
        # and OS error text go into our errors, which are returned so that no chain links back.
        except TimeoutError:  # before OSError: TimeoutError is one, and aiohttp's timeouts are both
            return RequestTimeout(f"{where}: no answer within {target.timeout:g}s", action=action, host=host)
        except aiohttp.ClientResponseError as exc:
            return InvalidResponse(f"{where}: {_describe(exc)}", action=action, host=host)
        except (aiohttp.ClientError, OSError) as exc:
            return NetworkError(f"{where}: {_describe(exc)}", action=action, host=host)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes | None:
    length = response.content_length
    if length is not None:  # the usual case: one read of a known, small body
        return None if length > MAX_BODY else await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(exc: BaseException) -> str:
    """A secret-free description of a library exception: its class and any OS error text."""
    os_error = exc if isinstance(exc, OSError) else getattr(exc, "os_error", None)
    strerror = getattr(os_error, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return f"{type(exc).__name__} ({strerror})"
    return type(exc).__name__


def _config_body(config: CallbackConfig) -> dict[str, Any]:
    return {"Url": config.url, "CallbackCommandList": list(config.commands)}
