"""The one writer to Tencent: makes a plan's call and reads the config back; read-only, it sends nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from monitor.checker import Checker, run_timeout
from monitor.config import AppConfig
from monitor.drift import same_config
from monitor.errors import BadRequest, CheckError, TencentError
from monitor.remediate.planner import Action, Plan
from monitor.state import Outcome
from monitor.tencent.client import RoomConfigClient, Target
from monitor.tencent.codes import NO_CONFIGURATION

ALREADY_EXISTS = 100300  # set_callback's answer when a configuration exists: use update


class Effect(StrEnum):
    APPLIED = "applied"  # written and read back in sync
    FAILED = "failed"  # the write or the read-back failed, or the read-back still differs
    REFUSED = "refused"  # read-only: nothing was sent
    NOTHING = "nothing"  # the plan makes no call


@dataclass(frozen=True)
class Result:
    plan: Plan
    effect: Effect
    action: Action  # the call made last: a race turns a set into an update and back
    check: Outcome | None = None  # the read-back, compared with the desired state
    error: CheckError | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.effect is Effect.APPLIED


class Executor:
    """Makes a plan's call and reads the config back; built with ``read_only`` it sends nothing.

    Nothing else in the monitor writes to Tencent. Reads go through ``Checker.read``, the one path
    from the vendor's answer to a verdict.
    """

    def __init__(
        self, client: RoomConfigClient, *, read_only: bool, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._reader = Checker(client, clock=clock)
        self.read_only = read_only

    async def apply(
        self, app: AppConfig, target: Target, planned: Plan, *, expect_unchanged: bool = False
    ) -> Result:
        """Make the call and read back. ``expect_unchanged`` reads the config first and writes nothing
        if it is no longer ``planned.before`` (a person confirmed that plan, not another one)."""
        if not planned.writes:
            return Result(planned, Effect.NOTHING, Action.NONE, message=planned.blocked or "nothing to do")
        if self.read_only:
            return Result(planned, Effect.REFUSED, Action.NONE, message="read-only mode: nothing was written")
        limit = run_timeout(app)
        if expect_unchanged:
            now = await self._reader.read(app, target, what="the read-back")
            if now.error is not None:
                message = f"nothing written: cannot read the config again: {now.error.message}"
                return Result(planned, Effect.FAILED, Action.NONE, now, now.error, message)
            assert now.verdict is not None
            if not same_config(now.verdict.observed, planned.before):
                message = "nothing written: the live config changed since the plan was made; plan again"
                return Result(planned, Effect.FAILED, Action.NONE, now, message=message)
        action = planned.action
        try:
            action = await asyncio.wait_for(self._write(target, planned), limit)
        except TencentError as exc:
            error = CheckError.of(exc)
            return Result(planned, Effect.FAILED, Action(exc.action or action), error=error, message=str(exc))
        except TimeoutError:
            error = CheckError("timeout", f"{action} took longer than {limit:g}s")
            return Result(planned, Effect.FAILED, action, error=error, message=error.message)
        check = await self._reader.read(app, target, what="the read-back")
        if check.verdict is None:
            assert check.error is not None
            message = f"written, but the read-back failed: {check.error.message}"
            return Result(planned, Effect.FAILED, action, check, check.error, message)
        if not check.verdict.in_sync:
            kinds = ", ".join(f.kind.value for f in check.verdict.counted)
            return Result(planned, Effect.FAILED, action, check, message=f"written, but read back: {kinds}")
        return Result(planned, Effect.APPLIED, action, check, message="written and read back in sync")

    async def _write(self, target: Target, planned: Plan) -> Action:
        """Make the call; a race with another writer turns set into update, update into set, once."""
        client = self._client
        if planned.action is Action.DELETE:
            await client.delete_callback(target)
            return Action.DELETE
        after = planned.after
        assert after is not None
        first, fallback, race_code = (
            (client.set_callback, Action.UPDATE, ALREADY_EXISTS)
            if planned.action is Action.SET
            else (client.update_callback, Action.SET, NO_CONFIGURATION)
        )
        try:
            await first(target, after)
        except BadRequest as exc:
            if exc.code != race_code:
                raise
        else:
            return planned.action
        # Someone created (or deleted) the config since it was read: the other call does the same job.
        second = client.update_callback if fallback is Action.UPDATE else client.set_callback
        await second(target, after)
        return fallback
