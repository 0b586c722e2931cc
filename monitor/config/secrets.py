"""Readers for where a secret lives (a variable or a file, for an app or the webhook), proven readable."""

from __future__ import annotations

import os
import string as strings
from pathlib import Path
from typing import Literal, NamedTuple

from monitor.config.files import NotRegular, TooLarge, UnreadableFile, read_regular
from monitor.config.model import MAX_SECRET_BYTES, SecretRef
from monitor.config.problems import BAD, Bad, Load
from monitor.config.shapes import CONTROL, string
from monitor.config.yamltree import printable

PLACEHOLDERS = ("sdkappid", "name")

_FORMATTER = strings.Formatter()


class SecretSpec(NamedTuple):
    """An app's secret as written: its placeholders are filled in for each app that uses it."""

    kind: Literal["env", "file"]
    template: str


def secret_env(load: Load, value: object, path: str, line: int | None) -> SecretSpec | Literal[Bad.BAD]:
    text = template(load, value, path, line)
    if text is BAD or env_name(load, text, path, line) is BAD:
        return BAD
    return SecretSpec("env", text)


def secret_file(load: Load, value: object, path: str, line: int | None) -> SecretSpec | Literal[Bad.BAD]:
    text = template(load, value, path, line)
    if text is BAD or file_name(load, text, path, line) is BAD:
        return BAD
    return SecretSpec("file", text)


def env_name(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    name = string(load, value, path, line)
    if name is not BAD and ("=" in name or CONTROL.search(name)):
        message = "must be an environment variable name (no '=', spaces or control characters)"
        load.problems.error(path, message, line)
        return BAD
    return name


def file_name(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    name = string(load, value, path, line)
    if name is not BAD and "\x00" in name:
        load.problems.error(path, "must be a file path (no NUL character)", line)
        return BAD
    return name


def template(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    """A name with {sdkappid} and {name} placeholders; the fields it uses go to ``load.template_fields``."""
    text = string(load, value, path, line)
    if text is BAD or text in load.template_fields:
        return text
    fields: set[str] = set()
    try:
        for _literal, name, spec, conversion in _FORMATTER.parse(text):
            if name is None:
                continue
            if name not in PLACEHOLDERS or spec or conversion:
                written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
                message = f"unknown placeholder {{{written}}}: use {{sdkappid}} or {{name}}"
                load.problems.error(path, message, line)
                return BAD
            fields.add(name)
    except ValueError as exc:
        message = f"has unbalanced braces ({exc}); placeholders are {{sdkappid}} and {{name}}"
        load.problems.error(path, message, line)
        return BAD
    load.template_fields[text] = frozenset(fields)
    return text


def webhook_env(load: Load, value: object, path: str, line: int | None) -> SecretRef | Literal[Bad.BAD]:
    name = env_name(load, value, path, line)
    return BAD if name is BAD else usable(load, "env", name, path, line)


def webhook_file(load: Load, value: object, path: str, line: int | None) -> SecretRef | Literal[Bad.BAD]:
    name = file_name(load, value, path, line)
    return BAD if name is BAD else usable(load, "file", name, path, line)


def usable(
    load: Load, kind: Literal["env", "file"], where: str, path: str, line: int | None
) -> SecretRef | Literal[Bad.BAD]:
    ref, problem = secret_ref(load, kind, where)
    if problem is not None:
        load.problems.error(path, problem, line)
        return BAD
    return ref


def secret_ref(load: Load, kind: Literal["env", "file"], where: str) -> tuple[SecretRef, str | None]:
    """Where a secret lives, and why it cannot be used there (None when it can); never the secret."""
    if kind == "env":
        value = load.environ.get(where)
        problem = None
        if value is None:
            problem = f"environment variable {where} is not set"
        elif not value.strip():
            problem = f"environment variable {where} is empty"
        return SecretRef(env=where), problem
    path = os.path.join(load.base_dir, where)
    return SecretRef(file=Path(path)), secret_file_problem(load, path)


def secret_file_problem(load: Load, path: str) -> str | None:
    """Why the secret file cannot be used, or None; each file is read once per load."""
    if path in load.secret_files:
        return load.secret_files[path]
    problem: str | None = None
    shown = printable(path, 200)
    try:
        data = read_regular(path, MAX_SECRET_BYTES)
        if not data.strip():
            problem = f"secret file {shown} is empty"
        else:
            data.decode("utf-8")
    except TooLarge:
        problem = f"secret file {shown} is larger than 64 KiB, which no secret key is"
    except NotRegular as exc:
        problem = f"secret file {shown} is {exc}"
    except UnreadableFile as exc:
        problem = f"cannot read secret file {shown}: {exc}"
    except UnicodeDecodeError:
        problem = f"secret file {shown} is not UTF-8 text"
    load.secret_files[path] = problem
    return problem
