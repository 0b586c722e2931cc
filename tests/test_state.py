"""The per-app state machine: alerts are events on a change of state, never one per check."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from monitor.config import Policy
from monitor.drift import Verdict, compare
from monitor.errors import REASONS, CheckError
from monitor.kinds import SEVERITY, Kind
from monitor.state import (
    HISTORY_LIMIT,
    AlertEvent,
    AppIdentity,
    AppState,
    ConfigChange,
    Outcome,
    Status,
    fingerprint,
    reidentify,
    transition,
)
from monitor.tencent.model import CallbackConfig

URL = "https://hooks.example.com/tencent/room?token=s3cr3t"
EVIL = "https://evil.test/steal?token=s3cr3t"
OTHER = "https://old.hooks.example.com/room?token=s3cr3t"
CREATE, DESTROY, ENTER = (
    "Room.CallbackAfterCreateRoom",
    "Room.CallbackAfterDestroyRoom",
    "Room.CallbackAfterMemberEnter",
)
POLICY = Policy(require_https=True, allowed_hosts=("hooks.example.com", "*.hooks.example.com"))
DESIRED = CallbackConfig(URL, (CREATE, DESTROY))
IDENTITY = AppIdentity(name="prod-sg", sdkappid=1400000001, labels={"team": "rtc"}, desired=DESIRED)


def verdict(
    observed: CallbackConfig | None, identity: AppIdentity = IDENTITY, ignore: frozenset[str] = frozenset()
) -> Verdict:
    return compare(identity.desired, observed, POLICY, ignore)


def ok(v: Verdict, at: float) -> Outcome:
    return Outcome(started=at - 0.5, finished=at, verdict=v)


def failed(at: float, reason: str = "timeout", code: int | None = None) -> Outcome:
    error = CheckError(reason=reason, message=f"{reason} talking to Tencent", code=code, request_id="req-1")
    return Outcome(started=at - 0.5, finished=at, error=error)


def run(state: AppState, *outcomes: Outcome) -> tuple[AppState, list[AlertEvent]]:
    events: list[AlertEvent] = []
    for outcome in outcomes:
        state, new = transition(state, outcome, now=outcome.finished + 0.1)
        events.extend(new)
    return state, events


def summary(events: list[AlertEvent]) -> list[tuple[str, str, bool]]:
    return [(e.event, e.kind, e.changed) for e in events]


START = AppState.initial(IDENTITY)
IN_SYNC = verdict(DESIRED)
MISMATCH = verdict(CallbackConfig(OTHER, (CREATE, DESTROY)))


# --- verdicts ---------------------------------------------------------------------------------


def test_a_first_verdict_in_sync_emits_nothing() -> None:
    state, events = run(START, ok(IN_SYNC, 10))
    assert events == []
    assert (state.status, state.verdict, state.checks, state.last_check, state.last_success) == (
        Status.IN_SYNC,
        IN_SYNC,
        1,
        10,
        10,
    )


def test_a_first_verdict_detects_each_counted_finding_once() -> None:
    v = verdict(
        CallbackConfig("http://evil.test/", (CREATE, ENTER)), ignore=frozenset({"unexpected_commands"})
    )
    state, events = run(START, ok(v, 10))
    assert summary(events) == [
        ("drift_detected", "url_mismatch", False),
        ("drift_detected", "missing_commands", False),
        ("drift_detected", "insecure_url", False),
        ("drift_detected", "host_not_allowed", False),
    ]
    assert state.status is Status.DRIFT
    assert [e.severity for e in events] == ["critical", "warning", "critical", "critical"]
    assert events[1].missing == (DESTROY,)


def test_a_drift_event_carries_everything_an_alert_needs() -> None:
    _, (event,) = run(START, ok(MISMATCH, 10))
    assert event == AlertEvent(
        event="drift_detected",
        severity="critical",
        app="prod-sg",
        sdkappid=1400000001,
        kind="url_mismatch",
        desired=URL,
        observed=OTHER,
        missing=(),
        unexpected=(),
        labels={"team": "rtc"},
        fingerprint=fingerprint("prod-sg", "url_mismatch"),
        timestamp=10.1,
        changed=False,
        error=None,
    )


def test_reapplying_the_same_verdict_emits_nothing() -> None:
    state, _ = run(START, ok(MISMATCH, 10))
    state, events = run(state, ok(MISMATCH, 20), ok(MISMATCH, 30))
    assert events == []
    assert state.checks == 3


def test_a_finding_that_disappears_is_resolved_with_what_was_seen() -> None:
    _, events = run(START, ok(MISMATCH, 10), ok(IN_SYNC, 20))
    assert summary(events) == [
        ("drift_detected", "url_mismatch", False),
        ("drift_resolved", "url_mismatch", False),
    ]
    assert events[1].observed == OTHER
    assert events[1].fingerprint == events[0].fingerprint


def test_a_finding_whose_observed_url_changes_is_detected_again_as_changed() -> None:
    other = verdict(CallbackConfig("https://old.hooks.example.com/other", (CREATE, DESTROY)))
    _, events = run(START, ok(MISMATCH, 10), ok(other, 20), ok(other, 30))
    assert summary(events) == [
        ("drift_detected", "url_mismatch", False),
        ("drift_detected", "url_mismatch", True),
    ]
    assert events[1].observed == "https://old.hooks.example.com/other"


def test_a_command_finding_changes_with_its_commands_not_with_the_url() -> None:
    first = verdict(CallbackConfig(URL, (CREATE,)))
    more_missing = verdict(CallbackConfig(URL, ()))
    moved = verdict(CallbackConfig(EVIL, ()))
    _, events = run(START, ok(first, 10), ok(more_missing, 20), ok(moved, 30))
    assert summary(events) == [
        ("drift_detected", "missing_commands", False),
        ("drift_detected", "missing_commands", True),
        ("drift_detected", "url_mismatch", False),
        ("drift_detected", "host_not_allowed", False),
    ]


def test_a_finding_that_becomes_ignored_is_resolved() -> None:
    state, _ = run(START, ok(MISMATCH, 10))
    state, events = run(state, ok(verdict(MISMATCH.observed, ignore=frozenset({"url_mismatch"})), 20))
    assert summary(events) == [("drift_resolved", "url_mismatch", False)]
    assert state.status is Status.IN_SYNC


# --- errors -----------------------------------------------------------------------------------


def test_an_error_keeps_the_verdict_marks_it_stale_and_counts_the_reason() -> None:
    state, events = run(START, ok(MISMATCH, 10), failed(20), failed(30, "auth", 70003))
    assert [e.event for e in events] == ["drift_detected"]
    assert state.status is Status.ERROR
    assert state.verdict == MISMATCH
    assert state.stale
    assert state.consecutive_errors == 2
    assert state.last_error == CheckError("auth", "auth talking to Tencent", 70003, "req-1")
    assert dict(state.failures_by_reason) == {"timeout": 1, "auth": 1}
    assert (state.checks, state.last_check, state.last_success) == (3, 30, 10)


def test_an_error_before_any_verdict_leaves_no_verdict() -> None:
    state, events = run(START, failed(10))
    assert events == []
    assert (state.status, state.verdict, state.last_success) == (Status.ERROR, None, None)


def test_check_failing_fires_once_at_the_threshold() -> None:
    state, _ = run(START, ok(IN_SYNC, 1))
    per_step = []
    for t in range(2, 8):
        state, events = transition(state, failed(t), now=t)
        per_step.append([e.event for e in events])
    assert per_step == [[], [], ["check_failing"], [], [], []]
    assert state.failing


def test_a_threshold_of_one_fails_on_the_first_error() -> None:
    _, events = run(AppState.initial(replace(IDENTITY, error_threshold=1)), failed(1))
    assert [(e.event, e.severity, e.kind) for e in events] == [("check_failing", "warning", "timeout")]
    assert events[0].error == CheckError("timeout", "timeout talking to Tencent", None, "req-1")


def test_a_verdict_below_the_threshold_recovers_silently() -> None:
    state, events = run(START, ok(MISMATCH, 1), failed(2), failed(3), ok(MISMATCH, 4))
    assert [e.event for e in events] == ["drift_detected"]
    assert (state.consecutive_errors, state.stale, state.status) == (0, False, Status.DRIFT)


def test_recovery_compares_with_the_verdict_before_the_outage() -> None:
    """A drift that persisted through the outage is not detected again; a changed one is."""
    both = verdict(CallbackConfig(OTHER, (CREATE,)))
    after = verdict(CallbackConfig("https://old.hooks.example.com/else", (CREATE,)))
    state, _ = run(START, ok(both, 1))
    state, events = run(state, failed(2), failed(3), failed(4), failed(5), ok(after, 6))
    assert summary(events) == [
        ("check_failing", "timeout", False),
        ("check_recovered", "timeout", False),
        ("drift_detected", "url_mismatch", True),
    ]
    assert not state.failing
    assert state.status is Status.DRIFT


def test_check_recovered_names_the_reason_check_failing_had() -> None:
    _, events = run(
        START,
        failed(1, "network"),
        failed(2, "auth"),
        failed(3, "auth"),
        failed(4, "timeout"),
        ok(IN_SYNC, 5),
    )
    assert [(e.event, e.kind, e.timestamp) for e in events] == [
        ("check_failing", "auth", 3.1),
        ("check_recovered", "auth", 5.1),
    ]
    assert events[0].fingerprint == events[1].fingerprint == fingerprint("prod-sg", "auth")


# --- history ----------------------------------------------------------------------------------


def test_history_records_changes_of_the_live_config_but_not_the_first_or_a_reorder() -> None:
    drifted = CallbackConfig(OTHER, (CREATE,))
    reordered = CallbackConfig(URL, (DESTROY, CREATE))
    state, _ = run(
        START,
        ok(IN_SYNC, 1),
        ok(verdict(reordered), 2),
        failed(3),
        ok(verdict(drifted), 4),
        ok(verdict(None), 5),
    )
    assert state.history == (
        ConfigChange(at=4, before=reordered, after=drifted),
        ConfigChange(at=5, before=drifted, after=None),
    )


def test_history_keeps_the_last_twenty_changes() -> None:
    state = START
    for t in range(HISTORY_LIMIT + 6):
        state, _ = transition(state, ok(verdict(CallbackConfig(f"{URL}&n={t}", ())), t), now=t)
    assert len(state.history) == HISTORY_LIMIT
    assert state.history[0].at == 6
    assert state.history[-1].at == HISTORY_LIMIT + 5


# --- reload -----------------------------------------------------------------------------------


def test_a_desired_state_changed_to_match_resolves_the_drift() -> None:
    state, _ = run(START, ok(MISMATCH, 1))
    identity = replace(IDENTITY, desired=MISMATCH.observed, labels={"team": "sec"})
    state = reidentify(state, identity)
    assert state.verdict == MISMATCH
    state, events = run(state, ok(verdict(MISMATCH.observed, identity), 2))
    # host_not_allowed was there all along and counted: only the mismatch changes.
    assert summary(events) == [("drift_resolved", "url_mismatch", False)]
    assert events[0].labels == {"team": "sec"}


def test_reidentify_keeps_history_and_counters() -> None:
    state, _ = run(START, ok(IN_SYNC, 1), failed(2), ok(MISMATCH, 3))
    again = reidentify(state, replace(IDENTITY, error_threshold=5))
    assert (again.history, again.checks, again.verdict, again.failures_by_reason) == (
        state.history,
        state.checks,
        state.verdict,
        state.failures_by_reason,
    )
    assert again.identity.error_threshold == 5


def test_another_sdkappid_under_the_same_name_starts_afresh() -> None:
    state, _ = run(START, ok(MISMATCH, 1))
    fresh = reidentify(state, replace(IDENTITY, sdkappid=1400000009))
    assert fresh == AppState.initial(replace(IDENTITY, sdkappid=1400000009))


# --- small contracts --------------------------------------------------------------------------


def test_fingerprint_is_stable_and_separates_apps_and_kinds() -> None:
    assert fingerprint("prod-sg", "url_mismatch") == "a6565546383d2a54"
    assert len({fingerprint(a, k) for a in ("a", "b", "ab") for k in ("x", "bx", "")}) == 9


@pytest.mark.parametrize(
    "fields",
    [{}, {"verdict": IN_SYNC, "error": CheckError("timeout", "slow")}],
)
def test_an_outcome_holds_exactly_one_of_verdict_and_error(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Outcome(started=0, finished=1, **fields)  # type: ignore[arg-type]


# --- generated sequences ----------------------------------------------------------------------

OBSERVED_POOL = [
    None,
    DESIRED,
    CallbackConfig(URL, (DESTROY, CREATE)),
    CallbackConfig(URL, (CREATE,)),
    CallbackConfig(URL, (CREATE, DESTROY, ENTER)),
    CallbackConfig(EVIL, (CREATE, DESTROY)),
    CallbackConfig("http://evil.test/", (ENTER,)),
    CallbackConfig("http://hooks.example.com/tencent/room?token=s3cr3t", (CREATE, DESTROY)),
]
DESIRED_POOL = [None, DESIRED, CallbackConfig(URL, (CREATE,)), CallbackConfig(EVIL, (CREATE, DESTROY))]
IGNORABLE = [k.value for k in Kind]
URL_KINDS = {
    Kind.CONFIG_MISSING,
    Kind.CONFIG_PRESENT,
    Kind.URL_MISMATCH,
    Kind.INSECURE_URL,
    Kind.HOST_NOT_ALLOWED,
}


def seen(finding_kind: Kind, v: Verdict) -> object:
    f = {f.kind: f for f in v.counted}[finding_kind]
    return f.observed if finding_kind in URL_KINDS else (f.missing, f.unexpected)


class AppMachine(RuleBasedStateMachine):
    """Any sequence of verdicts, errors and reloads keeps the alert stream consistent."""

    @initialize(threshold=st.integers(1, 4))
    def start(self, threshold: int) -> None:
        self.identity = replace(IDENTITY, error_threshold=threshold)
        self.ignore: frozenset[str] = frozenset()
        self.state = AppState.initial(self.identity)
        self.clock = 0.0
        self.net: Counter[str] = Counter()  # drift_detected (not changed) minus drift_resolved, per kind
        self.failing_net = 0
        self.last_verdict: Verdict | None = None
        self.streak = 0

    def step(self, outcome: Outcome) -> tuple[AppState, tuple[AlertEvent, ...]]:
        self.clock += 1
        prev = self.state
        self.state, events = transition(prev, outcome, now=self.clock)
        for e in events:
            assert (e.app, e.timestamp) == (self.identity.name, self.clock)
            if e.event == "drift_detected" and not e.changed:
                self.net[e.kind] += 1
            elif e.event == "drift_resolved":
                self.net[e.kind] -= 1
            elif e.event == "check_failing":
                self.failing_net += 1
            elif e.event == "check_recovered":
                self.failing_net -= 1
        return prev, events

    @rule(observed=st.sampled_from(OBSERVED_POOL))
    def check_reaches_a_verdict(self, observed: CallbackConfig | None) -> None:
        v = compare(self.identity.desired, observed, POLICY, self.ignore)
        prev, events = self.step(Outcome(self.clock, self.clock + 1, verdict=v))
        names = [e.event for e in events]
        assert ("check_recovered" in names) == prev.failing
        assert names.count("check_recovered") == names[:1].count("check_recovered")
        assert "check_failing" not in names
        before = {} if prev.verdict is None else {f.kind: f for f in prev.verdict.counted}
        after = {f.kind: f for f in v.counted}
        drift = {e.kind: e for e in events if e.event.startswith("drift_")}
        assert len(drift) == len(events) - names.count("check_recovered")  # at most one event per kind
        for kind in Kind:
            if kind in before and kind in after:
                changed = seen(kind, prev.verdict) != seen(kind, v)  # type: ignore[arg-type]
                assert (kind.value in drift) == changed
                assert not changed or drift[kind.value].changed
            else:
                assert (kind.value in drift) == ((kind in before) != (kind in after))
        for e in drift.values():
            assert e.severity == SEVERITY[Kind(e.kind)]
        self.last_verdict = v
        self.streak = 0

    @precondition(lambda self: self.last_verdict is not None and self.state.verdict == self.last_verdict)
    @rule()
    def same_verdict_again(self) -> None:
        assert self.last_verdict is not None
        prev, events = self.step(Outcome(self.clock, self.clock + 1, verdict=self.last_verdict))
        assert [e.event for e in events] == (["check_recovered"] if prev.failing else [])
        self.streak = 0

    @rule(reason=st.sampled_from(REASONS))
    def check_fails(self, reason: str) -> None:
        prev, events = self.step(Outcome(self.clock, self.clock + 1, error=CheckError(reason, "it failed")))
        self.streak += 1
        assert not [e for e in events if e.event.startswith("drift_")]
        assert self.state.verdict == prev.verdict
        crossing = self.streak >= self.identity.error_threshold and not prev.failing
        assert [e.event for e in events] == (["check_failing"] if crossing else [])

    @rule(
        desired=st.sampled_from(DESIRED_POOL),
        threshold=st.integers(1, 4),
        ignore=st.frozensets(st.sampled_from(IGNORABLE), max_size=2),
    )
    def reload(self, desired: CallbackConfig | None, threshold: int, ignore: frozenset[str]) -> None:
        self.identity = replace(self.identity, desired=desired, error_threshold=threshold)
        self.ignore = ignore
        self.state = reidentify(self.state, self.identity)

    @invariant()
    def alerts_match_the_state(self) -> None:
        active = set() if self.state.verdict is None else {f.kind.value for f in self.state.verdict.counted}
        assert {k for k, n in self.net.items() if n} == active
        assert all(n in (0, 1) for n in self.net.values())
        assert self.failing_net == int(self.state.failing)
        assert self.state.consecutive_errors == self.streak
        assert len(self.state.history) <= HISTORY_LIMIT

    @invariant()
    def status_follows_the_last_outcome(self) -> None:
        s = self.state
        if s.checks == 0:
            assert s.status is Status.UNKNOWN
        elif s.consecutive_errors:
            assert (s.status, s.stale) == (Status.ERROR, True)
        else:
            assert s.verdict is not None
            assert not s.stale
            assert s.status is (Status.IN_SYNC if s.verdict.in_sync else Status.DRIFT)


AppMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_app_machine = AppMachine.TestCase
