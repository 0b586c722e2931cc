"""One load's problems collector, and what every reader hands back: a value with its place, or BAD."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Generic, Literal, NamedTuple, TypeAlias, TypeVar

from monitor.config.model import Policy, UnexpectedCommands
from monitor.errors import Problem

_T = TypeVar("_T")

MAX_HINTS = 100  # different unknown words a load suggests a correction for: past that, not typos


class Bad(Enum):
    """A value that was present but invalid (already reported)."""

    BAD = "bad"


BAD: Literal[Bad.BAD] = Bad.BAD


class At(NamedTuple, Generic[_T]):
    """A value read from the file, with the place it came from (a tuple: a load makes many)."""

    value: _T
    path: str
    line: int | None


NEW_TUPLE = tuple.__new__  # At(...) without At.__new__: the hot path of a load makes one per key
Slot: TypeAlias = "At[_T] | Literal[Bad.BAD] | None"  # None: not set at this place
Reader: TypeAlias = "Callable[[Load, object, str, int | None], _T | Literal[Bad.BAD]]"


def did_you_mean(word: str, choices: tuple[str, ...], cutoff: float = 0.6) -> str:
    lowered = {choice.lower(): choice for choice in choices}
    word = word.lower()
    # difflib's ratio is at most 2 * shorter / (sum of lengths): a word this long cannot reach the cutoff.
    if len(word) * cutoff > (2 - cutoff) * max(map(len, lowered), default=0):
        return ""
    close = difflib.get_close_matches(word, list(lowered), n=1, cutoff=cutoff)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


class Problems:
    """Every problem of one load, each with its place: readers report here and carry on."""

    def __init__(self, found: list[Problem] | None = None) -> None:
        self.found: list[Problem] = found if found is not None else []
        # A problem in a defaults value that shows only for some apps: reported once, naming the apps.
        self.inherited: dict[tuple[str, int | None, str, bool], list[str]] = {}
        self.hints: dict[tuple[str, tuple[str, ...], float], str] = {}

    def error(self, path: str, message: str, line: int | None) -> None:
        self.found.append(Problem(path, message, line))

    def warn(self, path: str, message: str, line: int | None) -> None:
        self.found.append(Problem(path, message, line, warning=True))

    def for_app(
        self, path: str, line: int | None, message: str, place: str, label: str, *, warning: bool = False
    ) -> None:
        """A problem met while building the app at ``place``: reported at once when ``path`` is the
        app's own, else once for all the apps that inherit it from defaults (see ``flush_inherited``)."""
        if path.startswith((place + ".", place + "[")) or path == place:
            self.found.append(Problem(path, message, line, warning))
        else:
            self.inherited.setdefault((path, line, message, warning), []).append(label)

    def flush_inherited(self) -> None:
        for (path, line, message, warning), labels in self.inherited.items():
            shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
            self.found.append(Problem(f"{path} (used by {shown})", message, line, warning))
        self.inherited.clear()

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

    def in_file_order(self) -> list[Problem]:
        """By line, then path; a problem of the whole file (no line) comes first."""
        return sorted(self.found, key=lambda p: (p.line or 0, p.path))


@dataclass(slots=True)
class Load:
    """What one load shares between its readers: the problems, where it reads secrets, and its caches.

    The caches are why a file of ten thousand apps that share their defaults loads in well under a
    second: a duration, a key file, a secret name's placeholders, a command list or a policy written
    the same way again is not worked out again.
    """

    base_dir: Path  # relative secret files are taken from here
    environ: Mapping[str, str]
    problems: Problems = field(default_factory=Problems)
    durations: dict[str, float] = field(default_factory=dict)
    secret_files: dict[str, str | None] = field(default_factory=dict)  # path -> why it is unusable
    template_fields: dict[str, frozenset[str]] = field(default_factory=dict)
    clean_commands: dict[tuple[object, ...], tuple[str, ...]] = field(default_factory=dict)
    policies: dict[tuple[bool, tuple[str, ...], UnexpectedCommands], Policy] = field(default_factory=dict)
