"""Self-heal knows when to stop: a writer that keeps undoing its writes makes it stand back with one
critical alert, a write raced by another writer is never made over it, and a process-wide cap bounds
the writes of all apps together. The real simulator, client, checker and state machine; a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import yaml
from structlog.testing import capture_logs

from monitor.checker import Checker
from monitor.config import AppConfig, load_config_text
from monitor.remediate import Executor, Remediator
from monitor.simulator import Simulator
from monitor.state import AlertEvent, AppIdentity, AppState, transition
from monitor.tencent.client import RetryPolicy, RoomConfigClient
from monitor.tencent.model import CallbackConfig

KEY = "contest-key-0123456789abcdef"
CREATE = "Room.CallbackAfterCreateRoom"
DESIRED = CallbackConfig("https://hooks.example.com/cb", (CREATE,))
THEIRS = CallbackConfig("https://hooks.example.com/theirs", (CREATE,))
WRITES = ("set_callback", "update_callback", "delete_callback")


def app_config(endpoint: str, name: str = "shop", sdkappid: int = 1400000001, **extra: Any) -> AppConfig:
    entry = {"name": name, "sdkappid": sdkappid, "secret_key_env": "K", **extra}
    doc = {
        "version": 1,
        "defaults": {
            "endpoint": endpoint,
            "interval": "1s",
            "remediate": True,
            "callback": {"url": DESIRED.url, "commands": list(DESIRED.commands)},
        },
        "apps": [entry],
    }
    return load_config_text(yaml.safe_dump(doc), environ={"K": KEY}).apps[0]


@dataclass
class Heal:
    """serve's check path for a few apps, one call of ``step`` per check, on a clock that ticks 1 s."""

    sim: Simulator
    checker: Checker
    remediator: Remediator
    now: list[float]
    events: list[AlertEvent] = field(default_factory=list)
    states: dict[str, AppState] = field(default_factory=dict)

    async def step(self, app: AppConfig) -> None:
        state = self.states.get(app.name) or AppState.initial(
            AppIdentity(app.name, app.sdkappid, app.labels, app.callback)
        )
        outcome = await self.checker.check(app)
        self.states[app.name], _ = transition(state, outcome, self.now[0])
        await self.remediator.after_check(app, self.states[app.name].status, outcome)

    def tick(self, seconds: float = 1.0) -> None:
        self.now[0] += seconds

    def writes(self) -> int:
        return sum(self.sim.count(action=a) for a in WRITES)

    def named(self, name: str) -> list[AlertEvent]:
        return [e for e in self.events if e.event == name]


async def make_heal(sim: Simulator, session: aiohttp.ClientSession, **cap: int) -> Heal:
    now = [1_000_000.0]
    client = RoomConfigClient(session, retry=RetryPolicy(attempts=1))
    checker = Checker(client, clock=lambda: now[0], environ={"K": KEY})
    events: list[AlertEvent] = []
    remediator = Remediator(
        Executor(client, read_only=False, clock=lambda: now[0]),
        checker.target,
        emit=events.extend,
        count=lambda *_: None,
        clock=lambda: now[0],
        **cap,  # writes_per_hour, else the default
    )
    return Heal(sim, checker, remediator, now, events)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    sim = Simulator(seed=0)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def test_a_writer_flipping_the_config_every_3s_gets_three_writes_and_one_alert_not_twenty(
    sim: Simulator,
) -> None:
    assert sim.url is not None
    app = app_config(sim.url)
    sim.add_app(app.sdkappid, KEY, callback=DESIRED)
    async with aiohttp.ClientSession() as session:
        heal = await make_heal(sim, session)
        for second in range(60):
            if second % 3 == 0:
                sim.set_callback(app.sdkappid, THEIRS)  # the other writer
            await heal.step(app)
            heal.tick()
    assert heal.writes() == 3  # the third revert (at 9 s) stops it; before: 20, one per flip
    assert [e.event for e in heal.events] == ["remediation_applied"] * 3 + ["remediation_contested"]
    contested = heal.named("remediation_contested")[0]
    assert (contested.severity, contested.kind, contested.sdkappid) == ("critical", "remediation", 1400000001)
    assert contested.error is not None
    assert contested.error.reason == "contested"
    assert contested.error.message.startswith("another writer keeps changing this config: 3 self-heal writes")


async def test_a_contested_app_is_healed_again_after_staying_in_sync_for_the_window(sim: Simulator) -> None:
    assert sim.url is not None
    app = app_config(sim.url, remediate_max_reverts=2, remediate_revert_window="30s")
    sim.add_app(app.sdkappid, KEY, callback=DESIRED)
    async with aiohttp.ClientSession() as session:
        heal = await make_heal(sim, session)
        for second in range(12):
            if second % 3 == 0:
                sim.set_callback(app.sdkappid, THEIRS)
            await heal.step(app)
            heal.tick()
        assert (heal.writes(), len(heal.named("remediation_contested"))) == (2, 1)
        sim.set_callback(app.sdkappid, DESIRED)  # a person settles it by hand
        for _ in range(29):
            await heal.step(app)
            heal.tick()
        sim.set_callback(app.sdkappid, THEIRS)  # within the window: still hands-off
        for _ in range(3):
            await heal.step(app)
            heal.tick()
        assert heal.writes() == 2
        sim.set_callback(app.sdkappid, DESIRED)
        for _ in range(31):  # a whole window in sync: the other writer is gone
            await heal.step(app)
            heal.tick()
        sim.set_callback(app.sdkappid, THEIRS)
        for _ in range(2):
            await heal.step(app)
            heal.tick()
    assert heal.writes() == 3
    assert sim.callback(app.sdkappid) == DESIRED
    assert len(heal.named("remediation_contested")) == 1


async def test_a_new_desired_state_ends_the_hands_off(sim: Simulator) -> None:
    assert sim.url is not None
    app = app_config(sim.url, remediate_max_reverts=1)
    sim.add_app(app.sdkappid, KEY, callback=DESIRED)
    async with aiohttp.ClientSession() as session:
        heal = await make_heal(sim, session)
        for second in range(9):
            if second % 3 == 0:
                sim.set_callback(app.sdkappid, THEIRS)
            await heal.step(app)
            heal.tick()
        assert (heal.writes(), len(heal.named("remediation_contested"))) == (1, 1)
        moved = app_config(
            sim.url,
            remediate_max_reverts=1,
            callback={"url": THEIRS.url, "commands": [CREATE, "Room.CallbackAfterDestroyRoom"]},
        )
        for _ in range(2):
            await heal.step(moved)
            heal.tick()
    assert heal.writes() == 2
    assert sim.callback(app.sdkappid) == moved.callback


class Racer(Simulator):
    """Another writer creates the config just before every set_callback: the vendor answers 100300."""

    def _act(self, app: Any, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action == "set_callback":
            app.callback = THEIRS
        return super()._act(app, action, payload)


async def test_a_raced_write_is_not_made_over_the_other_writer_and_counts_as_contested() -> None:
    sim = Racer(seed=0)
    url = await sim.start()
    try:
        app = app_config(url, remediate_max_reverts=2)
        sim.add_app(app.sdkappid, KEY, callback=None)
        async with aiohttp.ClientSession() as session:
            heal = await make_heal(sim, session)
            for _ in range(20):
                if sim.callback(app.sdkappid) == THEIRS:
                    sim.set_callback(app.sdkappid, None)  # and deletes it again
                await heal.step(app)
                heal.tick()
    finally:
        await sim.stop()
    assert sim.count(action="update_callback") == 0  # never a fallback write over theirs
    assert sim.count(action="set_callback") == 2
    assert [e.event for e in heal.events] == ["remediation_failed"] * 2 + ["remediation_contested"]
    failed = heal.named("remediation_failed")[0]
    assert failed.error is not None
    assert (failed.error.reason, failed.error.code) == ("bad_request", 100300)


async def test_writes_of_all_apps_together_stop_at_the_hourly_cap(sim: Simulator) -> None:
    assert sim.url is not None
    apps = [app_config(sim.url, name=f"app-{i}", sdkappid=1400000010 + i) for i in range(3)]
    for app in apps:
        sim.add_app(app.sdkappid, KEY, callback=THEIRS)
    async with aiohttp.ClientSession() as session:
        heal = await make_heal(sim, session, writes_per_hour=2)
        with capture_logs() as logs:
            for _ in range(3):
                for app in apps:
                    await heal.step(app)
                heal.tick()
            assert heal.writes() == 2
            heal.tick(3600)  # an hour later the cap has room again
            for _ in range(2):
                await heal.step(apps[2])
                heal.tick()
    assert heal.writes() == 3
    capped = [e for e in logs if e["event"] == "remediation_capped"]
    assert [(e["app"], e["writes_per_hour"]) for e in capped] == [("app-2", 2)]
