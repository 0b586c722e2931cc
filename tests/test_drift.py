"""The drift comparison: each finding kind, URL equality, policy, ignore, and its properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import Policy, UnexpectedCommands
from monitor.drift import compare, config_fingerprint, host_allowed, urls_equal
from monitor.kinds import DRIFT_KINDS, POLICY_KINDS, SEVERITY, Kind
from monitor.tencent.commands import KNOWN_COMMANDS
from monitor.tencent.model import CallbackConfig

URL = "https://hooks.example.com/tencent/room?token=s3cr3t"
CREATE, DESTROY, ENTER, LEAVE = (
    "Room.CallbackAfterCreateRoom",
    "Room.CallbackAfterDestroyRoom",
    "Room.CallbackAfterMemberEnter",
    "Room.CallbackAfterMemberLeave",
)
# config_fingerprint of https://hooks.example.com/cb with create and destroy, as first released.
PINNED = 184221345398692
OPEN = Policy(require_https=False, allowed_hosts=(), unexpected_commands=UnexpectedCommands.DRIFT)
STRICT = Policy(require_https=True, allowed_hosts=("hooks.example.com", "*.hooks.example.com"))


def cfg(url: str = URL, *commands: str) -> CallbackConfig:
    return CallbackConfig(url=url, commands=commands or (CREATE, DESTROY))


def kinds(
    desired: CallbackConfig | None, observed: CallbackConfig | None, policy: Policy = STRICT
) -> list[str]:
    return [f.kind.value for f in compare(desired, observed, policy).findings]


# --- strategies -------------------------------------------------------------------------------

hosts = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,8}){0,3}", fullmatch=True)
paths = st.from_regex(r"(/[A-Za-z0-9._~%-]{0,8}){0,4}", fullmatch=True)
queries = st.from_regex(
    r"(\?[a-z]{1,5}=[A-Za-z0-9]{0,8}(&[a-z]{1,5}=[A-Za-z0-9]{0,8}){0,2})?", fullmatch=True
)
urls = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}{path}{query}",
    st.sampled_from(["https", "http"]),
    hosts,
    st.sampled_from(["", ":443", ":80", ":8443"]),
    paths,
    queries,
)
command_words = st.sampled_from([*sorted(KNOWN_COMMANDS), "Room.CallbackUpdateRoomInfo", "Room.SomethingNew"])
command_lists = st.lists(command_words, max_size=8).map(tuple)
configs = st.builds(CallbackConfig, url=urls, commands=command_lists)
policies = st.builds(
    Policy,
    require_https=st.booleans(),
    allowed_hosts=st.lists(st.sampled_from(["*.com", "hooks.example.com", "*"]), max_size=2).map(tuple),
    unexpected_commands=st.sampled_from(list(UnexpectedCommands)),
)
maybe_configs = st.none() | configs


# --- properties -------------------------------------------------------------------------------


@given(configs)
def test_a_config_compared_with_itself_has_no_findings(config: CallbackConfig) -> None:
    assert compare(config, config, OPEN).findings == ()


@given(configs, st.data())
def test_command_order_never_matters(config: CallbackConfig, data: st.DataObject) -> None:
    again = CallbackConfig(config.url, tuple(data.draw(st.permutations(config.commands))))
    assert compare(config, again, OPEN).findings == ()
    assert config_fingerprint(again) == config_fingerprint(config)


@given(configs, configs, st.data())
def test_command_order_never_changes_a_verdict(
    desired: CallbackConfig, observed: CallbackConfig, data: st.DataObject
) -> None:
    shuffled = CallbackConfig(observed.url, tuple(data.draw(st.permutations(observed.commands))))
    assert compare(desired, shuffled, STRICT).findings == compare(desired, observed, STRICT).findings


@given(maybe_configs, maybe_configs, policies)
def test_findings_carry_the_urls_given_in_kind_order(
    desired: CallbackConfig | None, observed: CallbackConfig | None, policy: Policy
) -> None:
    verdict = compare(desired, observed, policy)
    order = list(Kind)
    assert [order.index(f.kind) for f in verdict.findings] == sorted(
        order.index(f.kind) for f in verdict.findings
    )
    assert len({f.kind for f in verdict.findings}) == len(verdict.findings)
    assert verdict.observed == observed
    for finding in verdict.findings:
        assert finding.desired == (desired.url if desired else None)
        assert finding.observed == (observed.url if observed else None)
        assert list(finding.missing) == sorted(finding.missing)
        assert list(finding.unexpected) == sorted(finding.unexpected)
    assert verdict.in_sync == (not verdict.findings)


@given(maybe_configs, maybe_configs, policies, st.sets(st.sampled_from([k.value for k in Kind])))
def test_ignored_kinds_are_shown_but_do_not_count(
    desired: CallbackConfig | None, observed: CallbackConfig | None, policy: Policy, ignore: set[str]
) -> None:
    plain = compare(desired, observed, policy)
    verdict = compare(desired, observed, policy, frozenset(ignore))
    assert [f.kind for f in verdict.findings] == [f.kind for f in plain.findings]
    assert all(f.ignored == (f.kind.value in ignore) for f in verdict.findings)
    assert verdict.counted == tuple(f for f in verdict.findings if f.kind.value not in ignore)


@given(st.text(max_size=40), st.text(max_size=40))
def test_url_equality_is_reflexive_and_symmetric(a: str, b: str) -> None:
    assert urls_equal(a, a)
    assert urls_equal(a, b) == urls_equal(b, a)


@given(urls)
def test_scheme_and_host_case_never_matter(url: str) -> None:
    scheme, rest = url.split("://", 1)
    end = min((rest.find(c) for c in "/?#" if c in rest), default=len(rest))
    assert urls_equal(url, f"{scheme.upper()}://{rest[:end].upper()}{rest[end:]}")


@given(maybe_configs)
def test_fingerprint_fits_a_float64_and_is_zero_only_without_config(config: CallbackConfig | None) -> None:
    number = config_fingerprint(config)
    assert 0 <= number < 2**48
    assert float(number) == number
    assert (number == 0) == (config is None)


# --- each kind --------------------------------------------------------------------------------


def test_both_absent_is_in_sync() -> None:
    verdict = compare(None, None, STRICT)
    assert verdict.in_sync
    assert verdict.findings == ()


def test_a_desired_callback_that_is_absent_is_config_missing_without_policy_findings() -> None:
    verdict = compare(cfg("http://elsewhere.test/"), None, STRICT)
    assert [(f.kind, f.desired, f.observed) for f in verdict.findings] == [
        (Kind.CONFIG_MISSING, "http://elsewhere.test/", None)
    ]


def test_a_callback_on_an_app_that_must_have_none_is_config_present() -> None:
    assert kinds(None, cfg()) == ["config_present"]


def test_policy_applies_to_a_live_url_even_when_no_callback_is_desired() -> None:
    assert kinds(None, cfg("http://evil.test/x")) == ["config_present", "insecure_url", "host_not_allowed"]


def test_a_different_url_is_url_mismatch() -> None:
    verdict = compare(cfg(URL), cfg("https://a.hooks.example.com/tencent/room?token=s3cr3t"), STRICT)
    assert [f.kind for f in verdict.findings] == [Kind.URL_MISMATCH]
    # Findings keep the raw URLs: redaction belongs to the outputs.
    assert verdict.findings[0].desired == URL
    assert verdict.findings[0].observed == "https://a.hooks.example.com/tencent/room?token=s3cr3t"


def test_desired_commands_absent_from_the_live_list_are_missing_commands() -> None:
    verdict = compare(cfg(URL, CREATE, DESTROY, ENTER, LEAVE), cfg(URL, LEAVE, CREATE), STRICT)
    assert [(f.kind, f.missing, f.unexpected) for f in verdict.findings] == [
        (Kind.MISSING_COMMANDS, (DESTROY, ENTER), ())
    ]


def test_live_commands_not_desired_are_unexpected_commands() -> None:
    verdict = compare(cfg(URL, CREATE), cfg(URL, LEAVE, CREATE, ENTER), STRICT)
    assert [(f.kind, f.missing, f.unexpected) for f in verdict.findings] == [
        (Kind.UNEXPECTED_COMMANDS, (), (ENTER, LEAVE))
    ]


def test_unexpected_commands_can_be_ignored_by_policy() -> None:
    policy = Policy(unexpected_commands=UnexpectedCommands.IGNORE)
    assert kinds(cfg(URL, CREATE), cfg(URL, CREATE, ENTER), policy) == []
    assert kinds(cfg(URL, CREATE, LEAVE), cfg(URL, CREATE, ENTER), policy) == ["missing_commands"]


def test_plain_http_is_insecure_only_when_https_is_required() -> None:
    desired = observed = cfg("http://hooks.example.com/cb")
    assert kinds(desired, observed, STRICT) == ["insecure_url"]
    assert kinds(desired, observed, Policy(require_https=False, allowed_hosts=STRICT.allowed_hosts)) == []


def test_a_host_matching_no_glob_is_not_allowed() -> None:
    assert kinds(cfg("https://evil.test/cb"), cfg("https://evil.test/cb")) == ["host_not_allowed"]


def test_every_kind_at_once_in_kind_order() -> None:
    verdict = compare(cfg(URL, CREATE, DESTROY), cfg("http://evil.test/", CREATE, ENTER), STRICT)
    assert [f.kind for f in verdict.findings] == [
        Kind.URL_MISMATCH,
        Kind.MISSING_COMMANDS,
        Kind.UNEXPECTED_COMMANDS,
        Kind.INSECURE_URL,
        Kind.HOST_NOT_ALLOWED,
    ]
    assert [f.policy for f in verdict.findings] == [False, False, False, True, True]


def test_kind_tables_match_the_design() -> None:
    assert [k.value for k in DRIFT_KINDS] == [
        "config_missing",
        "config_present",
        "url_mismatch",
        "missing_commands",
        "unexpected_commands",
    ]
    assert [k.value for k in POLICY_KINDS] == ["insecure_url", "host_not_allowed"]
    critical = {k.value for k, v in SEVERITY.items() if v == "critical"}
    assert critical == {
        "config_missing",
        "config_present",
        "url_mismatch",
        "insecure_url",
        "host_not_allowed",
        "endpoint_unreachable",
        "endpoint_cert_invalid",
    }
    assert {k for k, v in SEVERITY.items() if v == "warning"} == {
        Kind.MISSING_COMMANDS,
        Kind.UNEXPECTED_COMMANDS,
        Kind.ENDPOINT_CERT_EXPIRING,  # critical within probe.cert_critical
    }


def test_an_ignored_kind_keeps_the_app_in_sync() -> None:
    verdict = compare(cfg(URL, CREATE), cfg(URL, CREATE, ENTER), STRICT, frozenset({"unexpected_commands"}))
    assert [(f.kind, f.ignored) for f in verdict.findings] == [(Kind.UNEXPECTED_COMMANDS, True)]
    assert verdict.in_sync
    assert verdict.counted == ()


# --- the update-room-info alias ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "observed"),
    [
        ("Room.CallbackUpdateRoomInfo", "Room.CallbackAfterUpdateRoomInfo"),
        ("Room.CallbackAfterUpdateRoomInfo", "Room.CallbackUpdateRoomInfo"),
    ],
)
def test_both_spellings_of_update_room_info_are_one_command(desired: str, observed: str) -> None:
    assert kinds(cfg(URL, CREATE, desired), cfg(URL, observed, CREATE)) == []


def test_missing_commands_are_reported_in_the_desired_spelling() -> None:
    verdict = compare(cfg(URL, CREATE, "Room.CallbackUpdateRoomInfo"), cfg(URL, CREATE), STRICT)
    assert verdict.findings[0].missing == ("Room.CallbackUpdateRoomInfo",)


# --- URL equality -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://hooks.example.com/cb", "HTTPS://Hooks.Example.COM/cb"),
        ("https://hooks.example.com/cb", "https://hooks.example.com:443/cb"),
        ("http://hooks.example.com/cb", "http://hooks.example.com:80/cb"),
        ("https://hooks.example.com", "https://hooks.example.com:443"),
        ("https://[2001:db8::1]/cb", "https://[2001:DB8::1]:443/cb"),
        ("https://u:p@hooks.example.com/cb", "https://u:p@HOOKS.example.com/cb"),
        ("not a url", "not a url"),
        # urlsplit cannot tell an empty query from none; Tencent appends its own query either way.
        ("https://hooks.example.com/cb", "https://hooks.example.com/cb?"),
    ],
)
def test_urls_that_are_equal(a: str, b: str) -> None:
    assert urls_equal(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://hooks.example.com/cb", "http://hooks.example.com/cb"),
        ("https://hooks.example.com/cb", "https://hooks.example.com/cb/"),
        ("https://hooks.example.com", "https://hooks.example.com/"),
        ("https://hooks.example.com/cb", "https://hooks.example.com/CB"),
        ("https://hooks.example.com/cb?a=1", "https://hooks.example.com/cb?A=1"),
        ("https://hooks.example.com/cb?a=1&b=2", "https://hooks.example.com/cb?b=2&a=1"),
        ("https://hooks.example.com/cb#x", "https://hooks.example.com/cb#y"),
        ("https://hooks.example.com/cb", "https://hooks.example.com:80/cb"),
        ("http://hooks.example.com/cb", "http://hooks.example.com:443/cb"),
        ("https://hooks.example.com/cb", "https://hooks.example.com:8443/cb"),
        ("https://u:p@hooks.example.com/cb", "https://U:P@hooks.example.com/cb"),
        ("https://u@hooks.example.com/cb", "https://hooks.example.com/cb"),
        ("https://hooks.example.com:x/cb", "https://hooks.example.com/cb"),
        ("https://[::1/cb", "https://[::1]/cb"),
        ("not a url", "NOT A URL"),
        ("hooks.example.com/cb", "HOOKS.example.com/cb"),
    ],
)
def test_urls_that_differ(a: str, b: str) -> None:
    assert not urls_equal(a, b)


# --- host globs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/cb", True),
        ("https://HOOKS.Example.com/cb", True),
        ("https://hooks.example.com:8443/cb", True),
        ("https://hooks.example.com./cb", True),
        ("https://a.hooks.example.com/cb", True),
        ("https://a.b.hooks.example.com/cb", True),
        ("https://user@hooks.example.com/cb", True),
        ("https://evilhooks.example.com/cb", False),
        ("https://hooks.example.com.evil.test/cb", False),
        ("https://evil.test/hooks.example.com", False),
        ("https://evil.test/?h=hooks.example.com", False),
        ("https://hooks.example.com@evil.test/cb", False),
        ("hooks.example.com", False),
        ("", False),
    ],
)
def test_host_globs(url: str, allowed: bool) -> None:
    assert host_allowed(url, ("hooks.example.com", "*.Hooks.example.com")) is allowed


@given(urls)
def test_no_globs_allow_any_host(url: str) -> None:
    assert host_allowed(url, ())


# --- the config fingerprint -------------------------------------------------------------------


def test_fingerprint_is_pinned_so_dashboards_do_not_see_a_false_change_after_an_upgrade() -> None:
    assert config_fingerprint(cfg("https://hooks.example.com/cb", CREATE, DESTROY)) == PINNED


def test_fingerprint_changes_with_the_url_and_the_command_set_but_not_the_spelling() -> None:
    base = config_fingerprint(cfg(URL, CREATE, "Room.CallbackUpdateRoomInfo"))
    assert base == config_fingerprint(cfg(URL, "Room.CallbackAfterUpdateRoomInfo", CREATE))
    assert base != config_fingerprint(cfg(URL + "x", CREATE, "Room.CallbackUpdateRoomInfo"))
    assert base != config_fingerprint(cfg(URL, CREATE))
    assert config_fingerprint(None) == 0


def test_every_finding_kind_is_one_the_config_accepts_in_ignore() -> None:
    """``ignore`` is checked against config.FINDING_KINDS, which must name exactly the kinds drift reports."""
    from monitor import config, drift  # appended: the imports at the top name members only

    assert {k.value for k in drift.Kind} == set(config.FINDING_KINDS)
