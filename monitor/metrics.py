"""Prometheus metrics: the instruments in a private registry, and the one /metrics answer.

One path: everything registered in the registry goes through prometheus_client's own encoders
(public API only: nothing of the library's internals is imported), and the store's families follow,
written from a snapshot by ``monitor.store_metrics``. Callers take the snapshot on the event loop and
render it in a worker thread.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.openmetrics import exposition as openmetrics

from monitor.errors import REASONS
from monitor.store import Store
from monitor.store_metrics import PREFIX, Snapshot, snapshot_text
from monitor.tencent.codes import CODES

# The library leaves its OpenMetrics encoder untyped.
generate_openmetrics = cast(Callable[[CollectorRegistry], bytes], openmetrics.generate_latest)
_EOF = b"# EOF\n"
# Healthy calls take tens to hundreds of milliseconds and a struggling backend a few seconds; the
# top buckets catch what is left before the client's timeout.
DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

OTHER_CODE = "other"
KNOWN_CODES: frozenset[str] = frozenset(
    {"0", *(str(code) for code in CODES), *REASONS, *(f"http_{status.value}" for status in HTTPStatus)}
)
"""The values the ``code`` label of api_requests_total may take besides ``other``: success, every
ErrorCode of the reference table, every error reason (timeout, network, invalid_response, ...) and
``http_<status>`` for the statuses HTTP defines."""


TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _accepted(header: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(lower-case type, parameters) of each entry of an Accept or Accept-Encoding header that is not
    refused with ``q=0``."""
    for entry in header.split(","):
        kind, *params = entry.split(";")
        pairs = (p.split("=", 1) for p in params if "=" in p)
        found = {k.strip().lower(): v.strip() for k, v in pairs}
        try:
            refused = float(found.get("q", "1")) <= 0
        except ValueError:
            refused = False  # an unreadable weight is no refusal
        if not refused:
            yield kind.strip().lower(), found


def wants_openmetrics(accept: str) -> bool:
    """Whether ``Accept`` lists OpenMetrics of version 1.x or of no version (else: text format 0.0.4)."""
    for kind, params in _accepted(accept):
        major = params.get("version", "1").split(".")[0]
        if kind == "application/openmetrics-text" and major.isdigit() and int(major) >= 1:
            return True
    return False


def accepts_gzip(accept_encoding: str) -> bool:
    return any(kind == "gzip" for kind, _params in _accepted(accept_encoding))


@dataclass(frozen=True)
class Exposition:
    body: bytes
    headers: dict[str, str]


class Metrics:
    """The private registry of instruments and process collectors; the store is rendered per scrape.

    Everything registered in ``registry`` is served (there is no list to keep beside it); the store's
    families are written from a snapshot by ``snapshot_text``, never as metric objects.
    """

    def __init__(
        self,
        store: Store,
        *,
        version: str,
        registry: CollectorRegistry | None = None,
        process: bool = True,
    ) -> None:
        self.store = store
        self.registry = registry if registry is not None else CollectorRegistry()
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.api_requests = Counter(
            PREFIX + "api_requests",
            "Requests to the Tencent REST API by action and result code: the vendor's ErrorCode (0 is "
            "success) when it is in callback-monitor's table, other for any other ErrorCode, or "
            "http_<status>, timeout, network, invalid_response when no envelope was read. Every retry "
            "is a request of its own.",
            ["action", "code"],
            registry=self.registry,
        )
        self.api_duration = Histogram(
            PREFIX + "api_request_duration_seconds",
            "Time from sending a Tencent API request to having its answer (or giving up), by action.",
            ["action"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        build_info = Gauge(
            PREFIX + "build_info",
            "Always 1; the version label says which callback-monitor build is running.",
            ["version"],
            registry=self.registry,
        )
        build_info.labels(version).set(1)
        self.remediations = Counter(
            PREFIX + "remediations",
            "Self-heal outcomes. applied and failed count writes (failed: the write or the read-back "
            "failed, or the read-back still differs); gave_up counts the times self-heal stopped after "
            "remediate_max_failures failures in a row (it resumes once the app is in sync again or its "
            "desired state changes); contested counts the times it stood back from another writer "
            "(remediate_max_reverts reverts within remediate_revert_window).",
            ["app", "sdkappid", "outcome"],
            registry=self.registry,
        )
        self.alerts_sent = Counter(
            PREFIX + "alerts_sent",
            "Alerts an alert sink accepted (HTTP 2xx), by sink (alertmanager, webhook). Alertmanager's "
            "resends of firing alerts count each time.",
            ["sink"],
            registry=self.registry,
        )
        self.alert_send_failures = Counter(
            PREFIX + "alert_send_failures",
            "Requests to an alert sink that failed (network error, timeout, or an answer other than "
            "2xx), by sink; each retry that fails counts again.",
            ["sink"],
            registry=self.registry,
        )
        self.alerts_dropped = Counter(
            PREFIX + "alerts_dropped",
            "Alerts a sink never delivered, by sink: pushed out of its full queue (oldest first), given "
            "up after the last retry, or still queued at shutdown. Alertmanager's periodic resends "
            "never count here: they repeat what the next resend repeats again.",
            ["sink"],
            registry=self.registry,
        )
        self.alert_queue_length = Gauge(
            PREFIX + "alert_queue_length",
            "Alerts waiting in a sink's queue (at most alerting.queue_size; Alertmanager's periodic "
            "resends wait beside it, not in it), by sink; it grows while the sink is down.",
            ["sink"],
            registry=self.registry,
        )
        self.accept_errors = Counter(
            PREFIX + "accept_errors",
            "Connections the HTTP server could not accept because the process or the system ran out "
            "of file descriptors or memory (logged at most once a minute).",
            registry=self.registry,
        )

    # The alert sinks' DeliveryObserver (monitor.delivery); a count of 0 creates the series.
    def count_alerts_sent(self, sink: str, count: int) -> None:
        self.alerts_sent.labels(sink).inc(count)

    def count_alert_send_failures(self, sink: str, count: int) -> None:
        self.alert_send_failures.labels(sink).inc(count)

    def count_alerts_dropped(self, sink: str, count: int) -> None:
        self.alerts_dropped.labels(sink).inc(count)

    def set_alert_queue_length(self, sink: str, length: int) -> None:
        self.alert_queue_length.labels(sink).set(length)

    def count_remediation(self, app: str, sdkappid: int, outcome: str) -> None:
        """Count one self-heal outcome: applied, failed, gave_up or contested."""
        self.remediations.labels(app, str(sdkappid), outcome).inc()

    def count_accept_error(self) -> None:
        self.accept_errors.inc()

    def observe_request(self, action: str, code: str, seconds: float) -> None:
        """Count one API request and its duration; the client calls this for every attempt.

        ``code`` comes from the vendor: a value outside ``KNOWN_CODES`` is counted as ``other`` (the
        client's log line keeps it), so no answer can add series without bound.
        """
        self.api_requests.labels(action, code if code in KNOWN_CODES else OTHER_CODE).inc()
        self.api_duration.labels(action).observe(seconds)

    def snapshot(self) -> Snapshot:
        """Copy what a scrape needs; call on the event loop, where the store is written."""
        return Snapshot.of(self.store)

    def render(self, snapshot: Snapshot | None = None) -> bytes:
        """The Prometheus text format (0.0.4) of everything, from ``snapshot`` (taken now if None)."""
        return self.expose(snapshot if snapshot is not None else self.snapshot()).body

    def expose(self, snapshot: Snapshot, accept: str = "", accept_encoding: str = "") -> Exposition:
        """The body and headers of a /metrics answer: OpenMetrics 1.0 when ``accept`` lists it, else
        the text format 0.0.4; gzip when ``accept_encoding`` allows it.

        The registry goes through prometheus_client's own encoders; the store is appended by
        ``snapshot_text``. CPU-bound (a few hundred ms at 10,000 apps): run it in a worker thread.
        """
        if wants_openmetrics(accept):
            head = generate_openmetrics(self.registry).removesuffix(_EOF)
            body = head + snapshot_text(snapshot, openmetrics=True).encode() + _EOF
            headers = {"Content-Type": OPENMETRICS_CONTENT_TYPE}
        else:
            body = generate_latest(self.registry) + snapshot_text(snapshot).encode()
            headers = {"Content-Type": TEXT_CONTENT_TYPE}
        if accepts_gzip(accept_encoding):
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        return Exposition(body, headers)
