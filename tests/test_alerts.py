"""Alert delivery: Alertmanager's alert set, the signed webhook, and the outbox between them and the checks.

The pure parts (labels, resend and resolve bookkeeping, signatures) are tested with a fake clock; the
sinks post to a real aiohttp receiver on a loopback port. Backoff sleeps are recorded, not slept.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import socket
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from structlog.testing import capture_logs

from monitor.alerts import (
    Alert,
    AlertBook,
    app_alerts,
    delivery_id,
    signature,
    verify_signature,
    webhook_body,
)
from monitor.config import Alerting, AlertmanagerSink, Policy, SecretRef, WebhookSink
from monitor.drift import compare
from monitor.errors import CheckError
from monitor.metrics import Metrics
from monitor.output import iso
from monitor.simulator import SAMPLE_DESIRED, Simulator
from monitor.sinks import AlertmanagerDelivery, AlertSinks, WebhookDelivery
from monitor.state import AlertEvent, AppIdentity, AppState, Outcome, fingerprint, transition
from monitor.store import Store
from monitor.tencent.model import CallbackConfig
from tests.fakes import FakeClock, Sleeps
from tests.serve_helpers import IN_SYNC, config_dict, metric, post_receiver, running, write_keys

T0 = 1_764_300_000.0
TOKEN = "s3cr3t-T0KEN-value"
SECRET = "whsec-0123456789abcdef"
CMDS = ("Room.CallbackAfterCreateRoom", "Room.CallbackAfterDestroyRoom")
WANT = CallbackConfig("https://hooks.example.com/room", CMDS)
EVIL = CallbackConfig(f"http://evil.example.net/steal?token={TOKEN}", CMDS[:1])
POLICY = Policy(allowed_hosts=("hooks.example.com",))
EXTERNAL = "https://monitor.example.com/"


# ---- building states -----------------------------------------------------------------------------


def identity(name: str = "prod-sg", labels: dict[str, str] | None = None) -> AppIdentity:
    return AppIdentity(
        name=name, sdkappid=1400000001, labels=MappingProxyType(labels or {"team": "rtc"}), desired=WANT
    )


def seen(
    state: AppState, live: CallbackConfig | None, at: float, ignore: Iterable[str] = ()
) -> tuple[AppState, tuple[AlertEvent, ...]]:
    verdict = compare(state.identity.desired, live, POLICY, frozenset(ignore))
    return transition(state, Outcome(at - 0.1, at, verdict=verdict), at)


def failed(state: AppState, at: float, reason: str = "timeout") -> tuple[AppState, tuple[AlertEvent, ...]]:
    error = CheckError(reason=reason, message="no answer within 5s", code=None, request_id="req-1")
    return transition(state, Outcome(at - 5, at, error=error), at)


def drifted(at: float = T0) -> AppState:
    return seen(AppState.initial(identity()), EVIL, at)[0]


def labels_of(alerts: Iterable[Alert]) -> list[dict[str, str]]:
    return sorted((dict(a.labels) for a in alerts), key=lambda d: sorted(d.items()))


def book(**kw: Any) -> AlertBook:
    return AlertBook(static_labels=kw.get("static", {}), external_url=kw.get("external"))


# ---- what Alertmanager is told -------------------------------------------------------------------


def test_each_counted_finding_is_one_alert_with_the_documented_labels() -> None:
    alerts = app_alerts(drifted(), static_labels={"source": "cm"}, external_url=EXTERNAL, now=T0)
    common = {"app": "prod-sg", "sdkappid": "1400000001", "team": "rtc", "source": "cm"}
    assert labels_of(alerts.values()) == labels_of(
        [
            Alert("", tuple(sorted({**common, **extra}.items())), (), 0)
            for extra in (
                {"alertname": "CallbackConfigDrift", "kind": "url_mismatch", "severity": "critical"},
                {"alertname": "CallbackConfigDrift", "kind": "missing_commands", "severity": "warning"},
                {"alertname": "CallbackPolicyViolation", "policy": "insecure_url", "severity": "critical"},
                {
                    "alertname": "CallbackPolicyViolation",
                    "policy": "host_not_allowed",
                    "severity": "critical",
                },
            )
        ]
    )
    for alert in alerts.values():
        assert alert.generator_url == "https://monitor.example.com/#app-prod-sg"
        assert alert.starts_at == T0
        assert TOKEN not in json.dumps(alert.to_json(T0, 240))
    url = next(a for a in alerts.values() if ("kind", "url_mismatch") in a.labels)
    annotations = dict(url.annotations)
    assert annotations["summary"].startswith("prod-sg (1400000001) has a callback URL other than")
    assert annotations["description"] == (
        "Desired: https://hooks.example.com/room. Observed: http://evil.example.net/steal?token=REDACTED."
    )
    missing = next(a for a in alerts.values() if ("kind", "missing_commands") in a.labels)
    assert dict(missing.annotations)["description"] == (
        "Missing commands: Room.CallbackAfterDestroyRoom. Desired URL: https://hooks.example.com/room."
    )


def test_the_alerts_own_labels_win_over_app_labels_which_win_over_static_ones() -> None:
    state = seen(AppState.initial(identity(labels={"team": "rtc", "severity": "low"})), None, T0)[0]
    (alert,) = app_alerts(
        state, static_labels={"team": "sre", "app": "x", "cluster": "eu"}, external_url=None, now=T0
    ).values()
    assert dict(alert.labels) == {
        "alertname": "CallbackConfigDrift",
        "app": "prod-sg",
        "sdkappid": "1400000001",
        "kind": "config_missing",
        "severity": "critical",
        "team": "rtc",
        "cluster": "eu",
    }
    assert alert.generator_url is None
    assert "generatorURL" not in alert.to_json(T0, 240)


def test_ignored_findings_do_not_alert() -> None:
    state = seen(AppState.initial(identity()), EVIL, T0, ignore={"missing_commands", "insecure_url"})[0]
    kinds = {
        dict(a.labels).get("kind") or dict(a.labels)["policy"]
        for a in app_alerts(state, static_labels={}, external_url=None, now=T0).values()
    }
    assert kinds == {"url_mismatch", "host_not_allowed"}


def test_a_failing_check_is_one_alert_with_its_reason_until_a_verdict() -> None:
    state = AppState.initial(identity())
    for i in range(3):
        state, _ = failed(state, T0 + i)
    (alert,) = app_alerts(state, static_labels={}, external_url=None, now=T0).values()
    assert dict(alert.labels) == {
        "alertname": "CallbackCheckFailing",
        "app": "prod-sg",
        "sdkappid": "1400000001",
        "reason": "timeout",
        "severity": "warning",
        "team": "rtc",
    }
    assert "RequestId req-1" in dict(alert.annotations)["description"]
    recovered, _ = seen(state, WANT, T0 + 10)
    assert app_alerts(recovered, static_labels={}, external_url=None, now=T0) == {}


def test_firing_alerts_are_valid_for_a_while_and_resolved_ones_end_when_resolved() -> None:
    (alert, *_) = app_alerts(drifted(), static_labels={}, external_url=None, now=T0).values()
    assert alert.to_json(T0 + 60, 240)["startsAt"] == iso(T0)
    assert alert.to_json(T0 + 60, 240)["endsAt"] == iso(T0 + 300)
    assert replace(alert, ends_at=T0 + 90).to_json(T0 + 120, 240)["endsAt"] == iso(T0 + 90)


# ---- the book: what is sent when -----------------------------------------------------------------


def test_a_new_finding_is_sent_at_once_and_a_steady_one_only_with_resends() -> None:
    b = book()
    state = drifted(T0)
    assert len(b.sync("prod-sg", state, T0)) == 4
    again, events = seen(state, EVIL, T0 + 1)
    assert events == ()
    assert b.sync("prod-sg", again, T0 + 1) == []
    resent = b.resend()
    assert len(resent) == 4
    assert {a.starts_at for a in resent} == {T0}
    assert len(b.firing()) == 4


def test_a_resolved_alert_is_sent_with_its_end_then_resent_a_few_times_then_forgotten() -> None:
    b = book()
    state = drifted(T0)
    b.sync("prod-sg", state, T0)
    fixed, _ = seen(state, WANT, T0 + 30)
    changes = b.sync("prod-sg", fixed, T0 + 30)
    assert len(changes) == 4
    assert {a.ends_at for a in changes} == {T0 + 30}
    assert {a.starts_at for a in changes} == {T0}
    for _ in range(3):  # the README promises three resends after the first
        assert {a.ends_at for a in b.resend()} == {T0 + 30}
    assert b.resend() == []
    assert b.firing() == []


def test_a_changed_observed_value_resends_at_once_keeping_the_start() -> None:
    b = book()
    state = drifted(T0)
    b.sync("prod-sg", state, T0)
    moved = CallbackConfig("http://evil.example.net/other", EVIL.commands)
    state, _ = seen(state, moved, T0 + 5)
    changes = b.sync("prod-sg", state, T0 + 5)
    # url_mismatch, insecure_url and host_not_allowed describe the observed URL; missing_commands is the same.
    assert len(changes) == 3
    assert {a.starts_at for a in changes} == {T0}
    assert all("evil.example.net/other" in dict(a.annotations)["description"] for a in changes)


def test_an_alert_that_fires_again_after_resolving_starts_anew() -> None:
    b = book()
    state = drifted(T0)
    b.sync("prod-sg", state, T0)
    state, _ = seen(state, WANT, T0 + 10)
    b.sync("prod-sg", state, T0 + 10)
    state, _ = seen(state, EVIL, T0 + 20)
    changes = b.sync("prod-sg", state, T0 + 20)
    assert {(a.starts_at, a.ends_at) for a in changes} == {(T0 + 20, None)}
    assert {(a.starts_at, a.ends_at) for a in b.resend()} == {(T0 + 20, None)}


def test_sync_all_resolves_removed_apps_and_relabelled_alerts() -> None:
    b = book(static={"cluster": "a"})
    b.sync_all({"prod-sg": drifted(T0)}, T0)
    b.configure(static_labels={"cluster": "b"}, external_url=None)
    changes = b.sync_all({"prod-sg": drifted(T0)}, T0 + 5)
    assert (
        sorted((dict(a.labels)["cluster"], a.ends_at) for a in changes)
        == [("a", T0 + 5)] * 4 + [("b", None)] * 4
    )
    gone = b.sync_all({}, T0 + 9)
    assert {(dict(a.labels)["cluster"], a.ends_at) for a in gone} == {("b", T0 + 9)}
    assert b.firing() == []


# ---- the webhook's body and signature ------------------------------------------------------------


def drift_event(at: float = T0) -> AlertEvent:
    _state, events = seen(AppState.initial(identity()), EVIL, at)
    return next(e for e in events if e.kind == "url_mismatch")


def test_the_signature_is_an_hmac_of_timestamp_dot_body_as_the_readme_shows() -> None:
    body = webhook_body(drift_event())
    # The receiver's side, as documented: no monitor code involved.
    expected = hmac.new(SECRET.encode(), b"1764300000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, "1764300000", body) == "sha256=" + expected
    assert json.loads(body)["observed"] == "http://evil.example.net/steal?token=REDACTED"
    assert TOKEN.encode() not in body


def test_a_receiver_rejects_a_changed_body_a_moved_timestamp_and_an_old_one() -> None:
    body = webhook_body(drift_event())
    signed = signature(SECRET, "1764300000", body)
    assert verify_signature(SECRET, "1764300000", body, signed, now=T0 + 100)
    assert not verify_signature(SECRET, "1764300000", body + b" ", signed, now=T0)
    assert not verify_signature(SECRET, "1764300001", body, signed, now=T0)
    assert not verify_signature(SECRET, "1764300000", body, signed, now=T0 + 301)
    assert not verify_signature("another-secret", "1764300000", body, signed, now=T0)
    assert not verify_signature(SECRET, "yesterday", body, signed, now=T0)


def test_a_delivery_id_is_stable_for_one_event_and_differs_between_events() -> None:
    event = drift_event()
    assert delivery_id(event) == delivery_id(replace(event))
    assert delivery_id(event) != delivery_id(replace(event, timestamp=T0 + 1))
    assert delivery_id(event) != delivery_id(replace(event, event="drift_resolved"))


# ---- a real receiver on loopback -----------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server that records requests and answers with ``statuses`` in turn (then 200)."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set, requests wait for it before being answered
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        entry = Request(request.path, dict(request.headers), await request.read())
        async with self.changed:
            self.requests.append(entry)
            self.changed.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def wait(self, count: int) -> list[Request]:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(lambda: len(self.requests) >= count)
        return self.requests


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    async with post_receiver(rec.handle) as url:
        rec.url = url
        try:
            yield rec
        finally:
            if rec.gate is not None:
                rec.gate.set()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def sample(metrics: Metrics, name: str, sink: str) -> float | None:
    return metrics.registry.get_sample_value(f"callback_monitor_{name}", {"sink": sink})


def counts(metrics: Metrics, sink: str) -> dict[str, float | None]:
    names = ("alerts_sent_total", "alert_send_failures_total", "alerts_dropped_total", "alert_queue_length")
    return {n: sample(metrics, n, sink) for n in names}


def webhook(
    receiver: Receiver, session: aiohttp.ClientSession, metrics: Metrics, sleeps: Sleeps, **kw: Any
) -> WebhookDelivery:
    secret = kw.pop("secret", SecretRef(env="HOOK_SECRET"))
    sink = WebhookDelivery(
        WebhookSink(url=receiver.url + "/hook?token=" + TOKEN, secret=secret, timeout=5.0),
        session=session,
        queue_size=kw.pop("queue_size", 10),
        observer=metrics,
        clock=FakeClock(T0),
        sleep=sleeps,
        rng=random.Random(0),
        environ={"HOOK_SECRET": SECRET},
    )
    sink.start()
    return sink


async def test_the_webhook_posts_each_event_signed_and_timestamped(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    metrics = Metrics(Store(), version="1.0", process=False)
    sink = webhook(receiver, session, metrics, Sleeps())
    event = drift_event()
    with capture_logs() as logs:
        sink.on_event(event)
        (request,) = await receiver.wait(1)
        await sink.stop(1.0)
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Callback-Monitor-Timestamp"] == "1764300000"
    assert request.headers["X-Callback-Monitor-Event"] == "drift_detected"
    assert request.headers["X-Callback-Monitor-Delivery"] == delivery_id(event)
    mac = hmac.new(SECRET.encode(), b"1764300000." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Callback-Monitor-Signature"] == f"sha256={mac}"
    fields = request.json()
    assert (fields["event"], fields["app"], fields["kind"], fields["fingerprint"]) == (
        "drift_detected",
        "prod-sg",
        "url_mismatch",
        fingerprint("prod-sg", "url_mismatch"),
    )
    assert counts(metrics, "webhook") == {
        "alerts_sent_total": 1,
        "alert_send_failures_total": 0,
        "alerts_dropped_total": 0,
        "alert_queue_length": 0,
    }
    assert SECRET not in repr(logs)
    assert TOKEN not in repr(logs)


async def test_without_a_secret_the_webhook_is_timestamped_but_unsigned(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    metrics = Metrics(Store(), version="1.0", process=False)
    sink = webhook(receiver, session, metrics, Sleeps(), secret=None)
    sink.on_event(drift_event())
    (request,) = await receiver.wait(1)
    await sink.stop(1.0)
    assert "X-Callback-Monitor-Signature" not in request.headers
    assert "X-Callback-Monitor-Timestamp" in request.headers


async def test_failed_sends_are_retried_with_growing_jittered_backoff(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    metrics = Metrics(Store(), version="1.0", process=False)
    sleeps = Sleeps()
    receiver.statuses = [503, 429, 500]
    sink = webhook(receiver, session, metrics, sleeps)
    with capture_logs() as logs:
        sink.on_event(drift_event())
        requests = await receiver.wait(4)
        await sink.stop(1.0)
    assert len({r.headers["X-Callback-Monitor-Delivery"] for r in requests}) == 1
    # Attempt n waits between half and all of 2**(n-1) seconds.
    assert [(2 ** (n - 1)) / 2 <= d <= 2 ** (n - 1) for n, d in enumerate(sleeps.delays, 1)] == [True] * 3
    assert counts(metrics, "webhook") == {
        "alerts_sent_total": 1,
        "alert_send_failures_total": 3,
        "alerts_dropped_total": 0,
        "alert_queue_length": 0,
    }
    failures = [line for line in logs if line["event"] == "alert_send_failed"]
    assert [line["attempt"] for line in failures] == [1, 2, 3]
    assert failures[0]["error"].startswith("HTTP 503 from http://127.0.0.1:")
    assert "token=REDACTED" in failures[0]["error"]
    assert TOKEN not in repr(logs)
    assert SECRET not in repr(logs)


async def test_a_refusal_is_not_retried_and_a_lasting_failure_is_given_up(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    metrics = Metrics(Store(), version="1.0", process=False)
    sleeps = Sleeps()
    receiver.statuses = [400, *[502] * 5]
    sink = webhook(receiver, session, metrics, sleeps)
    with capture_logs() as logs:
        sink.on_event(drift_event(T0))
        sink.on_event(drift_event(T0 + 1))
        await receiver.wait(6)
        await sink.outbox.drained()
        await sink.stop(1.0)
    assert len(sleeps.delays) == 4  # none after the 400; four between the five 502s
    assert max(sleeps.delays) <= 8
    assert counts(metrics, "webhook")["alert_send_failures_total"] == 6
    assert counts(metrics, "webhook")["alerts_dropped_total"] == 2
    assert [line["attempts"] for line in logs if line["event"] == "alerts_undelivered"] == [1, 5]


async def test_a_full_queue_drops_the_oldest_and_counts_them(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    metrics = Metrics(Store(), version="1.0", process=False)
    receiver.gate = asyncio.Event()
    sink = webhook(receiver, session, metrics, Sleeps(), queue_size=3)
    events = [drift_event(T0 + i) for i in range(6)]
    sink.on_event(events[0])
    await receiver.wait(1)  # the first is on its way (held by the receiver); the queue is empty
    with capture_logs() as logs:
        for event in events[1:]:
            sink.on_event(event)  # returns at once although nothing moves
    assert counts(metrics, "webhook")["alert_queue_length"] == 3
    assert counts(metrics, "webhook")["alerts_dropped_total"] == 2
    assert [line["dropped"] for line in logs if line["event"] == "alert_queue_full"] == [1, 1]
    receiver.gate.set()
    requests = await receiver.wait(4)
    await sink.outbox.drained()
    await sink.stop(1.0)
    sent = [r.headers["X-Callback-Monitor-Delivery"] for r in requests]
    assert sent == [delivery_id(events[i]) for i in (0, 3, 4, 5)]
    assert counts(metrics, "webhook") == {
        "alerts_sent_total": 4,
        "alert_send_failures_total": 0,
        "alerts_dropped_total": 2,
        "alert_queue_length": 0,
    }


async def test_what_is_left_at_shutdown_after_the_flush_is_counted_as_dropped(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    metrics = Metrics(Store(), version="1.0", process=False)
    receiver.gate = asyncio.Event()
    sink = webhook(receiver, session, metrics, Sleeps())
    sink.on_event(drift_event(T0))
    sink.on_event(drift_event(T0 + 1))
    await receiver.wait(1)
    with capture_logs() as logs:
        await sink.stop(0.05)
    assert counts(metrics, "webhook")["alerts_dropped_total"] == 2  # the one in flight and the queued one
    assert [line["alerts"] for line in logs if line["event"] == "alerts_undelivered"] == [2]


# ---- the Alertmanager sink against a receiver ----------------------------------------------------


def alertmanager(
    receiver: Receiver, session: aiohttp.ClientSession, store: Store, clock: FakeClock, metrics: Metrics
) -> AlertmanagerDelivery:
    sink = AlertmanagerDelivery(
        AlertmanagerSink(
            url=receiver.url + "/am/", resend_interval=60.0, timeout=5.0, labels={"source": "cm"}
        ),
        external_url=EXTERNAL,
        store=store,
        session=session,
        queue_size=100,
        observer=metrics,
        clock=clock,
        sleep=Sleeps(forever=60.0),
        rng=random.Random(0),
    )
    sink.start()
    store.listeners.append(sink.on_event)
    return sink


def emit(store: Store, state: AppState, events: tuple[AlertEvent, ...]) -> None:
    store.states[state.identity.name] = state
    store.emit(events)


async def test_alertmanager_hears_of_changes_at_once_and_of_everything_on_each_resend(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    store, clock = Store(), FakeClock(T0)
    metrics = Metrics(store, version="1.0", process=False)
    sink = alertmanager(receiver, session, store, clock, metrics)

    state, events = seen(AppState.initial(identity()), EVIL, T0)
    emit(store, state, events)
    await sink.outbox.drained()
    (first,) = receiver.requests
    assert first.path == "/am/api/v2/alerts"
    alerts = first.json()
    assert len(alerts) == 4
    url = next(a for a in alerts if a["labels"].get("kind") == "url_mismatch")
    assert url["labels"] == {
        "alertname": "CallbackConfigDrift",
        "app": "prod-sg",
        "sdkappid": "1400000001",
        "kind": "url_mismatch",
        "severity": "critical",
        "team": "rtc",
        "source": "cm",
    }
    assert (url["startsAt"], url["endsAt"]) == (iso(T0), iso(T0 + 240))
    assert url["generatorURL"] == "https://monitor.example.com/#app-prod-sg"
    assert TOKEN not in first.body.decode()

    # Nothing changes: nothing is sent until the resend, which repeats every firing alert.
    clock.now = T0 + 60
    state, events = seen(state, EVIL, T0 + 60)
    emit(store, state, events)
    await sink.outbox.drained()
    assert len(receiver.requests) == 1
    sink.request_resend()
    await sink.outbox.drained()
    resent = receiver.requests[1].json()
    assert {(a["startsAt"], a["endsAt"]) for a in resent} == {(iso(T0), iso(T0 + 300))}

    # Fixed: each alert goes out with its end at once, then with the next resends, then never again.
    clock.now = T0 + 70
    state, events = seen(state, WANT, T0 + 70)
    emit(store, state, events)
    await sink.outbox.drained()
    assert {a["endsAt"] for a in receiver.requests[2].json()} == {iso(T0 + 70)}
    for _ in range(3):
        sink.request_resend()
        await sink.outbox.drained()
    sink.request_resend()
    await sink.outbox.drained()
    assert len(receiver.requests) == 3 + 3
    assert {a["endsAt"] for a in receiver.requests[-1].json()} == {iso(T0 + 70)}
    await sink.stop(1.0)
    assert counts(metrics, "alertmanager")["alerts_sent_total"] == 4 * (3 + 3)


async def test_a_batch_never_fires_and_resolves_the_same_alert(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    """While Alertmanager is slow, a finding appears and goes away: the batch sends its last word."""
    store, clock = Store(), FakeClock(T0)
    metrics = Metrics(store, version="1.0", process=False)
    receiver.gate = asyncio.Event()
    sink = alertmanager(receiver, session, store, clock, metrics)
    other, events = seen(AppState.initial(identity("other")), None, T0)
    emit(store, other, events)
    await receiver.wait(1)  # held by the receiver
    state, events = seen(AppState.initial(identity()), EVIL, T0 + 1)
    emit(store, state, events)
    state, events = seen(state, WANT, T0 + 2)
    emit(store, state, events)
    receiver.gate.set()
    await sink.outbox.drained()
    assert len(receiver.requests) == 2
    last = receiver.requests[1].json()
    assert len(last) == 4
    assert {a["endsAt"] for a in last} == {iso(T0 + 2)}
    await sink.stop(1.0)


# ---- the sinks follow the config -----------------------------------------------------------------


async def test_reloads_start_reconfigure_and_retire_sinks(receiver: Receiver) -> None:
    store = Store()
    metrics = Metrics(store, version="1.0", process=False)
    sinks = AlertSinks(store, metrics, external_url="https://cli.example.com", clock=FakeClock(T0))
    am = AlertmanagerSink(url=receiver.url, resend_interval=60.0, timeout=5.0, labels={})
    hook = WebhookSink(url=receiver.url + "/hook", secret=None, timeout=5.0)
    await sinks.start(Alerting(external_url=None, alertmanager=am, webhook=None, queue_size=10))
    try:
        assert sinks.alertmanager is not None
        assert sinks.webhook is None
        running = sinks.alertmanager
        assert running.book.external_url == "https://cli.example.com"

        sinks.apply(
            Alerting(external_url="https://cfg.example.com", alertmanager=am, webhook=hook, queue_size=5)
        )
        assert sinks.alertmanager is running  # reconfigured in place: it keeps what it has sent
        assert running.book.external_url == "https://cfg.example.com"
        assert running.outbox.size == 5
        assert sinks.webhook is not None

        state, events = seen(AppState.initial(identity()), EVIL, T0)
        emit(store, state, events)
        requests = await receiver.wait(1 + len(events))
        assert {r.path for r in requests} == {"/api/v2/alerts", "/hook"}

        sinks.apply(Alerting(external_url=None, alertmanager=None, webhook=hook, queue_size=5))
        assert sinks.alertmanager is None
        assert sinks.webhook is not None
        assert sample(metrics, "alert_queue_length", "alertmanager") == 0
    finally:
        await sinks.stop(1.0)
    assert sinks.sinks() == []
    assert sinks.on_event not in store.listeners


async def test_a_broken_sink_never_breaks_the_check_that_emitted(session: aiohttp.ClientSession) -> None:
    store = Store()
    sinks = AlertSinks(store, Metrics(store, version="1.0", process=False))

    class Broken:
        sink = "broken"

        def on_event(self, event: AlertEvent) -> None:
            raise RuntimeError("bug")

    sinks.webhook = Broken()  # type: ignore[assignment]
    store.listeners.append(sinks.on_event)
    with capture_logs() as logs:
        store.emit((drift_event(),))
    assert [line["event"] for line in logs] == ["alert_sink_error"]
    sinks.webhook = None


# ---- serve, end to end ---------------------------------------------------------------------------


def serve_config(
    path: Path, endpoint: str, apps: tuple[tuple[str, int], ...], webhook: dict[str, Any]
) -> Path:
    keys = path.parent / "keys"
    write_keys(keys, apps)
    config = config_dict(endpoint, keys, apps)
    config["alerting"] = {"webhook": webhook}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.slow
async def test_serve_posts_signed_events_to_the_webhook_once_each(
    receiver: Receiver, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    hook = {"url": receiver.url + "/hook", "secret_file": str(secret_file), "timeout": "2s"}
    config = serve_config(tmp_path / "config.yaml", simulator_url, (IN_SYNC,), hook)
    name, sdkappid = IN_SYNC
    async with running(config) as serve:
        await serve.wait_checks(name, 1, after=0)
        evil = CallbackConfig(f"https://evil.example.net/x?token={TOKEN}", SAMPLE_DESIRED.commands)
        simulator.set_callback(sdkappid, evil)
        detected = await serve.wait_event("drift_detected", app=name, kind="url_mismatch")
        simulator.set_callback(sdkappid, SAMPLE_DESIRED)
        resolved = await serve.wait_event("drift_resolved", app=name, kind="url_mismatch")
        await receiver.wait(4)  # url_mismatch and host_not_allowed, each detected and resolved
        await serve.wait_checks(name, 2, after=serve.mark)  # no repeats on later checks
        samples = await serve.metrics()
    received = [(r.json()["event"], r.json()["kind"]) for r in receiver.requests]
    assert sorted(received) == [
        ("drift_detected", "host_not_allowed"),
        ("drift_detected", "url_mismatch"),
        ("drift_resolved", "host_not_allowed"),
        ("drift_resolved", "url_mismatch"),
    ]
    for request in receiver.requests:
        timestamp = request.headers["X-Callback-Monitor-Timestamp"]
        mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-Callback-Monitor-Signature"] == "sha256=" + mac
        assert abs(time.time() - int(timestamp)) < 60
        assert TOKEN.encode() not in request.body
    by_event = {r.json()["event"]: r.json() for r in receiver.requests if r.json()["kind"] == "url_mismatch"}
    for line, event in ((detected, "drift_detected"), (resolved, "drift_resolved")):
        assert {k: v for k, v in line.items() if k in by_event[event]} == by_event[event]
    assert metric(samples, "callback_monitor_alerts_sent_total", sink="webhook") == 4
    assert metric(samples, "callback_monitor_alert_send_failures_total", sink="webhook") == 0
    for text in [*serve.raw, *serve.stderr]:
        assert SECRET not in text
        assert TOKEN not in text


@pytest.mark.slow
async def test_a_down_webhook_neither_delays_checks_nor_stops_the_daemon(
    simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
        config = serve_config(tmp_path / "config.yaml", simulator_url, (IN_SYNC,), {"url": url})
        name, sdkappid = IN_SYNC
        async with running(config) as serve:
            # A new alert on every other check, while the webhook refuses them all.
            for i in range(6):
                live = (
                    SAMPLE_DESIRED if i % 2 else replace(SAMPLE_DESIRED, url=f"https://evil.example.net/{i}")
                )
                simulator.set_callback(sdkappid, live)
                await serve.wait_checks(name, 1, after=serve.mark)
            await serve.wait_event("alert_send_failed", sink="webhook")
            samples = await serve.metrics()
            status, _ = await serve.get("/healthz")
        checks = serve.find("check", app=name)
    times = [datetime.fromisoformat(line["timestamp"]).timestamp() for line in checks]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 4
    assert max(gaps) < 1.6, gaps  # every second, plus up to 10% jitter, plus slack for a busy machine
    assert len(serve.alerts(event="drift_detected", app=name)) >= 3
    failures = metric(samples, "callback_monitor_alert_send_failures_total", sink="webhook")
    assert failures is not None
    assert failures >= 1
    assert metric(samples, "callback_monitor_alerts_sent_total", sink="webhook") == 0
    assert status == 200
