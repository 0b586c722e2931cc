"""Shared output: the JSON-ready dictionaries of times, callbacks, findings and errors, one spelling for all.

The check report, the status page and the alerts all print these; URLs are redacted here, once. The
module sits below the pure core, so a finding is typed by its shape (``drift.Finding`` has it).
``printable`` makes any text safe for a terminal: what the vendor sends may hold escape sequences.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from monitor.errors import CheckError
from monitor.probe_model import ProbeResult
from monitor.redact import redact_text, redact_url
from monitor.tencent.model import CallbackConfig


class FindingLike(Protocol):
    """What output shows of a finding: ``drift.Finding`` has exactly these fields."""

    @property
    def kind(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def policy(self) -> bool: ...
    @property
    def ignored(self) -> bool: ...
    @property
    def desired(self) -> str | None: ...
    @property
    def observed(self) -> str | None: ...
    @property
    def missing(self) -> tuple[str, ...]: ...
    @property
    def unexpected(self) -> tuple[str, ...]: ...


def iso(ts: float | None) -> str | None:
    """An epoch time as UTC ISO 8601 with milliseconds and a ``Z``; None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def url_or_none(url: str | None) -> str | None:
    return None if url is None else redact_url(url)


def callback_dict(config: CallbackConfig | None) -> dict[str, Any] | None:
    if config is None:
        return None
    return {"url": redact_url(config.url), "commands": list(config.commands)}


def finding_dict(finding: FindingLike) -> dict[str, Any]:
    return {
        "kind": str(finding.kind),
        "severity": finding.severity,
        "policy": finding.policy,
        "ignored": finding.ignored,
        "desired": url_or_none(finding.desired),
        "observed": url_or_none(finding.observed),
        "missing": list(finding.missing),
        "unexpected": list(finding.unexpected),
    }


def error_dict(error: CheckError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "reason": error.reason,
        "message": error.message,
        "code": error.code,
        "request_id": error.request_id or None,
    }


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on or hide shown as its escape (``\\x1b``).

    Control characters (newline, ESC, DEL, C1), bidi and other format characters (U+202E, zero
    width), line and paragraph separators and unusual spaces: anything ``str.isprintable`` refuses.
    A line of vendor text escaped here cannot forge another line, colour or reorder what is shown.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def text_lines(lines: Iterable[str]) -> str:
    """Lines as terminal text: each one ``printable``, each ended by a newline."""
    return "".join(printable(line) + "\n" for line in lines)


def probe_dict(result: ProbeResult | None) -> dict[str, Any] | None:
    """The last probe of an app's receiver: how it ended and how long each phase took."""
    if result is None:
        return None
    return {
        "up": result.up,
        "phase": str(result.phase) if result.phase is not None else None,
        "error": redact_text(result.error) or None,
        "status": result.status,
        "address": result.address,
        "cert_not_after": iso(result.cert_not_after),
        "cert_problem": str(result.cert_problem) if result.cert_problem is not None else None,
        "started": iso(result.started),
        "duration_seconds": round(result.total, 3),
        "phases": {str(phase): round(seconds, 3) for phase, seconds in result.durations},
    }
