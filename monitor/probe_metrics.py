"""Metrics of receiver probes: per-app endpoint families rendered at scrape time, failures by phase."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitor.probe_model import Phase, ProbeResult

PREFIX = "callback_monitor_endpoint_"
LABELS = ("app", "sdkappid")


@dataclass(frozen=True)
class EndpointRow:
    """What one app's probes say now: the latest result and the latest certificate date seen."""

    app: str
    sdkappid: int
    up: bool
    duration: float
    status: int  # 0 when no status line came back
    cert_not_after: float | None  # None for plain http, or before any handshake succeeded

    @classmethod
    def of(cls, app: str, sdkappid: int, history: Sequence[ProbeResult]) -> EndpointRow | None:
        """The row for ``history`` (oldest first); None before the first probe."""
        if not history:
            return None
        latest = history[-1]
        not_after = next((r.cert_not_after for r in reversed(history) if r.cert_not_after is not None), None)
        if latest.cert_problem is not None or not latest.url.lower().startswith("https:"):
            not_after = None
        return cls(app, sdkappid, latest.up, latest.total, latest.status or 0, not_after)


def endpoint_families(rows: Iterable[EndpointRow]) -> list[Metric]:
    """The per-app endpoint families; apps without probes have no row and so no series."""
    up = GaugeMetricFamily(
        PREFIX + "up",
        "1 if the last probe of this app's desired callback URL found the receiver up (resolved, allowed "
        "address, connected, TLS verified, status as expected), else 0. Only apps with probes on.",
        labels=LABELS,
    )
    expiry = GaugeMetricFamily(
        PREFIX + "cert_expiry_timestamp_seconds",
        "Unix time of the earliest notAfter in the receiver's verified certificate chain, from the last "
        "handshake that succeeded; absent for plain http and while the certificate is refused.",
        labels=LABELS,
    )
    duration = GaugeMetricFamily(
        PREFIX + "probe_duration_seconds",
        "Seconds the last probe of this app's receiver took, every phase together.",
        labels=LABELS,
    )
    status = GaugeMetricFamily(
        PREFIX + "http_status",
        "The HTTP status code of the receiver's last answer to a probe; 0 when none came back.",
        labels=LABELS,
    )
    for row in rows:
        labels = [row.app, str(row.sdkappid)]
        up.add_metric(labels, 1.0 if row.up else 0.0)
        if row.cert_not_after is not None:
            expiry.add_metric(labels, row.cert_not_after)
        duration.add_metric(labels, row.duration)
        status.add_metric(labels, float(row.status))
    return [up, expiry, duration, status]


class ProbeCounts:
    """Probes run and failed, by phase, across every app (one probe of a shared URL counts once)."""

    def __init__(self) -> None:
        self.probes = 0
        self.failures: dict[Phase, int] = dict.fromkeys(Phase, 0)

    def count(self, result: ProbeResult) -> None:
        self.probes += 1
        if result.phase is not None:
            self.failures[result.phase] += 1

    def families(self) -> list[Metric]:
        probes = CounterMetricFamily(
            PREFIX + "probes", "Receiver probes run since start (one per shared URL and interval)."
        )
        probes.add_metric([], float(self.probes))
        failures = CounterMetricFamily(
            PREFIX + "probe_failures",
            "Receiver probes that failed, by the phase that failed: dns, address (resolved to a "
            "forbidden address), connect, tls, request, response, status (unexpected HTTP status).",
            labels=("phase",),
        )
        for phase, count in self.failures.items():
            failures.add_metric([phase.value], float(count))
        return [probes, failures]


class EndpointCollector:
    """Renders the probes' state when a registry is collected: ``rows`` is read at each scrape."""

    def __init__(
        self,
        rows: Callable[[], Iterable[EndpointRow]],
        counts: ProbeCounts,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self._rows = rows
        self._counts = counts
        self._active = active

    def collect(self) -> Iterator[Metric]:
        """Nothing at all while no app has probes on (and none ever ran): the families are opt-in."""
        if not self._active() and not self._counts.probes:
            return
        yield from endpoint_families(self._rows())
        yield from self._counts.families()

    def describe(self) -> Iterator[Metric]:
        yield from endpoint_families(())
        yield from self._counts.families()
