"""YAML text to plain values that keep their line numbers, refusing alias bombs and deep nesting."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

MAX_NODES = 1_000_000  # after alias expansion: stops a "billion laughs" file
MAX_DEPTH = 64  # the schema needs 6 levels; deeper nesting (or a self-referencing alias) is refused
_MAX_PATH, _PATH_HEAD = 200, 80  # a problem's path: at most this long, keeping this much of its start
_STEP = re.compile(r"\.(?!\.)|\[")  # where a path's next key or index starts (not a clip's "...")
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # YAML's line breaks


class Map(dict[object, object]):
    """A YAML mapping: its line and the line of each key."""

    __slots__ = ("key_lines", "line")
    line: int
    key_lines: dict[object, int]


class Seq(list[object]):
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

    def __str__(self) -> str:  # a problem's path may pass through one: "base.<<[1]"
        return "<<"

    __repr__ = __str__


class Unreadable:
    """A scalar whose explicit or implied type failed to construct (already reported)."""

    def __repr__(self) -> str:
        return "(unreadable)"


_MERGE_KEY = _MergeKey()
UNREADABLE = Unreadable()


@dataclass(slots=True)
class _Frame:
    """A collection being built: the value, its size once aliases are expanded, and a pending key."""

    value: Map | Seq
    path: str
    anchor: str | None
    size: int = 1
    key: object = None
    key_line: int = 0
    has_key: bool = False
    merges: list[tuple[object, int]] | None = None


class _TreeBuilder:
    """Turns the parser's events into Map, Seq and scalars without recursion.

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
            if type(target) is Seq:
                target.append("<<" if value is _MERGE_KEY else value)
                target.item_lines.append(line)
            elif not top.has_key:
                top.key, top.key_line, top.has_key = value, line, True
                if type(value) is Map or type(value) is Seq:
                    message = "a key must be a plain string, not a list or mapping"
                    self.problems.append(Problem(top.path, message, line))
            else:
                top.has_key = False
                key = top.key
                if key is _MERGE_KEY:
                    top.merges = [*(top.merges or ()), (value, line)]
                elif type(key) is not Map and type(key) is not Seq:
                    assert isinstance(target, Map)
                    if key in target.key_lines:
                        message = f"duplicate key (first at line {target.key_lines[key]})"
                        self.problems.append(Problem(join(top.path, key), message, top.key_line))
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
        collection: Map | Seq
        if is_map:
            collection = Map()
            collection.key_lines = {}
        else:
            collection = Seq()
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
        # PyYAML's constructors trust that the resolver chose the tag: given one explicitly, a text they
        # cannot read fails inside them (``!!int ''`` indexes an empty string, ``!!bool maybe`` looks up
        # a missing word, ``!!timestamp x`` uses a failed match), so those errors mean "unreadable" too.
        except (yaml.YAMLError, ValueError, ArithmeticError, TypeError, LookupError, AttributeError):
            result = UNREADABLE
        # Python refuses to print an integer of more than 4300 digits; no setting needs one anyway.
        if isinstance(result, int) and result.bit_length() > 128:
            result, message = UNREADABLE, "is an integer far too large for any setting"
        if result is UNREADABLE:
            line = event.start_mark.line + 1
            self.problems.append(Problem(self.child_path(stack), message, line))
        return result

    def merge(self, frame: _Frame) -> None:
        """``<<: *base`` keys: keys written in the mapping win, then earlier merged mappings.

        The merged values were counted when their alias was read, so merging adds nothing to count.
        """
        target = frame.value
        assert isinstance(target, Map)
        for value, line in frame.merges or ():
            for source in value if isinstance(value, Seq) else [value]:
                if not isinstance(source, Map):
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
        if isinstance(frame.value, Seq):
            return f"{frame.path}[{len(frame.value)}]"
        return join(frame.path, frame.key) if frame.has_key else frame.path


def join(path: str, key: object) -> str:
    """The path of ``key`` inside ``path``, as messages show it: ``apps[0].callback``.

    Each key is clipped and escaped; a path deeper than a message can hold loses its middle.
    """
    shown = printable(str(key))
    joined = f"{path}.{shown}" if path else shown
    if len(joined) <= _MAX_PATH:
        return joined
    start = len(joined) - (_MAX_PATH - _PATH_HEAD - 3)
    step = _STEP.search(joined, start)
    return f"{joined[:_PATH_HEAD]}...{joined[step.start() if step else start :]}"


def clip(text: str, limit: int = 60) -> str:
    """Text from the file as shown in a message: a 30 MB key must not make a 30 MB message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str, limit: int = 60) -> str:
    """Text from the file shown bare in a message: clipped, with control characters (terminal escapes
    among them), bidi overrides and other unprintable characters escaped as ``repr`` does (``\\x1b``)."""
    if text.isprintable():
        return clip(text, limit)
    pieces: list[str] = []
    size = 0
    for char in text[: limit + 1]:
        piece = char if char.isprintable() else repr(char)[1:-1]
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    if size <= limit and len(text) <= limit:
        return "".join(pieces)
    while size > limit - 3:  # cut between escapes, never inside one
        size -= len(pieces.pop())
    return "".join(pieces) + "..."


def escaped(text: str) -> str:
    """``text`` with every unprintable character (a control character, a bidi override) escaped as
    ``repr`` does (``\\x1b``), and nothing else changed: a message quotes values from the file this way."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _unreadable_character(exc: yaml.reader.ReaderError, text: str) -> Problem:
    """A character YAML refuses (a control character, often a NUL) as one problem with its line.

    PyYAML's own text for it is two lines and counts the position from the start of the file.
    """
    if _YAML_LOADER is yaml.SafeLoader:
        before = text[: exc.position]
    else:  # libyaml counts UTF-8 bytes
        before = text.encode("utf-8", "surrogatepass")[: exc.position].decode("utf-8", "replace")
    line = 1 + sum(1 for _ in _LINE_BREAK.finditer(before))
    column = len(before) - max(before.rfind(char) for char in "\n\r\x85\u2028\u2029")
    character = exc.character
    what = f"U+{character:04X}" if isinstance(character, int) else repr(character)
    message = f"invalid YAML at column {column}: {exc.reason} ({what})"
    sample = text[:1000]
    if character == 0 and sample.count("\x00") * 4 >= len(sample):
        message += "; is the file UTF-16 or UTF-32? Save it as UTF-8"
    return Problem("", message, line)


def read_yaml(text: str, source: str) -> tuple[object, list[Problem]]:
    """The tree and the problems met building it; a file that is not readable YAML raises ConfigError."""
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
    except yaml.reader.ReaderError as exc:
        raise ConfigError(source, [_unreadable_character(exc, text)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [Problem("", f"invalid YAML: {exc}")]) from None
    except _Abort as exc:
        raise ConfigError(source, [exc.problem]) from None
    if root is None:
        raise ConfigError(source, [Problem("", "the file is empty: it must hold version, defaults and apps")])
    return root, builder.problems
