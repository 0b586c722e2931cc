"""Pure judgement of a receiver's recent probes: (results so far, settings, now) -> endpoint findings."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from monitor.kinds import Kind
from monitor.probe_model import CertProblem, Phase, ProbeResult, ProbeSettings

_REFUSED = "certificate refused: "  # how the probe's error says it; the finding says it its own way
_CERT_WORDS = {
    CertProblem.EXPIRED: "expired",
    CertProblem.NOT_YET_VALID: "not valid yet",
    CertProblem.WRONG_HOST: "not valid for the host",
    CertProblem.UNTRUSTED: "not trusted",
}


@dataclass(frozen=True)
class EndpointFinding:
    """One problem with a receiver: ``desired`` is the raw desired URL probed (redact it to show it),
    ``observed`` says what the probes saw, in words that never hold the URL."""

    kind: Kind  # one of ENDPOINT_KINDS
    severity: str  # critical | warning
    desired: str
    observed: str
    phase: Phase | None = None  # endpoint_unreachable: the phase that failed last
    failures: int = 0  # endpoint_unreachable: failed probes in a row
    cert_problem: CertProblem | None = None  # endpoint_cert_invalid
    cert_not_after: float | None = None  # endpoint_cert_expiring
    ignored: bool = False

    # The rest of a finding's shape (monitor.output.FindingLike): nothing about commands or policy.
    @property
    def policy(self) -> bool:
        return False

    @property
    def missing(self) -> tuple[str, ...]:
        return ()

    @property
    def unexpected(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class EndpointState:
    """One app's recent probe results (oldest first, as many as its findings need) and its findings."""

    history: tuple[ProbeResult, ...] = ()
    findings: tuple[EndpointFinding, ...] = ()  # every finding of the last evaluation, ignored ones too

    @property
    def counted(self) -> tuple[EndpointFinding, ...]:
        """The findings that alert and count in ``check``'s exit status: those not in ``ignore``."""
        return tuple(f for f in self.findings if not f.ignored)

    @property
    def latest(self) -> ProbeResult | None:
        return self.history[-1] if self.history else None


def consecutive_failures(history: Sequence[ProbeResult]) -> int:
    """How many of the latest results failed in a row (``history`` is oldest first)."""
    count = 0
    for result in reversed(history):
        if result.up:
            break
        count += 1
    return count


def evaluate(
    history: Sequence[ProbeResult],
    settings: ProbeSettings,
    now: float,
    ignore: frozenset[str] = frozenset(),
) -> tuple[EndpointFinding, ...]:
    """The findings on one receiver from its probe results, oldest first.

    - ``endpoint_cert_invalid`` (critical) as soon as the latest probe's certificate was refused;
    - ``endpoint_unreachable`` (critical) once ``failures_before_alert`` probes in a row failed for any
      other reason (DNS, address, connect, TLS, timeout, request, status); a refused certificate
      is reported as invalid instead, so one broken certificate pages once;
    - ``endpoint_cert_expiring`` from the latest certificate date seen: critical within
      ``cert_critical``, warning within ``cert_warning``.
    """
    if not history or not settings.enabled:
        return ()
    latest = history[-1]
    found: list[EndpointFinding] = []
    if latest.cert_problem is not None:
        found.append(
            EndpointFinding(
                Kind.ENDPOINT_CERT_INVALID,
                "critical",
                latest.url,
                f"certificate {_CERT_WORDS[latest.cert_problem]}: {latest.error.removeprefix(_REFUSED)}",
                phase=latest.phase,
                cert_problem=latest.cert_problem,
            )
        )
    failures = consecutive_failures(history)
    if latest.cert_problem is None and failures >= settings.failures_before_alert:
        what = "probe" if failures == 1 else "probes"
        observed = f"{latest.phase} failed: {latest.error} ({failures} {what} in a row)"
        found.append(
            EndpointFinding(
                Kind.ENDPOINT_UNREACHABLE,
                "critical",
                latest.url,
                observed,
                phase=latest.phase,
                failures=failures,
            )
        )
    expiring = _expiring(history, settings, now)
    if expiring is not None:
        found.append(expiring)
    return tuple(replace(f, ignored=True) if f.kind.value in ignore else f for f in found)


def _expiring(history: Sequence[ProbeResult], settings: ProbeSettings, now: float) -> EndpointFinding | None:
    """From the newest result that read a certificate date, unless a newer one refused the certificate."""
    for result in reversed(history):
        if result.cert_problem is not None:
            return None
        if result.cert_not_after is None:
            continue
        left = result.cert_not_after - now
        if left > settings.cert_warning:
            return None
        severity = "critical" if left <= settings.cert_critical else "warning"
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.cert_not_after))
        observed = (
            f"certificate chain expires {when} (in {left / 86400:.1f} days)"
            if left > 0
            else f"certificate chain expired {when}"
        )
        return EndpointFinding(
            Kind.ENDPOINT_CERT_EXPIRING,
            severity,
            result.url,
            observed,
            cert_not_after=result.cert_not_after,
        )
    return None
