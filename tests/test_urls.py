"""URL hosts as a WHATWG client sees them: policy checks the host it would connect to, shapes that two
parsers read differently are violations, and the display hides credentials but never the host."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import Policy, load_config_text
from monitor.drift import compare
from monitor.errors import ConfigError
from monitor.kinds import Kind
from monitor.redact import redact_text, redact_url
from monitor.tencent.model import CallbackConfig
from monitor.urls import authority_span, connect_host, host_allowed, problem, url_host_allowed

EVIL = "https://evil.net\\@hooks.example.com/cb"  # Python's urlsplit reads hooks.example.com
ALLOWED = ("hooks.example.com", "*.hooks.example.com")
CREATE = "Room.CallbackAfterCreateRoom"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://hooks.example.com/cb", "hooks.example.com"),
        ("https://HOOKS.Example.com:8443/cb", "hooks.example.com"),
        ("https://hooks.example.com./cb", "hooks.example.com."),
        ("https://hooks.example.com?x=@evil.net", "hooks.example.com"),
        ("https://hooks.example.com#@evil.net", "hooks.example.com"),
        (EVIL, "evil.net"),
        ("https:evil.net/cb", "evil.net"),
        ("https:\\\\evil.net/cb", "evil.net"),
        ("https:///evil.net/cb", "evil.net"),
        ("https:///cb", "cb"),
        ("https://user:p@ss@hooks.example.com/cb", "hooks.example.com"),
        ("https://hooks.example.com@evil.net/cb", "evil.net"),
        ("https://evil%2Enet/cb", "evil.net"),
        (" \thttps://hoo\nks.example.com/cb\x00 ", "hooks.example.com"),
        ("\x01https://evil.example.net/cb", "evil.example.net"),
        ("https://ev\til.exa\rmple.net/cb", "evil.example.net"),
        ("http:evil.example.net/cb", "evil.example.net"),
        ("ws:\\evil.example.net/cb", "evil.example.net"),
        ("https://Xample.com/cb", "xample.com"),
        ("https://[::1]]:8443/cb", "[::1]"),
        ("https://[::1]:8443/cb", "[::1]"),
        ("https://[::1/cb", None),
        ("foo://h.example.com\\@evil.net/x", "evil.net"),  # no delimiter in other schemes
        ("foo:h.example.com/x", None),
        ("https://", None),
        ("https://:443/cb", None),
        ("hooks.example.com/cb", None),
        ("", None),
    ],
)
def test_the_host_is_the_one_a_whatwg_client_connects_to(url: str, host: str | None) -> None:
    assert connect_host(url) == host


def test_the_authority_span_of_special_and_other_schemes() -> None:
    assert authority_span("https://u@h:1/p") == (8, 13)
    assert authority_span("HTTPS:\\/h/p") == (8, 9)
    assert authority_span("foo://h\\x/p") == (6, 9)
    assert authority_span("foo:h") is None
    assert authority_span("no scheme") is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://hooks.example.com/cb?a=b#c", None),
        ("http://127.0.0.1:8080", None),
        ("https://[::1]:65535/", None),
        ("https://hooks.example.com:65536/cb", "has a port out of range"),
        ("https://hooks.example.com:123456/cb", "has an ambiguous host or port"),
        ("https://[::g]/cb", "has an ambiguous host or port"),
        (EVIL, "contains a backslash"),
        ("https://hooks.example.com/a\\b", "contains a backslash"),
        ("https://hooks.example.com/a b", "contains white space or a control character"),
        ("https://hooks.example.com/\u202ecb", "contains white space or a control character"),
        ("https://hooks.example.com/\tcb", "contains white space or a control character"),
        ("https://user@hooks.example.com/cb", "carries user-info"),
        ("https://user@hooks.example.com", "carries user-info"),
        ("https://u:p@ss@hooks.example.com/cb", "carries user-info"),
        ("https:hooks.example.com/cb", "has no // after the scheme"),
        ("https:/hooks.example.com/cb", "has no // after the scheme"),
        ("https:///cb", "has no host"),
        ("https://:443/cb", "has no host"),
        ("https://evil%2Enet/cb", "has an ambiguous host or port"),
        ("https://evil\u3002net/cb", "has an ambiguous host or port"),
        ("https://hooks.example.com:44x/cb", "has an ambiguous host or port"),
        ("hooks.example.com/cb", "has no scheme"),
    ],
)
def test_urls_that_parsers_read_differently_have_a_problem(url: str, why: str | None) -> None:
    assert problem(url) == why


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("hooks.example.com", True),
        ("HOOKS.example.COM", True),
        ("hooks.example.com.", True),
        ("a.hooks.example.com", True),
        ("evilhooks.example.com", False),
        ("hooks.example.com.evil.net", False),
        ("hooks.example.com..", False),
    ],
)
def test_host_globs_match_whole_hosts_case_insensitively(host: str, allowed: bool) -> None:
    assert host_allowed(host, ALLOWED) is allowed


def test_no_globs_allow_any_host_and_any_url() -> None:
    assert host_allowed("anything", ())
    assert url_host_allowed("not a url", ())


def test_a_backslash_before_at_does_not_hide_the_real_host_from_the_allow_list() -> None:
    assert not url_host_allowed(EVIL, ALLOWED)
    assert not url_host_allowed("https:///cb", ALLOWED)
    assert url_host_allowed("https://hooks.example.com/cb", ALLOWED)


def test_drift_reports_both_violations_for_the_backslash_url() -> None:
    desired = CallbackConfig("https://hooks.example.com/cb", (CREATE,))
    policy = Policy(require_https=True, allowed_hosts=ALLOWED)
    verdict = compare(desired, CallbackConfig(EVIL, (CREATE,)), policy)
    assert [f.kind for f in verdict.findings] == [Kind.URL_MISMATCH, Kind.INSECURE_URL, Kind.HOST_NOT_ALLOWED]


@pytest.mark.parametrize(
    "live",
    ["https://bot@hooks.example.com/cb", "https://hooks.example.com/a b", "https:hooks.example.com/cb"],
)
def test_an_ambiguous_url_is_insecure_even_without_require_https(live: str) -> None:
    verdict = compare(None, CallbackConfig(live, (CREATE,)), Policy(require_https=False))
    assert [f.kind for f in verdict.findings] == [Kind.CONFIG_PRESENT, Kind.INSECURE_URL]


def test_the_display_hides_credentials_but_never_the_host() -> None:
    assert redact_url(EVIL) == EVIL
    assert redact_url("https://u:p@ss@hooks.example.com/cb") == "https://REDACTED@hooks.example.com/cb"
    assert redact_url("https:u:pw@evil.net/cb?t=1") == "https:REDACTED@evil.net/cb?t=REDACTED"
    assert redact_text(f"posting to {EVIL} failed") == f"posting to {EVIL} failed"
    assert (
        redact_text("to https://u:p@ss@hooks.example.com/cb now")
        == "to https://REDACTED@hooks.example.com/cb now"
    )


@given(st.text(alphabet="ab:/\\@?#.%[]", max_size=30))
def test_the_display_keeps_the_connect_host(url: str) -> None:
    """Whatever the URL, the host a client would reach is still in what a person reads."""
    host = connect_host(url)
    if host is not None and "%" not in url:
        assert host in redact_url(url).lower()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (EVIL, "contains a backslash"),
        ("https://bot@hooks.example.com/cb", "carries user-info"),
        ("https://hooks.example.com/a\\b", "contains a backslash"),
        ("https://evil%2Enet/cb", "has an ambiguous host or port"),
    ],
)
def test_a_desired_url_that_parsers_read_differently_is_a_config_error(url: str, why: str) -> None:
    text = (
        "version: 1\n"
        "apps:\n"
        "  - name: a\n"
        "    sdkappid: 1400000001\n"
        "    region: singapore\n"
        "    secret_key_env: KEY\n"
        f"    callback: {{url: '{url}', commands: [{CREATE}]}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ={"KEY": "k" * 32})
    messages = [p.message for p in caught.value.problems]
    assert any(m.startswith(why) for m in messages), messages
    assert not any("bot" in m for m in messages)


def test_the_module_has_no_dependencies_on_the_monitor() -> None:
    """A base module: it imports nothing of the monitor."""
    source = Path(__file__).resolve().parents[1].joinpath("monitor", "urls.py").read_text(encoding="utf-8")
    assert "from monitor" not in source
    assert "import monitor" not in source
