"""The pure judgement of probe results, the address rule and the expect_status reader (no event loop)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.kinds import Kind
from monitor.probe_address import forbidden_reason
from monitor.probe_eval import consecutive_failures, evaluate
from monitor.probe_model import (
    CertProblem,
    Phase,
    ProbeResult,
    ProbeSettings,
    StatusRange,
    parse_expect_status,
)

URL = "https://hooks.example.com/tencent/room?token=abc"
NOW = 1_800_000_000.0
DAY = 86400.0
ON = ProbeSettings(enabled=True)


def up(not_after: float | None = NOW + 90 * DAY) -> ProbeResult:
    return ProbeResult(url=URL, started=NOW, total=0.1, status=204, cert_not_after=not_after)


def down(phase: Phase = Phase.CONNECT, error: str = "no connection: 192.0.2.7:443: refused") -> ProbeResult:
    return ProbeResult(url=URL, started=NOW, total=0.1, phase=phase, error=error)


def refused(problem: CertProblem) -> ProbeResult:
    return ProbeResult(
        url=URL, started=NOW, total=0.1, phase=Phase.TLS, error="certificate refused: x", cert_problem=problem
    )


def kinds(history: list[ProbeResult], settings: ProbeSettings = ON, now: float = NOW) -> list[str]:
    return [f.kind.value for f in evaluate(history, settings, now)]


def test_a_healthy_receiver_has_no_finding() -> None:
    assert kinds([up(), up()]) == []


def test_unreachable_only_after_failures_before_alert_probes_in_a_row() -> None:
    assert kinds([down(), down()]) == []
    assert kinds([down(), down(), down()]) == ["endpoint_unreachable"]
    assert kinds([down(), down(), up(), down(), down()]) == []
    assert kinds([down()], replace(ON, failures_before_alert=1)) == ["endpoint_unreachable"]


def test_the_unreachable_finding_names_the_failing_phase_and_the_count() -> None:
    history = [down(), down(Phase.DNS, "x.invalid does not resolve"), down(Phase.STATUS, "answered 503")]
    (finding,) = evaluate(history, ON, NOW)
    assert finding.kind == Kind.ENDPOINT_UNREACHABLE
    assert finding.severity == "critical"
    assert finding.phase == Phase.STATUS
    assert finding.failures == 3
    assert finding.observed == "status failed: answered 503 (3 probes in a row)"
    assert finding.desired == URL


@pytest.mark.parametrize(
    ("problem", "words"),
    [
        (CertProblem.EXPIRED, "certificate expired: "),
        (CertProblem.NOT_YET_VALID, "certificate not valid yet: "),
        (CertProblem.WRONG_HOST, "certificate not valid for the host: "),
        (CertProblem.UNTRUSTED, "certificate not trusted: "),
    ],
)
def test_a_refused_certificate_is_invalid_at_once_and_not_also_unreachable(
    problem: CertProblem, words: str
) -> None:
    findings = evaluate([refused(problem)] * 5, ON, NOW)
    assert [(f.kind.value, f.severity, f.cert_problem) for f in findings] == [
        ("endpoint_cert_invalid", "critical", problem)
    ]
    assert findings[0].observed == words + "x"


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [
        (90, None),
        (14.01, None),
        (13.9, "warning"),
        (10, "warning"),
        (3.01, "warning"),
        (2.99, "critical"),
        (2, "critical"),
    ],
)
def test_expiry_is_a_warning_within_cert_warning_and_critical_within_cert_critical(
    days_left: float, expected: str | None
) -> None:
    findings = evaluate([up(NOW + days_left * DAY)], ON, NOW)
    assert [f.severity for f in findings] == ([expected] if expected else [])
    if expected:
        assert findings[0].kind == Kind.ENDPOINT_CERT_EXPIRING
        assert findings[0].cert_not_after == NOW + days_left * DAY


def test_the_expiry_words_give_the_date_and_days_left() -> None:
    (finding,) = evaluate([up(NOW + 2 * DAY)], ON, NOW)
    assert finding.observed == "certificate chain expires 2027-01-17T08:00:00Z (in 2.0 days)"


def test_expiry_is_judged_from_the_last_certificate_seen_while_the_receiver_is_down() -> None:
    history = [up(NOW + 2 * DAY), down(), down()]
    assert kinds(history) == ["endpoint_cert_expiring"]
    assert kinds([*history, down()]) == ["endpoint_unreachable", "endpoint_cert_expiring"]


def test_a_newer_refused_certificate_hides_an_older_expiry_date() -> None:
    assert kinds([up(NOW + 2 * DAY), refused(CertProblem.EXPIRED)]) == ["endpoint_cert_invalid"]


def test_plain_http_never_has_a_certificate_finding() -> None:
    assert kinds([up(None)] * 3) == []


def test_ignored_kinds_are_found_and_marked() -> None:
    findings = evaluate([down()] * 3, ON, NOW, ignore=frozenset({"endpoint_unreachable"}))
    assert [(f.kind.value, f.ignored) for f in findings] == [("endpoint_unreachable", True)]


def test_probes_off_or_no_result_yet_finds_nothing() -> None:
    assert kinds([down()] * 5, replace(ON, enabled=False)) == []
    assert kinds([]) == []


@given(st.lists(st.booleans(), max_size=30))
def test_consecutive_failures_counts_the_failed_tail(outcomes: list[bool]) -> None:
    history = [up() if ok else down() for ok in outcomes]
    tail = 0
    for ok in reversed(outcomes):
        if ok:
            break
        tail += 1
    assert consecutive_failures(history) == tail


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1%eth0", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),  # noqa: S104 (an address judged, never bound)
        ("::", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("100.64.0.1", "not a globally reachable address"),
        ("2002:7f00:1::1", "a loopback address"),
        ("not-an-address", "not an IP address"),
        ("8.8.8.8", None),
        ("::ffff:8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_forbidden_addresses(address: str, reason: str | None) -> None:
    assert forbidden_reason(address) == reason


@pytest.mark.parametrize(
    ("value", "ranges"),
    [
        ("<500", [(100, 499)]),
        ("< 400", [(100, 399)]),
        (204, [(204, 204)]),
        ("204", [(204, 204)]),
        ("2xx", [(200, 299)]),
        ("200-399", [(200, 399)]),
        ([204, "3xx", 200, "2xx"], [(200, 200), (200, 299), (204, 204), (300, 399)]),
    ],
)
def test_expect_status_forms(value: object, ranges: list[tuple[int, int]]) -> None:
    assert [(r.low, r.high) for r in parse_expect_status(value)] == ranges


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("600", "'600' is not a status code or range"),
        (99, "99 is not an HTTP status code (100-599)"),
        ("399-200", "'399-200' is an empty range: 399 is above 200"),
        ("<100", "'<100' matches no HTTP status code"),
        ([], "must not be empty"),
        (True, "True is not a status code or range"),
        ("ok", "'ok' is not a status code or range"),
    ],
)
def test_expect_status_refuses_what_is_not_a_status(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_expect_status(value)


def test_expects_uses_every_range() -> None:
    settings = replace(ON, expect_status=(StatusRange(204, 204), StatusRange(300, 399)))
    assert [settings.expects(code) for code in (200, 204, 302, 404)] == [False, True, True, False]


@given(
    st.one_of(st.text(max_size=12), st.integers(), st.lists(st.one_of(st.text(max_size=8), st.integers())))
)
def test_expect_status_raises_nothing_but_value_error(value: object) -> None:
    try:
        ranges = parse_expect_status(value)
    except ValueError:
        return
    assert ranges
    assert all(100 <= r.low <= r.high <= 599 for r in ranges)
