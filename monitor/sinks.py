"""The optional alert sinks, Alertmanager and a signed webhook: fed from the store, kept in step with reloads.

The store calls ``AlertSinks.on_event`` for every alert event, on the check path: it only updates
memory and queues (``monitor.delivery.Outbox``); each sink's own task does the HTTP.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping

import aiohttp
import structlog

from monitor import __version__
from monitor.alerts import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    VALID_FOR_RESENDS,
    Alert,
    AlertBook,
    delivery_id,
    latest,
    signature,
    webhook_body,
)
from monitor.config import Alerting, AlertmanagerSink, WebhookSink
from monitor.delivery import SENT, Attempt, DeliveryObserver, Outbox, Sleep, retry_after_seconds
from monitor.errors import ResourceExhausted, SecretUnavailable
from monitor.redact import redact_text, redact_url
from monitor.state import AlertEvent
from monitor.store import Store

log = structlog.get_logger("monitor.sinks")

ALERTS_PATH = "/api/v2/alerts"
MAX_BATCH = 500  # alerts in one POST to Alertmanager
RETIRE_FLUSH = 5.0  # seconds a sink removed by a reload has to deliver what it holds (less at shutdown)
_USER_AGENT = f"callback-monitor/{__version__}"


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    seconds: float,
    clock: Callable[[], float],
) -> Attempt:
    """POST ``body`` within ``seconds``: 2xx is success; 5xx, 408, 429 and network errors merit a retry,
    after what ``Retry-After`` asks on a 429 or 503 (``clock`` reads its HTTP-date form)."""
    shown = redact_url(url)
    try:
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT, **headers},
            timeout=aiohttp.ClientTimeout(total=seconds),
            allow_redirects=False,  # a redirect would carry the signature to wherever it points
        ) as response:
            if 200 <= response.status < 300:
                return SENT
            text = (await response.content.read(200)).decode("utf-8", "replace").strip()
            retry = response.status >= 500 or response.status in (408, 429)
            wait = None
            if response.status in (429, 503):
                wait = retry_after_seconds(response.headers.get("Retry-After"), clock())
            detail = f": {redact_text(text)}" if text else ""
            problem = f"HTTP {response.status} from {shown}{detail}"
            return Attempt(ok=False, retry=retry, problem=problem, retry_after=wait)
    except TimeoutError:
        return Attempt(ok=False, retry=True, problem=f"no answer from {shown} within {seconds:g}s")
    except aiohttp.ClientError as exc:
        problem = f"{type(exc).__name__} from {shown}: {redact_text(str(exc))}"
        return Attempt(ok=False, retry=True, problem=problem)


class AlertmanagerDelivery:
    """Keeps Alertmanager's view equal to the store's: changes at once, everything every resend_interval."""

    sink = "alertmanager"

    def __init__(
        self,
        config: AlertmanagerSink,
        *,
        external_url: str | None,
        store: Store,
        session: aiohttp.ClientSession,
        queue_size: int,
        observer: DeliveryObserver,
        clock: Callable[[], float],
        sleep: Sleep,
        rng: random.Random,
    ) -> None:
        self.config = config
        self.book = AlertBook(static_labels=config.labels, external_url=external_url)
        self._store = store
        self._session = session
        self._clock = clock
        self._sleep = sleep
        self._resend_due = False
        self._timer: asyncio.Task[None] | None = None
        self.outbox: Outbox[Alert] = Outbox(
            self.sink,
            self._send,
            size=queue_size,
            batch=MAX_BATCH,
            observer=observer,
            sleep=sleep,
            rng=rng,
            more=self._resends,
            key=lambda alert: alert.labels,  # a change replaces the pending resend of its alert
        )

    def on_event(self, event: AlertEvent) -> None:
        self.outbox.put(self.book.sync(event.app, self._store.states.get(event.app), event.timestamp))

    def sync_all(self) -> None:
        """Catch up with what no event announces: apps added or removed, labels changed by a reload."""
        self.outbox.put(self.book.sync_all(self._store.states, self._clock()))

    def request_resend(self) -> None:
        self._resend_due = True
        self.outbox.poke()

    def configure(self, config: AlertmanagerSink, external_url: str | None, queue_size: int) -> None:
        self.config = config
        self.book.configure(static_labels=config.labels, external_url=external_url)
        self.outbox.resize(queue_size)
        self.sync_all()
        self.request_resend()  # a new URL knows nothing yet

    def start(self) -> None:
        self.outbox.start()
        self._timer = asyncio.create_task(self._tick(), name="alerts-alertmanager-resend")
        self.sync_all()

    async def stop(self, flush: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        await self.outbox.stop(flush)

    def hurry(self) -> None:
        self.outbox.hurry()

    async def _tick(self) -> None:
        while True:
            await self._sleep(self.config.resend_interval)
            self.request_resend()

    def _resends(self) -> list[Alert]:
        if not self._resend_due:
            return []
        self._resend_due = False
        self.book.sync_all(self._store.states, self._clock())
        return self.book.resend()

    async def _send(self, batch: list[Alert]) -> Attempt:
        now = self._clock()
        valid_for = VALID_FOR_RESENDS * self.config.resend_interval
        body = json.dumps([a.to_json(now, valid_for) for a in latest(batch)]).encode()
        url = self.config.url.rstrip("/") + ALERTS_PATH
        return await post(self._session, url, body, {}, self.config.timeout, self._clock)


class WebhookDelivery:
    """POSTs every alert event as JSON, timestamped and (with a secret) signed."""

    sink = "webhook"

    def __init__(
        self,
        config: WebhookSink,
        *,
        session: aiohttp.ClientSession,
        queue_size: int,
        observer: DeliveryObserver,
        clock: Callable[[], float],
        sleep: Sleep,
        rng: random.Random,
        environ: Mapping[str, str] | None,
    ) -> None:
        self.config = config
        self._session = session
        self._clock = clock
        self._environ = environ
        self.outbox: Outbox[AlertEvent] = Outbox(
            self.sink, self._send, size=queue_size, observer=observer, sleep=sleep, rng=rng
        )

    def on_event(self, event: AlertEvent) -> None:
        self.outbox.put((event,))

    def configure(self, config: WebhookSink, queue_size: int) -> None:
        self.config = config
        self.outbox.resize(queue_size)

    def start(self) -> None:
        self.outbox.start()

    async def stop(self, flush: float) -> None:
        await self.outbox.stop(flush)

    def hurry(self) -> None:
        self.outbox.hurry()

    async def _send(self, batch: list[AlertEvent]) -> Attempt:
        (event,) = batch
        body = webhook_body(event)
        timestamp = str(int(self._clock()))  # per attempt: a retry is not a replay
        headers = {
            TIMESTAMP_HEADER: timestamp,
            EVENT_HEADER: event.event,
            DELIVERY_HEADER: delivery_id(event),
        }
        if self.config.secret is not None:
            try:
                secret = self.config.secret.read(self._environ)
            except (SecretUnavailable, ResourceExhausted):  # read again next time: a Secret may appear later
                return Attempt(ok=False, retry=True, problem=f"cannot read {self.config.secret.describe()}")
            headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
        return await post(self._session, self.config.url, body, headers, self.config.timeout, self._clock)


_Sink = AlertmanagerDelivery | WebhookDelivery


class AlertSinks:
    """The sinks the ``alerting`` section asks for: started, reconfigured on reload, stopped with a flush."""

    def __init__(
        self,
        store: Store,
        observer: DeliveryObserver,
        *,
        external_url: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.observer = observer
        self.external_url = external_url  # --external-url; the section's own external_url wins
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.environ = environ
        self.alertmanager: AlertmanagerDelivery | None = None
        self.webhook: WebhookDelivery | None = None
        self._session: aiohttp.ClientSession | None = None
        self._applied: dict[str, object] = {}
        self._retiring: dict[asyncio.Task[None], _Sink] = {}  # sinks a reload removed, still flushing

    def sinks(self) -> list[_Sink]:
        return [s for s in (self.alertmanager, self.webhook) if s is not None]

    def on_event(self, event: AlertEvent) -> None:
        """The store's listener: never waits, never raises."""
        for sink in self.sinks():
            try:
                sink.on_event(event)
            except Exception:  # a bug in a sink must not break the check that emitted
                log.exception("alert_sink_error", sink=sink.sink, app=event.app)

    async def start(self, alerting: Alerting) -> None:
        self._session = aiohttp.ClientSession()
        self.store.listeners.append(self.on_event)
        self.apply(alerting)

    def apply(self, alerting: Alerting) -> None:
        """Make the running sinks match ``alerting``: start, reconfigure or retire each."""
        if self._session is None:
            return
        session = self._session
        external = alerting.external_url or self.external_url
        size = alerting.queue_size
        am = alerting.alertmanager
        if (am, external, size) != self._applied.get("alertmanager"):
            self._applied["alertmanager"] = (am, external, size)
            if am is None:
                self._retire(self.alertmanager)
                self.alertmanager = None
            elif self.alertmanager is None:
                self.alertmanager = AlertmanagerDelivery(
                    am,
                    external_url=external,
                    store=self.store,
                    session=session,
                    queue_size=size,
                    observer=self.observer,
                    clock=self.clock,
                    sleep=self.sleep,
                    rng=self.rng,
                )
                self.alertmanager.start()
                log.info("alert_sink_started", sink="alertmanager", url=redact_url(am.url))
            else:
                self.alertmanager.configure(am, external, size)
                log.info("alert_sink_reconfigured", sink="alertmanager", url=redact_url(am.url))
        elif self.alertmanager is not None:
            self.alertmanager.sync_all()  # the reload may have added, removed or relabelled apps
        hook = alerting.webhook
        if (hook, size) != self._applied.get("webhook"):
            self._applied["webhook"] = (hook, size)
            if hook is None:
                self._retire(self.webhook)
                self.webhook = None
            elif self.webhook is None:
                self.webhook = WebhookDelivery(
                    hook,
                    session=session,
                    queue_size=size,
                    observer=self.observer,
                    clock=self.clock,
                    sleep=self.sleep,
                    rng=self.rng,
                    environ=self.environ,
                )
                self.webhook.start()
                log.info(
                    "alert_sink_started", sink="webhook", url=redact_url(hook.url), signed=bool(hook.secret)
                )
            else:
                self.webhook.configure(hook, size)
                log.info("alert_sink_reconfigured", sink="webhook", url=redact_url(hook.url))

    def _retire(self, sink: _Sink | None) -> None:
        """A sink the new config drops: it gets the usual flush, in the background."""
        if sink is None:
            return
        log.info("alert_sink_stopped", sink=sink.sink)
        task = asyncio.create_task(sink.stop(RETIRE_FLUSH), name=f"alerts-{sink.sink}-retire")
        self._retiring[task] = sink
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def stop(self, flush: float) -> None:
        """Stop taking events, give every queue (a retiring sink's too) the same ``flush`` seconds, all
        at once, then close the connections: the whole stop takes ``flush`` and no more."""
        if self.on_event in self.store.listeners:
            self.store.listeners.remove(self.on_event)
        stopping = [asyncio.create_task(sink.stop(flush)) for sink in self.sinks()]
        self.alertmanager = self.webhook = None
        retiring = dict(self._retiring)
        waiting = [*stopping, *retiring]
        if waiting:
            await asyncio.wait(waiting, timeout=flush)
            for sink in retiring.values():
                sink.hurry()  # a reload's longer flush ends with everyone else's
            await asyncio.gather(*waiting, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
