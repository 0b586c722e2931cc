"""Runtime options of the commands (flags and CALLBACK_MONITOR_* variables) as frozen dataclasses."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from monitor.errors import MonitorError

if TYPE_CHECKING:
    import ssl

ENV_PREFIX = "CALLBACK_MONITOR_"
DEFAULT_LISTEN = "0.0.0.0:9765"  # Prometheus scrapes the pod IP, so every interface
DEFAULT_GRACE = 2.0  # seconds in-flight checks get after SIGTERM before they are cancelled


def env_name(option: str) -> str:
    """``--shard-index`` -> ``CALLBACK_MONITOR_SHARD_INDEX``."""
    return ENV_PREFIX + option.lstrip("-").replace("-", "_").upper()


def parse_listen(value: str, *, empty_host: str = "0.0.0.0") -> tuple[str, int]:  # noqa: S104
    """``HOST:PORT``, ``:PORT`` or ``[::1]:PORT`` -> (host, port). Raises ValueError with a reason.

    An empty host is ``empty_host``: every interface for ``serve`` (as in Prometheus: it scrapes the
    pod IP), loopback for the simulator (its control API has no authentication).
    """
    value = value.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise ValueError(f"{value!r} is not HOST:PORT (for example 0.0.0.0:9765 or 127.0.0.1:0)")
    host = host.strip("[]") or empty_host
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
    ca_bundle: Path | None = None  # PEM file of CAs trusted for the Tencent API instead of the system's
    read_only: bool = False  # no write to Tencent whatever the config says: self-heal is never built


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def parse_switch(value: str) -> bool:
    """An on/off environment value: 1/true/yes/on or 0/false/no/off/empty, any case; ValueError otherwise.

    An unknown word is an error rather than "off", so that a typo never turns a safety switch off.
    """
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not one of 1, true, yes, on, 0, false, no, off")


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext | Literal[True]:
    """What ``aiohttp.TCPConnector(ssl=...)`` gets: certificates are always verified, against the
    system's trust store (True, aiohttp's default) or against only the CAs in ``ca_bundle``.

    Raises MonitorError, naming the file, when the bundle cannot be read or holds no certificate.
    """
    if ca_bundle is None:
        return True
    import ssl  # here: validate and --help need no TLS stack

    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except OSError as exc:  # ssl.SSLError is one too: not PEM, or no certificate in it
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise MonitorError(f"cannot use the CA bundle {ca_bundle}: {reason}") from None
