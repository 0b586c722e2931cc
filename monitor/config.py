"""The desired-state file: schema, loading, validation with precise error paths."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from monitor.errors import Problem
from monitor.tencent.model import CallbackConfig


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
