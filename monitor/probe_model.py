"""What a receiver probe is told and what it reports: settings, phases, results (no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

METHODS = ("HEAD", "GET", "OPTIONS")
DEFAULT_EXPECT = "<500"


class Phase(StrEnum):
    """The steps of one probe, in the order they run; a failed probe names the one that failed."""

    DNS = "dns"  # the host name did not resolve
    ADDRESS = "address"  # it resolved to an address probes may not connect to
    CONNECT = "connect"  # no TCP connection to any checked address
    TLS = "tls"  # the handshake or the certificate check failed
    REQUEST = "request"  # the request could not be sent
    RESPONSE = "response"  # no readable status line came back
    STATUS = "status"  # a status line came back with a code outside expect_status


class CertProblem(StrEnum):
    """Why a certificate was refused: each makes an ``endpoint_cert_invalid`` finding."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_HOST = "wrong_host"
    UNTRUSTED = "untrusted"  # self-signed, unknown issuer, missing intermediate, bad signature


@dataclass(frozen=True)
class StatusRange:
    """HTTP status codes from ``low`` to ``high``, both included."""

    low: int
    high: int

    def __contains__(self, code: object) -> bool:
        return isinstance(code, int) and self.low <= code <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class ProbeSettings:
    """One app's ``probe:`` section, merged from defaults; durations in seconds."""

    enabled: bool = False
    interval: float = 300.0
    timeout: float = 10.0  # the whole probe: every phase gets what is left of it
    method: str = "HEAD"
    expect_status: tuple[StatusRange, ...] = (StatusRange(100, 499),)
    failures_before_alert: int = 3
    cert_warning: float = 14 * 86400.0
    cert_critical: float = 3 * 86400.0
    allow_private: bool = False
    ca_file: Path | None = None  # replaces the system CAs when set
    # ca_file's text, read (as a regular file) when the config was loaded: probes then never open
    # the file themselves, so a file swapped for a pipe or a device cannot stall one.
    ca_pem: str | None = field(default=None, repr=False)

    def expects(self, status: int) -> bool:
        return any(status in r for r in self.expect_status)


@dataclass(frozen=True)
class ProbeResult:
    """How one probe of one URL went. ``phase`` is None when the receiver is up.

    ``url`` is the raw desired URL (redact it to show it); ``error`` never holds it.
    ``cert_not_after`` is the earliest notAfter read from the certificates (epoch seconds), None for
    plain http or when the handshake failed. ``durations`` holds the seconds each phase that ran took.
    """

    url: str
    started: float  # wall-clock epoch seconds
    total: float  # seconds, the whole probe
    phase: Phase | None = None
    error: str = ""
    timed_out: bool = False
    address: str | None = None  # the address connected to (or refused)
    status: int | None = None
    cert_not_after: float | None = None
    cert_problem: CertProblem | None = None
    durations: tuple[tuple[Phase, float], ...] = ()

    @property
    def up(self) -> bool:
        return self.phase is None

    def duration(self, phase: Phase) -> float | None:
        for name, seconds in self.durations:
            if name == phase:
                return seconds
        return None


_RANGE = re.compile(r"([1-5][0-9][0-9])\s*-\s*([1-5][0-9][0-9])")
_CLASS = re.compile(r"([1-5])xx", re.IGNORECASE)
_BELOW = re.compile(r"<\s*([1-6][0-9][0-9])")
_CODE = re.compile(r"[1-5][0-9][0-9]")
_EXPECT_HINT = 'use a code (204), a range ("200-399"), a class ("2xx"), "<500", or a list of them'


def parse_expect_status(value: object) -> tuple[StatusRange, ...]:
    """The status ranges in ``value``: one item or a list of items, each a code, range, class or "<N".

    Raises ValueError with a message naming the item that is wrong and what is accepted.
    """
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError(f"must not be empty ({_EXPECT_HINT})")
    ranges = [_one_status_item(item) for item in items]
    return tuple(sorted(set(ranges), key=lambda r: (r.low, r.high)))


def _one_status_item(item: object) -> StatusRange:
    if isinstance(item, int) and not isinstance(item, bool):
        if 100 <= item <= 599:
            return StatusRange(item, item)
        raise ValueError(f"{item} is not an HTTP status code (100-599)")
    if not isinstance(item, str):
        raise ValueError(f"{item!r} is not a status code or range ({_EXPECT_HINT})")
    text = item.strip()
    if _CODE.fullmatch(text):
        return StatusRange(int(text), int(text))
    if m := _RANGE.fullmatch(text):
        low, high = int(m[1]), int(m[2])
        if low > high:
            raise ValueError(f"{item!r} is an empty range: {low} is above {high}")
        return StatusRange(low, high)
    if m := _CLASS.fullmatch(text):
        return StatusRange(int(m[1]) * 100, int(m[1]) * 100 + 99)
    if m := _BELOW.fullmatch(text):
        high = int(m[1]) - 1
        if high < 100:
            raise ValueError(f"{item!r} matches no HTTP status code")
        return StatusRange(100, min(high, 599))
    raise ValueError(f"{item!r} is not a status code or range ({_EXPECT_HINT})")
