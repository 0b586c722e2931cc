"""Pins of the drift comparison that a mutation would otherwise slip past: URLs with no authority or
that do not parse, the order and fields of findings, lookups, and the fingerprint of non-ASCII URLs."""

from __future__ import annotations

import pytest

from monitor.config import Policy, UnexpectedCommands
from monitor.drift import Finding, Verdict, compare, config_fingerprint, urls_equal
from monitor.kinds import Kind
from monitor.tencent.model import CallbackConfig

CREATE, DESTROY, ENTER = (
    "Room.CallbackAfterCreateRoom",
    "Room.CallbackAfterDestroyRoom",
    "Room.CallbackAfterMemberEnter",
)
UPDATE_OLD, UPDATE_NEW = "Room.CallbackUpdateRoomInfo", "Room.CallbackAfterUpdateRoomInfo"
URL = "https://hooks.example.com/cb"
STRICT = Policy(require_https=True, allowed_hosts=("hooks.example.com",))
HTTPS_ONLY = Policy(require_https=True)
OPEN = Policy(require_https=False)


def kinds(observed_url: str, policy: Policy, desired_url: str = URL) -> list[str]:
    desired = CallbackConfig(desired_url, (CREATE,))
    return [f.kind.value for f in compare(desired, CallbackConfig(observed_url, (CREATE,)), policy).findings]


@pytest.mark.parametrize(
    ("live", "policy", "expected"),
    [
        ("https:///cb", HTTPS_ONLY, ["url_mismatch", "insecure_url"]),
        ("https:///cb", STRICT, ["url_mismatch", "insecure_url", "host_not_allowed"]),
        ("https:///cb", OPEN, ["url_mismatch", "insecure_url"]),
        ("https://hooks.example.com:99999/cb", HTTPS_ONLY, ["url_mismatch", "insecure_url"]),
        ("https://hooks.example.com:99999/cb", STRICT, ["url_mismatch", "insecure_url"]),
        ("https://[::1/cb", HTTPS_ONLY, ["url_mismatch", "insecure_url"]),
        ("https://[::1/cb", STRICT, ["url_mismatch", "insecure_url", "host_not_allowed"]),
        ("http://hooks.example.com/cb", HTTPS_ONLY, ["url_mismatch", "insecure_url"]),
        ("http://hooks.example.com/cb", OPEN, ["url_mismatch"]),
        ("HTTPS://hooks.example.com/cb", HTTPS_ONLY, []),
        ("https://HOOKS.example.com:443/cb", STRICT, []),
        ("https://evil.example.net/cb", HTTPS_ONLY, ["url_mismatch"]),
        ("https://evil.example.net/cb", STRICT, ["url_mismatch", "host_not_allowed"]),
    ],
)
def test_live_urls_without_a_usable_authority_are_policy_violations(
    live: str, policy: Policy, expected: list[str]
) -> None:
    assert kinds(live, policy) == expected


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("https://h.example.com/cb", "https://h.example.com/cb", True),
        ("https://h.example.com:443/cb", "HTTPS://H.EXAMPLE.COM/cb", True),
        ("http://h.example.com:80/cb", "http://h.example.com/cb", True),
        ("http://h.example.com:443/cb", "http://h.example.com/cb", False),
        ("https://h.example.com:8443/cb", "https://h.example.com/cb", False),
        ("https://h.example.com/cb", "https://h.example.com/CB", False),
        ("https://h.example.com/cb?a=1", "https://h.example.com/cb?a=2", False),
        ("https://h.example.com/cb#a", "https://h.example.com/cb#b", False),
        ("https://u@h.example.com/cb", "https://v@h.example.com/cb", False),
        ("https://h.example.com/cb", "http://h.example.com/cb", False),
        ("https://h.example.com:99999/cb", "https://h.example.com:99999/cb", True),
        ("https://h.example.com:99999/cb", "https://h.example.com:99999/cb/", False),
        ("https:///cb", "https:///CB", False),
        ("h.example.com/cb", "H.example.com/cb", False),
        ("foo://h.example.com/cb", "FOO://H.example.com/cb", True),
        ("https:h.example.com/cb", "HTTPS:h.example.com/cb", False),
        ("https://@h.example.com/cb", "https://h.example.com/cb", False),
        ("https://a@b@h.example.com/cb", "https://a@c@h.example.com/cb", False),
        ("https://u@/cb", "https://u@xxxx/cb", False),
    ],
)
def test_url_equality(a: str, b: str, equal: bool) -> None:
    assert urls_equal(a, b) is equal
    assert urls_equal(b, a) is equal


def test_findings_carry_both_urls_and_the_commands_in_their_own_spelling() -> None:
    desired = CallbackConfig(URL, (CREATE, UPDATE_OLD, DESTROY))
    live = CallbackConfig("http://evil.example.net/x", (ENTER, CREATE, UPDATE_NEW))
    verdict = compare(desired, live, STRICT, frozenset({"unexpected_commands"}))
    assert verdict.findings == (
        Finding(Kind.URL_MISMATCH, URL, "http://evil.example.net/x"),
        Finding(Kind.MISSING_COMMANDS, URL, "http://evil.example.net/x", missing=(DESTROY,)),
        Finding(
            Kind.UNEXPECTED_COMMANDS, URL, "http://evil.example.net/x", unexpected=(ENTER,), ignored=True
        ),
        Finding(Kind.INSECURE_URL, URL, "http://evil.example.net/x"),
        Finding(Kind.HOST_NOT_ALLOWED, URL, "http://evil.example.net/x"),
    )
    assert verdict.observed == live
    assert [f.kind for f in verdict.counted] == [
        Kind.URL_MISMATCH,
        Kind.MISSING_COMMANDS,
        Kind.INSECURE_URL,
        Kind.HOST_NOT_ALLOWED,
    ]
    assert not verdict.in_sync


def test_both_spellings_in_one_list_report_one_of_them() -> None:
    desired = CallbackConfig(URL, (CREATE,))
    live = CallbackConfig(URL, (UPDATE_NEW, CREATE, UPDATE_OLD))
    verdict = compare(desired, live, STRICT)
    assert [(f.kind, f.unexpected) for f in verdict.findings] == [(Kind.UNEXPECTED_COMMANDS, (UPDATE_NEW,))]


def test_unexpected_commands_can_be_ignored_by_policy() -> None:
    policy = Policy(require_https=True, unexpected_commands=UnexpectedCommands.IGNORE)
    verdict = compare(CallbackConfig(URL, (CREATE,)), CallbackConfig(URL, (CREATE, ENTER)), policy)
    assert verdict.findings == ()
    assert verdict.in_sync


def test_config_missing_and_present_carry_the_one_url_there_is() -> None:
    assert compare(CallbackConfig(URL, (CREATE,)), None, STRICT).findings == (
        Finding(Kind.CONFIG_MISSING, URL, None),
    )
    present = compare(None, CallbackConfig(URL, (CREATE,)), STRICT)
    assert present.findings == (Finding(Kind.CONFIG_PRESENT, None, URL),)
    assert compare(None, None, STRICT) == Verdict(findings=(), observed=None)


def test_a_finding_is_looked_up_by_its_kind() -> None:
    verdict = compare(
        CallbackConfig(URL, (CREATE,)), CallbackConfig("http://h.example.com/", (CREATE,)), STRICT
    )
    found = verdict.finding(Kind.INSECURE_URL)
    assert found is not None
    assert found.kind == Kind.INSECURE_URL
    assert verdict.finding(Kind.URL_MISMATCH) == Finding(Kind.URL_MISMATCH, URL, "http://h.example.com/")
    assert verdict.finding(Kind.CONFIG_MISSING) is None


def test_severity_and_policy_of_each_kind() -> None:
    """The callback config's kinds (the endpoint probe has kinds of its own, pinned elsewhere)."""
    names = ("config_missing", "config_present", "url_mismatch", "missing_commands", "unexpected_commands")
    names += ("insecure_url", "host_not_allowed")
    finding = {name: Finding(Kind(name), None, None) for name in names}
    assert {name: (f.severity, f.policy) for name, f in finding.items()} == {
        "config_missing": ("critical", False),
        "config_present": ("critical", False),
        "url_mismatch": ("critical", False),
        "missing_commands": ("warning", False),
        "unexpected_commands": ("warning", False),
        "insecure_url": ("critical", True),
        "host_not_allowed": ("critical", True),
    }


def test_the_fingerprint_of_a_non_ascii_url_is_pinned() -> None:
    """JSON of the URL as UTF-8, not as \\u escapes: changing that would change every dashboard."""
    assert config_fingerprint(CallbackConfig("https://hooks.example.com/ü", (CREATE,))) == 175312289829037
