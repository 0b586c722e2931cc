"""Alert events as on-call sees them, and their sinks (the log line on stdout; more in later sinks)."""

from __future__ import annotations

import logging
from typing import Any

import structlog

from monitor.redact import redact_url
from monitor.report import error_dict, iso
from monitor.state import AlertEvent

log = structlog.get_logger("monitor.alerts")

# Problems appearing are warnings in the log; their disappearance is information.
_LEVEL = {
    "drift_detected": logging.WARNING,
    "check_failing": logging.WARNING,
    "drift_resolved": logging.INFO,
    "check_recovered": logging.INFO,
}


def alert_fields(event: AlertEvent) -> dict[str, Any]:
    """The fields of the design's alert line, URLs redacted; ``event`` is the alert's name."""
    fields: dict[str, Any] = {
        "event": event.event,
        "severity": event.severity,
        "app": event.app,
        "sdkappid": event.sdkappid,
        "kind": event.kind,
        "desired": None if event.desired is None else redact_url(event.desired),
        "observed": None if event.observed is None else redact_url(event.observed),
        "missing": list(event.missing),
        "unexpected": list(event.unexpected),
        "labels": dict(event.labels),
        "fingerprint": event.fingerprint,
        "timestamp": iso(event.timestamp),
        "changed": event.changed,
    }
    if event.error is not None:
        fields["error"] = error_dict(event.error)
    return fields


class LogSink:
    """Writes every alert event as one JSON line (through the process's structlog setup)."""

    def __call__(self, event: AlertEvent) -> None:
        fields = alert_fields(event)
        name = fields.pop("event")
        log.log(_LEVEL.get(name, logging.WARNING), name, alert=True, **fields)
