"""The kinds of finding a check can report, and how severe each is: shared by the config and drift."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """What a finding is about; the declaration order is the order findings are listed in."""

    CONFIG_MISSING = "config_missing"
    CONFIG_PRESENT = "config_present"
    URL_MISMATCH = "url_mismatch"
    MISSING_COMMANDS = "missing_commands"
    UNEXPECTED_COMMANDS = "unexpected_commands"
    INSECURE_URL = "insecure_url"
    HOST_NOT_ALLOWED = "host_not_allowed"
    ENDPOINT_UNREACHABLE = "endpoint_unreachable"  # receiver probes (opt-in): the desired URL's receiver
    ENDPOINT_CERT_INVALID = "endpoint_cert_invalid"
    ENDPOINT_CERT_EXPIRING = "endpoint_cert_expiring"


DRIFT_KINDS: tuple[Kind, ...] = (
    Kind.CONFIG_MISSING,
    Kind.CONFIG_PRESENT,
    Kind.URL_MISMATCH,
    Kind.MISSING_COMMANDS,
    Kind.UNEXPECTED_COMMANDS,
)
POLICY_KINDS: tuple[Kind, ...] = (Kind.INSECURE_URL, Kind.HOST_NOT_ALLOWED)
ENDPOINT_KINDS: tuple[Kind, ...] = (
    Kind.ENDPOINT_UNREACHABLE,
    Kind.ENDPOINT_CERT_INVALID,
    Kind.ENDPOINT_CERT_EXPIRING,
)

SEVERITY: dict[Kind, str] = {
    Kind.CONFIG_MISSING: "critical",
    Kind.CONFIG_PRESENT: "critical",
    Kind.URL_MISMATCH: "critical",
    Kind.MISSING_COMMANDS: "warning",
    Kind.UNEXPECTED_COMMANDS: "warning",
    Kind.INSECURE_URL: "critical",
    Kind.HOST_NOT_ALLOWED: "critical",
    Kind.ENDPOINT_UNREACHABLE: "critical",
    Kind.ENDPOINT_CERT_INVALID: "critical",
    Kind.ENDPOINT_CERT_EXPIRING: "warning",  # critical within the app's probe.cert_critical
}
