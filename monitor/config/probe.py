"""The ``probe:`` section (defaults or app): each key read, then an app's merged over the defaults."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

from monitor.config import values
from monitor.config.files import UnreadableFile, read_regular
from monitor.config.problems import BAD, At, Bad, Load, Slot
from monitor.config.shapes import boolean, keys, mapping, opt, parse_duration, string
from monitor.config.yamltree import Map, clip
from monitor.probe_model import METHODS, ProbeSettings, StatusRange, parse_expect_status

PROBE_KEYS = (
    "enabled",
    "interval",
    "timeout",
    "method",
    "expect_status",
    "failures_before_alert",
    "cert_warning",
    "cert_critical",
    "allow_private",
    "ca_file",
)
MAX_CERT_WINDOW = 3650 * 86400.0  # cert_warning and cert_critical: ten years at most
MAX_CA_BYTES = 4 * 1024 * 1024  # a PEM bundle: the whole Mozilla set is about 200 KiB
_DAYS = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+))d(.*)")
_DEFAULT = ProbeSettings()
_T = TypeVar("_T")


@dataclass(slots=True)
class ProbeLayer:
    """What one place's ``probe:`` sets; an app falls back to the defaults' key by key."""

    enabled: Slot[bool] = None
    interval: Slot[float] = None
    timeout: Slot[float] = None
    method: Slot[str] = None
    expect_status: Slot[tuple[StatusRange, ...]] = None
    failures_before_alert: Slot[int] = None
    cert_warning: Slot[float] = None
    cert_critical: Slot[float] = None
    allow_private: Slot[bool] = None
    ca_file: Slot[CaBundle | None] = None  # At(None): null, the system CAs
    # The settings of an app that sets no probe key over this layer (defaults), worked out once:
    # a file of ten thousand apps that share their defaults builds one ProbeSettings, not 10,000.
    inherited: ProbeSettings | None = None


def bad_probe_layer() -> ProbeLayer:
    layer = ProbeLayer()
    for name in PROBE_KEYS:
        setattr(layer, name, BAD)
    return layer


def read_probe(load: Load, m: Map, place: str) -> ProbeLayer | None:
    """The ``probe`` key of ``m`` (the defaults or one app); None when absent."""
    if "probe" not in m:
        return None
    path = f"{place}.probe"
    section = mapping(load, m["probe"], path, m.key_lines["probe"])
    if section is None:
        return bad_probe_layer()
    keys(load, section, path, PROBE_KEYS)
    return ProbeLayer(
        enabled=opt(load, section, path, "enabled", boolean),
        interval=opt(load, section, path, "interval", values.interval),
        timeout=opt(load, section, path, "timeout", values.timeout),
        method=opt(load, section, path, "method", method),
        expect_status=opt(load, section, path, "expect_status", expect_status),
        failures_before_alert=opt(load, section, path, "failures_before_alert", values.consecutive),
        cert_warning=opt(load, section, path, "cert_warning", days),
        cert_critical=opt(load, section, path, "cert_critical", days),
        allow_private=opt(load, section, path, "allow_private", boolean),
        ca_file=opt(load, section, path, "ca_file", ca_file),
    )


def resolve_probe(
    load: Load, defaults: ProbeLayer | None, own: ProbeLayer | None, place: str, label: str
) -> ProbeSettings | Literal[Bad.BAD]:
    """The app's probe settings over the defaults, or BAD when a value is wrong (already reported)."""
    if own is None and defaults is None:
        return _DEFAULT
    if own is None and defaults is not None and defaults.inherited is not None:
        return defaults.inherited
    mine, base = own or ProbeLayer(), defaults or ProbeLayer()
    if any(getattr(mine, k) is BAD or getattr(base, k) is BAD for k in PROBE_KEYS):
        return BAD
    bundle = _chosen(mine.ca_file, base.ca_file, None)
    settings = ProbeSettings(
        enabled=_chosen(mine.enabled, base.enabled, _DEFAULT.enabled),
        interval=_chosen(mine.interval, base.interval, _DEFAULT.interval),
        timeout=_chosen(mine.timeout, base.timeout, _DEFAULT.timeout),
        method=_chosen(mine.method, base.method, _DEFAULT.method),
        expect_status=_chosen(mine.expect_status, base.expect_status, _DEFAULT.expect_status),
        failures_before_alert=_chosen(
            mine.failures_before_alert, base.failures_before_alert, _DEFAULT.failures_before_alert
        ),
        cert_warning=_chosen(mine.cert_warning, base.cert_warning, _DEFAULT.cert_warning),
        cert_critical=_chosen(mine.cert_critical, base.cert_critical, _DEFAULT.cert_critical),
        allow_private=_chosen(mine.allow_private, base.allow_private, _DEFAULT.allow_private),
        ca_file=bundle.path if bundle is not None else None,
        ca_pem=bundle.pem if bundle is not None else None,
    )
    ok = True
    if settings.cert_critical > settings.cert_warning:
        message = (
            f"cert_critical ({_days(settings.cert_critical)}) is longer than cert_warning "
            f"({_days(settings.cert_warning)}): a certificate would be critical before it is a warning"
        )
        at = _first_at(mine.cert_critical, mine.cert_warning, base.cert_critical, base.cert_warning)
        _report(load, at, message, place, label)
        ok = False
    if settings.timeout >= settings.interval:
        message = (
            f"the probe timeout ({settings.timeout:g}s) is not shorter than its interval "
            f"({settings.interval:g}s)"
        )
        _report(
            load, _first_at(mine.timeout, mine.interval, base.timeout, base.interval), message, place, label
        )
        ok = False
    if not ok:
        return BAD
    if own is None and defaults is not None:
        defaults.inherited = settings
    return settings


def method(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    text = string(load, value, path, line)
    if text is BAD:
        return BAD
    if text.upper() not in METHODS:
        message = f"must be one of {', '.join(METHODS)} (a probe never sends a body), got {clip(text)!r}"
        load.problems.error(path, message, line)
        return BAD
    return text.upper()


def expect_status(
    load: Load, value: object, path: str, line: int | None
) -> tuple[StatusRange, ...] | Literal[Bad.BAD]:
    try:
        return parse_expect_status(value)
    except ValueError as exc:
        load.problems.error(path, str(exc), line)
        return BAD


def days(load: Load, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
    """A duration that may also count days: "14d", "3d12h", as well as "36h" or seconds."""
    try:
        seconds = _parse_days(value)
    except ValueError as exc:
        # the shared message lists the units it knows; here days are known too
        load.problems.error(path, str(exc).replace("1h30m", "14d, 1h30m"), line)
        return BAD
    if not 0 < seconds <= MAX_CERT_WINDOW:
        message = f"must be longer than 0s and at most 3650d, got {clip(str(value))!r}"
        load.problems.error(path, message, line)
        return BAD
    return seconds


def _parse_days(value: object) -> float:
    if isinstance(value, str) and (m := _DAYS.fullmatch(value.strip())):
        rest = m[2].strip()
        return float(m[1]) * 86400.0 + (parse_duration(rest) if rest else 0.0)
    return parse_duration(value)


class CaBundle(NamedTuple):
    """A ca_file as the loader read it: where it is, and its text (the probes use the text)."""

    path: Path
    pem: str


def ca_file(load: Load, value: object, path: str, line: int | None) -> CaBundle | Literal[Bad.BAD] | None:
    """A PEM bundle that is a regular file, can be read and holds a certificate; null: the system CAs."""
    if value is None:
        return None
    text = string(load, value, path, line)
    if text is BAD:
        return BAD
    file = Path(text)
    if not file.is_absolute():
        file = load.base_dir / file
    shown = clip(str(file), 200)
    try:
        pem = read_regular(file, MAX_CA_BYTES).decode("ascii")
        context = ssl.create_default_context(cadata=pem)
    except UnreadableFile as exc:
        load.problems.error(path, f"cannot read {shown!r}: {exc}", line)
        return BAD
    except (UnicodeDecodeError, ssl.SSLError, ValueError):
        load.problems.error(path, f"{shown!r} is not a PEM bundle of CA certificates", line)
        return BAD
    if not context.get_ca_certs():
        load.problems.error(path, f"{shown!r} holds no CA certificate", line)
        return BAD
    return CaBundle(file, pem)


def _chosen(own: Slot[_T], inherited: Slot[_T], default: _T) -> _T:
    """The app's own value, else the inherited one, else the default (neither slot is BAD here)."""
    if own is not None and own is not BAD:
        return own.value
    if inherited is not None and inherited is not BAD:
        return inherited.value
    return default


def _report(load: Load, at: tuple[str, int | None] | None, message: str, place: str, label: str) -> None:
    path, line = at if at is not None else (f"{place}.probe", None)
    load.problems.for_app(path, line, message, place, label)


def _first_at(*slots: object) -> tuple[str, int | None] | None:
    """Where the first of ``slots`` that was set in the file was set."""
    for slot in slots:
        if isinstance(slot, At):
            return slot.path, slot.line
    return None


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g}d" if seconds % 3600 == 0 else f"{seconds:g}s"
