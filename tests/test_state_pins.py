"""Pins of the state machine that an alert or a metric depends on: every field of each event, counters
past one, and limits written out here rather than read from the module under test."""

from __future__ import annotations

import pytest

from monitor.config import Policy
from monitor.drift import Verdict, compare
from monitor.errors import CheckError
from monitor.state import (
    AlertEvent,
    AppIdentity,
    AppState,
    ConfigChange,
    Outcome,
    Status,
    reidentify,
    transition,
)
from monitor.tencent.model import CallbackConfig

URL = "https://hooks.example.com/room?token=s3cr3t"
CREATE, DESTROY, ENTER = (
    "Room.CallbackAfterCreateRoom",
    "Room.CallbackAfterDestroyRoom",
    "Room.CallbackAfterMemberEnter",
)
POLICY = Policy(require_https=True, allowed_hosts=("hooks.example.com",))
DESIRED = CallbackConfig(URL, (CREATE, DESTROY))
LABELS = {"team": "rtc", "tier": "1"}
IDENTITY = AppIdentity(name="prod-sg", sdkappid=1400000001, labels=LABELS, desired=DESIRED, error_threshold=2)
TIMEOUT = CheckError(reason="timeout", message="no answer within 5s", code=None, request_id="")
AUTH = CheckError(reason="auth", message="UserSig expired", code=70001, request_id="Id-9")


def verdict(observed: CallbackConfig | None, identity: AppIdentity = IDENTITY) -> Verdict:
    return compare(identity.desired, observed, POLICY)


def ok(observed: CallbackConfig | None, at: float, identity: AppIdentity = IDENTITY) -> Outcome:
    return Outcome(started=at - 1, finished=at, verdict=verdict(observed, identity))


def failed(error: CheckError, at: float) -> Outcome:
    return Outcome(started=at - 1, finished=at, error=error)


def run(state: AppState, *outcomes: Outcome) -> tuple[AppState, list[AlertEvent]]:
    events: list[AlertEvent] = []
    for outcome in outcomes:
        state, new = transition(state, outcome, now=outcome.finished + 0.5)
        events.extend(new)
    return state, events


START = AppState.initial(IDENTITY)


def test_failures_are_counted_by_reason_past_one() -> None:
    state, _ = run(START, *(failed(TIMEOUT, t) for t in (1, 2, 3)), failed(AUTH, 4), failed(TIMEOUT, 5))
    assert dict(state.failures_by_reason) == {"timeout": 4, "auth": 1}
    assert state.consecutive_errors == 5
    assert state.checks == 5
    assert state.last_check == 5
    assert state.last_error == TIMEOUT
    assert state.status == Status.ERROR
    state, _ = run(state, ok(DESIRED, 6), failed(AUTH, 7))
    assert dict(state.failures_by_reason) == {"timeout": 4, "auth": 2}
    assert state.consecutive_errors == 1


def test_check_failing_carries_every_field_an_alert_needs() -> None:
    state, events = run(START, failed(AUTH, 10), failed(TIMEOUT, 20))
    assert events == [
        AlertEvent(
            event="check_failing",
            severity="warning",
            app="prod-sg",
            sdkappid=1400000001,
            kind="timeout",
            desired=URL,
            observed=None,
            missing=(),
            unexpected=(),
            labels=LABELS,
            fingerprint="0a4e42cf1e7f394f",
            timestamp=20.5,
            error=TIMEOUT,
        )
    ]
    assert state.failing
    assert state.failing_error == TIMEOUT


def test_check_recovered_carries_every_field_and_the_failing_reason() -> None:
    state, _ = run(START, failed(TIMEOUT, 10), failed(TIMEOUT, 20), failed(AUTH, 30))
    state, events = run(state, ok(DESIRED, 40))
    assert events == [
        AlertEvent(
            event="check_recovered",
            severity="warning",
            app="prod-sg",
            sdkappid=1400000001,
            kind="timeout",
            desired=URL,
            observed=None,
            missing=(),
            unexpected=(),
            labels=LABELS,
            fingerprint="0a4e42cf1e7f394f",
            timestamp=40.5,
            error=TIMEOUT,
        )
    ]
    assert (state.failing, state.failing_error, state.consecutive_errors) == (False, None, 0)
    assert (state.status, state.stale, state.last_success) == (Status.IN_SYNC, False, 40)


def test_check_events_of_an_app_that_must_have_no_callback_name_no_desired_url() -> None:
    identity = AppIdentity(name="bare", sdkappid=1400000002, labels={}, desired=None, error_threshold=1)
    _, events = run(AppState.initial(identity), failed(TIMEOUT, 1))
    assert [(e.event, e.desired, e.sdkappid, dict(e.labels)) for e in events] == [
        ("check_failing", None, 1400000002, {})
    ]


def test_recovery_from_a_state_without_a_recorded_error_names_reason_unknown() -> None:
    """A failing state rebuilt without its error (it cannot happen through ``transition``)."""
    state = AppState(identity=IDENTITY, failing=True)
    _, events = run(state, ok(DESIRED, 5))
    assert [(e.event, e.kind, e.error) for e in events] == [
        ("check_recovered", "unknown", CheckError(reason="unknown", message=""))
    ]


def test_recovery_falls_back_to_the_last_error() -> None:
    state = AppState(identity=IDENTITY, failing=True, last_error=AUTH)
    _, events = run(state, ok(DESIRED, 5))
    assert [(e.kind, e.error) for e in events] == [("auth", AUTH)]


def test_a_drift_event_carries_every_field() -> None:
    live = CallbackConfig(URL, (CREATE, ENTER))
    _, events = run(START, ok(live, 10))
    assert [
        (e.event, e.kind, e.severity, e.missing, e.unexpected, e.observed, e.desired) for e in events
    ] == [
        ("drift_detected", "missing_commands", "warning", (DESTROY,), (), URL, URL),
        ("drift_detected", "unexpected_commands", "warning", (), (ENTER,), URL, URL),
    ]
    assert all(
        (e.app, e.sdkappid, e.labels, e.timestamp, e.changed, e.error)
        == ("prod-sg", 1400000001, LABELS, 10.5, False, None)
        for e in events
    )


def test_a_changed_drift_event_has_the_time_of_the_change() -> None:
    first = CallbackConfig(URL, (CREATE,))
    second = CallbackConfig(URL, (CREATE, ENTER))
    state, _ = run(START, ok(first, 10))
    _, events = run(state, ok(second, 20))
    assert [(e.event, e.kind, e.changed, e.timestamp) for e in events] == [
        ("drift_detected", "unexpected_commands", False, 20.5),
    ]
    third = CallbackConfig(URL, (CREATE, "Room.CallbackAfterMemberLeave"))
    state, _ = run(state, ok(second, 20))
    _, events = run(state, ok(third, 30))
    assert [(e.event, e.kind, e.changed, e.timestamp, e.unexpected) for e in events] == [
        ("drift_detected", "unexpected_commands", True, 30.5, ("Room.CallbackAfterMemberLeave",)),
    ]


def test_history_keeps_twenty_changes() -> None:
    outcomes = [ok(CallbackConfig(f"{URL}&n={i}", (CREATE, DESTROY)), 10 + i) for i in range(23)]
    state, _ = run(START, *outcomes)
    assert len(state.history) == 20
    assert state.history[0] == ConfigChange(
        at=13,
        before=CallbackConfig(f"{URL}&n=2", (CREATE, DESTROY)),
        after=CallbackConfig(f"{URL}&n=3", (CREATE, DESTROY)),
    )
    assert state.history[-1].at == 32


def test_an_error_keeps_the_last_verdict_and_marks_it_stale() -> None:
    state, _ = run(START, ok(DESIRED, 1), failed(TIMEOUT, 2))
    assert state.verdict == verdict(DESIRED)
    assert (state.stale, state.last_success, state.last_check, state.checks) == (True, 1, 2, 2)


@pytest.mark.parametrize("threshold", [1, 2, 5])
def test_check_failing_fires_at_exactly_the_threshold(threshold: int) -> None:
    identity = AppIdentity(name="a", sdkappid=1, labels={}, desired=DESIRED, error_threshold=threshold)
    state = AppState.initial(identity)
    fired_at = []
    for i in range(1, threshold + 3):
        state, events = transition(state, failed(TIMEOUT, i), now=i)
        if events:
            fired_at.append(i)
    assert fired_at == [threshold]


def test_reidentify_keeps_the_state_of_the_same_sdkappid_only() -> None:
    state, _ = run(START, failed(TIMEOUT, 1))
    relabelled = AppIdentity(name="prod-sg", sdkappid=1400000001, labels={"team": "x"}, desired=DESIRED)
    kept = reidentify(state, relabelled)
    assert (kept.identity, kept.checks, dict(kept.failures_by_reason)) == (relabelled, 1, {"timeout": 1})
    other = AppIdentity(name="prod-sg", sdkappid=1400000009, labels={}, desired=DESIRED)
    assert reidentify(state, other) == AppState.initial(other)


def test_an_outcome_with_both_or_neither_is_refused_with_a_message() -> None:
    with pytest.raises(ValueError, match=r"^an Outcome holds exactly one of verdict and error$"):
        Outcome(started=0, finished=1)
    with pytest.raises(ValueError, match=r"^an Outcome holds exactly one of verdict and error$"):
        Outcome(started=0, finished=1, verdict=verdict(DESIRED), error=TIMEOUT)
