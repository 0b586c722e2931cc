"""Reading the file: size limits and decoding, then the YAML tree and its checks; one ConfigError."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from monitor.config.document import read_document
from monitor.config.files import NotRegular, TooLarge, UnreadableFile, read_regular
from monitor.config.model import Config
from monitor.config.problems import Load, Problems
from monitor.config.yamltree import escaped, read_yaml
from monitor.errors import ConfigError, Problem

MAX_FILE_BYTES = 32 * 1024 * 1024
_LIMIT = f"{MAX_FILE_BYTES // (1024 * 1024)} MiB"


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate the desired-state file at ``path``. Raises ConfigError only."""
    source = str(path)

    def fail(message: str) -> ConfigError:
        return ConfigError(source, [Problem("", message)])

    try:
        data = read_regular(path, MAX_FILE_BYTES)
    except TooLarge as exc:
        if exc.size is None:
            raise fail(f"is larger than {_LIMIT}; a config file may be at most {_LIMIT}") from None
        raise fail(f"is {exc.size} bytes; a config file may be at most {_LIMIT}") from None
    except NotRegular as exc:
        raise fail(f"is {exc}") from None
    except UnreadableFile as exc:
        raise fail(f"cannot read the file: {exc}") from None
    base_dir = Path(path).absolute().parent
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
    try:
        root, problems = read_yaml(text, source)
    except ConfigError as exc:
        raise ConfigError(source, _readable(exc.problems)) from None
    load = Load(base_dir.absolute(), os.environ if environ is None else environ, Problems(problems))
    config, found = read_document(load, root, source, digest)
    found = _readable(found)
    errors = [p for p in found if not p.warning]
    if errors or config is None:
        raise ConfigError(source, errors, [p for p in found if p.warning])
    if config.warnings:
        config = replace(config, warnings=tuple(p for p in found if p.warning))
    return config


def _readable(problems: Iterable[Problem]) -> list[Problem]:
    """Each problem with the values its message quotes made printable: a control character or bidi
    override from the file must not reach a terminal or a log raw. Most messages quote with ``repr``
    already; this is the one place that makes sure of it."""
    return [p if p.message.isprintable() else replace(p, message=escaped(p.message)) for p in problems]
