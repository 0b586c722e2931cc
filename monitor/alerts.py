"""Alert events as on-call sees them: the log line, Alertmanager's alerts and the signed webhook body.

Everything here is pure (time comes in as ``now``); ``monitor.sinks`` does the delivering.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog

from monitor.drift import Finding
from monitor.kinds import Kind
from monitor.output import error_dict, iso
from monitor.redact import redact_text, redact_url
from monitor.state import CHECK_SEVERITY, AlertEvent, AppState

log = structlog.get_logger("monitor.alerts")

# Problems appearing are warnings in the log; their disappearance is information.
_LEVEL = {
    "drift_detected": logging.WARNING,
    "check_failing": logging.WARNING,
    "drift_resolved": logging.INFO,
    "check_recovered": logging.INFO,
    "remediation_applied": logging.INFO,
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
    if event.action is not None:
        fields["action"] = event.action
    return fields


class LogSink:
    """Writes every alert event as one JSON line (through the process's structlog setup)."""

    def __call__(self, event: AlertEvent) -> None:
        fields = alert_fields(event)
        name = fields.pop("event")
        log.log(_LEVEL.get(name, logging.WARNING), name, alert=True, **fields)


# ---- the webhook ---------------------------------------------------------------------------------

TIMESTAMP_HEADER = "X-Callback-Monitor-Timestamp"
SIGNATURE_HEADER = "X-Callback-Monitor-Signature"
EVENT_HEADER = "X-Callback-Monitor-Event"
DELIVERY_HEADER = "X-Callback-Monitor-Delivery"


def webhook_body(event: AlertEvent) -> bytes:
    """The JSON a webhook receives: the alert line's fields, compact, UTF-8."""
    return json.dumps(alert_fields(event), separators=(",", ":"), ensure_ascii=False).encode()


def delivery_id(event: AlertEvent) -> str:
    """The same for every attempt at delivering one event, so receivers can drop a repeated delivery."""
    key = f"{event.fingerprint}\0{event.event}\0{event.timestamp!r}\0{event.changed}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>``: a replay with a new timestamp fails."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "sha256=" + digest


def verify_signature(
    secret: str, timestamp: str, body: bytes, signed: str, *, now: float, tolerance: float = 300.0
) -> bool:
    """What a receiver does: the signature matches and the timestamp is within ``tolerance`` seconds."""
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(signature(secret, timestamp, body), signed)


# ---- Alertmanager --------------------------------------------------------------------------------

DRIFT_ALERT = "CallbackConfigDrift"
POLICY_ALERT = "CallbackPolicyViolation"
FAILING_ALERT = "CallbackCheckFailing"
# Receiver probes: one alert name per endpoint kind, the names the Prometheus rules use.
ENDPOINT_ALERTS = {
    Kind.ENDPOINT_UNREACHABLE: "CallbackEndpointUnreachable",
    Kind.ENDPOINT_CERT_INVALID: "CallbackEndpointCertInvalid",
    Kind.ENDPOINT_CERT_EXPIRING: "CallbackEndpointCertExpiring",
}
# A firing alert is valid for this many resend intervals (as Prometheus does): should the monitor
# stop sending (killed, or the app removed from every replica), Alertmanager resolves it by itself.
VALID_FOR_RESENDS = 4
RESOLVED_RESENDS = 3  # a resolved alert is sent at once and with this many resends after, then forgotten

_SUMMARY = {
    Kind.CONFIG_MISSING: "has no callback configured, but one is desired",
    Kind.CONFIG_PRESENT: "has a callback configured, but none is desired",
    Kind.URL_MISMATCH: "has a callback URL other than the desired one",
    Kind.MISSING_COMMANDS: "does not send some of the desired callback commands",
    Kind.UNEXPECTED_COMMANDS: "sends callback commands the desired state does not list",
    Kind.INSECURE_URL: "sends its callbacks to a URL that is not https",
    Kind.HOST_NOT_ALLOWED: "sends its callbacks to a host that is not allowed",
    Kind.ENDPOINT_UNREACHABLE: "has a callback receiver that probes cannot reach",
    Kind.ENDPOINT_CERT_INVALID: "has a callback receiver whose certificate is refused",
    Kind.ENDPOINT_CERT_EXPIRING: "has a callback receiver whose certificate expires soon",
}

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager knows it: its label set is its identity there."""

    app: str
    labels: Pairs  # sorted by name
    annotations: Pairs
    starts_at: float
    generator_url: str | None = None
    ends_at: float | None = None  # None while firing; the time it was resolved after

    def to_json(self, now: float, valid_for: float) -> dict[str, Any]:
        """The body item of ``POST /api/v2/alerts``; a firing alert is valid until ``now + valid_for``."""
        body: dict[str, Any] = {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": iso(self.starts_at),
            "endsAt": iso(self.ends_at if self.ends_at is not None else now + valid_for),
        }
        if self.generator_url is not None:
            body["generatorURL"] = self.generator_url
        return body


def _sorted(*layers: Mapping[str, str]) -> Pairs:
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    return tuple(sorted(merged.items()))


def _commands(what: str, commands: tuple[str, ...]) -> str:
    return f" {what}: {', '.join(commands)}." if commands else ""


def _finding_annotations(state: AppState, finding: Finding) -> dict[str, str]:
    ident = state.identity
    desired = redact_url(finding.desired) if finding.desired is not None else "no callback"
    observed = redact_url(finding.observed) if finding.observed is not None else "no callback"
    if finding.kind in (Kind.MISSING_COMMANDS, Kind.UNEXPECTED_COMMANDS):
        # What these findings observe is the command list; the live URL has findings of its own.
        description = (
            _commands("Missing commands", finding.missing)
            + _commands("Unexpected commands", finding.unexpected)
            + f" Desired URL: {desired}."
        ).strip()
    else:
        description = f"Desired: {desired}. Observed: {observed}."
    return {
        "summary": f"{ident.name} ({ident.sdkappid}) {_SUMMARY[finding.kind]} [{finding.kind.value}]",
        "description": description,
    }


def app_alerts(
    state: AppState, *, static_labels: Mapping[str, str], external_url: str | None, now: float
) -> dict[Pairs, Alert]:
    """The alerts an app's state calls for, firing since ``now``, by label set.

    Labels, later ones winning: the sink's static labels, the app's labels, then the alert's own
    (``alertname``, ``app``, ``sdkappid``, ``severity`` and ``kind``, ``policy`` or ``reason``).
    """
    ident = state.identity
    base = {"app": ident.name, "sdkappid": str(ident.sdkappid)}
    link = None
    if external_url:
        link = f"{external_url.rstrip('/')}/#app-{ident.name}"
    out: dict[Pairs, Alert] = {}
    findings = state.verdict.counted if state.verdict is not None else ()
    for finding in findings:
        own = {**base, "severity": finding.severity}
        if finding.policy:
            own.update(alertname=POLICY_ALERT, policy=finding.kind.value)
        else:
            own.update(alertname=DRIFT_ALERT, kind=finding.kind.value)
        labels = _sorted(static_labels, ident.labels, own)
        out[labels] = Alert(ident.name, labels, _sorted(_finding_annotations(state, finding)), now, link)
    for endpoint in state.endpoint.counted:
        own = {**base, "severity": endpoint.severity, "alertname": ENDPOINT_ALERTS[endpoint.kind]}
        own["kind"] = endpoint.kind.value
        labels = _sorted(static_labels, ident.labels, own)
        annotations = {
            "summary": f"{ident.name} ({ident.sdkappid}) {_SUMMARY[endpoint.kind]} [{endpoint.kind.value}]",
            "description": (
                f"Desired URL: {redact_url(endpoint.desired)}. Probe: {redact_text(endpoint.observed)}."
            ),
        }
        out[labels] = Alert(ident.name, labels, _sorted(annotations), now, link)
    if state.failing:
        error = state.failing_error or state.last_error
        reason = error.reason if error is not None else "unknown"
        own = {**base, "severity": CHECK_SEVERITY, "alertname": FAILING_ALERT, "reason": reason}
        labels = _sorted(static_labels, ident.labels, own)
        detail = ""
        if error is not None:
            detail = redact_text(error.message)
            detail += f" (ErrorCode {error.code})" if error.code is not None else ""
            detail += f" RequestId {error.request_id}." if error.request_id else ""
        annotations = {
            "summary": f"{ident.name} ({ident.sdkappid}): checks reach no verdict [{reason}]",
            "description": f"{ident.error_threshold} or more checks in a row failed with {reason}. {detail}",
        }
        out[labels] = Alert(ident.name, labels, _sorted(annotations), now, link)
    return out


class AlertBook:
    """The alerts sent to Alertmanager: firing ones, and resolved ones still owed a few resends.

    ``sync`` compares an app's state with what was sent and returns what changed (new, resolved, or
    with new annotations), to be sent at once; ``resend`` returns everything to send again.
    """

    def __init__(self, *, static_labels: Mapping[str, str], external_url: str | None) -> None:
        self.static_labels = static_labels
        self.external_url = external_url
        self._apps: dict[str, dict[Pairs, Alert]] = {}
        self._owed: dict[Pairs, int] = {}  # resolved alerts' remaining resends

    def configure(self, *, static_labels: Mapping[str, str], external_url: str | None) -> None:
        """New labels or links; the next ``sync_all`` resolves the old label sets and fires the new."""
        self.static_labels = static_labels
        self.external_url = external_url

    def sync(self, name: str, state: AppState | None, now: float) -> list[Alert]:
        """What changed for app ``name``; ``state`` None means the app is gone (its alerts resolve)."""
        wanted: dict[Pairs, Alert] = {}
        if state is not None:
            wanted = app_alerts(
                state, static_labels=self.static_labels, external_url=self.external_url, now=now
            )
        known = self._apps.setdefault(name, {})
        changes: list[Alert] = []
        for labels, alert in wanted.items():
            old = known.get(labels)
            if old is None or old.ends_at is not None:
                known[labels] = alert  # firing from now (again)
                self._owed.pop(labels, None)
                changes.append(alert)
            elif (old.annotations, old.generator_url) != (alert.annotations, alert.generator_url):
                known[labels] = replace(alert, starts_at=old.starts_at)
                changes.append(known[labels])
        for labels, old in known.items():
            if labels not in wanted and old.ends_at is None:
                known[labels] = replace(old, ends_at=now)
                self._owed[labels] = RESOLVED_RESENDS
                changes.append(known[labels])
        if not known:
            del self._apps[name]
        return changes

    def sync_all(self, states: Mapping[str, AppState], now: float) -> list[Alert]:
        """``sync`` of every app known here or in ``states``: apps removed by a reload resolve."""
        changes: list[Alert] = []
        for name in [*states, *(n for n in self._apps if n not in states)]:
            changes.extend(self.sync(name, states.get(name), now))
        return changes

    def resend(self) -> list[Alert]:
        """Every firing alert, and each resolved one still owed a resend (forgotten after its last)."""
        out: list[Alert] = []
        for name in list(self._apps):
            known = self._apps[name]
            for labels, alert in list(known.items()):
                out.append(alert)
                if alert.ends_at is None:
                    continue
                left = self._owed.get(labels, 0) - 1
                if left > 0:
                    self._owed[labels] = left
                else:
                    self._owed.pop(labels, None)
                    del known[labels]
            if not known:
                del self._apps[name]
        return out

    def firing(self) -> list[Alert]:
        return [a for known in self._apps.values() for a in known.values() if a.ends_at is None]


def latest(alerts: Iterable[Alert]) -> list[Alert]:
    """One alert per label set, the last one given (a batch must not fire and resolve the same alert)."""
    return list({a.labels: a for a in alerts}.values())
