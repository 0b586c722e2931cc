"""Alert sinks under an unlucky receiver: shutdown within its grace, Retry-After honoured, honest counts.

Each sink posts to a real aiohttp receiver on a loopback port; backoff sleeps are recorded, not
slept, and the clock is injected. The SIGTERM test runs ``serve`` as a subprocess.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from aiohttp import ClientSession, web
from structlog.testing import capture_logs

from monitor.config import Alerting, AlertmanagerSink, Policy, WebhookSink
from monitor.delivery import retry_after_seconds
from monitor.drift import compare
from monitor.metrics import Metrics
from monitor.simulator import Simulator
from monitor.sinks import AlertmanagerDelivery, AlertSinks, WebhookDelivery
from monitor.state import AlertEvent, AppIdentity, AppState, Outcome, transition
from monitor.store import Store
from monitor.tencent.model import CallbackConfig
from tests.fakes import Sleeps
from tests.reliability.lab import FIGURES
from tests.serve_helpers import DRIFTED_URL, Serve, config_dict, post_receiver, write_keys

T0 = 1_764_300_000.0
CMDS = ("Room.CallbackAfterCreateRoom", "Room.CallbackAfterDestroyRoom")
WANT = CallbackConfig("https://hooks.example.com/room", CMDS)
EVIL = CallbackConfig("http://evil.example.net/steal", CMDS[:1])  # four alerts: two drift, two policy
POLICY = Policy(allowed_hosts=("hooks.example.com",))


@dataclass
class Receiver:
    """Records POSTs and answers each with the next of ``answers`` (status, headers), then 200.

    While ``hold`` is set, requests are recorded and then wait for it to be cleared (``release``).
    """

    url: str = ""
    bodies: list[Any] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    hold: bool = False
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self.changed:
            self.bodies.append(body)
            self.changed.notify_all()
        if self.hold:
            await self._released.wait()
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return web.Response(status=status, headers=headers)

    def release(self) -> None:
        self.hold = False
        self._released.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(lambda: len(self.bodies) >= count)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    async with post_receiver(rec.handle) as url:
        rec.url = url
        try:
            yield rec
        finally:
            rec.release()


def app(name: str) -> AppIdentity:
    return AppIdentity(name=name, sdkappid=1400000001, labels=MappingProxyType({}), desired=WANT)


def seen(state: AppState, live: CallbackConfig, at: float) -> tuple[AppState, tuple[AlertEvent, ...]]:
    return transition(state, Outcome(at - 0.1, at, verdict=compare(WANT, live, POLICY, frozenset())), at)


def drifted(store: Store, name: str, at: float = T0) -> tuple[AlertEvent, ...]:
    state, events = seen(AppState.initial(app(name)), EVIL, at)
    store.states[name] = state
    return events


def sample(metrics: Metrics, name: str, sink: str) -> float | None:
    return metrics.registry.get_sample_value(f"callback_monitor_{name}", {"sink": sink})


def webhook_sink(
    session: ClientSession, url: str, metrics: Metrics, sleeps: Sleeps, clock: Callable[[], float]
) -> WebhookDelivery:
    sink = WebhookDelivery(
        WebhookSink(url=url + "/hook", secret=None, timeout=5.0),
        session=session,
        queue_size=10,
        observer=metrics,
        clock=clock,
        sleep=sleeps,
        rng=random.Random(0),
        environ={},
    )
    sink.start()
    return sink


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    async with ClientSession() as s:
        yield s


# ---- Retry-After ---------------------------------------------------------------------------------


def http_date(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(seconds, UTC), usegmt=True)


async def test_the_webhook_waits_as_long_as_retry_after_asks_in_seconds_or_as_a_date(
    receiver: Receiver, session: ClientSession
) -> None:
    metrics = Metrics(Store(), version="1.0", process=False)
    sleeps = Sleeps(forever=3600.0)
    receiver.answers = [
        (429, {"Retry-After": "30"}),
        (503, {"Retry-After": http_date(T0 + 12)}),
        (503, {"Retry-After": "3600"}),  # more than the cap
        (429, {"Retry-After": "soon"}),  # unreadable: the usual backoff
    ]
    sink = webhook_sink(session, receiver.url, metrics, sleeps, clock=lambda: T0)
    store = Store()
    with capture_logs() as logs:
        sink.on_event(drifted(store, "prod-sg")[0])
        await receiver.wait(5)
        await sink.outbox.drained()
        await sink.stop(1.0)
    assert sleeps.delays[:3] == [30.0, 12.0, 60.0]
    assert 4 <= sleeps.delays[3] <= 8  # attempt 4's backoff: between half and all of 8 s
    assert sample(metrics, "alerts_sent_total", "webhook") == 1
    assert sample(metrics, "alerts_dropped_total", "webhook") == 0
    waits = [line["retry_in"] for line in logs if line["event"] == "alert_send_failed"]
    assert waits[:3] == [30.0, 12.0, 60.0]


async def test_alertmanager_waits_out_retry_after_on_429_but_not_a_date_in_the_past(
    receiver: Receiver, session: ClientSession
) -> None:
    store = Store()
    metrics = Metrics(store, version="1.0", process=False)
    sleeps = Sleeps(forever=3600.0)
    receiver.answers = [(429, {"Retry-After": "30"}), (503, {"Retry-After": http_date(T0 - 100)})]
    sink = alertmanager_sink(session, receiver.url, store, metrics, sleeps, queue_size=10)
    drifted(store, "prod-sg")
    sink.sync_all()
    await receiver.wait(3)
    await sink.outbox.drained()
    await sink.stop(1.0)
    assert sleeps.delays[0] == 30.0
    assert 1 <= sleeps.delays[1] <= 2  # a past date asks for no wait: attempt 2's backoff applies
    assert sample(metrics, "alerts_sent_total", "alertmanager") == 4


# ---- Alertmanager's resends and the dropped count -------------------------------------------------


def alertmanager_sink(
    session: ClientSession, url: str, store: Store, metrics: Metrics, sleeps: Sleeps, *, queue_size: int
) -> AlertmanagerDelivery:
    sink = AlertmanagerDelivery(
        AlertmanagerSink(url=url, resend_interval=3600.0, timeout=5.0, labels={}),
        external_url=None,
        store=store,
        session=session,
        queue_size=queue_size,
        observer=metrics,
        clock=lambda: T0,
        sleep=sleeps,
        rng=random.Random(0),
    )
    sink.start()
    store.listeners.append(sink.on_event)
    return sink


async def test_resends_never_push_out_new_alerts_nor_count_as_dropped(
    receiver: Receiver, session: ClientSession
) -> None:
    """200 drifted apps (800 firing alerts, more than one POST holds) and a queue of 20."""
    store = Store()
    metrics = Metrics(store, version="1.0", process=False)
    for i in range(200):
        drifted(store, f"app-{i:03d}")
    sink = alertmanager_sink(session, receiver.url, store, metrics, Sleeps(forever=3600.0), queue_size=1000)
    await receiver.wait(1)
    await sink.outbox.drained()
    sink.outbox.resize(20)
    posts = len(receiver.bodies)
    receiver.hold = True
    sink.request_resend()
    await receiver.wait(posts + 1)  # the first 500 resends are on their way, held by the receiver
    with capture_logs() as logs:
        store.emit(drifted(store, "new-app", T0 + 1))  # four new alerts
        last = store.states["app-199"]
        state, events = seen(last, WANT, T0 + 2)  # the last app in the resend is fixed meanwhile
        store.states["app-199"] = state
        store.emit(events)
    assert [line for line in logs if line["event"] == "alert_queue_full"] == []
    assert sample(metrics, "alerts_dropped_total", "alertmanager") == 0
    assert sample(metrics, "alert_queue_length", "alertmanager") == 8  # new alerts only
    receiver.release()
    await sink.outbox.drained()
    await sink.stop(1.0)
    sent = [alert for body in receiver.bodies[posts:] for alert in body]
    new = [a for a in sent if a["labels"]["app"] == "new-app"]
    assert len(new) == 4
    final = {}
    for alert in sent:  # in the order Alertmanager got them: the last word per alert wins there
        final[tuple(sorted(alert["labels"].items()))] = alert
    fixed = [a for labels, a in final.items() if ("app", "app-199") in labels]
    assert len(fixed) == 4
    assert all("endsAt" in a and a["endsAt"].startswith("2025-11-28T03:20:02") for a in fixed), fixed
    assert sample(metrics, "alerts_dropped_total", "alertmanager") == 0


async def test_a_failed_resend_is_not_retried_while_new_alerts_wait(
    receiver: Receiver, session: ClientSession
) -> None:
    store = Store()
    metrics = Metrics(store, version="1.0", process=False)
    sleeps = Sleeps(forever=3600.0)
    drifted(store, "prod-sg")
    sink = alertmanager_sink(session, receiver.url, store, metrics, sleeps, queue_size=20)
    await receiver.wait(1)
    await sink.outbox.drained()
    receiver.hold = True
    receiver.answers = [(503, {"Retry-After": "30"})]  # for the resend, once it is let go
    sink.request_resend()
    await receiver.wait(2)  # the resend is on its way, held
    store.emit(drifted(store, "new-app", T0 + 1))
    with capture_logs() as logs:
        receiver.release()
        await receiver.wait(3)
        await sink.outbox.drained()
    await sink.stop(1.0)
    assert sleeps.delays == []  # no thirty seconds in front of the new alerts
    assert {a["labels"]["app"] for a in receiver.bodies[2]} == {"new-app"}
    assert [line["event"] for line in logs if line["event"].startswith("alert")] == ["alert_resend_failed"]
    assert sample(metrics, "alerts_dropped_total", "alertmanager") == 0


async def test_resends_left_at_shutdown_are_not_counted_as_dropped_alerts(
    receiver: Receiver, session: ClientSession
) -> None:
    store = Store()
    metrics = Metrics(store, version="1.0", process=False)
    for i in range(10):
        drifted(store, f"app-{i:03d}")
    sink = alertmanager_sink(session, receiver.url, store, metrics, Sleeps(forever=3600.0), queue_size=100)
    await receiver.wait(1)
    await sink.outbox.drained()
    sink.outbox.resize(20)
    receiver.hold = True
    sink.request_resend()
    await receiver.wait(2)  # 40 resends in flight, held
    store.emit(drifted(store, "new-app", T0 + 1))  # four new alerts that will never go out
    with capture_logs() as logs:
        await sink.stop(0.05)
    assert sample(metrics, "alerts_dropped_total", "alertmanager") == 4
    assert [line["alerts"] for line in logs if line["event"] == "alerts_undelivered"] == [4]


# ---- shutdown within its grace -------------------------------------------------------------------


async def test_stopping_the_sinks_cuts_short_the_flush_of_a_sink_a_reload_removed(
    receiver: Receiver,
) -> None:
    store = Store()
    sinks = AlertSinks(store, Metrics(store, version="1.0", process=False), clock=lambda: T0)
    hook = WebhookSink(url=receiver.url + "/hook", secret=None, timeout=300.0)
    receiver.hold = True  # the receiver never answers
    await sinks.start(Alerting(external_url=None, alertmanager=None, webhook=hook, queue_size=10))
    store.emit(drifted(store, "prod-sg"))
    await receiver.wait(1)
    sinks.apply(Alerting(external_url=None, alertmanager=None, webhook=None, queue_size=10))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sinks.stop(0.2)
    assert loop.time() - started < 1.0


async def test_every_sink_stops_within_the_flush_whatever_its_receiver_does(receiver: Receiver) -> None:
    """A hanging Alertmanager with more alerts queued, and a removed webhook waiting out the minute its
    receiver asked for: the stop takes the flush it was given, and what was not delivered counts."""
    store = Store()
    metrics = Metrics(store, version="1.0", process=False)
    sinks = AlertSinks(store, metrics, clock=lambda: T0)
    hook = WebhookSink(url=receiver.url + "/hook", secret=None, timeout=300.0)
    am = AlertmanagerSink(url=receiver.url, resend_interval=3600.0, timeout=300.0, labels={})
    receiver.answers = [(429, {"Retry-After": "60"})]  # the first request, the webhook's
    await sinks.start(Alerting(external_url=None, alertmanager=None, webhook=hook, queue_size=10))
    store.emit(drifted(store, "prod-sg"))
    await receiver.wait(1)
    receiver.hold = True  # from now on nothing is answered
    sinks.apply(Alerting(external_url=None, alertmanager=am, webhook=None, queue_size=10))
    await receiver.wait(2)  # Alertmanager's first post hangs
    store.emit(drifted(store, "staging", T0 + 1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sinks.stop(0.3)
    assert loop.time() - started < 1.0
    assert sample(metrics, "alerts_dropped_total", "webhook") == 4  # one waiting to retry, three queued
    assert sample(metrics, "alerts_dropped_total", "alertmanager") == 8  # four in flight, four queued


async def test_sigterm_after_a_reload_removed_a_hanging_sink_exits_within_the_grace(
    receiver: Receiver, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    receiver.hold = True
    keys = tmp_path / "keys"
    write_keys(keys, (DRIFTED_URL,))
    config = config_dict(simulator_url, keys, (DRIFTED_URL,))
    path = tmp_path / "config.yaml"
    with_hook = {**config, "alerting": {"webhook": {"url": receiver.url + "/hook", "timeout": "5m"}}}
    path.write_text(yaml.safe_dump(with_hook, sort_keys=False), encoding="utf-8")
    serve = await Serve.start(path)
    try:
        await serve.wait_event("started")
        await receiver.wait(1)  # a drift alert is on its way and will never be answered
        mark = serve.mark
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        serve.signal(signal.SIGHUP)
        await serve.wait_event("alert_sink_stopped", after=mark)
        started = time.monotonic()
        serve.signal(signal.SIGTERM)
        assert await serve.wait_exit(15) == 0
        seconds = time.monotonic() - started
    finally:
        await serve.close()
    FIGURES["SIGTERM after a reload removed a hanging sink"] = f"{seconds:.2f} s to exit (grace 2 s)"
    assert seconds < 3.0, f"{seconds:.2f} s"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("0", 0.0),
        (" 120 ", 120.0),
        ("9999999999", 9999999999.0),  # taken as said; the outbox caps the wait
        ("99999999999", None),  # more digits than any sensible delay
        ("-5", None),
        ("1.5", None),
        ("Fri, 28 Nov 2025 03:20:30 GMT", 30.0),
        ("Fri, 28 Nov 2025 03:20:30 -0000", 30.0),
        ("Fri, 28 Nov 2025 03:19:00 GMT", 0.0),  # in the past: no wait
        ("Fri, 28 Nov 2025 03:20:30 GMT" + " GMT" * 1000, None),
        ("tomorrow", None),
        ("", None),
    ],
)
def test_retry_after_is_read_in_both_forms_and_nothing_else(
    header: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(header, T0) == seconds
