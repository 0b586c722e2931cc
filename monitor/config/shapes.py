"""Readers of generic shapes (mapping, string, number, duration, list) that report to the collector."""

from __future__ import annotations

import math
import re
from typing import Literal, TypeVar

from monitor.config.problems import BAD, NEW_TUPLE, At, Bad, Load, Reader, Slot
from monitor.config.yamltree import UNREADABLE, Map, Seq, Unreadable, clip, join

_T = TypeVar("_T")

_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)")
_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
CONTROL = re.compile(r"[\x00-\x20\x7f]")  # white space and control characters
BOOL_HINT = "YAML reads yes/no/on/off/true/false as booleans"


def parse_duration(value: object) -> float:
    """Seconds in ``value``: "500ms", "30s", "5m", "1h", "1h30m", or a bare number of seconds.

    Raises ValueError with a message that says what was wrong and what is accepted.
    """
    hint = "use e.g. 500ms, 30s, 5m, 1h30m or a number of seconds"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a duration ({hint}), got {describe(value)}")
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        elif _DURATION.fullmatch(text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"{clip(text)!r} is not a duration ({hint})")
    else:
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError("is far too large for a duration") from None
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"must be a duration of zero or more seconds ({hint})")
    if math.isinf(seconds):
        raise ValueError("is far too large for a duration")
    return seconds


def describe(value: object) -> str:
    """What kind of value this is, as a message says it ("got a list")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()}; {BOOL_HINT})"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, Unreadable):
        return "a value YAML cannot read"
    return f"a YAML {type(value).__name__}"


def opt(load: Load, m: Map, place: str, key: str, reader: Reader[_T]) -> Slot[_T]:
    """The value of an optional ``key``: None when absent, BAD when present but wrong."""
    if key not in m:
        return None
    path, line = f"{place}.{key}", m.key_lines[key]
    if m[key] is UNREADABLE:
        return BAD  # already reported where it was read
    value = reader(load, m[key], path, line)
    return BAD if value is BAD else NEW_TUPLE(At, (value, path, line))


def required(load: Load, m: Map, place: str, key: str, reader: Reader[_T]) -> Slot[_T]:
    if key not in m:
        load.problems.error(f"{place}.{key}", "is required", m.line)
        return BAD
    return opt(load, m, place, key, reader)


def mapping(load: Load, value: object, path: str, line: int | None) -> Map | None:
    if isinstance(value, Map):
        return value
    if value is not UNREADABLE:  # else already reported where it was read
        load.problems.error(path, f"must be a mapping, got {describe(value)}", line)
    return None


def keys(load: Load, m: Map, path: str, allowed: tuple[str, ...]) -> None:
    """Reports every key of ``m`` that is not ``allowed`` here."""
    problems = load.problems
    for key in m:
        if key in allowed:
            continue
        line = m.key_lines.get(key)
        if isinstance(key, str):
            hint = problems.hint(key, allowed)
            message = f"unknown key {clip(key)!r}{hint} (allowed here: {', '.join(allowed)})"
            problems.error(join(path, key), message, line)
        else:
            shown = str(key).lower() if isinstance(key, bool) or key is None else clip(repr(key))
            hint = f"; {BOOL_HINT}, quote it" if isinstance(key, bool) else ""
            problems.error(path, f"key {shown} is not a string{hint}", line)


def string(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    if not isinstance(value, str):
        load.problems.error(path, f"must be a string, got {describe(value)}", line)
        return BAD
    if not value:
        load.problems.error(path, "must not be empty", line)
        return BAD
    return value


def word(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    text = string(load, value, path, line)
    if text is not BAD and CONTROL.search(text):
        load.problems.error(path, "must not contain spaces or control characters", line)
        return BAD
    return text


def integer(load: Load, value: object, path: str, line: int | None) -> int | Literal[Bad.BAD]:
    if isinstance(value, bool) or not isinstance(value, int):
        hint = "; remove the quotes" if isinstance(value, str) and value.strip().isdigit() else ""
        load.problems.error(path, f"must be an integer, got {describe(value)}{hint}", line)
        return BAD
    return value


def count_up_to(high: int) -> Reader[int]:
    """A reader of a whole number from 1 to ``high``: a count, a size or a threshold."""

    def read(load: Load, value: object, path: str, line: int | None) -> int | Literal[Bad.BAD]:
        number = integer(load, value, path, line)
        if number is BAD:
            return BAD
        if number < 1:
            load.problems.error(path, f"must be at least 1, got {number}", line)
            return BAD
        if number > high:
            load.problems.error(path, f"must be at most {high}, got {number}", line)
            return BAD
        return number

    return read


def boolean(load: Load, value: object, path: str, line: int | None) -> bool | Literal[Bad.BAD]:
    if not isinstance(value, bool):
        load.problems.error(path, f"must be true or false, got {describe(value)}", line)
        return BAD
    return value


def duration(load: Load, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
    if isinstance(value, str) and value in load.durations:
        return load.durations[value]
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        load.problems.error(path, str(exc), line)
        return BAD
    if isinstance(value, str):
        load.durations[value] = seconds
    return seconds


def list_of(
    load: Load, value: object, path: str, line: int | None, reader: Reader[_T]
) -> list[_T] | Literal[Bad.BAD]:
    if not isinstance(value, Seq):
        load.problems.error(path, f"must be a list, got {describe(value)}", line)
        return BAD
    items: list[_T] = []
    ok = True
    for index, item in enumerate(value):
        if item is UNREADABLE:
            ok = False
            continue
        read = reader(load, item, f"{path}[{index}]", value.item_lines[index])
        if read is BAD:
            ok = False
        else:
            items.append(read)
    return items if ok else BAD


def either(
    load: Load, m: Map, place: str, first: str, second: str, readers: tuple[Reader[_T], Reader[_T]]
) -> Slot[_T]:
    """One of two keys that say the same thing two ways (a region or an endpoint, a secret's variable
    or file): setting both is an error reported at ``second``."""
    if first in m and second in m:
        message = f"set either {first} or {second}, not both"
        load.problems.error(f"{place}.{second}", message, m.key_lines[second])
        return BAD
    if second in m:
        return opt(load, m, place, second, readers[1])
    return opt(load, m, place, first, readers[0])
