"""Readers for the values of single keys: names, labels, places, durations, policy and the callback."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from monitor.config.model import UnexpectedCommands
from monitor.config.problems import BAD, At, Bad, Load
from monitor.config.shapes import (
    count_up_to,
    describe,
    duration,
    integer,
    keys,
    list_of,
    mapping,
    required,
    string,
    word,
)
from monitor.config.yamltree import Seq, clip, join
from monitor.kinds import Kind
from monitor.redact import redact_url
from monitor.tencent.commands import ALIASES, KNOWN_COMMANDS, canonical, is_known
from monitor.tencent.model import CallbackConfig
from monitor.tencent.regions import REGIONS, endpoint_problem
from monitor.urls import problem as url_problem

MIN_INTERVAL = 1.0
MAX_INTERVAL = 7 * 24 * 3600.0
MAX_TIMEOUT = 600.0
MIN_TIMEOUT = 0.001
MIN_RATE, MAX_RATE = 0.1, 1_000_000.0  # requests per second, process-wide
MAX_CONCURRENCY = 10_000  # checks in flight at once
MAX_QUEUE_SIZE = 100_000  # alerts waiting per sink
MAX_CONSECUTIVE = 1_000  # error_threshold, remediate_after, remediate_max_failures, remediate_max_reverts
MAX_WRITES_PER_HOUR = 100_000  # self-heal writes, process-wide
VENDOR_TIMEOUT = 3.0  # the vendor's backend gives up after about this long
VENDOR_RATE = 200.0  # requests per second per API, as documented

CALLBACK_KEYS = ("url", "commands")
PORT_ZERO = "port 0 is not a port a server listens on"
FINDING_KINDS = tuple(kind.value for kind in Kind)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_LABEL_NAME = re.compile(r"(?!__)[A-Za-z_][A-Za-z0-9_]*")
_SIMPLE_URL = re.compile(r"(?i:(https?))://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?(?=[/?#]|\Z)")


class Location(NamedTuple):
    region: str | None
    endpoint: str
    backup_endpoint: str | None


class Callback(NamedTuple):
    config: CallbackConfig | None
    url_line: int | None
    scheme: str = ""  # of the URL, lower case
    host: str = ""  # of the URL, lower case


def app_name(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    text = string(load, value, path, line)
    if text is not BAD and not _NAME.fullmatch(text):
        message = f"{clip(text)!r} is not a name: use up to 128 letters, digits, '-', '_' or '.' (not first)"
        load.problems.error(path, message, line)
        return BAD
    return text


def sdkappid(load: Load, value: object, path: str, line: int | None) -> int | Literal[Bad.BAD]:
    number = integer(load, value, path, line)
    if number is not BAD and not 0 < number < 2**32:
        load.problems.error(path, f"must be a positive integer below 2**32, got {number}", line)
        return BAD
    return number


def labels(load: Load, value: object, path: str, line: int | None) -> Mapping[str, str] | Literal[Bad.BAD]:
    m = mapping(load, value, path, line)
    if m is None:
        return BAD
    found: dict[str, str] = {}
    ok = True
    for key, item in m.items():
        if isinstance(key, str) and isinstance(item, str) and _LABEL_NAME.fullmatch(key):
            found[key] = item
            continue
        ok = False
        key_line = m.key_lines.get(key, line)
        if not isinstance(key, str) or not _LABEL_NAME.fullmatch(key):
            shown = str(key).lower() if isinstance(key, bool) else clip(repr(key))
            message = f"label name {shown} must be letters, digits and '_', not starting with a digit or '__'"
            load.problems.error(path, message, key_line)
        else:
            hint = "; quote it" if isinstance(item, int | float | bool) else ""
            load.problems.error(join(path, key), f"must be a string, got {describe(item)}{hint}", key_line)
    return MappingProxyType(found) if ok else BAD


def region(load: Load, value: object, path: str, line: int | None) -> Location | Literal[Bad.BAD]:
    name = string(load, value, path, line)
    if name is BAD:
        return BAD
    if name not in REGIONS:
        known = tuple(REGIONS)
        hint = load.problems.hint(name, known)
        load.problems.error(path, f"unknown region {clip(name)!r}{hint} (known: {', '.join(known)})", line)
        return BAD
    return REGION_LOCATIONS[name]


def endpoint(load: Load, value: object, path: str, line: int | None) -> Location | Literal[Bad.BAD]:
    url = word(load, value, path, line)
    if url is BAD:
        return BAD
    problem = endpoint_problem(url)
    if problem is not None:
        load.problems.error(path, problem, line)
        return BAD
    parts = urlsplit(url)
    if parts.port == 0:
        load.problems.error(path, f"{PORT_ZERO}: {clip(url, 200)!r}", line)
        return BAD
    return Location(None, f"{parts.scheme.lower()}://{parts.netloc.lower()}", None)


def interval(load: Load, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
    """How often something is done: an app's check, Alertmanager's re-send."""
    seconds = duration(load, value, path, line)
    if seconds is not BAD and not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        load.problems.error(path, f"must be between 1s and 168h, got {seconds:g}s", line)
        return BAD
    return seconds


def timeout(load: Load, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
    """How long one HTTP request may take."""
    seconds = duration(load, value, path, line)
    if seconds is BAD:
        return BAD
    if not 0 < seconds <= MAX_TIMEOUT:
        load.problems.error(path, f"must be more than 0s and at most 10m, got {seconds:g}s", line)
        return BAD
    if seconds < MIN_TIMEOUT:
        load.problems.error(path, f"must be at least 1ms, got {seconds:g}s", line)
        return BAD
    return seconds


def vendor_timeout(load: Load, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
    """A ``timeout`` for the vendor's API, whose backend gives up after about 3 s itself."""
    seconds = timeout(load, value, path, line)
    if seconds is not BAD and seconds <= VENDOR_TIMEOUT:
        message = (
            f"{seconds:g}s is not above the vendor backend's own timeout of about 3s: "
            "slow answers will count as timeouts (the default is 5s)"
        )
        load.problems.warn(path, message, line)
    return seconds


def rate(load: Load, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        load.problems.error(path, f"must be a number, got {describe(value)}", line)
        return BAD
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not 0 < number < math.inf:
        load.problems.error(path, f"must be a positive number, got {value}", line)
        return BAD
    if number < MIN_RATE:
        load.problems.error(path, f"must be at least 0.1 (a request every 10s), got {number:g}", line)
        return BAD
    if number > MAX_RATE:
        load.problems.error(path, f"must be at most 1000000, got {number:g}", line)
        return BAD
    if number > VENDOR_RATE:
        message = f"{number:g} is above the vendor's documented limit of 200 requests/s per API"
        load.problems.warn(path, message, line)
    return number


def allowed_hosts(
    load: Load, value: object, path: str, line: int | None
) -> tuple[str, ...] | Literal[Bad.BAD]:
    globs = list_of(load, value, path, line, host_glob)
    return BAD if globs is BAD else tuple(globs)


def host_glob(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    glob = word(load, value, path, line)
    if glob is not BAD and "/" in glob:
        message = f"{clip(glob)!r} is a URL or a path; allowed_hosts lists host names or globs"
        load.problems.error(path, message, line)
        return BAD
    return glob


def unexpected(
    load: Load, value: object, path: str, line: int | None
) -> UnexpectedCommands | Literal[Bad.BAD]:
    choices = tuple(u.value for u in UnexpectedCommands)
    if not isinstance(value, str) or value not in choices:
        shown = repr(value) if isinstance(value, str) else describe(value)
        load.problems.error(path, f"must be one of {', '.join(choices)}, got {shown}", line)
        return BAD
    return UnexpectedCommands(value)


def ignore(load: Load, value: object, path: str, line: int | None) -> frozenset[str] | Literal[Bad.BAD]:
    kinds = list_of(load, value, path, line, finding_kind)
    if kinds is BAD:
        return BAD
    if len(set(kinds)) != len(kinds):
        load.problems.warn(path, "lists a kind more than once", line)
    return frozenset(kinds)


def finding_kind(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    kind = string(load, value, path, line)
    if kind is not BAD and kind not in FINDING_KINDS:
        hint = load.problems.hint(kind, FINDING_KINDS)
        message = f"unknown finding kind {clip(kind)!r}{hint} (known: {', '.join(FINDING_KINDS)})"
        load.problems.error(path, message, line)
        return BAD
    return kind


def callback(load: Load, value: object, path: str, line: int | None) -> Callback | Literal[Bad.BAD]:
    if value is None:
        return Callback(None, line)
    m = mapping(load, value, path, line)
    if m is None:
        return BAD
    keys(load, m, path, CALLBACK_KEYS)
    url = required(load, m, path, "url", http_url)
    commands_at = required(load, m, path, "commands", commands)
    if not isinstance(url, At) or not isinstance(commands_at, At):
        return BAD
    text, scheme, host = url.value
    return Callback(CallbackConfig(text, commands_at.value), url.line, scheme, host)


def http_url(
    load: Load, value: object, path: str, line: int | None
) -> tuple[str, str, str] | Literal[Bad.BAD]:
    """An absolute http(s) URL as written, its scheme and its host (both lower case)."""
    url = word(load, value, path, line)
    if url is BAD:
        return BAD
    simple = _SIMPLE_URL.match(url)  # urlsplit is slow; this agrees with it where it matches
    if simple and (simple[3] is None or 0 < int(simple[3]) <= 65535) and "\\" not in url:
        return url, simple[1].lower(), simple[2].lower()
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        message = f"is not a valid URL (bad host or port): {clip(redact_url(url), 200)!r}"
        load.problems.error(path, message, line)
        return BAD
    if port == 0:
        load.problems.error(path, f"{PORT_ZERO}: {clip(redact_url(url), 200)!r}", line)
        return BAD
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        message = f"must be an absolute http:// or https:// URL, got {clip(redact_url(url), 200)!r}"
        load.problems.error(path, message, line)
        return BAD
    ambiguous = url_problem(url)  # parsers would disagree on the host: a policy violation
    if ambiguous is not None:
        load.problems.error(path, f"{ambiguous}, got {clip(redact_url(url), 200)!r}", line)
        return BAD
    return url, scheme, host


def commands(load: Load, value: object, path: str, line: int | None) -> tuple[str, ...] | Literal[Bad.BAD]:
    if isinstance(value, Seq):
        # Many apps list the same words: a list that passed once without a warning passes again.
        try:
            clean = load.clean_commands.get(tuple(value))
        except TypeError:  # an item that is itself a list or mapping
            clean = None
        if clean is not None:
            return clean
    words = list_of(load, value, path, line, word)
    if words is BAD:
        return BAD
    if not words:
        load.problems.error(path, "must list at least one command word", line)
        return BAD
    assert isinstance(value, Seq)
    seen: dict[str, int] = {}
    ok, warned = True, False
    for index, written in enumerate(words):
        first = seen.setdefault(canonical(written), index)
        if first != index:
            same = (
                f" ({words[first]!r} and {written!r} name the same event)" if words[first] != written else ""
            )
            message = f"duplicates {path.rsplit('.', 1)[-1]}[{first}]{same}"
            load.problems.error(f"{path}[{index}]", message, value.item_lines[index])
            ok = False
        elif written not in KNOWN_COMMANDS and not is_known(written):
            hint = load.problems.hint(written, _KNOWN_WORDS, cutoff=0.9)  # the words share long prefixes
            message = f"unknown command word {clip(written)!r}{hint}"
            load.problems.warn(f"{path}[{index}]", message, value.item_lines[index])
            warned = True
    if not ok:
        return BAD
    result = tuple(words)
    if not warned:
        load.clean_commands[result] = result
    return result


concurrency = count_up_to(MAX_CONCURRENCY)
queue_size = count_up_to(MAX_QUEUE_SIZE)
consecutive = count_up_to(MAX_CONSECUTIVE)  # checks or writes in a row
writes_per_hour = count_up_to(MAX_WRITES_PER_HOUR)
REGION_LOCATIONS = {r.name: Location(r.name, r.endpoint, r.backup_endpoint) for r in REGIONS.values()}
_KNOWN_WORDS = tuple(sorted(KNOWN_COMMANDS | set(ALIASES)))
