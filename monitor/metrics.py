"""Prometheus metrics: a private registry, and a collector that renders app state at scrape time.

Per-app series are never stored in metric objects: they are built from a snapshot of
``store.states`` when Prometheus asks, so an app removed by a reload disappears from the next scrape
and nothing can drift out of step with the state the status page shows. At 10,000 apps a scrape
holds about 230,000 samples; the text format is written straight from the snapshot (byte-identical
to what ``generate_latest`` would print, which the tests check) because going through one
``Sample`` object per line is more than ten times slower. Callers take the snapshot on the event loop and
render it in a worker thread.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from monitor.drift import DRIFT_KINDS, POLICY_KINDS, config_fingerprint
from monitor.errors import REASONS
from monitor.state import AppState
from monitor.store import Store

PREFIX = "callback_monitor_"
# Healthy calls take tens to hundreds of milliseconds and a struggling backend a few seconds; the
# top buckets catch what is left before the client's timeout.
DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_Type = Literal["gauge", "counter"]


@dataclass(frozen=True)
class _Family:
    """One per-app metric family: its exposed name (counters with ``_total``), type, help and extra label."""

    name: str
    type: _Type
    help: str
    label: str = ""  # the third label, after app and sdkappid
    values: tuple[str, ...] = ()  # every value of that label, always all of them


_DRIFT = tuple(k.value for k in DRIFT_KINDS)
_POLICY = tuple(k.value for k in POLICY_KINDS)

# In the order they are exposed; _row() computes one app's values in the same order.
FAMILIES: tuple[_Family, ...] = (
    _Family(
        PREFIX + "check_success",
        "gauge",
        "1 if the last check of this app reached a verdict (the live callback config was read and "
        "compared), 0 if it failed; absent until the first check ends. "
        "Why checks fail: callback_monitor_check_failures_total.",
    ),
    _Family(
        PREFIX + "in_sync",
        "gauge",
        "1 if the last verdict found nothing that counts (kinds in the app's ignore list do not), 0 if "
        "it found drift or a policy violation; absent until the first verdict. A failed check keeps "
        "the previous verdict.",
    ),
    _Family(
        PREFIX + "drift",
        "gauge",
        "1 for each kind of drift the last verdict found, else 0 (ignored kinds are 0): config_missing, "
        "config_present, url_mismatch, missing_commands, unexpected_commands. Every kind is present "
        "from the first verdict on.",
        "kind",
        _DRIFT,
    ),
    _Family(
        PREFIX + "policy_violation",
        "gauge",
        "1 for each policy the live callback URL violates, else 0: insecure_url (not https while "
        "require_https is on), host_not_allowed (host matches no allowed_hosts glob). Present from the "
        "first verdict on.",
        "policy",
        _POLICY,
    ),
    _Family(
        PREFIX + "last_check_timestamp_seconds",
        "gauge",
        "Unix time the last check of this app ended, verdict or not; absent until the first check ends. "
        "time() minus this growing past the interval means checks have stalled.",
    ),
    _Family(
        PREFIX + "last_success_timestamp_seconds",
        "gauge",
        "Unix time the last verdict on this app was reached; absent until the first. time() minus this "
        "is the age of what callback_monitor_in_sync says.",
    ),
    _Family(
        PREFIX + "observed_config_hash",
        "gauge",
        "A stable 48-bit number derived from the live callback URL and command set (order and alias "
        "spelling ignored), 0 when the app has no callback; absent until the first verdict. "
        "changes() over it counts edits of the live config.",
    ),
    _Family(
        PREFIX + "checks_total",
        "counter",
        "Checks of this app run since it was loaded, whatever their outcome.",
    ),
    _Family(
        PREFIX + "check_failures_total",
        "counter",
        "Checks of this app that reached no verdict, by error reason (timeout, network, http_status, "
        "invalid_response, server_error, rate_limited, auth, permission, app_invalid, bad_request, "
        "resource_exhausted, internal).",
        "reason",
        REASONS,
    ),
)

# How prometheus_client prints a value (Go's %g-like rules); the library leaves it untyped.
_go_float = cast(Callable[[float], str], floatToGoString)
_ONE, _ZERO = _go_float(1.0), _go_float(0.0)
_EOF = b"# EOF\n"


@dataclass(frozen=True)
class Snapshot:
    """What one scrape shows, copied from the store on the event loop (cheap: references only)."""

    states: tuple[AppState, ...]
    config_digest: str | None
    reload_successful: bool
    reload_last_success: float | None

    @classmethod
    def of(cls, store: Store) -> Snapshot:
        return cls(
            states=tuple(store.states.values()),
            config_digest=store.config.digest if store.config is not None else None,
            reload_successful=store.reload.successful,
            reload_last_success=store.reload.last_success,
        )


# One app's values, one entry per family: None (absent), a float, or a tuple over the label values.
_Row = tuple[float | tuple[float, ...] | None, ...]


def _row(state: AppState) -> _Row:
    verdict = state.verdict
    success: float | None = None
    if state.last_check is not None:
        success = 1.0 if verdict is not None and not state.stale else 0.0
    drift: tuple[float, ...] | None = None
    policy: tuple[float, ...] | None = None
    in_sync: float | None = None
    observed_hash: float | None = None
    if verdict is not None:
        counted = {f.kind.value for f in verdict.counted}
        drift = tuple(1.0 if k in counted else 0.0 for k in _DRIFT)
        policy = tuple(1.0 if k in counted else 0.0 for k in _POLICY)
        in_sync = 0.0 if counted else 1.0
        observed_hash = float(config_fingerprint(verdict.observed))
    failures = state.failures_by_reason
    return (
        success,
        in_sync,
        drift,
        policy,
        state.last_check,
        state.last_success if verdict is not None else None,
        observed_hash,
        float(state.checks),
        tuple(float(failures.get(r, 0)) for r in REASONS),
    )


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def app_families(states: Iterable[AppState]) -> list[Metric]:
    """The per-app families as prometheus_client metric objects (the generic, slower path)."""
    out: list[GaugeMetricFamily | CounterMetricFamily] = []
    for family in FAMILIES:
        labels = ["app", "sdkappid", family.label] if family.label else ["app", "sdkappid"]
        maker = GaugeMetricFamily if family.type == "gauge" else CounterMetricFamily
        out.append(maker(family.name, family.help, labels=labels))
    for state in states:
        ident = [state.identity.name, str(state.identity.sdkappid)]
        for metric, family, value in zip(out, FAMILIES, _row(state), strict=True):
            if value is None:
                continue
            if isinstance(value, tuple):
                for label_value, v in zip(family.values, value, strict=True):
                    metric.add_metric([*ident, label_value], v)
            else:
                metric.add_metric(ident, value)
    return list(out)


def _fmt(value: float) -> str:
    return _ONE if value == 1.0 else _ZERO if value == 0.0 else _go_float(value)


def app_text(states: Iterable[AppState], *, openmetrics: bool = False) -> str:
    """The per-app families as ``generate_latest`` prints them (OpenMetrics 1.0 without ``# EOF``).

    Only strings outlive an app's turn, so a scrape leaves the cyclic garbage collector nothing to
    chase: a full collection among 10,000 app states would stall every thread, the event loop's too.
    """
    middles = [[f'{f.label}="{_escape(v)}",' for v in f.values] for f in FAMILIES]
    starts = [f.name + "{" for f in FAMILIES]
    lines: list[list[str]] = [[] for _ in FAMILIES]
    for state in states:
        # Labels print sorted by name: app, then kind/policy/reason, then sdkappid.
        head = f'app="{_escape(state.identity.name)}",'
        tail = f'sdkappid="{state.identity.sdkappid}"}} '
        for value, start, middle, put in zip(_row(state), starts, middles, lines, strict=True):
            if value is None:
                continue
            if isinstance(value, tuple):
                put.append(
                    "".join(f"{start}{head}{m}{tail}{_fmt(v)}\n" for m, v in zip(middle, value, strict=True))
                )
            else:
                put.append(f"{start}{head}{tail}{_fmt(value)}\n")
    out: list[str] = []
    for family, family_lines in zip(FAMILIES, lines, strict=True):
        help_text = family.help.replace("\\", r"\\").replace("\n", r"\n")
        name = family.name
        if openmetrics:
            # OpenMetrics names a counter family without its _total and escapes quotes in HELP.
            help_text = help_text.replace('"', r"\"")
            name = name.removesuffix("_total") if family.type == "counter" else name
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {family.type}\n")
        out.extend(family_lines)
    return "".join(out)


def config_hash(digest: str) -> int:
    """The first 48 bits of the config file's sha256 (hex) as a number: a float64 holds it exactly."""
    try:
        return int(digest[:12], 16)
    except ValueError:
        return int.from_bytes(hashlib.sha256(digest.encode()).digest()[:6], "big")


def store_families(snapshot: Snapshot) -> list[Metric]:
    """The process-wide families that describe the store: app count and config reload state."""
    apps = GaugeMetricFamily(
        PREFIX + "apps", "Apps this replica checks (its shard of the config file).", len(snapshot.states)
    )
    reload_ok = GaugeMetricFamily(
        PREFIX + "config_last_reload_successful",
        "1 if the last attempt to load the config file succeeded, 0 if the file was rejected "
        "(the previous config keeps running; the log and the status page say why).",
        1.0 if snapshot.reload_successful else 0.0,
    )
    out: list[Metric] = [apps, reload_ok]
    reload_time = GaugeMetricFamily(
        PREFIX + "config_last_reload_success_timestamp_seconds",
        "Unix time the config file was last loaded successfully.",
    )
    if snapshot.reload_last_success is not None:
        reload_time.add_metric([], snapshot.reload_last_success)
    out.append(reload_time)
    digest = GaugeMetricFamily(
        PREFIX + "config_hash",
        "The first 48 bits of the SHA-256 of the loaded config file, as a number; replicas that "
        "show different values run different files.",
    )
    if snapshot.config_digest:
        digest.add_metric([], float(config_hash(snapshot.config_digest)))
    out.append(digest)
    return out


class _StoreCollector:
    """Renders the store into families when a registry is collected (from the event loop thread)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        snapshot = Snapshot.of(self._store)
        yield from store_families(snapshot)
        yield from app_families(snapshot.states)

    def describe(self) -> Iterator[Metric]:
        yield from store_families(Snapshot((), None, True, None))
        yield from app_families(())


class _Frozen:
    """A collector over fixed families, so that encoders can run on a snapshot."""

    def __init__(self, collectors: Sequence[Collector], families: Sequence[Metric]) -> None:
        self._collectors = collectors
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()
        yield from self._families


@dataclass(frozen=True)
class Exposition:
    body: bytes
    headers: dict[str, str]


class Metrics:
    """The private registry: API instruments, process collectors and the store rendered per scrape."""

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
        self._instruments: list[Collector] = []
        if process:
            self._instruments += [
                ProcessCollector(registry=self.registry),
                PlatformCollector(registry=self.registry),
                GCCollector(registry=self.registry),
            ]
        self.api_requests = Counter(
            PREFIX + "api_requests",
            "Requests to the Tencent REST API by action and result code: the vendor's ErrorCode (0 is "
            "success), or http_<status>, timeout, network, invalid_response when no envelope was read. "
            "Every retry is a request of its own.",
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
            "desired state changes).",
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
            "up after the last retry, or still queued at shutdown.",
            ["sink"],
            registry=self.registry,
        )
        self.alert_queue_length = Gauge(
            PREFIX + "alert_queue_length",
            "Alerts waiting in a sink's queue (at most alerting.queue_size, plus Alertmanager's "
            "periodic resends), by sink; it grows while the sink is down.",
            ["sink"],
            registry=self.registry,
        )
        self._instruments += [
            self.api_requests,
            self.api_duration,
            build_info,
            self.remediations,
            self.alerts_sent,
            self.alert_send_failures,
            self.alerts_dropped,
            self.alert_queue_length,
        ]
        self.registry.register(_StoreCollector(store))

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
        """Count one self-heal outcome: applied, failed or gave_up."""
        self.remediations.labels(app, str(sdkappid), outcome).inc()

    def observe_request(self, action: str, code: str, seconds: float) -> None:
        """Count one API request and its duration; the client calls this for every attempt."""
        self.api_requests.labels(action, code).inc()
        self.api_duration.labels(action).observe(seconds)

    def snapshot(self) -> Snapshot:
        """Copy what a scrape needs; call on the event loop, where the store is written."""
        return Snapshot.of(self.store)

    def render(self, snapshot: Snapshot | None = None) -> bytes:
        """The Prometheus text format (0.0.4) of everything, from ``snapshot`` (taken now if None)."""
        return self.expose(snapshot if snapshot is not None else self.snapshot()).body

    def expose(self, snapshot: Snapshot, accept: str = "", accept_encoding: str = "") -> Exposition:
        """The body and headers of a /metrics answer, negotiated as prometheus_client does.

        CPU-bound (half a second at 10,000 apps); run it in a worker thread.
        """
        encoder, content_type = choose_encoder(accept)
        # Metric and label names are all legacy-valid, so every escaping scheme prints them alike.
        text = encoder(_Frozen(self._instruments, store_families(snapshot)))
        if content_type.startswith("application/openmetrics-text"):
            text = text.removesuffix(_EOF) + app_text(snapshot.states, openmetrics=True).encode() + _EOF
        else:
            text += app_text(snapshot.states).encode()
        headers = {"Content-Type": content_type}
        if gzip_accepted(accept_encoding):
            text = gzip.compress(text, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        return Exposition(text, headers)
