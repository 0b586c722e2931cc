"""One check of one app: the one place where I/O (secret, API) meets the pure core (drift)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from monitor import logs
from monitor.config import AppConfig
from monitor.drift import compare
from monitor.errors import INTERNAL, CheckError, ResourceExhausted, SecretUnavailable, TencentError
from monitor.filestat import Signature, file_signature
from monitor.output import printable
from monitor.redact import redact_url
from monitor.state import Outcome
from monitor.tencent.client import RoomConfigClient, Target
from monitor.tencent.model import CallbackConfig

log = structlog.get_logger("monitor.checker")


def run_timeout(app: AppConfig) -> float:
    """The most one check may take, retries included, before it counts as a timeout."""
    return min(max(app.interval, app.timeout), app.timeout * 4 + 5)


class Checker:
    """Reads an app's secret, fetches its live callback config and compares it with the desired one."""

    def __init__(
        self,
        client: RoomConfigClient,
        *,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._environ = environ
        # secret file -> (what os.stat says of it, the key read then). A stat per check notices a
        # rotated file (Kubernetes swaps a symlink: a new inode) at a fraction of a read's cost.
        self._keys: dict[Path, tuple[Signature, str]] = {}

    def _read_key(self, app: AppConfig) -> str:
        path = app.secret.file
        if path is None:
            return app.secret.read(self._environ)
        signature = file_signature(path)
        cached = self._keys.get(path)
        if signature is not None and cached is not None and cached[0] == signature:
            return cached[1]
        key = app.secret.read(self._environ)
        if signature is not None:
            self._keys[path] = (signature, key)
        return key

    def _key(self, app: AppConfig) -> str:
        """The key, or SecretUnavailable / ResourceExhausted saying why not (never the key itself)."""
        key = self._read_key(app)
        if not key:
            raise SecretUnavailable(f"the secret key in {app.secret.describe()} is empty")
        return key

    async def target(self, app: AppConfig) -> Target:
        """The client's view of ``app``, with its key as it is now (so a rotated secret is picked up).

        The key is read in a worker thread: a file read may block (a slow or odd file system), and
        the event loop must keep running checks and answering probes meanwhile.
        """
        key = await asyncio.to_thread(self._key, app)
        logs.register_secret(key)
        return Target(
            sdkappid=app.sdkappid,
            identifier=app.identifier,
            endpoint=app.endpoint,
            backup_endpoint=app.backup_endpoint,
            timeout=app.timeout,
            key=key,
        )

    async def check(self, app: AppConfig) -> Outcome:
        """Read the key, then ``read`` the app; logs one line of how the check ended.

        Whatever goes wrong becomes a failed check: an exception nobody planned for (a bug, a
        MemoryError) is one with reason "internal", so that no app is ever left unchecked.
        """
        started = self._clock()
        limit = run_timeout(app)
        try:
            async with asyncio.timeout(limit):
                target = await self.target(app)
            outcome = await self.read(app, target, started=started)
        except (SecretUnavailable, ResourceExhausted) as exc:
            outcome = Outcome(started=started, finished=self._clock(), error=CheckError.of(exc))
        except TimeoutError:
            error = CheckError("timeout", f"reading the secret key took longer than {limit:g}s")
            outcome = Outcome(started=started, finished=self._clock(), error=error)
        except Exception as exc:  # noqa: BLE001 - a bug must fail one check, never freeze the app
            error = CheckError.unexpected(exc, "inside the check")
            outcome = Outcome(started=started, finished=self._clock(), error=error)
        _log(app, outcome)
        return outcome

    async def read(
        self, app: AppConfig, target: Target, *, started: float | None = None, what: str = "the check"
    ) -> Outcome:
        """Fetch the live config with ``target`` and compare it with the desired one (no log line).

        The one path from the vendor's answer to a verdict or a CheckError: checks, and the re-read and
        read-back of a write, all come here. ``what`` names the read in a timeout's message.
        """
        if started is None:
            started = self._clock()
        limit = run_timeout(app)
        try:
            async with asyncio.timeout(limit):
                observed = await self._client.get_callback(target)
        except TencentError as exc:
            error = CheckError.of(exc)
        except TimeoutError:
            error = CheckError(reason="timeout", message=f"{what} took longer than {limit:g}s")
        else:
            if problem := unshowable(observed):
                error = CheckError(reason="invalid_response", message=problem)
            else:
                verdict = compare(app.callback, observed, app.policy, app.ignore)
                return Outcome(started=started, finished=self._clock(), verdict=verdict)
        return Outcome(started=started, finished=self._clock(), error=error)


def unshowable(observed: CallbackConfig | None) -> str:
    """Why the live config cannot be shown as it is, or "": a URL or command word holding control or
    invisible characters (a newline, ESC, U+202E) could forge what a person reads in a report or a plan,
    so it is an invalid answer, shown escaped, never a config compared as if it were clean."""
    if observed is None:
        return ""
    if not observed.url.isprintable():
        shown = redact_url(printable(observed.url))
        return f"the live callback URL holds control or invisible characters: {shown}"
    bad = [printable(c) for c in observed.commands if not c.isprintable()]
    if bad:
        return f"the live command list holds control or invisible characters: {', '.join(bad)}"
    return ""


def _log(app: AppConfig, outcome: Outcome) -> None:
    """The one summary line of a check: debug when it reached a verdict, else the error's reason."""
    seconds = round(outcome.finished - outcome.started, 3)
    if outcome.verdict is not None:
        log.debug(
            "check",
            app=app.name,
            sdkappid=app.sdkappid,
            result="in_sync" if outcome.verdict.in_sync else "drift",
            findings=[f.kind.value for f in outcome.verdict.counted],
            seconds=seconds,
        )
        return
    error = outcome.error
    assert error is not None  # an Outcome holds one of the two
    # An internal error is the monitor's own fault: it is logged as an error, once per check.
    level = logging.ERROR if error.reason == INTERNAL else logging.INFO
    log.log(
        level,
        "check_error",
        app=app.name,
        sdkappid=app.sdkappid,
        reason=error.reason,
        code=error.code,
        request_id=error.request_id,
        message=error.message,
        seconds=seconds,
    )
