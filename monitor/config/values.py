"""Readers for the values of single keys: names, labels, places, durations, secrets, policy and callback."""

from __future__ import annotations

import math
import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from monitor.config.model import FINDING_KINDS, SecretRef, UnexpectedCommands
from monitor.config.shapes import BAD, CONTROL, At, Bad, Shapes, describe
from monitor.config.yamltree import Seq, clip, join
from monitor.redact import redact_url
from monitor.tencent.commands import ALIASES, KNOWN_COMMANDS, canonical, is_known
from monitor.tencent.model import CallbackConfig
from monitor.tencent.regions import REGIONS, endpoint_problem
from monitor.urls import problem as url_problem

MAX_SECRET_BYTES = 64 * 1024
MIN_INTERVAL = 1.0
MAX_INTERVAL = 7 * 24 * 3600.0
MAX_TIMEOUT = 600.0
VENDOR_TIMEOUT = 3.0  # the vendor's backend gives up after about this long
VENDOR_RATE = 200.0  # requests per second per API, as documented

CALLBACK_KEYS = ("url", "commands")
PLACEHOLDERS = ("sdkappid", "name")

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_LABEL_NAME = re.compile(r"(?!__)[A-Za-z_][A-Za-z0-9_]*")
_SIMPLE_URL = re.compile(r"(?i:(https?))://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?(?=[/?#]|\Z)")
_FORMATTER = string.Formatter()


class Location(NamedTuple):
    region: str | None
    endpoint: str
    backup_endpoint: str | None


class SecretSpec(NamedTuple):
    kind: Literal["env", "file"]
    template: str


class Callback(NamedTuple):
    config: CallbackConfig | None
    url_line: int | None
    scheme: str = ""  # of the URL, lower case
    host: str = ""  # of the URL, lower case


class Values(Shapes):
    """Reads and checks the value of each kind of key; relative secret files are taken from ``base_dir``."""

    def __init__(self, base_dir: Path, environ: Mapping[str, str]) -> None:
        super().__init__()
        self.base_dir = base_dir
        self.environ = environ
        self.secret_files: dict[str, str | None] = {}
        self.template_fields: dict[str, frozenset[str]] = {}
        self.clean_commands: dict[tuple[object, ...], tuple[str, ...]] = {}

    def app_name(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        text = self.string(value, path, line)
        if text is not BAD and not _NAME.fullmatch(text):
            message = (
                f"{clip(text)!r} is not a name: use up to 128 letters, digits, '-', '_' or '.' (not first)"
            )
            self.error(path, message, line)
            return BAD
        return text

    def sdkappid(self, value: object, path: str, line: int | None) -> int | Literal[Bad.BAD]:
        number = self.integer(value, path, line)
        if number is not BAD and not 0 < number < 2**32:
            self.error(path, f"must be a positive integer below 2**32, got {number}", line)
            return BAD
        return number

    def labels(self, value: object, path: str, line: int | None) -> Mapping[str, str] | Literal[Bad.BAD]:
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
                shown = str(key).lower() if isinstance(key, bool) else clip(repr(key))
                message = (
                    f"label name {shown} must be letters, digits and '_', not starting with a digit or '__'"
                )
                self.error(path, message, key_line)
            else:
                hint = "; quote it" if isinstance(item, int | float | bool) else ""
                self.error(join(path, key), f"must be a string, got {describe(item)}{hint}", key_line)
        return MappingProxyType(labels) if ok else BAD

    def region(self, value: object, path: str, line: int | None) -> Location | Literal[Bad.BAD]:
        name = self.string(value, path, line)
        if name is BAD:
            return BAD
        if name not in REGIONS:
            known = tuple(REGIONS)
            hint = self.hint(name, known)
            self.error(path, f"unknown region {clip(name)!r}{hint} (known: {', '.join(known)})", line)
            return BAD
        return REGION_LOCATIONS[name]

    def endpoint(self, value: object, path: str, line: int | None) -> Location | Literal[Bad.BAD]:
        url = self.word(value, path, line)
        if url is BAD:
            return BAD
        problem = endpoint_problem(url)
        if problem is not None:
            self.error(path, problem, line)
            return BAD
        parts = urlsplit(url)
        return Location(None, f"{parts.scheme.lower()}://{parts.netloc.lower()}", None)

    def identifier(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        return self.word(value, path, line)

    def interval(self, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
        seconds = self.duration(value, path, line)
        if seconds is not BAD and not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            self.error(path, f"must be between 1s and 168h, got {seconds:g}s", line)
            return BAD
        return seconds

    def timeout(self, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
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

    def rate(self, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(path, f"must be a number, got {describe(value)}", line)
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

    def secret_env(self, value: object, path: str, line: int | None) -> SecretSpec | Literal[Bad.BAD]:
        template = self.template(value, path, line)
        if template is BAD or self.env_name(template, path, line) is BAD:
            return BAD
        return SecretSpec("env", template)

    def secret_file(self, value: object, path: str, line: int | None) -> SecretSpec | Literal[Bad.BAD]:
        template = self.template(value, path, line)
        if template is BAD or self.file_name(template, path, line) is BAD:
            return BAD
        return SecretSpec("file", template)

    def env_name(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        name = self.string(value, path, line)
        if name is not BAD and ("=" in name or CONTROL.search(name)):
            self.error(
                path, "must be an environment variable name (no '=', spaces or control characters)", line
            )
            return BAD
        return name

    def file_name(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        name = self.string(value, path, line)
        if name is not BAD and "\x00" in name:
            self.error(path, "must be a file path (no NUL character)", line)
            return BAD
        return name

    def template(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        text = self.string(value, path, line)
        if text is BAD or text in self.template_fields:
            return text
        fields: set[str] = set()
        try:
            for _literal, name, spec, conversion in _FORMATTER.parse(text):
                if name is None:
                    continue
                if name not in PLACEHOLDERS or spec or conversion:
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

    def allowed_hosts(self, value: object, path: str, line: int | None) -> tuple[str, ...] | Literal[Bad.BAD]:
        globs = self.list_of(value, path, line, self.host_glob)
        return BAD if globs is BAD else tuple(globs)

    def host_glob(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        glob = self.word(value, path, line)
        if glob is not BAD and "/" in glob:
            message = f"{clip(glob)!r} is a URL or a path; allowed_hosts lists host names or globs"
            self.error(path, message, line)
            return BAD
        return glob

    def unexpected(self, value: object, path: str, line: int | None) -> UnexpectedCommands | Literal[Bad.BAD]:
        choices = tuple(u.value for u in UnexpectedCommands)
        if not isinstance(value, str) or value not in choices:
            shown = repr(value) if isinstance(value, str) else describe(value)
            self.error(path, f"must be one of {', '.join(choices)}, got {shown}", line)
            return BAD
        return UnexpectedCommands(value)

    def ignore(self, value: object, path: str, line: int | None) -> frozenset[str] | Literal[Bad.BAD]:
        kinds = self.list_of(value, path, line, self.finding_kind)
        if kinds is BAD:
            return BAD
        if len(set(kinds)) != len(kinds):
            self.warn(path, "lists a kind more than once", line)
        return frozenset(kinds)

    def finding_kind(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        kind = self.string(value, path, line)
        if kind is not BAD and kind not in FINDING_KINDS:
            hint = self.hint(kind, FINDING_KINDS)
            message = f"unknown finding kind {clip(kind)!r}{hint} (known: {', '.join(FINDING_KINDS)})"
            self.error(path, message, line)
            return BAD
        return kind

    def callback(self, value: object, path: str, line: int | None) -> Callback | Literal[Bad.BAD]:
        if value is None:
            return Callback(None, line)
        m = self.mapping(value, path, line)
        if m is None:
            return BAD
        self.keys(m, path, CALLBACK_KEYS)
        url = self.required(m, path, "url", self.http_url)
        commands = self.required(m, path, "commands", self.commands)
        if not isinstance(url, At) or not isinstance(commands, At):
            return BAD
        text, scheme, host = url.value
        return Callback(CallbackConfig(text, commands.value), url.line, scheme, host)

    def http_url(self, value: object, path: str, line: int | None) -> tuple[str, str, str] | Literal[Bad.BAD]:
        """An absolute http(s) URL as written, its scheme and its host (both lower case)."""
        url = self.word(value, path, line)
        if url is BAD:
            return BAD
        simple = _SIMPLE_URL.match(url)  # urlsplit is slow; this agrees with it where it matches
        if simple and (simple[3] is None or int(simple[3]) <= 65535) and "\\" not in url:
            return url, simple[1].lower(), simple[2].lower()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            self.error(path, f"is not a valid URL (bad host or port): {clip(redact_url(url), 200)!r}", line)
            return BAD
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("http", "https") or not host:
            message = f"must be an absolute http:// or https:// URL, got {clip(redact_url(url), 200)!r}"
            self.error(path, message, line)
            return BAD
        ambiguous = url_problem(url)  # parsers would disagree on the host: a policy violation
        if ambiguous is not None:
            self.error(path, f"{ambiguous}, got {clip(redact_url(url), 200)!r}", line)
            return BAD
        return url, scheme, host

    def commands(self, value: object, path: str, line: int | None) -> tuple[str, ...] | Literal[Bad.BAD]:
        if isinstance(value, Seq):
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
        assert isinstance(value, Seq)
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
                hint = self.hint(word, _KNOWN_WORDS, cutoff=0.9)  # the words share long prefixes
                message = f"unknown command word {clip(word)!r}{hint}"
                self.warn(f"{path}[{index}]", message, value.item_lines[index])
                warned = True
        if not ok:
            return BAD
        result = tuple(words)
        if not warned:
            self.clean_commands[result] = result
        return result

    def secret_ref(self, kind: Literal["env", "file"], where: str) -> tuple[SecretRef, str | None]:
        """Where a secret lives, and why it cannot be used there (None when it can); never the secret."""
        if kind == "env":
            value = self.environ.get(where)
            problem = None
            if value is None:
                problem = f"environment variable {where} is not set"
            elif not value.strip():
                problem = f"environment variable {where} is empty"
            return SecretRef(env=where), problem
        path = os.path.join(self.base_dir, where)
        return SecretRef(file=Path(path)), self.secret_file_problem(path)

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


REGION_LOCATIONS = {r.name: Location(r.name, r.endpoint, r.backup_endpoint) for r in REGIONS.values()}
_KNOWN_WORDS = tuple(sorted(KNOWN_COMMANDS | set(ALIASES)))
