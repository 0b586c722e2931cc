"""The store's metric families (per app, and the process-wide few), written as Prometheus text.

Per-app series are never stored in metric objects: they are written from a snapshot of
``store.states`` when Prometheus asks, so an app removed by a reload disappears from the next scrape
and nothing drifts out of step with the status page. At 10,000 apps a scrape holds about 230,000
samples; going through one ``Sample`` object per line would be more than ten times slower, so the
text is written directly, byte-identical to what prometheus_client's encoders print for the same
samples (the tests check it by parsing the text back and encoding it again).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from monitor.drift import config_fingerprint
from monitor.errors import REASONS
from monitor.kinds import DRIFT_KINDS, POLICY_KINDS
from monitor.state import AppState
from monitor.store import Store

PREFIX = "callback_monitor_"

_Type = Literal["gauge", "counter"]


@dataclass(frozen=True)
class _Family:
    """One per-app metric family: its exposed name (counters with ``_total``), type, help and extra label."""

    name: str
    type: _Type
    help: str
    label: str = ""  # the third label, after app and sdkappid
    values: tuple[str, ...] = ()  # every value of that label, always all of them


_DRIFT = tuple(k.value for k in DRIFT_KINDS)
_POLICY = tuple(k.value for k in POLICY_KINDS)

# In the order they are exposed; _row() computes one app's values in the same order.
FAMILIES: tuple[_Family, ...] = (
    _Family(
        PREFIX + "check_success",
        "gauge",
        "1 if the last check of this app reached a verdict (the live callback config was read and "
        "compared), 0 if it failed; absent until the first check ends. "
        "Why checks fail: callback_monitor_check_failures_total.",
    ),
    _Family(
        PREFIX + "in_sync",
        "gauge",
        "1 if the last verdict found nothing that counts (kinds in the app's ignore list do not), 0 if "
        "it found drift or a policy violation; absent until the first verdict. A failed check keeps "
        "the previous verdict.",
    ),
    _Family(
        PREFIX + "drift",
        "gauge",
        "1 for each kind of drift the last verdict found, else 0 (ignored kinds are 0): config_missing, "
        "config_present, url_mismatch, missing_commands, unexpected_commands. Every kind is present "
        "from the first verdict on.",
        "kind",
        _DRIFT,
    ),
    _Family(
        PREFIX + "policy_violation",
        "gauge",
        "1 for each policy the live callback URL violates, else 0: insecure_url (not https while "
        "require_https is on), host_not_allowed (host matches no allowed_hosts glob). Present from the "
        "first verdict on.",
        "policy",
        _POLICY,
    ),
    _Family(
        PREFIX + "last_check_timestamp_seconds",
        "gauge",
        "Unix time the last check of this app ended, verdict or not; absent until the first check ends. "
        "time() minus this growing past the interval means checks have stalled.",
    ),
    _Family(
        PREFIX + "last_success_timestamp_seconds",
        "gauge",
        "Unix time the last verdict on this app was reached; absent until the first. time() minus this "
        "is the age of what callback_monitor_in_sync says.",
    ),
    _Family(
        PREFIX + "observed_config_hash",
        "gauge",
        "A stable 48-bit number derived from the live callback URL and command set (order and alias "
        "spelling ignored), 0 when the app has no callback; absent until the first verdict. "
        "changes() over it counts edits of the live config.",
    ),
    _Family(
        PREFIX + "checks_total",
        "counter",
        "Checks of this app run since it was loaded, whatever their outcome.",
    ),
    _Family(
        PREFIX + "check_failures_total",
        "counter",
        "Checks of this app that reached no verdict, by error reason (timeout, network, http_status, "
        "invalid_response, server_error, rate_limited, auth, permission, app_invalid, bad_request, "
        "resource_exhausted, internal).",
        "reason",
        REASONS,
    ),
)


def _go_float(value: float) -> str:
    """A sample value as Prometheus' text formats print it (Go's %g-like rules, as the library does)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to an exponent sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


_ONE, _ZERO = _go_float(1.0), _go_float(0.0)


@dataclass(frozen=True)
class Snapshot:
    """What one scrape shows, copied from the store on the event loop (cheap: references only)."""

    states: tuple[AppState, ...]
    config_digest: str | None
    reload_successful: bool
    reload_last_success: float | None

    @classmethod
    def of(cls, store: Store) -> Snapshot:
        return cls(
            states=tuple(store.states.values()),
            config_digest=store.config.digest if store.config is not None else None,
            reload_successful=store.reload.successful,
            reload_last_success=store.reload.last_success,
        )


# One app's values, one entry per family: None (absent), a float, or a tuple over the label values.
_Row = tuple[float | tuple[float, ...] | None, ...]


def _row(state: AppState) -> _Row:
    verdict = state.verdict
    success: float | None = None
    if state.last_check is not None:
        success = 1.0 if verdict is not None and not state.stale else 0.0
    drift: tuple[float, ...] | None = None
    policy: tuple[float, ...] | None = None
    in_sync: float | None = None
    observed_hash: float | None = None
    if verdict is not None:
        counted = {f.kind.value for f in verdict.counted}
        drift = tuple(1.0 if k in counted else 0.0 for k in _DRIFT)
        policy = tuple(1.0 if k in counted else 0.0 for k in _POLICY)
        in_sync = 0.0 if counted else 1.0
        observed_hash = float(config_fingerprint(verdict.observed))
    failures = state.failures_by_reason
    return (
        success,
        in_sync,
        drift,
        policy,
        state.last_check,
        state.last_success if verdict is not None else None,
        observed_hash,
        float(state.checks),
        tuple(float(failures.get(r, 0)) for r in REASONS),
    )


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _fmt(value: float) -> str:
    return _ONE if value == 1.0 else _ZERO if value == 0.0 else _go_float(value)


def _header(name: str, kind: _Type, help_text: str, openmetrics: bool) -> str:
    """A family's HELP and TYPE lines, as ``generate_latest`` (or its OpenMetrics twin) prints them."""
    help_text = help_text.replace("\\", r"\\").replace("\n", r"\n")
    if openmetrics:
        # OpenMetrics names a counter family without its _total and escapes quotes in HELP.
        help_text = help_text.replace('"', r"\"")
        name = name.removesuffix("_total") if kind == "counter" else name
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def app_text(states: Iterable[AppState], *, openmetrics: bool = False) -> str:
    """The per-app families as ``generate_latest`` prints them (OpenMetrics 1.0 without ``# EOF``)."""
    return "".join(_app_pieces(states, openmetrics))


def _app_pieces(states: Iterable[AppState], openmetrics: bool) -> list[str]:
    """The text of ``app_text`` in pieces, so that a caller joins it with more in one copy.

    Only strings outlive an app's turn, so a scrape leaves the cyclic garbage collector nothing to
    chase: a full collection among 10,000 app states would stall every thread, the event loop's too.
    """
    middles = [[f'{f.label}="{_escape(v)}",' for v in f.values] for f in FAMILIES]
    starts = [f.name + "{" for f in FAMILIES]
    lines: list[list[str]] = [[] for _ in FAMILIES]
    for state in states:
        # Labels print sorted by name: app, then kind/policy/reason, then sdkappid.
        head = f'app="{_escape(state.identity.name)}",'
        tail = f'sdkappid="{state.identity.sdkappid}"}} '
        for value, start, middle, put in zip(_row(state), starts, middles, lines, strict=True):
            if value is None:
                continue
            if isinstance(value, tuple):
                put.append(
                    "".join(f"{start}{head}{m}{tail}{_fmt(v)}\n" for m, v in zip(middle, value, strict=True))
                )
            else:
                put.append(f"{start}{head}{tail}{_fmt(value)}\n")
    out: list[str] = []
    for family, family_lines in zip(FAMILIES, lines, strict=True):
        out.append(_header(family.name, family.type, family.help, openmetrics))
        out.extend(family_lines)
    return out


def config_hash(digest: str) -> int:
    """The first 48 bits of the config file's sha256 (hex) as a number: a float64 holds it exactly."""
    try:
        return int(digest[:12], 16)
    except ValueError:
        return int.from_bytes(hashlib.sha256(digest.encode()).digest()[:6], "big")


# The process-wide gauges that describe the store: name, help, and the value in a snapshot (None: absent).
_STORE_FAMILIES: tuple[tuple[str, str, Callable[[Snapshot], float | None]], ...] = (
    (
        PREFIX + "apps",
        "Apps this replica checks (its shard of the config file).",
        lambda s: float(len(s.states)),
    ),
    (
        PREFIX + "config_last_reload_successful",
        "1 if the last attempt to load the config file succeeded, 0 if the file was rejected "
        "(the previous config keeps running; the log and the status page say why).",
        lambda s: 1.0 if s.reload_successful else 0.0,
    ),
    (
        PREFIX + "config_last_reload_success_timestamp_seconds",
        "Unix time the config file was last loaded successfully.",
        lambda s: s.reload_last_success,
    ),
    (
        PREFIX + "config_hash",
        "The first 48 bits of the SHA-256 of the loaded config file, as a number; replicas that "
        "show different values run different files.",
        lambda s: float(config_hash(s.config_digest)) if s.config_digest else None,
    ),
)


def snapshot_text(snapshot: Snapshot, *, openmetrics: bool = False) -> str:
    """Everything a scrape shows of the store: the families above, then the per-app ones."""
    out: list[str] = []
    for name, help_text, value_of in _STORE_FAMILIES:
        out.append(_header(name, "gauge", help_text, openmetrics))
        value = value_of(snapshot)
        if value is not None:
            out.append(f"{name} {_fmt(value)}\n")
    out.extend(_app_pieces(snapshot.states, openmetrics))
    return "".join(out)
