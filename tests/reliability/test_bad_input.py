"""Bad input: the config loader and the API answer parser take anything without breaking.

The loader gets a corpus of nasty files (huge, deeply nested, wrong encodings, YAML bombs and
aliases, NUL bytes, very long strings, hostile tags) and Hypothesis' inventions: only ConfigError
ever comes out, its message is readable and holds no secret, and a YAML bomb costs no more memory
than a small file. ``parse_envelope`` gets any status, content type and body: it returns an Answer
or a TencentError, never raises, and never hands back a secret the answer echoed.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import Config, load_config, load_config_text
from monitor.errors import REASONS, ConfigError, TencentError
from monitor.tencent.envelope import Answer, parse_envelope
from monitor.tencent.usersig import sign
from tests.reliability.lab import FIGURES, Leaks

SECRET = "cfg-secret-key-4f1c9a7be2d84c0e"  # the value of the key variable: never in a message
ENVIRON = {"TENCENT_KEY": SECRET}
MIB = 1024 * 1024
HEADER = re.compile(r"\S.*: \d+ problems?( and \d+ warnings?)?")
# Control characters (terminal escapes among them) and bidi overrides must be escaped in messages.
UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")

BASE = """\
version: 1
defaults:
  endpoint: http://127.0.0.1:9
  secret_key_env: TENCENT_KEY
  callback: {url: "https://hooks.example.com/x", commands: [Room.CallbackAfterCreateRoom]}
apps:
"""
APP = "  - {name: a, sdkappid: 1400000001}\n"


def chain(anchor: str, levels: int, fan: int, leaf: str) -> str:
    """``levels`` anchored lists, each holding ``fan`` aliases of the one before: fan**levels values."""
    lines = [f"{anchor}0: &{anchor}0 [{', '.join([leaf] * fan)}]"]
    lines += [
        f"{anchor}{i}: &{anchor}{i} [{', '.join([f'*{anchor}{i - 1}'] * fan)}]" for i in range(1, levels)
    ]
    return "\n".join(lines) + "\n"


def merge_chain(levels: int, fan: int) -> str:
    lines = ["m0: &m0 {x: 1}"]
    lines += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * fan)}]}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


# name -> the file's bytes. Each is refused (or, for the few marked, loaded) within seconds.
NASTY: dict[str, Callable[[], bytes]] = {
    "larger-than-the-cap": lambda: b"#" * (32 * MIB + 1),
    "a-20-mib-comment": lambda: (BASE + APP).encode() + b"# " + b"x" * (20 * MIB) + b"\n",
    "a-5-mib-name": lambda: BASE.encode() + b"  - {name: " + b"a" * (5 * MIB) + b", sdkappid: 1}\n",
    "a-5-mib-key": lambda: BASE.encode() + b"  - {name: a, sdkappid: 1, " + b"k" * (5 * MIB) + b": 1}\n",
    "a-5-mib-block-key": lambda: BASE.encode() + b"  - name: a\n    " + b"k" * (5 * MIB) + b": 1\n",
    "a-5-mib-url": lambda: (
        BASE.encode()
        + b'  - {name: a, sdkappid: 1, callback: {url: "https://hooks.example.com/'
        + b"p" * (5 * MIB)
        + b'?token=x", commands: []}}\n'
    ),
    "a-100000-digit-sdkappid": lambda: BASE.encode() + b"  - {name: a, sdkappid: " + b"1" * 100_000 + b"}\n",
    "a-100000-digit-version": lambda: b"version: " + b"9" * 100_000 + b"\napps: []\n",
    "nested-flow-200000": lambda: b"version: 1\napps: " + b"[" * 200_000,
    "nested-flow-closed": lambda: b"version: 1\napps: " + b"[" * 50_000 + b"]" * 50_000,
    "nested-block-3000": lambda: (
        "version: 1\napps:\n" + "".join("  " * i + "- \n" for i in range(1, 3000))
    ).encode(),
    "nested-mapping-3000": lambda: (
        "version: 1\ndefaults:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 3000))
    ).encode(),
    "utf-16": lambda: (BASE + APP).encode("utf-16"),
    "utf-16-be-no-bom": lambda: (BASE + APP).encode("utf-16-be"),
    "utf-32": lambda: (BASE + APP).encode("utf-32"),
    "latin-1": lambda: (BASE + "  - {name: caf\u00e9, sdkappid: 1}\n").encode("latin-1"),
    "shift-jis": lambda: (BASE + "  - {name: a, sdkappid: 1, labels: {team: \u30c1\u30fc\u30e0}}\n").encode(
        "shift_jis"
    ),
    "utf-8-surrogate": lambda: BASE.encode() + b"  - {name: \xed\xa0\x80, sdkappid: 1}\n",
    "utf-8-overlong": lambda: BASE.encode() + b"  - {name: \xc0\xaf, sdkappid: 1}\n",
    "nul-byte-raw": lambda: BASE.encode() + b"  - {name: a\x00b, sdkappid: 1}\n",
    "nul-in-name": lambda: BASE.encode() + b'  - {name: "a\\0b", sdkappid: 1}\n',
    "nul-in-secret-file": lambda: (
        BASE.encode() + b'  - {name: a, sdkappid: 1, secret_key_file: "/tmp/a\\0b"}\n'
    ),
    "nul-in-secret-env": lambda: BASE.encode() + b'  - {name: a, sdkappid: 1, secret_key_env: "A\\0B"}\n',
    "nul-in-url": lambda: (
        BASE.encode()
        + b'  - {name: a, sdkappid: 1, callback: {url: "https://hooks.example.com/\\0", commands: [x]}}\n'
    ),
    "terminal-escapes": lambda: BASE.encode() + b'  - {name: "\\e[31mred\\e[0m\\u202e", sdkappid: 1}\n',
    "billion-laughs": lambda: (chain("a", 10, 10, "lol") + "version: 1\napps: []\n").encode(),
    "alias-to-a-1-mib-string": lambda: (
        "s: &s "
        + "x" * MIB
        + "\nversion: 1\napps:\n"
        + "".join(f"  - {{name: *s, sdkappid: {i + 1}}}\n" for i in range(2000))
    ).encode(),
    "self-referencing-alias": lambda: b"version: 1\napps: &a [*a]\n",
    "python-object-tag": lambda: b"version: !!python/object/apply:os.system ['echo hi']\napps: []\n",
    "binary-set-timestamp-tags": lambda: (
        BASE.encode()
        + b"  - {name: !!binary aGVsbG8=, sdkappid: !!set {a, b}, interval: 2001-12-14t21:59:43.10-05:00}\n"
    ),
    "complex-keys": lambda: b"version: 1\n? [a, b]\n: c\n? {d: e}\n: f\n~: g\napps: []\n",
    "infinity-and-nan": lambda: (
        BASE.encode() + b"  - {name: a, sdkappid: 1, interval: 1e999, timeout: .nan}\n"
    ),
    "many-documents": lambda: b"version: 1\napps: []\n" + b"---\nversion: 1\n" * 1000,
    "5000-broken-apps": lambda: (
        BASE + "".join(f"  - {{name: 'a {i}', sdkappid: x{i}}}\n" for i in range(5000))
    ).encode(),
}
LOADS = {"a-20-mib-comment"}  # valid despite its size


def readable_problems(error: ConfigError) -> list[str]:
    """What makes the message hard to read: the reasons, empty when it is fine."""
    lines = str(error).splitlines()
    issues = []
    if not lines or not HEADER.fullmatch(lines[0]):
        issues.append(f"no 'source: N problems' header: {lines[:1]!r}")
    if not error.problems:
        issues.append("no problem listed")
    for problem in error.problems:
        text = str(problem)
        if ": " not in text:
            issues.append(f"not 'place: message': {text[:120]!r}")
        if len(text) > 400:
            issues.append(f"a problem of {len(text)} characters: {text[:120]!r}")
        if " object at 0x" in text:
            issues.append(f"a Python repr: {text[:200]!r}")
        if UNPRINTABLE.search(text):
            issues.append(f"an unprintable character: {text[:120]!r}")
    return issues


def load_nasty(path: Path) -> tuple[Config | ConfigError, float, int]:
    """The loader's result for ``path`` (the config or its ConfigError), seconds and traced peak bytes."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result: Config | ConfigError = load_config(path, environ=ENVIRON)
    except ConfigError as exc:
        result = exc
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, seconds, peak


@pytest.fixture(scope="module")
def nasty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("nasty"))


@pytest.mark.parametrize("name", sorted(NASTY))
def test_a_nasty_file_is_refused_with_only_a_readable_config_error(
    name: str, nasty_dir: Path, leaks: Leaks
) -> None:
    path = nasty_dir / f"{name}.yaml"
    path.write_bytes(NASTY[name]())
    result, seconds, _peak = load_nasty(path)
    if name in LOADS:
        assert isinstance(result, Config), result
        return
    assert isinstance(result, ConfigError)
    assert result.source == str(path)
    assert seconds < 15, f"{name} took {seconds:.1f}s"
    leaks.output(f"ConfigError of {name}", str(result))
    assert SECRET not in str(result)
    assert readable_problems(result) == []


def test_a_problem_under_a_merge_key_names_its_place_readably() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(merge_chain(12, 10) + "version: 1\napps: []\n", environ=ENVIRON)
    assert readable_problems(caught.value) == []


def test_a_raw_control_character_is_one_problem_line_with_its_line_number() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(BASE + "  - {name: a\x00b, sdkappid: 1}\n", environ=ENVIRON)
    (problem,) = caught.value.problems
    assert "\n" not in str(problem)
    assert problem.line == 7


def test_a_key_with_a_terminal_escape_is_shown_escaped() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(BASE + APP + '"\\e[2Jboom": 1\n', environ=ENVIRON)
    assert readable_problems(caught.value) == []


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ('secret_key_file: "\\x1f"', "secret file /keys/\\x1f:"),  # Hypothesis found this one
        ('secret_key_file: "\\e]0;pwned\\a"', "secret file /keys/\\x1b]0;pwned\\x07:"),
        ('secret_key_env: "KEY\\u202e"', "environment variable KEY\\u202e is not set"),
        ('secret_key_env: "KEY\\x85"', "environment variable KEY\\x85 is not set"),
        ('secret_key_env: "{\\x1b}"', "unknown placeholder {\\x1b}"),
        ('policy: {allowed_hosts: ["hooks\\u2066"]}', "allowed_hosts (hooks\\u2066)"),
    ],
)
def test_a_value_quoted_in_a_message_has_its_control_characters_escaped(setting: str, shown: str) -> None:
    text = BASE + f"  - {{name: a, sdkappid: 1, {setting}}}\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ=ENVIRON, base_dir=Path("/keys"))
    assert readable_problems(caught.value) == []
    assert shown in str(caught.value)


def test_a_long_secret_file_name_is_clipped_in_its_message() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(BASE + APP.replace("}", ", secret_key_file: " + "k" * 5000 + "}"), environ=ENVIRON)
    assert readable_problems(caught.value) == []


@pytest.mark.parametrize("bomb", ["billion-laughs", "merge-key-bomb"])
def test_a_yaml_bomb_costs_no_more_memory_than_a_small_file(bomb: str, nasty_dir: Path) -> None:
    """10**10 values if expanded; refused after a million, within the memory a tiny file takes."""
    small = nasty_dir / "small.yaml"
    small.write_text(BASE + APP, encoding="utf-8")
    texts = {
        "billion-laughs": chain("a", 10, 10, "lol"),
        "merge-key-bomb": merge_chain(12, 10),
    }
    path = nasty_dir / f"bomb-{bomb}.yaml"
    path.write_text(texts[bomb] + "version: 1\napps: []\n", encoding="utf-8")
    _config, _s, baseline = load_nasty(small)
    result, seconds, peak = load_nasty(path)
    assert isinstance(result, ConfigError)
    assert "expands to more than" in str(result)
    assert peak <= baseline + 16 * MIB, (peak, baseline)
    assert seconds < 5
    FIGURES[f"YAML bomb ({bomb})"] = (
        f"refused in {seconds * 1000:.0f} ms, traced peak {peak / MIB:.1f} MiB "
        f"(a 6-line valid file: {baseline / MIB:.1f} MiB)"
    )


# ---- Hypothesis: the loader --------------------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        ["1s", "500ms", "1h30m", "https://evil.example.net/?t=x", "{sdkappid}", "*a", "&a", "!!int"]
    )
)
# Keys are printable and never "<<": the two known defects above have their own tests.
printable = st.characters(
    blacklist_categories=("Cc", "Cs"), blacklist_characters="\u202a\u202b\u202c\u202d\u202e"
)
keys = st.text(printable, max_size=12).filter(lambda k: k != "<<") | st.sampled_from(
    ["name", "sdkappid", "callback", "url", "commands", "policy", "interval", "endpoint", "secret_key_file"]
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def valid_document() -> dict[str, Any]:
    return {
        "version": 1,
        "defaults": {
            "endpoint": "http://127.0.0.1:9",
            "secret_key_env": "TENCENT_KEY",
            "interval": "30s",
            "policy": {"require_https": True, "allowed_hosts": ["hooks.example.com"]},
            "callback": {"url": "https://hooks.example.com/x", "commands": ["Room.CallbackAfterCreateRoom"]},
        },
        "limits": {"concurrency": 4},
        "apps": [
            {"name": "a", "sdkappid": 1400000001, "labels": {"team": "rtc"}},
            {"name": "b", "sdkappid": 1400000002, "callback": None},
        ],
    }


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``doc`` a value can be swapped in (including the whole document)."""
    found = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += paths(v, (*prefix, i))
    return found


def swapped(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: swapped(doc[head], rest, value)}
    copy = list(doc)
    copy[head] = swapped(doc[head], rest, value)
    return copy


def only_config_or_readable_error(load: Callable[[], Config]) -> None:
    error: ConfigError | None = None
    try:
        load()
    except ConfigError as exc:
        error = exc
    if error is not None:
        assert readable_problems(error) == []
        assert SECRET not in str(error)


@FUZZ
@given(st.text(max_size=3000))
def test_any_text_is_a_config_or_a_readable_config_error(text: str) -> None:
    only_config_or_readable_error(lambda: load_config_text(text, environ=ENVIRON))


@FUZZ
@given(st.binary(max_size=3000))
def test_any_bytes_in_a_file_are_a_config_or_a_readable_config_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "monitor.yaml"
        path.write_bytes(data)
        only_config_or_readable_error(lambda: load_config(path, environ=ENVIRON))


@FUZZ
@given(st.data())
def test_any_value_anywhere_in_a_valid_file_is_a_config_or_a_readable_config_error(
    data: st.DataObject,
) -> None:
    doc = valid_document()
    place = data.draw(st.sampled_from(paths(doc)), label="place")
    value = data.draw(values, label="value")
    text = yaml.safe_dump(swapped(doc, place, value), allow_unicode=data.draw(st.booleans()))
    only_config_or_readable_error(lambda: load_config_text(text, environ=ENVIRON))


def test_the_untouched_document_loads() -> None:
    """The fuzzing above starts from a valid file, so its errors come from the swapped value."""
    config = load_config_text(yaml.safe_dump(valid_document()), environ=ENVIRON)
    assert [app.name for app in config.apps] == ["a", "b"]


# ---- Hypothesis: the API answer parser -------------------------------------------------------------

ACTIONS = ("get_callback", "set_callback", "update_callback", "delete_callback")
KEY = "9f3b2c1d0e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c"
USERSIG = sign(1400000001, KEY, "administrator", 1_700_000_000, 86400)
SECRETS = frozenset({KEY, USERSIG})
KNOWN_CODES = (0, 100301, 100300, 100001, 70001, 70009, 70500, 60007, 70050, 60010, 70016, 100002, 9)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
echo = st.builds(
    lambda before, secret, after: before + secret + after,
    st.text(max_size=30),
    st.sampled_from(sorted(SECRETS)),
    st.text(max_size=30),
)
responses = st.fixed_dictionaries(
    {},
    optional={
        "Url": st.text(max_size=60) | json_values,
        "CallbackCommandList": st.lists(st.text(max_size=30), max_size=5) | json_values,
    },
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "ActionStatus": st.sampled_from(["OK", "FAIL"]) | json_values,
        "ErrorCode": st.sampled_from(KNOWN_CODES) | st.integers() | json_values,
        "ErrorInfo": echo | st.text(max_size=500) | json_values,
        "RequestId": st.text(max_size=60) | json_values,
        "Response": responses | json_values,
    },
)


def parse(status: int, content_type: str, body: bytes, action: str) -> Answer | TencentError:
    result = parse_envelope(
        status, content_type, body, action=action, host="adminapisgp.im.qcloud.com", secrets=SECRETS
    )
    assert isinstance(result, Answer | TencentError), result
    if isinstance(result, Answer):
        assert result.code in (0, 100301)
        assert (result.config is not None) == (action == "get_callback" and result.code == 0)
    else:
        assert result.reason in REASONS
        assert len(str(result)) < 1000
    return result


@FUZZ
@given(st.integers(0, 999), st.text(max_size=40), st.binary(max_size=2000), st.sampled_from(ACTIONS))
def test_any_http_answer_is_an_answer_or_a_tencent_error(
    status: int, ctype: str, body: bytes, action: str
) -> None:
    parse(status, ctype, body, action)


@FUZZ
@given(envelopes, st.sampled_from(ACTIONS))
def test_any_json_envelope_is_an_answer_or_a_tencent_error_without_an_echoed_secret(
    envelope: dict[str, Any], action: str
) -> None:
    envelope.pop("RequestId", None)  # see the next test
    result = parse(200, "application/json", json.dumps(envelope).encode(), action)
    for secret in SECRETS:
        assert secret not in str(result)
        assert secret not in repr(result)


@settings(max_examples=20, deadline=None)
@given(echo, st.sampled_from([0, 70001, "not a code"]))
def test_a_secret_echoed_in_the_request_id_is_not_handed_back(request_id: str, code: Any) -> None:
    body = json.dumps({"ErrorCode": code, "ErrorInfo": "", "RequestId": request_id}).encode()
    result = parse(200, "application/json", body, "get_callback")
    texts = [str(result), repr(result), getattr(result, "request_id", "")]
    assert not any(secret in text for secret in SECRETS for text in texts)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"ErrorCode": ' + b"7" * 5000 + b"}",
        b'{"ErrorCode": 1e999}',
        b'{"ErrorCode": NaN}',
        b'{"ErrorCode": 0, "ErrorCode": 70001}',
        b"\xff\xfe{\x00}\x00",
        b'{"ErrorCode": 0, "Response": {"Url": "' + b"u" * 500_000 + b'", "CallbackCommandList": []}}',
    ],
    ids=[
        "deep-list",
        "deep-object",
        "5000-digit-code",
        "huge-float",
        "nan",
        "duplicate-key",
        "utf-16",
        "long-url",
    ],
)
def test_a_hostile_json_answer_is_an_answer_or_a_tencent_error(body: bytes) -> None:
    parse(200, "application/json", body, "get_callback")
