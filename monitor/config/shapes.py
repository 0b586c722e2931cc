"""Generic shapes read from the YAML tree (mapping, string, number, duration, list), collecting problems."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from enum import Enum
from typing import Generic, Literal, NamedTuple, TypeAlias, TypeVar

from monitor.config.yamltree import UNREADABLE, Map, Seq, Unreadable, clip, join
from monitor.errors import Problem

_T = TypeVar("_T")


class Bad(Enum):
    """A value that was present but invalid (already reported)."""

    BAD = "bad"


BAD: Literal[Bad.BAD] = Bad.BAD


class At(NamedTuple, Generic[_T]):
    """A value read from the file, with the place it came from (a tuple: a load makes many)."""

    value: _T
    path: str
    line: int | None


_NEW_TUPLE = tuple.__new__
Slot: TypeAlias = "At[_T] | Literal[Bad.BAD] | None"  # None: not set at this place
Reader: TypeAlias = "Callable[[object, str, int | None], _T | Literal[Bad.BAD]]"

_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)")
_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
CONTROL = re.compile(r"[\x00-\x20\x7f]")  # white space and control characters
BOOL_HINT = "YAML reads yes/no/on/off/true/false as booleans"
MAX_HINTS = 100  # different unknown words a load suggests a correction for: past that, not typos


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


def did_you_mean(word: str, choices: tuple[str, ...], cutoff: float = 0.6) -> str:
    lowered = {choice.lower(): choice for choice in choices}
    word = word.lower()
    # difflib's ratio is at most 2 * shorter / (sum of lengths): a word this long cannot reach the cutoff.
    if len(word) * cutoff > (2 - cutoff) * max(map(len, lowered), default=0):
        return ""
    close = difflib.get_close_matches(word, list(lowered), n=1, cutoff=cutoff)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


class Shapes:
    """Reads generic shapes at a place in the file, collecting every problem instead of stopping."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.durations: dict[str, float] = {}
        # A problem in a defaults value that shows only for some apps: reported once, naming the apps.
        self.inherited: dict[tuple[str, int | None, str, bool], list[str]] = {}
        self.hints: dict[tuple[str, tuple[str, ...], float], str] = {}

    def hint(self, word: str, choices: tuple[str, ...], cutoff: float = 0.6) -> str:
        """``did_you_mean``, worked out for the first MAX_HINTS different words only.

        difflib costs some 30 us a word: a file of 500,000 unknown keys spent 12 s on suggestions alone.
        A word met again (the same typo in every app) keeps its suggestion.
        """
        key = (word, choices, cutoff)
        found = self.hints.get(key)
        if found is None:
            if len(self.hints) >= MAX_HINTS:
                return ""
            found = self.hints[key] = did_you_mean(word, choices, cutoff)
        return found

    def error(self, path: str, message: str, line: int | None) -> None:
        self.problems.append(Problem(path, message, line))

    def warn(self, path: str, message: str, line: int | None) -> None:
        self.problems.append(Problem(path, message, line, warning=True))

    def report_path(
        self, path: str, line: int | None, message: str, place: str, label: str, *, warning: bool = False
    ) -> None:
        if path.startswith((place + ".", place + "[")) or path == place:
            self.problems.append(Problem(path, message, line, warning))
        else:
            self.inherited.setdefault((path, line, message, warning), []).append(label)

    def flush_inherited(self) -> None:
        for (path, line, message, warning), labels in self.inherited.items():
            shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
            self.problems.append(Problem(f"{path} (used by {shown})", message, line, warning))
        self.inherited.clear()

    def opt(self, m: Map, place: str, key: str, reader: Reader[_T]) -> Slot[_T]:
        """The value of an optional ``key``: None when absent, BAD when present but wrong."""
        if key not in m:
            return None
        path, line = f"{place}.{key}", m.key_lines[key]
        if m[key] is UNREADABLE:
            return BAD  # already reported where it was read
        value = reader(m[key], path, line)
        return BAD if value is BAD else _NEW_TUPLE(At, (value, path, line))  # skips At.__new__: hot

    def required(self, m: Map, place: str, key: str, reader: Reader[_T]) -> Slot[_T]:
        if key not in m:
            self.error(f"{place}.{key}", "is required", m.line)
            return BAD
        return self.opt(m, place, key, reader)

    def mapping(self, value: object, path: str, line: int | None) -> Map | None:
        if isinstance(value, Map):
            return value
        self.error(path, f"must be a mapping, got {describe(value)}", line)
        return None

    def keys(self, m: Map, path: str, allowed: tuple[str, ...]) -> None:
        for key in m:
            if key in allowed:
                continue
            line = m.key_lines.get(key)
            if isinstance(key, str):
                hint = self.hint(key, allowed)
                message = f"unknown key {clip(key)!r}{hint} (allowed here: {', '.join(allowed)})"
                self.error(join(path, key), message, line)
            else:
                shown = str(key).lower() if isinstance(key, bool) or key is None else clip(repr(key))
                hint = f"; {BOOL_HINT}, quote it" if isinstance(key, bool) else ""
                self.error(path, f"key {shown} is not a string{hint}", line)

    def string(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        if not isinstance(value, str):
            self.error(path, f"must be a string, got {describe(value)}", line)
            return BAD
        if not value:
            self.error(path, "must not be empty", line)
            return BAD
        return value

    def word(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        text = self.string(value, path, line)
        if text is not BAD and CONTROL.search(text):
            self.error(path, "must not contain spaces or control characters", line)
            return BAD
        return text

    def integer(self, value: object, path: str, line: int | None) -> int | Literal[Bad.BAD]:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = "; remove the quotes" if isinstance(value, str) and value.strip().isdigit() else ""
            self.error(path, f"must be an integer, got {describe(value)}{hint}", line)
            return BAD
        return value

    def positive_int(self, value: object, path: str, line: int | None) -> int | Literal[Bad.BAD]:
        number = self.integer(value, path, line)
        if number is not BAD and number < 1:
            self.error(path, f"must be at least 1, got {number}", line)
            return BAD
        return number

    def boolean(self, value: object, path: str, line: int | None) -> bool | Literal[Bad.BAD]:
        if not isinstance(value, bool):
            self.error(path, f"must be true or false, got {describe(value)}", line)
            return BAD
        return value

    def duration(self, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
        if isinstance(value, str) and value in self.durations:
            return self.durations[value]
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error(path, str(exc), line)
            return BAD
        if isinstance(value, str):
            self.durations[value] = seconds
        return seconds

    def list_of(
        self, value: object, path: str, line: int | None, reader: Reader[_T]
    ) -> list[_T] | Literal[Bad.BAD]:
        if not isinstance(value, Seq):
            self.error(path, f"must be a list, got {describe(value)}", line)
            return BAD
        items: list[_T] = []
        ok = True
        for index, item in enumerate(value):
            if item is UNREADABLE:
                ok = False
                continue
            read = reader(item, f"{path}[{index}]", value.item_lines[index])
            if read is BAD:
                ok = False
            else:
                items.append(read)
        return items if ok else BAD
