"""The desired state as frozen dataclasses: what the rest of the monitor reads from a loaded config."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from monitor.config.files import CannotOpen, UnreadableFile, read_regular
from monitor.errors import Problem, ResourceExhausted, SecretUnavailable
from monitor.probe_model import ProbeSettings
from monitor.tencent.model import CallbackConfig

_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})

MAX_SECRET_BYTES = 64 * 1024  # no secret key is anywhere near this


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
    """Where a secret lives: exactly one of an environment variable or a file."""

    env: str | None = None
    file: Path | None = None

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def read(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret, stripped of surrounding white space. Raises SecretUnavailable, or
        ResourceExhausted when the process is out of file descriptors (the monitor's trouble, not a bad key).

        A file is read as at load time (``files.read_regular``): a FIFO or a device swapped in is
        refused at once, never waited on or read without end.
        """
        if self.env is not None:
            value = (environ if environ is not None else os.environ).get(self.env)
            if value is None:
                raise SecretUnavailable(self._cannot("not set"))
            return value.strip()
        assert self.file is not None
        try:
            return read_regular(self.file, MAX_SECRET_BYTES).decode("utf-8").strip()
        except CannotOpen as exc:
            if exc.errno in _OUT_OF_DESCRIPTORS:
                name = errno.errorcode[exc.errno]
                raise ResourceExhausted(
                    f"out of file descriptors ({name}) reading the secret key from {self.describe()}"
                ) from None
            raise SecretUnavailable(self._cannot(str(exc))) from None
        except UnreadableFile as exc:
            raise SecretUnavailable(self._cannot(str(exc))) from None
        except UnicodeDecodeError:
            raise SecretUnavailable(self._cannot("not UTF-8 text")) from None

    def _cannot(self, why: str) -> str:
        return f"cannot read the secret key from {self.describe()} ({why})"


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
    remediate: bool = False  # write the desired state back when it drifts (a later feature)
    remediate_after: int = 2  # consecutive drifted verdicts before a write
    remediate_max_failures: int = 3  # consecutive failed writes before giving up
    remediate_max_reverts: int = (
        3  # self-heal writes undone by another writer, within the window, before it stops
    )
    remediate_revert_window: float = 600.0  # seconds: the window reverts are counted in
    probe: ProbeSettings = field(default_factory=ProbeSettings)  # receiver probes, off unless enabled


@dataclass(frozen=True)
class Limits:
    concurrency: int = 32
    requests_per_second: float = 200.0
    remediation_writes_per_hour: int = 120  # self-heal writes across all apps


NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class AlertmanagerSink:
    """An Alertmanager that receives every alert; ``url`` is its base URL with no trailing slash."""

    url: str  # the client appends /api/v2/alerts
    resend_interval: float = 60.0  # seconds between re-sends of the alerts still firing
    timeout: float = 5.0  # seconds, one HTTP request
    labels: Mapping[str, str] = field(default_factory=lambda: NO_LABELS)  # added to every alert


@dataclass(frozen=True)
class WebhookSink:
    """A URL that receives every alert event as JSON, signed when a secret is given."""

    url: str  # https, or http to a loopback host
    secret: SecretRef | None = None
    timeout: float = 5.0  # seconds, one HTTP request


@dataclass(frozen=True)
class Alerting:
    """Where alerts go besides the log: no sink unless the ``alerting`` section names one."""

    external_url: str | None = None  # where people reach the status page (an alert's generatorURL)
    alertmanager: AlertmanagerSink | None = None
    webhook: WebhookSink | None = None
    queue_size: int = 1000  # at most this many alerts wait per sink


@dataclass(frozen=True)
class Config:
    source: str  # the path it was loaded from, for messages
    apps: tuple[AppConfig, ...]
    limits: Limits = field(default_factory=Limits)
    warnings: tuple[Problem, ...] = ()
    digest: str = ""  # sha256 of the file's bytes, for callback_monitor_config_hash
    alerting: Alerting = field(default_factory=Alerting)

    def app(self, name: str) -> AppConfig:
        for app in self.apps:
            if app.name == name:
                return app
        raise KeyError(name)
