"""Redaction: query values and user-info never survive; everything else stays exactly as it was."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.redact import REDACTED, SecretSet, redact_text, redact_url, scrub


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example.com/room", "https://hooks.example.com/room"),
        ("https://hooks.example.com/room?token=abc123", "https://hooks.example.com/room?token=REDACTED"),
        ("https://h.example.com/r?a=1&b=2", "https://h.example.com/r?a=REDACTED&b=REDACTED"),
        ("https://user:pw@h.example.com/r", "https://REDACTED@h.example.com/r"),
        ("https://token@h.example.com:8443/r#frag", "https://REDACTED@h.example.com:8443/r#frag"),
        ("http://h.example.com/r?flag", "http://h.example.com/r?REDACTED"),
        ("HTTPS://H.example.com/Path/", "HTTPS://H.example.com/Path/"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_catches_a_request_url_with_its_usersig() -> None:
    text = "Cannot connect to https://adminapisgp.im.qcloud.com/v4/room_config/get_callback?sdkappid=1&usersig=eJyrVgrx*-_&random=7"
    out = redact_text(text)
    assert "eJyrVgrx" not in out
    assert "usersig=REDACTED" in out
    assert "adminapisgp.im.qcloud.com/v4/room_config/get_callback" in out


def test_scrub_replaces_known_secrets_longest_first() -> None:
    assert scrub("key=abcdef and abcdefgh", {"abcdef", "abcdefgh"}) == f"key={REDACTED} and {REDACTED}"


secret_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~%", min_size=1, max_size=40)


@given(secret_values, secret_values)
def test_no_query_value_survives_redaction(value: str, other: str) -> None:
    url = f"https://hooks.example.com/cb?token={value}&x={other}"
    out = redact_url(url)
    assert out == "https://hooks.example.com/cb?token=REDACTED&x=REDACTED"
    assert f"={value}" not in redact_text(f"posting to {url} failed")


@given(
    st.lists(st.text(alphabet="abcdef0123456789", min_size=4, max_size=24), max_size=20),
    st.text(alphabet="abcdef0123456789 =x", max_size=200),
)
def test_a_secret_set_scrubs_every_secret_it_holds(secrets: list[str], text: str) -> None:
    """Whatever the mix of lengths and overlaps, no registered secret survives in the output."""
    secret_set = SecretSet()
    for secret in secrets:
        secret_set.add(secret)
    for secret in secrets:
        out = secret_set.scrub(f"{text}{secret}{text}")
        assert secret not in out.replace(REDACTED, "\0")


def test_a_secret_set_ignores_strings_too_short_to_be_keys() -> None:
    secret_set = SecretSet()
    secret_set.add("abc")
    assert not secret_set
    assert secret_set.scrub("abc") == "abc"


def test_a_secret_set_holds_ten_thousand_keys_of_one_length() -> None:
    """The daemon's case: one key per app, all the same length (its speed is in bench/)."""
    secret_set = SecretSet()
    keys = [f"{i:064x}" for i in range(10_000)]
    for key in keys:
        secret_set.add(key)
    line = "error for app: " + keys[1234] + " and " + keys[9999]
    assert secret_set.scrub(line) == f"error for app: {REDACTED} and {REDACTED}"


# ---- pins: the shapes a leak would take ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h.example.com/cb?token=dG9rZW4=", "https://h.example.com/cb?token=REDACTED"),
        ("https://h.example.com/cb?t=YWJjZA==&x=1", "https://h.example.com/cb?t=REDACTED&x=REDACTED"),
        ("https://h.example.com/cb?a=b=c#f=g", "https://h.example.com/cb?a=REDACTED#f=g"),
        ("https://h.example.com/cb#frag?token=x", "https://h.example.com/cb#frag?token=x"),
        ("https://h.example.com/cb?&&t=1", "https://h.example.com/cb?&&t=REDACTED"),
        ("https://h.example.com/cb?", "https://h.example.com/cb?"),
        ("https://u:p@ss@h.example.com/cb", "https://REDACTED@h.example.com/cb"),
        ("https://h.example.com/a@b/cb", "https://h.example.com/a@b/cb"),
        ("not a url ?token=abc", "not a url ?token=REDACTED"),
        ("?token=abc", "?token=REDACTED"),
        ("https://h.example.com/cb?a=1?b=2", "https://h.example.com/cb?a=REDACTED"),
        ("https://h.example.com/cb?t=1#a#b?c=d", "https://h.example.com/cb?t=REDACTED#a#b?c=d"),
    ],
)
def test_query_values_are_cut_at_the_first_equals_sign(url: str, expected: str) -> None:
    """Base64 tokens end in "=": a pair parsed from the wrong end would leak all but the padding."""
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET https://h.example.com/cb?token=YWJjZA== failed",
            "GET https://h.example.com/cb?token=REDACTED failed",
        ),
        ("to https://user:pw@h.example.com/cb", "to https://REDACTED@h.example.com/cb"),
        ("to https://user:p@ss@h.example.com/cb", "to https://REDACTED@h.example.com/cb"),
        ("to https://user:pw@h.example.com/a@b", "to https://REDACTED@h.example.com/a@b"),
        ("to https://h.example.com/?x=a@b", "to https://h.example.com/?x=REDACTED"),
        ('url="https://t@h.example.com/?k=v" ok', 'url="https://REDACTED@h.example.com/?k=REDACTED" ok'),
        ("a ?k=v;s=w&t=u#z", "a ?k=REDACTED;s=REDACTED&t=REDACTED#z"),
        ("x?k=a b", "x?k=REDACTED b"),
        ("x?k=v'", "x?k=REDACTED'"),
        ("x?k=v<", "x?k=REDACTED<"),
        ("x?k=v>", "x?k=REDACTED>"),
        ('x?k=v"', 'x?k=REDACTED"'),
        ("x?a?b=v", "x?a?b=REDACTED"),
        ("x?a#b=v", "x?a#b=v"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_free_text_loses_user_info_and_query_values(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_longest_secret_first_even_when_the_alphabet_says_otherwise() -> None:
    """ "zzzz" sorts after "azzzz" but is shorter: replacing it first would leave "a" + REDACTED."""
    assert scrub("key azzzz end", {"zzzz", "azzzz"}) == f"key {REDACTED} end"
    assert scrub("key azzzz end", {"azzzz", "zzzz"}) == f"key {REDACTED} end"


def test_secrets_of_four_characters_are_scrubbed_and_shorter_ones_are_not() -> None:
    assert scrub("abc abcd", {"abc", "abcd"}) == f"abc {REDACTED}"
    secret_set = SecretSet()
    secret_set.add("abc")
    secret_set.add("abcd")
    assert secret_set.scrub("abc abcd") == f"abc {REDACTED}"


def test_a_secret_set_leaves_no_part_of_a_secret_that_contains_another() -> None:
    secret_set = SecretSet()
    for secret in ("zzzz", "azzzz", "azzzzb"):
        secret_set.add(secret)
    assert secret_set.scrub("1 azzzzb 2 azzzz 3 zzzz 4") == f"1 {REDACTED} 2 {REDACTED} 3 {REDACTED} 4"
    assert secret_set.scrub("zzz") == "zzz"
    assert secret_set.scrub("zzzz") == REDACTED
    assert secret_set.scrub("zzzzzzzz") == REDACTED * 2
    assert bool(secret_set)


def test_a_secret_set_adds_secrets_of_a_known_length_to_their_group() -> None:
    secret_set = SecretSet()
    for secret in ("aaaa", "bbbbbb", "cccc"):
        secret_set.add(secret)
    assert secret_set.scrub("aaaa bbbbbb cccc") == f"{REDACTED} {REDACTED} {REDACTED}"
