"""One check of one app: the one place where I/O (secret, API) meets the pure core (drift)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from monitor import logs
from monitor.config import AppConfig
from monitor.drift import compare
from monitor.errors import SecretUnavailable, TencentError
from monitor.state import CheckError, Outcome
from monitor.tencent.client import RoomConfigClient, Target

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
        self._keys: dict[Path, tuple[tuple[int, int, int, int], str]] = {}

    def _read_key(self, app: AppConfig) -> str:
        path = app.secret.file
        if path is None:
            return app.secret.read(self._environ)
        st = os.stat(path)
        signature = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)
        cached = self._keys.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        key = app.secret.read(self._environ)
        self._keys[path] = (signature, key)
        return key

    def target(self, app: AppConfig) -> Target:
        """The client's view of ``app``, with its key as it is now (so a rotated secret is picked up)."""
        try:
            key = self._read_key(app)
        except (OSError, KeyError, UnicodeDecodeError) as exc:
            raise SecretUnavailable(
                f"cannot read the secret key from {app.secret.describe()} ({type(exc).__name__})"
            ) from None
        if not key:
            raise SecretUnavailable(f"the secret key in {app.secret.describe()} is empty")
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
        started = self._clock()
        try:
            target = self.target(app)
            async with asyncio.timeout(run_timeout(app)):
                observed = await self._client.get_callback(target)
        except SecretUnavailable as exc:
            error = CheckError(reason="auth", message=str(exc))
        except TencentError as exc:
            error = CheckError(reason=exc.reason, message=str(exc), code=exc.code, request_id=exc.request_id)
        except TimeoutError:
            error = CheckError(reason="timeout", message=f"the check took longer than {run_timeout(app):g}s")
        else:
            verdict = compare(app.callback, observed, app.policy, app.ignore)
            finished = self._clock()
            log.debug(
                "check",
                app=app.name,
                sdkappid=app.sdkappid,
                result="in_sync" if verdict.in_sync else "drift",
                findings=[f.kind.value for f in verdict.counted],
                seconds=round(finished - started, 3),
            )
            return Outcome(started=started, finished=finished, verdict=verdict)
        finished = self._clock()
        log.info(
            "check_error",
            app=app.name,
            sdkappid=app.sdkappid,
            reason=error.reason,
            code=error.code,
            request_id=error.request_id,
            message=error.message,
            seconds=round(finished - started, 3),
        )
        return Outcome(started=started, finished=finished, error=error)
