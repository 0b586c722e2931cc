"""YAML tags: whatever tag a value carries, the loader answers with a Config or one ConfigError.

A scalar whose text its explicit tag cannot construct (``!!int ''``, ``!!bool maybe``,
``!!timestamp x``) once escaped the loader as the constructor's own IndexError, KeyError or
AttributeError: ``validate`` printed a traceback, and a reloading ``serve`` died.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import Config, load_config_text
from monitor.errors import ConfigError

ENVIRON = {"TENCENT_KEY": "tag-test-key-0e6b1f"}
APPS = "apps:\n  - {name: a, sdkappid: 1400000001}\n"
HEAD = (
    "version: 1\n"
    "defaults:\n"
    "  endpoint: http://127.0.0.1:9\n"
    "  secret_key_env: TENCENT_KEY\n"
    '  callback: {url: "https://hooks.example.com/x", commands: [Room.CallbackAfterCreateRoom]}\n'
)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ=ENVIRON)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("version: 1\napps: !!timestamp x\n", "apps (line 2): cannot be read as a YAML timestamp"),
        ("version: 1\napps: !!int ''\n", "apps (line 2): cannot be read as a YAML int"),
        ("version: 1\napps: !!bool maybe\n", "apps (line 2): cannot be read as a YAML bool"),
        ("version: !!int\napps: []\n", "version (line 1): cannot be read as a YAML int"),
        ("version: 1\napps: !!float ''\n", "apps (line 2): cannot be read as a YAML float"),
        ("version: 1\napps: !!timestamp 2001-02-30\n", "apps (line 2): cannot be read as a YAML timestamp"),
        ("version: 1\napps: !!bool ''\n", "apps (line 2): cannot be read as a YAML bool"),
        ("version: 1\napps: !!binary 'a'\n", "apps (line 2): cannot be read as a YAML binary"),
        (HEAD + "  interval: !!int '-'\n" + APPS, "defaults.interval (line 6): cannot be read as a YAML int"),
        (HEAD + "  interval: !!int 0x\n" + APPS, "defaults.interval (line 6): cannot be read as a YAML int"),
        (
            HEAD + "  remediate: !!bool 'nope'\n" + APPS,
            "defaults.remediate (line 6): cannot be read as a YAML bool",
        ),
    ],
)
def test_a_value_its_tag_cannot_read_is_one_config_error(text: str, problem: str) -> None:
    assert problems_of(text) == [problem]


# ---- Hypothesis: any tag on any value, anywhere -------------------------------------------------

TAGS = [
    *(f"!!{name}" for name in ("str", "int", "float", "bool", "null", "timestamp", "binary", "merge")),
    *(f"!!{name}" for name in ("value", "set", "omap", "pairs", "seq", "map", "python/none")),
    "!!python/object/apply:os.system",
    "!",
    "!local",
    "!<tag:yaml.org,2002:int>",
    "!<tag:example.com,2000:thing>",
]
WORDS = [
    *("", "x", "-", "+", "_", ".", ":", "=", "<<", "~", "maybe", "yes", "Off", "0", "-0", "+1", "0x"),
    *("0xZZ", "0b", "0b2", "0o", "0o9", "1_000", "1:20", "1:", ".5", "-.inf", ".NaN", "1e5", "1e999"),
    *("2001-12-14", "2001-12-14 21:59:43.10 -5", "2001-02-30", "2001-12-14t25:00:00Z", "9999-99-99"),
    *("aGVsbG8=", "%%", "null", "1400000001", "https://hooks.example.com/x", "Room.CallbackAfterCreateRoom"),
]
_PLAIN = re.compile(r"[A-Za-z0-9_.+~=%][A-Za-z0-9_.:+\-=%~ ]*|")  # safe to write unquoted


def render(tag: str | None, word: str, style: str) -> str:
    """One scalar in YAML: plain when that is safe, else single- or double-quoted."""
    if style == "plain" and _PLAIN.fullmatch(word) and not word.endswith((" ", ":")):
        text = word
    elif style == "single":
        text = "'" + word.replace("'", "''") + "'"
    else:
        text = json.dumps(word)
    return f"{tag} {text}" if tag else text


scalars = st.builds(
    render,
    st.none() | st.sampled_from(TAGS) | st.from_regex(r"\A!![a-z/:]{1,12}\Z"),
    st.sampled_from(WORDS) | st.text(max_size=12),
    st.sampled_from(["plain", "single", "double"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.builds(
        lambda tag, items, is_map: (
            (tag + " " if tag else "")
            + (
                "{" + ", ".join(f"{k}: {v}" for k, v in zip(items, reversed(items), strict=True)) + "}"
                if is_map
                else "[" + ", ".join(items) + "]"
            )
        ),
        st.none() | st.sampled_from(TAGS),
        st.lists(inner, max_size=3),
        st.booleans(),
    ),
    max_leaves=6,
)
PLACES = [
    "version: {v}\napps: []\n",
    "version: 1\napps: {v}\n",
    "version: 1\n{v}: 1\napps: []\n",
    "version: 1\nlimits: {v}\napps: []\n",
    "version: 1\nlimits: {concurrency: {v}, requests_per_second: {v}}\napps: []\n",
    "version: 1\nalerting: {queue_size: {v}, webhook: {v}}\napps: []\n",
    HEAD + "  interval: {v}\n" + APPS,
    HEAD + "  timeout: {v}\n  policy: {require_https: {v}, allowed_hosts: {v}}\n" + APPS,
    HEAD + "  ignore: {v}\n  remediate: {v}\n  error_threshold: {v}\n" + APPS,
    HEAD + "apps:\n  - {name: {v}, sdkappid: {v}, labels: {v}}\n",
    HEAD + "apps:\n  - {name: a, sdkappid: 1, callback: {url: {v}, commands: {v}}}\n",
    HEAD + "apps:\n  - {v}\n",
    "{v}\n",
]


def outcome(text: str) -> Config | ConfigError:
    """The Config, or the ConfigError; anything else the loader raises fails the test."""
    try:
        return load_config_text(text, environ=ENVIRON)
    except ConfigError as exc:
        return exc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PLACES), values)
def test_any_tag_on_any_value_is_a_config_or_a_config_error(place: str, value: str) -> None:
    result = outcome(place.replace("{v}", value))
    assert isinstance(result, Config) or result.problems


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([*"!<>:,[]{}'\"-?&*#|%@` \n\t", "!!int", "!!bool", "a", "1"])).map("".join))
def test_any_text_of_yaml_punctuation_and_tags_is_a_config_or_a_config_error(text: str) -> None:
    result = outcome(text)
    assert isinstance(result, Config) or result.problems
