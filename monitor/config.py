"""The desired-state file: schema, loading, validation with precise error paths."""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import math
import os
import re
import stat
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, Literal, NamedTuple, TypeAlias, TypeVar
from urllib.parse import urlsplit

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from monitor.errors import ConfigError, Problem
from monitor.redact import redact_url
from monitor.tencent.commands import ALIASES, KNOWN_COMMANDS, canonical, is_known
from monitor.tencent.model import CallbackConfig
from monitor.tencent.regions import DEFAULT_REGION, REGIONS, endpoint_problem


class UnexpectedCommands(StrEnum):
    DRIFT = "drift"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Policy:
    require_https: bool = True
    allowed_hosts: tuple[str, ...] = ()  # globs on the URL host; empty = any host
    unexpected_commands: UnexpectedCommands = UnexpectedCommands.DRIFT


@dataclass(frozen=True)
class SecretRef:
    """Where an app's secret key lives: exactly one of an environment variable or a file."""

    env: str | None = None
    file: Path | None = None

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def read(self, environ: Mapping[str, str] | None = None) -> str:
        """The key, stripped of surrounding white space. Raises OSError or KeyError."""
        if self.env is not None:
            return (environ if environ is not None else os.environ)[self.env].strip()
        assert self.file is not None
        return self.file.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class AppConfig:
    name: str
    sdkappid: int
    endpoint: str  # https://host (or http://loopback) with no trailing slash
    backup_endpoint: str | None  # the region's backup host; None for an explicit endpoint
    region: str | None  # None when an explicit endpoint is given
    identifier: str
    interval: float  # seconds
    timeout: float  # seconds, one HTTP request
    secret: SecretRef
    policy: Policy
    ignore: frozenset[str]  # finding kinds shown but never alerted on
    labels: Mapping[str, str]
    callback: CallbackConfig | None  # None: the app must have no callback at all
    error_threshold: int = 3


@dataclass(frozen=True)
class Limits:
    concurrency: int = 32
    requests_per_second: float = 200.0


@dataclass(frozen=True)
class Config:
    source: str  # the path it was loaded from, for messages
    apps: tuple[AppConfig, ...]
    limits: Limits = field(default_factory=Limits)
    warnings: tuple[Problem, ...] = ()
    digest: str = ""  # sha256 of the file's bytes, for callback_monitor_config_hash

    def app(self, name: str) -> AppConfig:
        for app in self.apps:
            if app.name == name:
                return app
        raise KeyError(name)


FINDING_KINDS: tuple[str, ...] = (
    "config_missing",
    "config_present",
    "url_mismatch",
    "missing_commands",
    "unexpected_commands",
    "insecure_url",
    "host_not_allowed",
)

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_NODES = 1_000_000  # after alias expansion: stops a "billion laughs" file
MAX_DEPTH = 64  # the schema needs 6 levels; deeper nesting (or a self-referencing alias) is refused
MAX_SECRET_BYTES = 64 * 1024
MIN_INTERVAL = 1.0
MAX_INTERVAL = 7 * 24 * 3600.0
MAX_TIMEOUT = 600.0
VENDOR_TIMEOUT = 3.0  # the vendor's backend gives up after about this long
VENDOR_RATE = 200.0  # requests per second per API, as documented

_TOP_KEYS = ("version", "defaults", "limits", "apps")
_LAYER_KEYS = (
    "region",
    "endpoint",
    "identifier",
    "interval",
    "timeout",
    "secret_key_env",
    "secret_key_file",
    "policy",
    "ignore",
    "callback",
    "error_threshold",
)
_APP_KEYS = ("name", "sdkappid", "labels", *_LAYER_KEYS)
_POLICY_KEYS = ("require_https", "allowed_hosts", "unexpected_commands")
_CALLBACK_KEYS = ("url", "commands")
_LIMITS_KEYS = ("concurrency", "requests_per_second")
_PLACEHOLDERS = ("sdkappid", "name")

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_LABEL_NAME = re.compile(r"(?!__)[A-Za-z_][A-Za-z0-9_]*")
_SIMPLE_URL = re.compile(r"(?i:(https?))://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?(?=[/?#]|\Z)")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)")
_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_CONTROL = re.compile(r"[\x00-\x20\x7f]")

_BOOL_HINT = "YAML reads yes/no/on/off/true/false as booleans"


def parse_duration(value: object) -> float:
    """Seconds in ``value``: "500ms", "30s", "5m", "1h", "1h30m", or a bare number of seconds.

    Raises ValueError with a message that says what was wrong and what is accepted.
    """
    hint = "use e.g. 500ms, 30s, 5m, 1h30m or a number of seconds"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a duration ({hint}), got {_describe(value)}")
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        elif _DURATION.fullmatch(text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"{_clip(text)!r} is not a duration ({hint})")
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


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate the desired-state file at ``path``. Raises ConfigError only."""
    source = str(path)

    def fail(message: str) -> ConfigError:
        return ConfigError(source, [Problem("", message)])

    try:
        where = Path(path)
        info = where.stat()
        if stat.S_ISDIR(info.st_mode):
            raise fail("is a directory, not a config file")
        if info.st_size > MAX_FILE_BYTES:
            raise fail(f"is {info.st_size} bytes; a config file may be at most 32 MiB")
        with where.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        base_dir = where.absolute().parent
    except OSError as exc:
        raise fail(f"cannot read the file: {exc.strerror or type(exc).__name__}") from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise fail(f"cannot read the file: {exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise fail("is larger than 32 MiB; a config file may be at most 32 MiB")
    return _load(data, source, base_dir, environ)


def load_config_text(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Parse and validate config text; relative secret files are taken from ``base_dir`` (default: cwd)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(source, [Problem("", f"is not valid text: {exc.reason}")]) from None
    return _load(data, source, base_dir if base_dir is not None else Path.cwd(), environ)


def _load(data: bytes, source: str, base_dir: Path, environ: Mapping[str, str] | None) -> Config:
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = f"is not UTF-8 text (invalid byte at offset {exc.start})"
        raise ConfigError(source, [Problem("", message, line)]) from None
    root, problems = _read_yaml(text, source)
    checker = _Checker(base_dir.absolute(), os.environ if environ is None else environ)
    checker.problems.extend(problems)
    config = checker.check(root, source, digest)
    errors = [p for p in checker.problems if not p.warning]
    if errors or config is None:
        raise ConfigError(source, errors)
    return config


# --- YAML: events to plain values, keeping line numbers --------------------------------------------


class _Map(dict[object, object]):
    """A YAML mapping: its line and the line of each key."""

    __slots__ = ("key_lines", "line")
    line: int
    key_lines: dict[object, int]


class _Seq(list[object]):
    """A YAML sequence: its line and the line of each item."""

    __slots__ = ("item_lines", "line")
    line: int
    item_lines: list[int]


class _Abort(Exception):
    """Reading stopped early: one problem makes the rest of the file pointless to look at."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE = _TAG + "str", _TAG + "map", _TAG + "seq", _TAG + "merge"
_SCALAR_TAGS = frozenset(_TAG + t for t in ("null", "bool", "int", "float", "binary", "timestamp"))
_IMPLICIT = yaml.resolver.Resolver.yaml_implicit_resolvers
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _MergeKey:
    """A plain ``<<`` key: the mapping (or list of mappings) after it is merged in."""


class _Unreadable:
    """A scalar whose explicit or implied type failed to construct (already reported)."""

    def __repr__(self) -> str:
        return "(unreadable)"


_MERGE_KEY = _MergeKey()
_UNREADABLE = _Unreadable()


@dataclass(slots=True)
class _Frame:
    """A collection being built: the value, its size once aliases are expanded, and a pending key."""

    value: _Map | _Seq
    path: str
    anchor: str | None
    size: int = 1
    key: object = None
    key_line: int = 0
    has_key: bool = False
    merges: list[tuple[object, int]] | None = None


class _TreeBuilder:
    """Turns the parser's events into _Map, _Seq and scalars without recursion.

    Aliases share the anchored value; ``count`` adds up every value as if they were expanded, so a
    "billion laughs" file stops at MAX_NODES instead of making later steps walk billions of values.
    """

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.anchors: dict[str, tuple[object, int]] = {}
        self.count = 0
        self.constructor = SafeConstructor()

    def build(self, text: str) -> object:
        loader = _YAML_LOADER(text)
        try:
            return self.events(loader)
        finally:
            loader.dispose()

    def events(self, loader: yaml.SafeLoader) -> object:
        # The hot loop of a load: a 10,000-app file is some 300,000 events, so it stays flat.
        stack: list[_Frame] = []
        anchors = self.anchors
        root: object = None
        documents = 0
        next_event: Callable[[], Any] = loader.get_event  # events are untyped in the stubs
        while True:
            event = next_event()
            kind = type(event)
            if kind is ScalarEvent:
                self.count += 1
                if self.count > MAX_NODES:
                    self.tick(0, self.child_path(stack), event.start_mark.line + 1)
                value: object = event.value
                # Most values are plain words that no implicit type can match: skip the resolver.
                if event.tag is not None or (event.implicit[0] and event.value[:1] in _IMPLICIT):
                    value = self.scalar(event, stack)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
                size, line = 1, event.start_mark.line + 1
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                self.start(event, stack)
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                if frame.merges:
                    self.merge(frame)
                if frame.anchor is not None:
                    anchors[frame.anchor] = (frame.value, frame.size)
                value, size, line = frame.value, frame.size, frame.value.line
            elif kind is AliasEvent:
                value, size = self.alias(event, stack)
                line = event.start_mark.line + 1
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    message = "holds more than one YAML document ('---')"
                    raise _Abort(Problem("", message, event.start_mark.line + 1))
                continue
            elif kind is StreamEndEvent:
                return root if documents else None
            else:
                continue
            if not stack:
                root = "<<" if value is _MERGE_KEY else value
                continue
            # Put the finished value into the collection being built.
            top = stack[-1]
            top.size += size
            target = top.value
            if type(target) is _Seq:
                target.append("<<" if value is _MERGE_KEY else value)
                target.item_lines.append(line)
            elif not top.has_key:
                top.key, top.key_line, top.has_key = value, line, True
                if type(value) is _Map or type(value) is _Seq:
                    message = "a key must be a plain string, not a list or mapping"
                    self.problems.append(Problem(top.path, message, line))
            else:
                top.has_key = False
                key = top.key
                if key is _MERGE_KEY:
                    top.merges = [*(top.merges or ()), (value, line)]
                elif type(key) is not _Map and type(key) is not _Seq:
                    assert isinstance(target, _Map)
                    if key in target.key_lines:
                        message = f"duplicate key (first at line {target.key_lines[key]})"
                        self.problems.append(Problem(_join(top.path, key), message, top.key_line))
                    target[key] = "<<" if value is _MERGE_KEY else value
                    target.key_lines[key] = top.key_line

    def start(self, event: Any, stack: list[_Frame]) -> None:
        line = event.start_mark.line + 1
        path = self.child_path(stack)
        if len(stack) >= MAX_DEPTH:
            raise _Abort(Problem(path, f"nested more than {MAX_DEPTH} levels deep", line))
        is_map = type(event) is MappingStartEvent
        if event.tag not in (None, "!", _MAP if is_map else _SEQ):
            self.problems.append(Problem(path, f"unsupported YAML tag {event.tag}", line))
        collection: _Map | _Seq
        if is_map:
            collection = _Map()
            collection.key_lines = {}
        else:
            collection = _Seq()
            collection.item_lines = []
        collection.line = line
        stack.append(_Frame(collection, path, event.anchor))
        self.tick(1, path, line)

    def alias(self, event: Any, stack: list[_Frame]) -> tuple[object, int]:
        line = event.start_mark.line + 1
        if event.anchor not in self.anchors:
            message = f"alias *{event.anchor} is not defined before this point, or refers to its own parent"
            raise _Abort(Problem(self.child_path(stack), message, line))
        value, size = self.anchors[event.anchor]
        self.tick(size, self.child_path(stack), line)
        return value, size

    def tick(self, size: int, path: str, line: int) -> None:
        self.count += size
        if self.count > MAX_NODES:
            message = f"the document expands to more than {MAX_NODES:,} values (YAML aliases?); refusing it"
            raise _Abort(Problem(path, message, line))

    def scalar(self, event: Any, stack: list[_Frame]) -> object:
        tag, value = event.tag, event.value
        plain = event.implicit[0]
        if tag not in (None, "!", _STR) and tag not in _SCALAR_TAGS and tag != _MERGE:
            line = event.start_mark.line + 1
            self.problems.append(Problem(self.child_path(stack), f"unsupported YAML tag {tag}", line))
            tag, plain = None, not event.style  # read it as if the tag were not there
        if tag is None or tag == "!":
            if not plain:
                return value
            tag = _STR
            for candidate, regexp in _IMPLICIT.get(value[:1], ()):
                if regexp.match(value):
                    tag = candidate
                    break
        if tag == _MERGE:
            return _MERGE_KEY
        if tag not in _SCALAR_TAGS:  # str, and the "=" of tag:yaml.org,2002:value, which has no type
            return value
        message = f"cannot be read as a YAML {tag.removeprefix(_TAG)}"
        try:
            result = SafeConstructor.yaml_constructors[tag](self.constructor, ScalarNode(tag, value))
        except (yaml.YAMLError, ValueError, OverflowError, TypeError):
            result = _UNREADABLE
        # Python refuses to print an integer of more than 4300 digits; no setting needs one anyway.
        if isinstance(result, int) and result.bit_length() > 128:
            result, message = _UNREADABLE, "is an integer far too large for any setting"
        if result is _UNREADABLE:
            line = event.start_mark.line + 1
            self.problems.append(Problem(self.child_path(stack), message, line))
        return result

    def merge(self, frame: _Frame) -> None:
        """``<<: *base`` keys: keys written in the mapping win, then earlier merged mappings.

        The merged values were counted when their alias was read, so merging adds nothing to count.
        """
        target = frame.value
        assert isinstance(target, _Map)
        for value, line in frame.merges or ():
            for source in value if isinstance(value, _Seq) else [value]:
                if not isinstance(source, _Map):
                    self.problems.append(
                        Problem(frame.path, "'<<' merges a mapping or a list of mappings", line)
                    )
                    continue
                for key, item in source.items():
                    if key not in target.key_lines:
                        target[key] = item
                        target.key_lines[key] = source.key_lines[key]

    @staticmethod
    def child_path(stack: list[_Frame]) -> str:
        """The path of the value that comes next (only built when a problem needs it)."""
        if not stack:
            return ""
        frame = stack[-1]
        if isinstance(frame.value, _Seq):
            return f"{frame.path}[{len(frame.value)}]"
        return _join(frame.path, frame.key) if frame.has_key else frame.path


def _join(path: str, key: object) -> str:
    return f"{path}.{_clip(str(key))}" if path else _clip(str(key))


def _clip(text: str, limit: int = 60) -> str:
    """Text from the file as shown in a message: a 30 MB key must not make a 30 MB message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_yaml(text: str, source: str) -> tuple[object, list[Problem]]:
    builder = _TreeBuilder()
    try:
        root = builder.build(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            start = f" that starts on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            what = f"{exc.problem} ({exc.context}{start})"
        line = mark.line + 1 if mark is not None else None
        column = f" at column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(source, [Problem("", f"invalid YAML{column}: {what}", line)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [Problem("", f"invalid YAML: {exc}")]) from None
    except _Abort as exc:
        raise ConfigError(source, [exc.problem]) from None
    if root is None:
        raise ConfigError(source, [Problem("", "the file is empty: it must hold version, defaults and apps")])
    return root, builder.problems


# --- values with their place -----------------------------------------------------------------------

_T = TypeVar("_T")


class _Bad(Enum):
    """A value that was present but invalid (already reported)."""

    BAD = "bad"


BAD: Literal[_Bad.BAD] = _Bad.BAD


class _At(NamedTuple, Generic[_T]):
    """A value read from the file, with the place it came from (a tuple: a load makes many)."""

    value: _T
    path: str
    line: int | None


_NEW_TUPLE = tuple.__new__
_Slot: TypeAlias = "_At[_T] | Literal[_Bad.BAD] | None"  # None: not set at this place
_Reader: TypeAlias = "Callable[[object, str, int | None], _T | Literal[_Bad.BAD]]"


class _Location(NamedTuple):
    region: str | None
    endpoint: str
    backup_endpoint: str | None


class _SecretSpec(NamedTuple):
    kind: Literal["env", "file"]
    template: str


class _Callback(NamedTuple):
    config: CallbackConfig | None
    url_line: int | None
    scheme: str = ""  # of the URL, lower case
    host: str = ""  # of the URL, lower case


@dataclass(slots=True)
class _Layer:
    """What one place (``defaults`` or one app) sets; an app falls back to defaults key by key."""

    place: str
    location: _Slot[_Location] = None
    identifier: _Slot[str] = None
    interval: _Slot[float] = None
    timeout: _Slot[float] = None
    secret: _Slot[_SecretSpec] = None
    require_https: _Slot[bool] = None
    allowed_hosts: _Slot[tuple[str, ...]] = None
    unexpected_commands: _Slot[UnexpectedCommands] = None
    ignore: _Slot[frozenset[str]] = None
    callback: _Slot[_Callback] = None
    error_threshold: _Slot[int] = None


def _pick(own: _Slot[_T], inherited: _Slot[_T]) -> _Slot[_T]:
    return own if own is not None else inherited


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()}; {_BOOL_HINT})"
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
    if isinstance(value, _Unreadable):
        return "a value YAML cannot read"
    return f"a YAML {type(value).__name__}"


def _did_you_mean(word: str, choices: tuple[str, ...], cutoff: float = 0.6) -> str:
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def _host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Whether ``host`` matches one of the globs, case-insensitively (as monitor.drift decides)."""
    return (
        not allowed_hosts or _globs_pattern(allowed_hosts).match(host.lower().removesuffix(".")) is not None
    )


@functools.lru_cache(maxsize=256)
def _globs_pattern(globs: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(glob.lower())})" for glob in globs))


_FORMATTER = string.Formatter()


class _Checker:
    """Validates the plain tree against the schema, collecting every problem with its place."""

    def __init__(self, base_dir: Path, environ: Mapping[str, str]) -> None:
        self.base_dir = base_dir
        self.environ = environ
        self.problems: list[Problem] = []
        self.secret_files: dict[str, str | None] = {}
        self.template_fields: dict[str, frozenset[str]] = {}
        self.durations: dict[str, float] = {}
        self.clean_commands: dict[tuple[object, ...], tuple[str, ...]] = {}
        self.policies: dict[tuple[bool, tuple[str, ...], UnexpectedCommands], Policy] = {}
        # A problem in a defaults value that shows only for some apps: reported once, naming the apps.
        self.inherited: dict[tuple[str, int | None, str, bool], list[str]] = {}

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

    # --- the document --------------------------------------------------------------------------

    def check(self, root: object, source: str, digest: str) -> Config | None:
        if not isinstance(root, _Map):
            line = root.line if isinstance(root, _Seq) else None
            message = (
                f"the file must be a mapping with version, defaults, limits and apps; got {_describe(root)}"
            )
            self.error("", message, line)
            return None
        self.keys(root, "", _TOP_KEYS)
        self.version(root)
        defaults = self.defaults(root)
        limits = self.limits(root)
        apps = self.apps(root, defaults)
        self.flush_inherited()
        if limits is None or apps is None:
            return None
        warnings = tuple(p for p in self.problems if p.warning)
        return Config(source=source, apps=apps, limits=limits, warnings=warnings, digest=digest)

    def version(self, root: _Map) -> None:
        if root.get("version") is _UNREADABLE:
            return
        if "version" not in root:
            self.error("version", "is required: put 'version: 1' at the top of the file", root.line)
            return
        value, line = root["version"], root.key_lines["version"]
        if isinstance(value, bool) or not isinstance(value, int):
            self.error("version", f"must be the number 1, got {_describe(value)}", line)
        elif value != 1:
            self.error(
                "version", f"version {value} is not supported; this callback-monitor reads version 1", line
            )

    def defaults(self, root: _Map) -> _Layer:
        value = root.get("defaults")
        if value is None:
            return _Layer("defaults")
        m = self.mapping(value, "defaults", root.key_lines["defaults"])
        if m is None:
            return _bad_layer("defaults")
        self.keys(m, "defaults", _LAYER_KEYS)
        return self.layer(m, "defaults")

    def limits(self, root: _Map) -> Limits | None:
        value = root.get("limits")
        if value is None:
            return Limits()
        m = self.mapping(value, "limits", root.key_lines["limits"])
        if m is None:
            return None
        self.keys(m, "limits", _LIMITS_KEYS)
        concurrency = self.opt(m, "limits", "concurrency", self.positive_int)
        rate = self.opt(m, "limits", "requests_per_second", self.rate)
        if concurrency is BAD or rate is BAD:
            return None
        return Limits(
            concurrency=concurrency.value if concurrency else Limits.concurrency,
            requests_per_second=rate.value if rate else Limits.requests_per_second,
        )

    def apps(self, root: _Map, defaults: _Layer) -> tuple[AppConfig, ...] | None:
        if "apps" not in root:
            self.error("apps", "is required: list the apps to watch", root.line)
            return None
        apps, line = root["apps"], root.key_lines["apps"]
        if not isinstance(apps, _Seq):
            self.error("apps", f"must be a list of apps, got {_describe(apps)}", line)
            return None
        if not apps:
            self.warn("apps", "is empty: there is nothing to check", line)
        names: dict[str, tuple[int, int | None]] = {}
        ids: dict[int, tuple[int, int | None]] = {}
        result = []
        for index, item in enumerate(apps):
            app = self.app(item, index, apps.item_lines[index], defaults, names, ids)
            if app is not None:
                result.append(app)
        return tuple(result)

    def app(
        self,
        item: object,
        index: int,
        line: int,
        defaults: _Layer,
        names: dict[str, tuple[int, int | None]],
        ids: dict[int, tuple[int, int | None]],
    ) -> AppConfig | None:
        place = f"apps[{index}]"
        m = self.mapping(item, place, line)
        if m is None:
            return None
        self.keys(m, place, _APP_KEYS)
        name = self.required(m, place, "name", self.app_name)
        sdkappid = self.required(m, place, "sdkappid", self.sdkappid)
        labels = self.opt(m, place, "labels", self.labels)
        own = self.layer(m, place)
        if isinstance(name, _At):
            first = names.setdefault(name.value, (index, name.line))
            if first[0] != index:
                message = f"{name.value!r} is already the name of apps[{first[0]}] (line {first[1]})"
                self.error(name.path, message, name.line)
        if isinstance(sdkappid, _At):
            first = ids.setdefault(sdkappid.value, (index, sdkappid.line))
            if first[0] != index:
                message = f"{sdkappid.value} is already the sdkappid of apps[{first[0]}] (line {first[1]})"
                self.error(sdkappid.path, message, sdkappid.line)
        label = f"{place} {name.value!r}" if isinstance(name, _At) else place
        return self.resolve(defaults, own, m.line, name, sdkappid, labels, label)

    # --- one place: defaults or an app ---------------------------------------------------------

    def layer(self, m: _Map, place: str) -> _Layer:
        layer = _Layer(place)
        layer.location = self.location(m, place)
        layer.identifier = self.opt(m, place, "identifier", self.identifier)
        layer.interval = self.opt(m, place, "interval", self.interval)
        layer.timeout = self.opt(m, place, "timeout", self.timeout)
        layer.secret = self.secret(m, place)
        if "policy" in m:
            path = f"{place}.policy"
            policy = self.mapping(m["policy"], path, m.key_lines["policy"])
            if policy is None:
                layer.require_https = layer.allowed_hosts = layer.unexpected_commands = BAD
            else:
                self.keys(policy, path, _POLICY_KEYS)
                layer.require_https = self.opt(policy, path, "require_https", self.boolean)
                layer.allowed_hosts = self.opt(policy, path, "allowed_hosts", self.allowed_hosts)
                layer.unexpected_commands = self.opt(policy, path, "unexpected_commands", self.unexpected)
        layer.ignore = self.opt(m, place, "ignore", self.ignore)
        layer.callback = self.opt(m, place, "callback", self.callback)
        layer.error_threshold = self.opt(m, place, "error_threshold", self.positive_int)
        return layer

    def location(self, m: _Map, place: str) -> _Slot[_Location]:
        if "region" in m and "endpoint" in m:
            self.error(
                f"{place}.endpoint", "set either region or endpoint, not both", m.key_lines["endpoint"]
            )
            return BAD
        if "endpoint" in m:
            return self.opt(m, place, "endpoint", self.endpoint)
        return self.opt(m, place, "region", self.region)

    def secret(self, m: _Map, place: str) -> _Slot[_SecretSpec]:
        if "secret_key_env" in m and "secret_key_file" in m:
            message = "set either secret_key_env or secret_key_file, not both"
            self.error(f"{place}.secret_key_file", message, m.key_lines["secret_key_file"])
            return BAD
        if "secret_key_file" in m:
            return self.opt(m, place, "secret_key_file", self.secret_file)
        return self.opt(m, place, "secret_key_env", self.secret_env)

    # --- an app: its own values over the defaults ----------------------------------------------

    def resolve(
        self,
        defaults: _Layer,
        own: _Layer,
        line: int,
        name: _Slot[str],
        sdkappid: _Slot[int],
        labels: _Slot[Mapping[str, str]],
        label: str,
    ) -> AppConfig | None:
        place = own.place
        location = _value(_pick(own.location, defaults.location), _DEFAULT_LOCATION)
        identifier = _value(_pick(own.identifier, defaults.identifier), "administrator")
        interval_at = _pick(own.interval, defaults.interval)
        timeout_at = _pick(own.timeout, defaults.timeout)
        interval, timeout = _value(interval_at, 60.0), _value(timeout_at, 5.0)
        if interval is not BAD and timeout is not BAD and timeout >= interval:
            at = interval_at if isinstance(interval_at, _At) else timeout_at
            if isinstance(at, _At):
                message = f"the interval ({interval:g}s) is not longer than the timeout ({timeout:g}s)"
                self.report_path(at.path, at.line, message, place, label, warning=True)
        secret = self.resolve_secret(_pick(own.secret, defaults.secret), name, sdkappid, place, label, line)
        https_at = _pick(own.require_https, defaults.require_https)
        hosts_at = _pick(own.allowed_hosts, defaults.allowed_hosts)
        unexpected = _value(
            _pick(own.unexpected_commands, defaults.unexpected_commands), Policy.unexpected_commands
        )
        ignore = _value(_pick(own.ignore, defaults.ignore), frozenset[str]())
        threshold = _value(_pick(own.error_threshold, defaults.error_threshold), 3)
        callback_at = _pick(own.callback, defaults.callback)
        if callback_at is None:
            message = (
                "is set neither here nor in defaults.callback "
                "(write 'callback: null' if this app must have no callback configured)"
            )
            self.error(f"{place}.callback", message, line)
        require_https, allowed_hosts = _value(https_at, True), _value(hosts_at, ())
        if isinstance(callback_at, _At) and require_https is not BAD and allowed_hosts is not BAD:
            self.obeys_policy(callback_at, https_at, hosts_at, place, label)
        if (
            not isinstance(name, _At)
            or not isinstance(sdkappid, _At)
            or labels is BAD
            or location is BAD
            or identifier is BAD
            or interval is BAD
            or timeout is BAD
            or secret is BAD
            or require_https is BAD
            or allowed_hosts is BAD
            or unexpected is BAD
            or ignore is BAD
            or threshold is BAD
            or not isinstance(callback_at, _At)
        ):
            return None
        return AppConfig(
            name=name.value,
            sdkappid=sdkappid.value,
            endpoint=location.endpoint,
            backup_endpoint=location.backup_endpoint,
            region=location.region,
            identifier=identifier,
            interval=interval,
            timeout=timeout,
            secret=secret,
            policy=self.policy(require_https, allowed_hosts, unexpected),
            ignore=ignore,
            labels=labels.value if labels else _NO_LABELS,
            callback=callback_at.value.config,
            error_threshold=threshold,
        )

    def obeys_policy(
        self,
        callback: _At[_Callback],
        https_at: _Slot[bool],
        hosts_at: _Slot[tuple[str, ...]],
        place: str,
        label: str,
    ) -> None:
        """The desired URL must pass the app's own policy, as the live one will have to."""
        wanted = callback.value.config
        if wanted is None:
            return
        path, line, host = callback.path + ".url", callback.value.url_line, callback.value.host
        require_https = https_at is None or (isinstance(https_at, _At) and https_at.value)
        if require_https and callback.value.scheme != "https":
            said = (
                f"{https_at.path} is true"
                if isinstance(https_at, _At)
                else "policy.require_https is on by default"
            )
            message = f"must use https ({said}); got {_clip(redact_url(wanted.url), 200)!r}"
            self.report_path(path, line, message, place, label)
        if isinstance(hosts_at, _At) and not _host_allowed(host, hosts_at.value):
            message = f"host {_clip(host)!r} is not allowed by {hosts_at.path} ({', '.join(hosts_at.value)})"
            self.report_path(path, line, message, place, label)

    def policy(
        self, require_https: bool, allowed_hosts: tuple[str, ...], unexpected: UnexpectedCommands
    ) -> Policy:
        """One Policy object per distinct policy: ten thousand apps usually share a handful."""
        key = (require_https, allowed_hosts, unexpected)
        if key not in self.policies:
            self.policies[key] = Policy(require_https, allowed_hosts, unexpected)
        return self.policies[key]

    def resolve_secret(
        self,
        at: _Slot[_SecretSpec],
        name: _Slot[str],
        sdkappid: _Slot[int],
        place: str,
        label: str,
        line: int,
    ) -> SecretRef | Literal[_Bad.BAD]:
        if at is None:
            message = "has no secret key: set secret_key_env or secret_key_file here or in defaults"
            self.error(place, message, line)
            return BAD
        if at is BAD:
            return BAD
        spec, fields = at.value, self.template_fields[at.value.template]
        if ("name" in fields and not isinstance(name, _At)) or (
            "sdkappid" in fields and not isinstance(sdkappid, _At)
        ):
            return BAD  # the placeholder's value is already reported as wrong
        where = spec.template
        if "{" in where or "}" in where:
            where = where.format(
                name=name.value if isinstance(name, _At) else "",
                sdkappid=sdkappid.value if isinstance(sdkappid, _At) else "",
            )
        if spec.kind == "env":
            ref = SecretRef(env=where)
            value = self.environ.get(where)
            problem = None
            if value is None:
                problem = f"environment variable {where} is not set"
            elif not value.strip():
                problem = f"environment variable {where} is empty"
        else:
            path = os.path.join(self.base_dir, where)
            ref = SecretRef(file=Path(path))
            problem = self.secret_file_problem(path)
        if problem is not None:
            self.report_path(at.path, at.line, problem, place, label)
            return BAD
        return ref

    def secret_file_problem(self, path: str) -> str | None:
        """Why the secret file cannot be used, or None; each file is read once per load."""
        if path in self.secret_files:
            return self.secret_files[path]
        problem: str | None = None
        try:
            # O_NONBLOCK: a FIFO put where the key should be must not hang the load.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                data = os.read(fd, MAX_SECRET_BYTES + 1)  # a directory fails here with EISDIR
            finally:
                os.close(fd)
            if len(data) > MAX_SECRET_BYTES:
                problem = f"secret file {path} is larger than 64 KiB, which no secret key is"
            elif not data.strip():
                problem = f"secret file {path} is empty"
            else:
                data.decode("utf-8")
        except UnicodeDecodeError:
            problem = f"secret file {path} is not UTF-8 text"
        except OSError as exc:
            problem = f"cannot read secret file {path}: {exc.strerror or type(exc).__name__}"
        self.secret_files[path] = problem
        return problem

    # --- generic shapes ------------------------------------------------------------------------

    def opt(self, m: _Map, place: str, key: str, reader: _Reader[_T]) -> _Slot[_T]:
        """The value of an optional ``key``: None when absent, BAD when present but wrong."""
        if key not in m:
            return None
        path, line = f"{place}.{key}", m.key_lines[key]
        if m[key] is _UNREADABLE:
            return BAD  # already reported where it was read
        value = reader(m[key], path, line)
        return BAD if value is BAD else _NEW_TUPLE(_At, (value, path, line))  # skips _At.__new__: hot

    def required(self, m: _Map, place: str, key: str, reader: _Reader[_T]) -> _Slot[_T]:
        if key not in m:
            self.error(f"{place}.{key}", "is required", m.line)
            return BAD
        return self.opt(m, place, key, reader)

    def mapping(self, value: object, path: str, line: int | None) -> _Map | None:
        if isinstance(value, _Map):
            return value
        self.error(path, f"must be a mapping, got {_describe(value)}", line)
        return None

    def keys(self, m: _Map, path: str, allowed: tuple[str, ...]) -> None:
        for key in m:
            if key in allowed:
                continue
            line = m.key_lines.get(key)
            if isinstance(key, str):
                hint = _did_you_mean(key, allowed)
                message = f"unknown key {_clip(key)!r}{hint} (allowed here: {', '.join(allowed)})"
                self.error(_join(path, key), message, line)
            else:
                shown = str(key).lower() if isinstance(key, bool) or key is None else _clip(repr(key))
                hint = f"; {_BOOL_HINT}, quote it" if isinstance(key, bool) else ""
                self.error(path, f"key {shown} is not a string{hint}", line)

    def string(self, value: object, path: str, line: int | None) -> str | Literal[_Bad.BAD]:
        if not isinstance(value, str):
            self.error(path, f"must be a string, got {_describe(value)}", line)
            return BAD
        if not value:
            self.error(path, "must not be empty", line)
            return BAD
        return value

    def word(self, value: object, path: str, line: int | None) -> str | Literal[_Bad.BAD]:
        text = self.string(value, path, line)
        if text is not BAD and _CONTROL.search(text):
            self.error(path, "must not contain spaces or control characters", line)
            return BAD
        return text

    def integer(self, value: object, path: str, line: int | None) -> int | Literal[_Bad.BAD]:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = "; remove the quotes" if isinstance(value, str) and value.strip().isdigit() else ""
            self.error(path, f"must be an integer, got {_describe(value)}{hint}", line)
            return BAD
        return value

    def positive_int(self, value: object, path: str, line: int | None) -> int | Literal[_Bad.BAD]:
        number = self.integer(value, path, line)
        if number is not BAD and number < 1:
            self.error(path, f"must be at least 1, got {number}", line)
            return BAD
        return number

    def boolean(self, value: object, path: str, line: int | None) -> bool | Literal[_Bad.BAD]:
        if not isinstance(value, bool):
            self.error(path, f"must be true or false, got {_describe(value)}", line)
            return BAD
        return value

    def duration(self, value: object, path: str, line: int | None) -> float | Literal[_Bad.BAD]:
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

    # --- the keys ------------------------------------------------------------------------------

    def app_name(self, value: object, path: str, line: int | None) -> str | Literal[_Bad.BAD]:
        text = self.string(value, path, line)
        if text is not BAD and not _NAME.fullmatch(text):
            message = (
                f"{_clip(text)!r} is not a name: use up to 128 letters, digits, '-', '_' or '.' (not first)"
            )
            self.error(path, message, line)
            return BAD
        return text

    def sdkappid(self, value: object, path: str, line: int | None) -> int | Literal[_Bad.BAD]:
        number = self.integer(value, path, line)
        if number is not BAD and not 0 < number < 2**32:
            self.error(path, f"must be a positive integer below 2**32, got {number}", line)
            return BAD
        return number

    def labels(self, value: object, path: str, line: int | None) -> Mapping[str, str] | Literal[_Bad.BAD]:
        m = self.mapping(value, path, line)
        if m is None:
            return BAD
        labels: dict[str, str] = {}
        ok = True
        for key, item in m.items():
            if isinstance(key, str) and isinstance(item, str) and _LABEL_NAME.fullmatch(key):
                labels[key] = item
                continue
            ok = False
            key_line = m.key_lines.get(key, line)
            if not isinstance(key, str) or not _LABEL_NAME.fullmatch(key):
                shown = str(key).lower() if isinstance(key, bool) else _clip(repr(key))
                message = (
                    f"label name {shown} must be letters, digits and '_', not starting with a digit or '__'"
                )
                self.error(path, message, key_line)
            else:
                hint = "; quote it" if isinstance(item, int | float | bool) else ""
                self.error(_join(path, key), f"must be a string, got {_describe(item)}{hint}", key_line)
        return MappingProxyType(labels) if ok else BAD

    def region(self, value: object, path: str, line: int | None) -> _Location | Literal[_Bad.BAD]:
        name = self.string(value, path, line)
        if name is BAD:
            return BAD
        if name not in REGIONS:
            known = tuple(REGIONS)
            hint = _did_you_mean(name, known)
            self.error(path, f"unknown region {_clip(name)!r}{hint} (known: {', '.join(known)})", line)
            return BAD
        return _REGION_LOCATIONS[name]

    def endpoint(self, value: object, path: str, line: int | None) -> _Location | Literal[_Bad.BAD]:
        url = self.word(value, path, line)
        if url is BAD:
            return BAD
        problem = endpoint_problem(url)
        if problem is not None:
            self.error(path, problem, line)
            return BAD
        parts = urlsplit(url)
        return _Location(None, f"{parts.scheme.lower()}://{parts.netloc.lower()}", None)

    def identifier(self, value: object, path: str, line: int | None) -> str | Literal[_Bad.BAD]:
        return self.word(value, path, line)

    def interval(self, value: object, path: str, line: int | None) -> float | Literal[_Bad.BAD]:
        seconds = self.duration(value, path, line)
        if seconds is not BAD and not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            self.error(path, f"must be between 1s and 168h, got {seconds:g}s", line)
            return BAD
        return seconds

    def timeout(self, value: object, path: str, line: int | None) -> float | Literal[_Bad.BAD]:
        seconds = self.duration(value, path, line)
        if seconds is BAD:
            return BAD
        if not 0 < seconds <= MAX_TIMEOUT:
            self.error(path, f"must be more than 0s and at most 10m, got {seconds:g}s", line)
            return BAD
        if seconds <= VENDOR_TIMEOUT:
            message = (
                f"{seconds:g}s is not above the vendor backend's own timeout of about 3s: "
                "slow answers will count as timeouts (the default is 5s)"
            )
            self.warn(path, message, line)
        return seconds

    def rate(self, value: object, path: str, line: int | None) -> float | Literal[_Bad.BAD]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(path, f"must be a number, got {_describe(value)}", line)
            return BAD
        try:
            rate = float(value)
        except OverflowError:
            rate = math.inf
        if not 0 < rate < math.inf:
            self.error(path, f"must be a positive number, got {value}", line)
            return BAD
        if rate > VENDOR_RATE:
            self.warn(
                path, f"{rate:g} is above the vendor's documented limit of 200 requests/s per API", line
            )
        return rate

    def secret_env(self, value: object, path: str, line: int | None) -> _SecretSpec | Literal[_Bad.BAD]:
        template = self.template(value, path, line)
        if template is BAD:
            return BAD
        if "=" in template or _CONTROL.search(template):
            self.error(
                path, "must be an environment variable name (no '=', spaces or control characters)", line
            )
            return BAD
        return _SecretSpec("env", template)

    def secret_file(self, value: object, path: str, line: int | None) -> _SecretSpec | Literal[_Bad.BAD]:
        template = self.template(value, path, line)
        if template is BAD:
            return BAD
        if "\x00" in template:
            self.error(path, "must be a file path (no NUL character)", line)
            return BAD
        return _SecretSpec("file", template)

    def template(self, value: object, path: str, line: int | None) -> str | Literal[_Bad.BAD]:
        text = self.string(value, path, line)
        if text is BAD or text in self.template_fields:
            return text
        fields: set[str] = set()
        try:
            for _literal, name, spec, conversion in _FORMATTER.parse(text):
                if name is None:
                    continue
                if name not in _PLACEHOLDERS or spec or conversion:
                    written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
                    message = f"unknown placeholder {{{written}}}: use {{sdkappid}} or {{name}}"
                    self.error(path, message, line)
                    return BAD
                fields.add(name)
        except ValueError as exc:
            self.error(
                path, f"has unbalanced braces ({exc}); placeholders are {{sdkappid}} and {{name}}", line
            )
            return BAD
        self.template_fields[text] = frozenset(fields)
        return text

    def allowed_hosts(
        self, value: object, path: str, line: int | None
    ) -> tuple[str, ...] | Literal[_Bad.BAD]:
        globs = self.list_of(value, path, line, self.host_glob)
        return BAD if globs is BAD else tuple(globs)

    def host_glob(self, value: object, path: str, line: int | None) -> str | Literal[_Bad.BAD]:
        glob = self.word(value, path, line)
        if glob is not BAD and "/" in glob:
            message = f"{_clip(glob)!r} is a URL or a path; allowed_hosts lists host names or globs"
            self.error(path, message, line)
            return BAD
        return glob

    def unexpected(
        self, value: object, path: str, line: int | None
    ) -> UnexpectedCommands | Literal[_Bad.BAD]:
        choices = tuple(u.value for u in UnexpectedCommands)
        if not isinstance(value, str) or value not in choices:
            shown = repr(value) if isinstance(value, str) else _describe(value)
            self.error(path, f"must be one of {', '.join(choices)}, got {shown}", line)
            return BAD
        return UnexpectedCommands(value)

    def ignore(self, value: object, path: str, line: int | None) -> frozenset[str] | Literal[_Bad.BAD]:
        kinds = self.list_of(value, path, line, self.finding_kind)
        if kinds is BAD:
            return BAD
        if len(set(kinds)) != len(kinds):
            self.warn(path, "lists a kind more than once", line)
        return frozenset(kinds)

    def finding_kind(self, value: object, path: str, line: int | None) -> str | Literal[_Bad.BAD]:
        kind = self.string(value, path, line)
        if kind is not BAD and kind not in FINDING_KINDS:
            hint = _did_you_mean(kind, FINDING_KINDS)
            message = f"unknown finding kind {_clip(kind)!r}{hint} (known: {', '.join(FINDING_KINDS)})"
            self.error(path, message, line)
            return BAD
        return kind

    def list_of(
        self, value: object, path: str, line: int | None, reader: _Reader[_T]
    ) -> list[_T] | Literal[_Bad.BAD]:
        if not isinstance(value, _Seq):
            self.error(path, f"must be a list, got {_describe(value)}", line)
            return BAD
        items: list[_T] = []
        ok = True
        for index, item in enumerate(value):
            if item is _UNREADABLE:
                ok = False
                continue
            read = reader(item, f"{path}[{index}]", value.item_lines[index])
            if read is BAD:
                ok = False
            else:
                items.append(read)
        return items if ok else BAD

    def callback(self, value: object, path: str, line: int | None) -> _Callback | Literal[_Bad.BAD]:
        if value is None:
            return _Callback(None, line)
        m = self.mapping(value, path, line)
        if m is None:
            return BAD
        self.keys(m, path, _CALLBACK_KEYS)
        url = self.required(m, path, "url", self.callback_url)
        commands = self.required(m, path, "commands", self.commands)
        if not isinstance(url, _At) or not isinstance(commands, _At):
            return BAD
        text, scheme, host = url.value
        return _Callback(CallbackConfig(text, commands.value), url.line, scheme, host)

    def callback_url(
        self, value: object, path: str, line: int | None
    ) -> tuple[str, str, str] | Literal[_Bad.BAD]:
        """The URL, its scheme and its host (both lower case)."""
        url = self.word(value, path, line)
        if url is BAD:
            return BAD
        simple = _SIMPLE_URL.match(url)  # urlsplit is slow; this agrees with it where it matches
        if simple and (simple[3] is None or int(simple[3]) <= 65535):
            return url, simple[1].lower(), simple[2].lower()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            self.error(path, f"is not a valid URL (bad host or port): {_clip(redact_url(url), 200)!r}", line)
            return BAD
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("http", "https") or not host:
            message = f"must be an absolute http:// or https:// URL, got {_clip(redact_url(url), 200)!r}"
            self.error(path, message, line)
            return BAD
        return url, scheme, host

    def commands(self, value: object, path: str, line: int | None) -> tuple[str, ...] | Literal[_Bad.BAD]:
        if isinstance(value, _Seq):
            # Many apps list the same words: a list that passed once without a warning passes again.
            try:
                clean = self.clean_commands.get(tuple(value))
            except TypeError:  # an item that is itself a list or mapping
                clean = None
            if clean is not None:
                return clean
        words = self.list_of(value, path, line, self.word)
        if words is BAD:
            return BAD
        if not words:
            self.error(path, "must list at least one command word", line)
            return BAD
        assert isinstance(value, _Seq)
        seen: dict[str, int] = {}
        ok, warned = True, False
        for index, word in enumerate(words):
            first = seen.setdefault(canonical(word), index)
            if first != index:
                same = f" ({words[first]!r} and {word!r} name the same event)" if words[first] != word else ""
                message = f"duplicates {path.rsplit('.', 1)[-1]}[{first}]{same}"
                self.error(f"{path}[{index}]", message, value.item_lines[index])
                ok = False
            elif word not in KNOWN_COMMANDS and not is_known(word):
                hint = _did_you_mean(word, _KNOWN_WORDS, cutoff=0.9)  # the words share long prefixes
                message = f"unknown command word {_clip(word)!r}{hint}"
                self.warn(f"{path}[{index}]", message, value.item_lines[index])
                warned = True
        if not ok:
            return BAD
        result = tuple(words)
        if not warned:
            self.clean_commands[result] = result
        return result


def _bad_layer(place: str) -> _Layer:
    """A place whose mapping itself was wrong: apps that would inherit from it are not built."""
    layer = _Layer(place)
    for name in _Layer.__slots__:
        if name != "place":
            setattr(layer, name, BAD)
    return layer


def _value(slot: _Slot[_T], default: _T) -> _T | Literal[_Bad.BAD]:
    if slot is None:
        return default
    if slot is BAD:
        return BAD
    return slot.value


_REGION_LOCATIONS = {r.name: _Location(r.name, r.endpoint, r.backup_endpoint) for r in REGIONS.values()}
_DEFAULT_LOCATION = _Location(
    DEFAULT_REGION, REGIONS[DEFAULT_REGION].endpoint, REGIONS[DEFAULT_REGION].backup_endpoint
)
_NO_LABELS: Mapping[str, str] = MappingProxyType({})
_KNOWN_WORDS = tuple(sorted(KNOWN_COMMANDS | set(ALIASES)))
