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

ALREADY_EXISTS = 100300  # set_callback's answer when a configuration exists
# The vendor's answer when another writer changed the config since it was read: created it before
# our set_callback, or deleted it before our update_callback.
RACED = {Action.SET: (ALREADY_EXISTS, "created"), Action.UPDATE: (NO_CONFIGURATION, "deleted")}


class Effect(StrEnum):
    APPLIED = "applied"  # written and read back in sync
    FAILED = "failed"  # the write or the read-back failed, or the read-back still differs
    CONTESTED = "contested"  # another writer changed the config just before the write: nothing written
    REFUSED = "refused"  # read-only: nothing was sent
    NOTHING = "nothing"  # the plan makes no call


@dataclass(frozen=True)
class Result:
    plan: Plan
    effect: Effect
    action: Action  # the call made, NONE when nothing was written
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
            await asyncio.wait_for(self._write(target, planned), limit)
        except TencentError as exc:
            error = CheckError.of(exc)
            code, what = RACED.get(action, (None, ""))
            if isinstance(exc, BadRequest) and exc.code == code:
                # Never fall back to the other call: it would overwrite what that writer just made.
                message = (
                    f"nothing written: the live config changed since the plan was made (another writer "
                    f"{what} it: ErrorCode {code}); plan again"
                )
                return Result(planned, Effect.CONTESTED, Action.NONE, error=error, message=message)
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

    async def _write(self, target: Target, planned: Plan) -> None:
        """Make the plan's one call. The remaining window, an edit between the re-read and this call,
        is the vendor API's: it has no conditional write."""
        if planned.action is Action.DELETE:
            await self._client.delete_callback(target)
            return
        after = planned.after
        assert after is not None
        write = self._client.set_callback if planned.action is Action.SET else self._client.update_callback
        await write(target, after)
