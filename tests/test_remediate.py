"""Remediation: the pure planner, the pure self-heal policy on a fake clock, and the executor against
the simulator (counting the write calls it receives there)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import AppConfig, Policy, UnexpectedCommands, load_config_text
from monitor.drift import compare
from monitor.kinds import Kind
from monitor.remediate import (
    APPLIED,
    FAILED,
    GAVE_UP,
    Action,
    Effect,
    Executor,
    HealSettings,
    HealState,
    Plan,
    Step,
    WriteBudget,
    command_changes,
    observe,
    plan,
    record,
    render_plan,
)
from monitor.simulator import Simulator
from monitor.tencent.client import RetryPolicy, RoomConfigClient, Target
from monitor.tencent.model import CallbackConfig

CREATE = "Room.CallbackAfterCreateRoom"
DESTROY = "Room.CallbackAfterDestroyRoom"
ENTER = "Room.CallbackAfterMemberEnter"
LEAVE = "Room.CallbackAfterMemberLeave"
HOOK = "https://hooks.example.com/tencent/room?token=tok-Zq81LmP0"
OTHER = "https://hooks.example.com/tencent/other?token=tok-Zq81LmP0"
DESIRED = CallbackConfig(HOOK, (CREATE, DESTROY))
POLICY = Policy(require_https=True, allowed_hosts=("hooks.example.com",))
SDKAPPID = 1400000301
KEY = "b1946ac92492d2347c6235b4d2611184" * 2


def planned(
    desired: CallbackConfig | None,
    observed: CallbackConfig | None,
    policy: Policy = POLICY,
    ignore: frozenset[str] = frozenset(),
) -> Plan:
    return plan(desired, observed, compare(desired, observed, policy, ignore), policy)


# ---- the planner ----------------------------------------------------------------------------------


def test_an_app_in_sync_needs_no_call() -> None:
    shouted = CallbackConfig(HOOK.replace("https://hooks", "HTTPS://HOOKS"), (DESTROY, CREATE))
    result = planned(DESIRED, shouted)
    assert (result.action, result.writes, result.fixes, result.blocked) == (Action.NONE, False, (), "")


def test_a_missing_config_is_set_to_the_desired_one() -> None:
    result = planned(DESIRED, None)
    assert (result.action, result.before, result.after) == (Action.SET, None, DESIRED)
    assert result.fixes == (Kind.CONFIG_MISSING,)


def test_an_unwanted_config_is_deleted() -> None:
    result = planned(None, DESIRED)
    assert (result.action, result.before, result.after) == (Action.DELETE, DESIRED, None)
    assert result.fixes == (Kind.CONFIG_PRESENT,)


@pytest.mark.parametrize(
    ("live", "fixes"),
    [
        (CallbackConfig(OTHER, DESIRED.commands), (Kind.URL_MISMATCH,)),
        (CallbackConfig(HOOK, (CREATE,)), (Kind.MISSING_COMMANDS,)),
        (CallbackConfig(HOOK, (CREATE, DESTROY, ENTER)), (Kind.UNEXPECTED_COMMANDS,)),
        (
            CallbackConfig("http://evil.example.net/x", (ENTER,)),
            (
                Kind.URL_MISMATCH,
                Kind.MISSING_COMMANDS,
                Kind.UNEXPECTED_COMMANDS,
                Kind.INSECURE_URL,
                Kind.HOST_NOT_ALLOWED,
            ),
        ),
    ],
)
def test_a_drifted_config_is_updated_to_exactly_the_desired_one(
    live: CallbackConfig, fixes: tuple[Kind, ...]
) -> None:
    result = planned(DESIRED, live)
    assert (result.action, result.before, result.after, result.fixes) == (Action.UPDATE, live, DESIRED, fixes)


def test_ignored_findings_alone_plan_no_call() -> None:
    live = CallbackConfig(OTHER, (CREATE,))
    assert not planned(DESIRED, live, ignore=frozenset({"url_mismatch", "missing_commands"})).writes
    assert not planned(DESIRED, None, ignore=frozenset({"config_missing"})).writes


def test_a_write_keeps_the_differences_the_app_tolerates() -> None:
    """url_mismatch ignored: fixing the commands must not move the URL; extras tolerated stay."""
    live = CallbackConfig(OTHER, (ENTER, CREATE))
    lenient = Policy(True, ("hooks.example.com",), UnexpectedCommands.IGNORE)
    result = planned(DESIRED, live, lenient, frozenset({"url_mismatch"}))
    assert result.action is Action.UPDATE
    assert result.fixes == (Kind.MISSING_COMMANDS,)
    assert result.after == CallbackConfig(OTHER, (ENTER, CREATE, DESTROY))


def test_a_policy_only_finding_is_fixed_with_the_desired_url() -> None:
    live = CallbackConfig(HOOK.replace("https://", "http://"), DESIRED.commands)
    result = planned(DESIRED, live, ignore=frozenset({"url_mismatch"}))
    assert (result.action, result.after, result.fixes) == (Action.UPDATE, DESIRED, (Kind.INSECURE_URL,))


def test_a_desired_state_that_violates_its_policy_is_never_written() -> None:
    """Config validation rejects such a file; the planner refuses on its own all the same."""
    plain = CallbackConfig("http://hooks.example.com/tencent/room?token=tok-Zq81LmP0", (CREATE,))
    for live in (None, CallbackConfig(OTHER, (CREATE,))):
        result = planned(plain, live)
        assert (result.action, result.writes) == (Action.NONE, False)
        assert "insecure_url" in result.blocked
        assert "tok-Zq81LmP0" not in result.blocked


def test_the_rendered_plan_shows_the_call_both_configs_and_no_secret() -> None:
    app = app_config("http://127.0.0.1:1")
    live = CallbackConfig(OTHER, (CREATE, ENTER))
    text = "\n".join(render_plan(app, planned(DESIRED, live)))
    assert text.startswith(f"shop ({SDKAPPID}): update_callback\n")
    assert "url_mismatch, missing_commands, unexpected_commands" in text
    assert "https://hooks.example.com/tencent/other?token=REDACTED" in text
    assert "https://hooks.example.com/tencent/room?token=REDACTED" in text
    assert f"+ {DESTROY}" in text
    assert f"- {ENTER}" in text
    assert "tok-Zq81LmP0" not in text
    assert command_changes(live, DESIRED) == ((DESTROY,), (ENTER,))


URLS = st.sampled_from(
    [
        HOOK,
        OTHER,
        "http://hooks.example.com/tencent/room",
        "https://evil.example.net/x",
        "HTTPS://HOOKS.EXAMPLE.COM/a",
    ]
)
COMMANDS = st.lists(
    st.sampled_from(
        [CREATE, DESTROY, ENTER, LEAVE, "Room.CallbackUpdateRoomInfo", "Room.CallbackAfterUpdateRoomInfo"]
    ),
    max_size=5,
).map(tuple)
CONFIGS = st.none() | st.builds(CallbackConfig, URLS, COMMANDS)
GOOD = st.none() | st.builds(CallbackConfig, st.sampled_from([HOOK, OTHER]), COMMANDS)
KINDS = st.frozensets(st.sampled_from([k.value for k in Kind]))


@given(desired=GOOD, observed=CONFIGS, ignore=KINDS, lenient=st.booleans())
def test_the_planned_write_always_reads_back_in_sync(
    desired: CallbackConfig | None, observed: CallbackConfig | None, ignore: frozenset[str], lenient: bool
) -> None:
    """Whatever the drift, the config after the one call compares in sync, and only drift plans a call."""
    policy = Policy(
        True, ("hooks.example.com",), UnexpectedCommands.IGNORE if lenient else UnexpectedCommands.DRIFT
    )
    verdict = compare(desired, observed, policy, ignore)
    result = plan(desired, observed, verdict, policy)
    assert result.writes == (not verdict.in_sync)
    if result.writes:
        assert compare(desired, result.after, policy, ignore).in_sync
        assert result.after != observed


# ---- the self-heal policy, on a fake clock --------------------------------------------------------

HEAL = HealSettings(enabled=True, after=2, max_failures=3, interval=60.0, max_backoff=600.0)
UPDATE = Plan(Action.UPDATE, CallbackConfig(OTHER, (CREATE,)), DESIRED, (Kind.URL_MISMATCH,))
NOTHING = Plan(Action.NONE, DESIRED, DESIRED)


def steps(state: HealState, *plans: Plan | None, now: float = 0.0) -> tuple[HealState, list[Step]]:
    out = []
    for p in plans:
        state, step = observe(state, p, HEAL, now)
        out.append(step)
    return state, out


def test_drift_is_fixed_only_once_it_persisted_for_remediate_after_checks() -> None:
    _, seen = steps(HealState(), UPDATE, UPDATE)
    assert seen == [Step.WAITING, Step.ATTEMPT]
    _, seen = steps(HealState(), UPDATE, None, UPDATE, NOTHING, UPDATE, UPDATE)
    assert seen == [Step.WAITING, Step.NO_VERDICT, Step.WAITING, Step.NOTHING, Step.WAITING, Step.ATTEMPT]


def test_a_drift_that_changes_between_checks_restarts_the_count() -> None:
    moved = Plan(Action.UPDATE, CallbackConfig(HOOK.replace("room", "x"), (CREATE,)), DESIRED)
    assert steps(HealState(), UPDATE, moved, UPDATE, UPDATE)[1] == [
        Step.WAITING,
        Step.WAITING,
        Step.WAITING,
        Step.ATTEMPT,
    ]


def test_nothing_is_attempted_when_switched_off_blocked_or_without_a_verdict() -> None:
    blocked = Plan(Action.NONE, None, None, (Kind.CONFIG_MISSING,), blocked="policy")
    off = HealSettings(enabled=False)
    state = HealState()
    for _ in range(5):
        state, step = observe(state, UPDATE, off, 0.0)
        assert step is Step.DISABLED
    assert set(steps(HealState(), *[blocked] * 5)[1]) == {Step.BLOCKED}
    assert set(steps(HealState(), *[None] * 5)[1]) == {Step.NO_VERDICT}


def test_a_success_allows_the_next_attempt_one_interval_later() -> None:
    state, _ = steps(HealState(), UPDATE, UPDATE)
    state, events = record(state, True, HEAL, now=100.0)
    assert events == (APPLIED,)
    state, seen = steps(state, UPDATE, UPDATE, now=159.0)
    assert seen == [Step.WAITING, Step.BACKING_OFF]
    assert observe(state, UPDATE, HEAL, 160.0)[1] is Step.ATTEMPT


def test_failures_back_off_exponentially_and_give_up_with_an_alert() -> None:
    """A check every minute for two hours against a write that always fails: three attempts, then none."""
    state = HealState()
    attempts: list[float] = []
    events: list[str] = []
    for minute in range(120):
        now = minute * 60.0
        state, step = observe(state, UPDATE, HEAL, now)
        if step is Step.ATTEMPT:
            attempts.append(now)
            state, names = record(state, False, HEAL, now)
            events += names
    # Checks at 0 and 60 make the streak; then waits of 2 and 4 intervals; the third failure gives up.
    assert attempts == [60.0, 180.0, 420.0]
    assert events == [FAILED, FAILED, FAILED, GAVE_UP]
    assert (state.gave_up, state.failures, state.attempts) == (True, 3, 3)
    assert observe(state, UPDATE, HEAL, 1e9)[1] is Step.GAVE_UP


def test_the_backoff_is_capped() -> None:
    patient = HealSettings(enabled=True, after=1, max_failures=100, interval=60.0, max_backoff=600.0)
    state = HealState()
    for _ in range(10):
        state, _ = record(state, False, patient, now=0.0)
    assert state.not_before == 600.0


def test_being_in_sync_again_ends_the_episode_and_giving_up() -> None:
    state = HealState(streak=9, pending=UPDATE, attempts=3, failures=3, not_before=2960.0, gave_up=True)
    state, seen = steps(state, NOTHING, UPDATE, UPDATE, now=3000.0)
    assert seen == [Step.NOTHING, Step.WAITING, Step.ATTEMPT]
    assert (state.gave_up, state.failures, state.attempts) == (False, 0, 3)


def test_a_write_undone_three_times_within_the_window_makes_the_app_contested() -> None:
    quick = HealSettings(enabled=True, after=1, interval=1.0, max_reverts=3, revert_window=100.0)
    state, now, seen = HealState(), 0.0, []
    for _ in range(4):
        state, step = observe(state, UPDATE, quick, now)
        seen.append(step)
        if step is Step.ATTEMPT:
            state, names = record(state, True, quick, now + 0.5)
            assert names == ("remediation_applied",)
        now += 10.0
    assert seen == [Step.ATTEMPT, Step.ATTEMPT, Step.ATTEMPT, Step.CONTESTED]
    assert state.reverts == (10.0, 20.0, 30.0)
    state, step = observe(state, UPDATE, quick, now)
    assert step is Step.HANDS_OFF


def test_reverts_older_than_the_window_are_forgotten() -> None:
    quick = HealSettings(enabled=True, after=1, interval=1.0, max_reverts=2, revert_window=100.0)
    state = HealState(written=True, reverts=(0.0,))
    state, step = observe(state, UPDATE, quick, 100.0)
    assert (step, state.reverts, state.contested) == (Step.ATTEMPT, (100.0,), False)
    state = HealState(written=True, reverts=(1.0,))
    state, step = observe(state, UPDATE, quick, 100.0)
    assert (step, state.reverts, state.contested) == (Step.CONTESTED, (1.0, 100.0), True)


def test_a_contested_app_stays_hands_off_until_in_sync_for_a_whole_window() -> None:
    quick = HealSettings(enabled=True, after=1, interval=1.0, max_reverts=1, revert_window=100.0)
    state = HealState(contested=True, reverts=(0.0,))
    state, seen = steps_with(
        quick, state, (NOTHING, 10.0), (NOTHING, 109.0), (NOTHING, 110.0), (UPDATE, 111.0)
    )
    assert seen == [Step.HANDS_OFF, Step.HANDS_OFF, Step.NOTHING, Step.ATTEMPT]
    assert (state.contested, state.reverts) == (False, ())


def test_a_raced_write_counts_as_a_revert_not_as_a_failure() -> None:
    quick = HealSettings(
        enabled=True, after=1, interval=1.0, max_failures=1, max_reverts=2, revert_window=100.0
    )
    state, names = record(HealState(), False, quick, 5.0, contested=True)
    assert names == ("remediation_failed",)
    assert (state.failures, state.gave_up, state.reverts, state.not_before) == (0, False, (5.0,), 6.0)
    state, names = record(state, False, quick, 7.0, contested=True)
    assert names == ("remediation_failed", "remediation_contested")
    assert state.contested


def test_the_write_budget_allows_per_hour_writes_in_any_hour() -> None:
    budget = WriteBudget(2)
    for now in (0.0, 10.0):
        assert budget.allows(now)
        budget.spend(now)
    assert not budget.allows(3599.0)
    assert budget.allows(3600.0)


def steps_with(
    settings: HealSettings, state: HealState, *seen: tuple[Plan | None, float]
) -> tuple[HealState, list[Step]]:
    out = []
    for p, now in seen:
        state, step = observe(state, p, settings, now)
        out.append(step)
    return state, out


# ---- the executor against the simulator -----------------------------------------------------------


def app_config(endpoint: str, desired: CallbackConfig | None = DESIRED, **extra: Any) -> AppConfig:
    entry: dict[str, Any] = {
        "name": "shop",
        "sdkappid": SDKAPPID,
        "secret_key_env": "SHOP_KEY",
        "callback": None if desired is None else {"url": desired.url, "commands": list(desired.commands)},
        **extra,
    }
    doc = {
        "version": 1,
        "defaults": {
            "endpoint": endpoint,
            "policy": {"require_https": True, "allowed_hosts": ["hooks.example.com"]},
        },
        "apps": [entry],
    }
    return load_config_text(yaml.safe_dump(doc), environ={"SHOP_KEY": KEY}).apps[0]


class WriteLab:
    """The simulator and a client to it, for the executor's tests (the command tests use ``lab``)."""

    def __init__(self, sim: Simulator, client: RoomConfigClient) -> None:
        self.sim = sim
        self.client = client
        assert sim.url is not None
        self.target = Target(sdkappid=SDKAPPID, identifier="administrator", endpoint=sim.url, key=KEY)

    def app(self, desired: CallbackConfig | None = DESIRED, **extra: Any) -> AppConfig:
        assert self.sim.url is not None
        return app_config(self.sim.url, desired, **extra)

    async def plan(self, app: AppConfig) -> Plan:
        observed = await self.client.get_callback(self.target)
        return plan(
            app.callback, observed, compare(app.callback, observed, app.policy, app.ignore), app.policy
        )

    def writes(self) -> dict[str, int]:
        counts = {a: self.sim.count(action=a) for a in ("set_callback", "update_callback", "delete_callback")}
        return {a: n for a, n in counts.items() if n}


@pytest.fixture
async def wlab() -> AsyncIterator[WriteLab]:
    sim = Simulator(seed=0)
    await sim.start()
    fast = RetryPolicy(attempts=1)
    try:
        async with aiohttp.ClientSession() as session:
            yield WriteLab(sim, RoomConfigClient(session, retry=fast))
    finally:
        await sim.stop()


@pytest.mark.parametrize(
    ("live", "desired", "call"),
    [
        (None, DESIRED, "set_callback"),
        (DESIRED, None, "delete_callback"),
        (CallbackConfig(OTHER, DESIRED.commands), DESIRED, "update_callback"),
        (CallbackConfig(HOOK, (CREATE,)), DESIRED, "update_callback"),
        (CallbackConfig(HOOK, (CREATE, DESTROY, ENTER)), DESIRED, "update_callback"),
    ],
    ids=["config_missing", "config_present", "url_mismatch", "missing_commands", "unexpected_commands"],
)
async def test_each_drift_kind_is_fixed_with_one_call_and_read_back(
    wlab: WriteLab, live: CallbackConfig | None, desired: CallbackConfig | None, call: str
) -> None:
    wlab.sim.add_app(SDKAPPID, KEY, callback=live)
    app = wlab.app(desired)
    todo = await wlab.plan(app)
    assert todo.action.value == call
    wlab.sim.reset_counts()
    result = await Executor(wlab.client, read_only=False).apply(app, wlab.target, todo)
    assert (result.effect, result.ok, result.action.value) == (Effect.APPLIED, True, call)
    assert wlab.writes() == {call: 1}
    assert wlab.sim.count(action="get_callback") == 1  # the read-back
    assert wlab.sim.callback(SDKAPPID) == desired
    assert result.check is not None
    assert result.check.verdict is not None
    assert result.check.verdict.in_sync


async def test_a_config_created_since_the_plan_is_not_overwritten(wlab: WriteLab) -> None:
    """set_callback meets a config another writer created (100300): no update_callback in its place."""
    wlab.sim.add_app(SDKAPPID, KEY, callback=None)
    app = wlab.app()
    stale = await wlab.plan(app)
    assert stale.action is Action.SET
    theirs = CallbackConfig(OTHER, (ENTER,))
    wlab.sim.set_callback(SDKAPPID, theirs)  # someone else, meanwhile
    wlab.sim.reset_counts()
    result = await Executor(wlab.client, read_only=False).apply(app, wlab.target, stale)
    assert (result.effect, result.action, result.ok) == (Effect.CONTESTED, Action.NONE, False)
    assert result.message == (
        "nothing written: the live config changed since the plan was made "
        "(another writer created it: ErrorCode 100300); plan again"
    )
    assert result.error is not None
    assert (result.error.reason, result.error.code) == ("bad_request", 100300)
    assert wlab.writes() == {"set_callback": 1}
    assert wlab.sim.callback(SDKAPPID) == theirs


async def test_a_config_deleted_since_the_plan_is_not_set_again(wlab: WriteLab) -> None:
    """update_callback meets a config another writer deleted (100301): no set_callback in its place."""
    wlab.sim.add_app(SDKAPPID, KEY, callback=CallbackConfig(OTHER, (CREATE,)))
    app = wlab.app()
    stale = await wlab.plan(app)
    assert stale.action is Action.UPDATE
    wlab.sim.set_callback(SDKAPPID, None)
    wlab.sim.reset_counts()
    result = await Executor(wlab.client, read_only=False).apply(app, wlab.target, stale)
    assert (result.effect, result.action) == (Effect.CONTESTED, Action.NONE)
    assert "(another writer deleted it: ErrorCode 100301); plan again" in result.message
    assert wlab.writes() == {"update_callback": 1}
    assert wlab.sim.callback(SDKAPPID) is None


async def test_a_plan_confirmed_by_a_person_is_not_applied_to_a_config_changed_since(wlab: WriteLab) -> None:
    wlab.sim.add_app(SDKAPPID, KEY, callback=CallbackConfig(OTHER, (CREATE,)))
    app = wlab.app()
    shown = await wlab.plan(app)
    moved = CallbackConfig(OTHER, (CREATE, ENTER))
    wlab.sim.set_callback(SDKAPPID, moved)
    result = await Executor(wlab.client, read_only=False).apply(
        app, wlab.target, shown, expect_unchanged=True
    )
    assert (result.effect, result.action) == (Effect.FAILED, Action.NONE)
    assert "changed since the plan" in result.message
    assert wlab.writes() == {}
    assert wlab.sim.callback(SDKAPPID) == moved


async def test_a_read_only_executor_sends_nothing(wlab: WriteLab) -> None:
    wlab.sim.add_app(SDKAPPID, KEY, callback=None)
    app = wlab.app()
    todo = await wlab.plan(app)
    result = await Executor(wlab.client, read_only=True).apply(app, wlab.target, todo)
    assert (result.effect, result.ok) == (Effect.REFUSED, False)
    assert wlab.writes() == {}
    assert wlab.sim.callback(SDKAPPID) is None


class Deaf(Simulator):
    """A vendor that answers every write with success but ignores the command list of updates."""

    def _act(self, app: Any, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action == "update_callback":
            payload = {**payload, "CallbackCommandList": [CREATE]}
        return super()._act(app, action, payload)


async def test_success_is_only_reported_when_the_read_back_is_in_sync() -> None:
    sim = Deaf(seed=0)
    url = await sim.start()
    try:
        sim.add_app(SDKAPPID, KEY, callback=CallbackConfig(OTHER, (CREATE,)))
        async with aiohttp.ClientSession() as session:
            wlab = WriteLab(sim, RoomConfigClient(session, retry=RetryPolicy(attempts=1)))
            app = app_config(url)
            result = await Executor(wlab.client, read_only=False).apply(
                app, wlab.target, await wlab.plan(app)
            )
    finally:
        await sim.stop()
    assert (result.effect, result.action) == (Effect.FAILED, Action.UPDATE)
    assert result.message == "written, but read back: missing_commands"
    assert result.check is not None
    assert result.check.verdict is not None
    assert not result.check.verdict.in_sync


async def test_a_failed_write_is_reported_with_the_vendors_code(wlab: WriteLab) -> None:
    wlab.sim.add_app(SDKAPPID, KEY, callback=None)
    app = wlab.app()
    todo = await wlab.plan(app)
    wlab.sim.add_app(SDKAPPID, KEY, callback=None, admins=("someone-else",))  # no longer an admin: 60010
    result = await asyncio.wait_for(Executor(wlab.client, read_only=False).apply(app, wlab.target, todo), 10)
    assert (result.effect, result.action) == (Effect.FAILED, Action.SET)
    assert result.error is not None
    assert (result.error.reason, result.error.code) == ("permission", 60010)
    assert result.check is None  # no read-back after a write that failed
