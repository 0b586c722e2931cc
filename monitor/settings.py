"""Runtime options of the commands (flags and CALLBACK_MONITOR_* variables) as frozen dataclasses."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "CALLBACK_MONITOR_"
DEFAULT_LISTEN = "0.0.0.0:9765"  # Prometheus scrapes the pod IP, so every interface
DEFAULT_GRACE = 2.0  # seconds in-flight checks get after SIGTERM before they are cancelled


def env_name(option: str) -> str:
    """``--shard-index`` -> ``CALLBACK_MONITOR_SHARD_INDEX``."""
    return ENV_PREFIX + option.lstrip("-").replace("-", "_").upper()


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``[::1]:PORT`` -> (host, port). Raises ValueError with a reason."""
    value = value.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise ValueError(f"{value!r} is not HOST:PORT (for example 0.0.0.0:9765 or 127.0.0.1:0)")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ':9765' means every interface, as in Prometheus
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{value!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{value!r}: port {port} is out of range 0-65535")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r}: {host!r} is not an IPv6 address") from None
    return host, port


@dataclass(frozen=True)
class LogSettings:
    format: str | None = None  # "json", "console" or None: json unless stdout is a terminal
    level: str = "info"


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"shard count must be at least 1, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in 0..{self.count - 1}, not {self.index}")


@dataclass(frozen=True)
class ServeSettings:
    config: Path
    listen: tuple[str, int]
    shard: Shard = Shard()
    grace: float = DEFAULT_GRACE
    watch_interval: float = 2.0  # how often the config file is checked for a change
    external_url: str | None = None  # where people reach the status page (links in alerts)
