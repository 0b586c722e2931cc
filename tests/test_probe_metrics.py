"""The endpoint metrics, as Prometheus reads them."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.probe_metrics import EndpointCollector, EndpointRow, ProbeCounts
from monitor.probe_model import CertProblem, Phase, ProbeResult

HTTPS = "https://hooks.example.com/room?token=abc"
HTTP = "http://hooks.example.com/room"


def result(url: str = HTTPS, **fields: object) -> ProbeResult:
    return ProbeResult(url=url, started=0.0, total=0.25, **fields)  # type: ignore[arg-type]


def render(rows: list[EndpointRow], counts: ProbeCounts | None = None) -> str:
    registry = CollectorRegistry()
    registry.register(EndpointCollector(lambda: rows, counts or ProbeCounts()))
    return generate_latest(registry).decode()


def test_an_https_receiver_that_is_up_has_all_four_series() -> None:
    row = EndpointRow.of("prod", 1400000001, [result(status=204, cert_not_after=1_900_000_000.0)])
    assert row is not None
    text = render([row])
    assert 'callback_monitor_endpoint_up{app="prod",sdkappid="1400000001"} 1.0' in text
    assert (
        'callback_monitor_endpoint_cert_expiry_timestamp_seconds{app="prod",sdkappid="1400000001"} 1.9e+09'
        in text
    )
    assert 'callback_monitor_endpoint_probe_duration_seconds{app="prod",sdkappid="1400000001"} 0.25' in text
    assert 'callback_monitor_endpoint_http_status{app="prod",sdkappid="1400000001"} 204.0' in text


def test_plain_http_has_no_certificate_series_and_no_status_is_zero() -> None:
    row = EndpointRow.of("plain", 7, [result(HTTP, phase=Phase.CONNECT, error="refused")])
    assert row == EndpointRow("plain", 7, up=False, duration=0.25, status=0, cert_not_after=None)
    text = render([row])
    assert 'callback_monitor_endpoint_up{app="plain",sdkappid="7"} 0.0' in text
    assert 'callback_monitor_endpoint_http_status{app="plain",sdkappid="7"} 0.0' in text
    assert "callback_monitor_endpoint_cert_expiry_timestamp_seconds{" not in text


def test_the_last_certificate_date_stays_while_the_receiver_is_down_but_not_once_refused() -> None:
    history = [result(status=204, cert_not_after=1_900_000_000.0), result(phase=Phase.CONNECT)]
    row = EndpointRow.of("a", 1, history)
    assert row is not None
    assert row.cert_not_after == 1_900_000_000.0
    refused = result(phase=Phase.TLS, cert_problem=CertProblem.EXPIRED)
    row = EndpointRow.of("a", 1, [*history, refused])
    assert row is not None
    assert row.cert_not_after is None


def test_no_probe_yet_means_no_row() -> None:
    assert EndpointRow.of("a", 1, []) is None


def test_failures_are_counted_by_phase_with_every_phase_present() -> None:
    counts = ProbeCounts()
    for phase in (None, Phase.DNS, Phase.DNS, Phase.STATUS):
        counts.count(result(phase=phase))
    text = render([], counts)
    assert "callback_monitor_endpoint_probes_total 4.0" in text
    assert 'callback_monitor_endpoint_probe_failures_total{phase="dns"} 2.0' in text
    assert 'callback_monitor_endpoint_probe_failures_total{phase="status"} 1.0' in text
    for phase in ("address", "connect", "tls", "request", "response"):
        assert f'callback_monitor_endpoint_probe_failures_total{{phase="{phase}"}} 0.0' in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_exposition() -> None:
    rows = [
        EndpointRow("a", 1, up=True, duration=0.1, status=204, cert_not_after=1_900_000_000.0),
        EndpointRow("b", 2, up=False, duration=10.0, status=0, cert_not_after=None),
    ]
    counts = ProbeCounts()
    counts.count(result(phase=Phase.TLS))
    checked = subprocess.run(
        ["promtool", "check", "metrics"],
        input=render(rows, counts),
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
