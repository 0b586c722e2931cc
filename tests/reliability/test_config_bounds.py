"""Every number in the config has bounds: an absurd limit is refused with one clear problem.

``limits.requests_per_second: 1e-300`` once validated and ``serve`` then made one check, ever;
``queue_size``, ``remediate_after`` and ``error_threshold`` took ``10**30``; a desired URL could
name port 0.
"""

from __future__ import annotations

import pytest

from monitor.config import load_config_text
from monitor.errors import ConfigError

ENVIRON = {"TENCENT_KEY": "bounds-test-key-77c1a4"}
HUGE = "1000000000000000000000000000000"  # 10**30


def document(*, limits: str = "", defaults: str = "", app: str = "", alerting: str = "") -> str:
    return (
        "version: 1\n"
        f"limits: {{{limits}}}\n"
        f"alerting: {{{alerting}}}\n"
        "defaults:\n"
        "  endpoint: http://127.0.0.1:9\n"
        "  secret_key_env: TENCENT_KEY\n"
        '  callback: {url: "https://hooks.example.com/x", commands: [Room.CallbackAfterCreateRoom]}\n'
        f"{defaults}"
        "apps:\n"
        f"  - {{name: a, sdkappid: 1400000001{app}}}\n"
    )


def only_problem(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ=ENVIRON)
    (problem,) = caught.value.problems
    assert "\n" not in str(problem)
    return str(problem)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            document(limits="requests_per_second: 1.0e-300"),
            "limits.requests_per_second (line 2): must be at least 0.1 (a request every 10s), got 1e-300",
        ),
        (
            document(limits="requests_per_second: 0.09"),
            "limits.requests_per_second (line 2): must be at least 0.1 (a request every 10s), got 0.09",
        ),
        (
            document(limits="requests_per_second: 1.0e+300"),
            "limits.requests_per_second (line 2): must be at most 1000000, got 1e+300",
        ),
        (
            document(limits=f"concurrency: {HUGE}"),
            f"limits.concurrency (line 2): must be at most 10000, got {HUGE}",
        ),
        (
            document(alerting=f"queue_size: {HUGE}"),
            f"alerting.queue_size (line 3): must be at most 100000, got {HUGE}",
        ),
        (
            document(defaults=f"  error_threshold: {HUGE}\n"),
            f"defaults.error_threshold (line 8): must be at most 1000, got {HUGE}",
        ),
        (
            document(app=f", remediate_after: {HUGE}"),
            f"apps[0].remediate_after (line 9): must be at most 1000, got {HUGE}",
        ),
        (
            document(app=", remediate_max_failures: 1001"),
            "apps[0].remediate_max_failures (line 9): must be at most 1000, got 1001",
        ),
        (
            document(app=", timeout: 1.0e-300"),
            "apps[0].timeout (line 9): must be at least 1ms, got 1e-300s",
        ),
        (
            document(alerting="webhook: {url: 'https://hooks.example.com/a', timeout: 0.0001}"),
            "alerting.webhook.timeout (line 3): must be at least 1ms, got 0.0001s",
        ),
        (
            document(app=", callback: {url: 'https://hooks.example.com:0/x', commands: [Room.A]}"),
            "apps[0].callback.url (line 9): port 0 is not a port a server listens on: "
            "'https://hooks.example.com:0/x'",
        ),
        (
            document(app=", callback: {url: 'https://hooks.example.com:000/x', commands: [Room.A]}"),
            "apps[0].callback.url (line 9): port 0 is not a port a server listens on: "
            "'https://hooks.example.com:000/x'",
        ),
        (
            document(app=", callback: {url: 'https://u:p@hooks.example.com:0/x', commands: [Room.A]}"),
            "apps[0].callback.url (line 9): port 0 is not a port a server listens on: "
            "'https://REDACTED@hooks.example.com:0/x'",
        ),
        (
            document(alerting="alertmanager: {url: 'http://127.0.0.1:0'}"),
            "alerting.alertmanager.url (line 3): port 0 is not a port a server listens on: 'http://127.0.0.1:0'",
        ),
        (
            document(alerting="external_url: 'https://status.example.com:0/'"),
            "alerting.external_url (line 3): port 0 is not a port a server listens on: "
            "'https://status.example.com:0/'",
        ),
        (
            document(app=", endpoint: 'http://127.0.0.1:0'"),
            "apps[0].endpoint (line 9): port 0 is not a port a server listens on: 'http://127.0.0.1:0'",
        ),
    ],
)
def test_a_number_out_of_its_bounds_is_one_clear_problem(text: str, problem: str) -> None:
    assert only_problem(text) == problem


@pytest.mark.parametrize(
    "text",
    [
        document(limits="requests_per_second: 0.1, concurrency: 10000"),
        document(limits="requests_per_second: 1000000, concurrency: 1"),
        document(alerting="queue_size: 100000"),
        document(
            defaults="  error_threshold: 1000\n  remediate_after: 1000\n  remediate_max_failures: 1000\n"
        ),
        document(app=", timeout: 1ms, interval: 1s"),
        document(app=", callback: {url: 'https://hooks.example.com:65535/x', commands: [Room.A]}"),
        document(app=", callback: {url: 'https://hooks.example.com:1/x', commands: [Room.A]}"),
    ],
)
def test_a_number_at_its_bound_is_accepted(text: str) -> None:
    load_config_text(text, environ=ENVIRON)
