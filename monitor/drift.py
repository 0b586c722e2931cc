"""Pure comparison of a desired callback config with the live one: (desired, observed, policy) -> verdict."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from monitor.config import Policy, UnexpectedCommands
from monitor.kinds import POLICY_KINDS, SEVERITY, Kind
from monitor.tencent.commands import canonical
from monitor.tencent.model import CallbackConfig
from monitor.urls import problem as url_problem
from monitor.urls import url_host_allowed as host_allowed

_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Finding:
    """One difference or policy violation.

    ``desired`` and ``observed`` are the raw URLs of the two configs compared (None where there is
    no config); redacting them is the job of whatever prints them.
    """

    kind: Kind
    desired: str | None
    observed: str | None
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    ignored: bool = False

    @property
    def policy(self) -> bool:
        return self.kind in POLICY_KINDS

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]


@dataclass(frozen=True)
class Verdict:
    """Every finding of one successful check, and the live config it was reached on."""

    findings: tuple[Finding, ...]
    observed: CallbackConfig | None

    @property
    def counted(self) -> tuple[Finding, ...]:
        """The findings that make an app drifted and alert: those not listed in ``ignore``."""
        return tuple(f for f in self.findings if not f.ignored)

    @property
    def in_sync(self) -> bool:
        return not self.counted

    def finding(self, kind: Kind) -> Finding | None:
        for f in self.findings:
            if f.kind == kind:
                return f
        return None


def compare(
    desired: CallbackConfig | None,
    observed: CallbackConfig | None,
    policy: Policy,
    ignore: frozenset[str] = frozenset(),
) -> Verdict:
    """The verdict on one app: ``desired`` None means the app must have no callback at all."""
    want = desired.url if desired is not None else None
    have = observed.url if observed is not None else None
    found: list[tuple[Kind, tuple[str, ...], tuple[str, ...]]] = []

    if desired is not None and observed is None:
        found.append((Kind.CONFIG_MISSING, (), ()))
    elif desired is None and observed is not None:
        found.append((Kind.CONFIG_PRESENT, (), ()))
    elif desired is not None and observed is not None:
        if not urls_equal(desired.url, observed.url):
            found.append((Kind.URL_MISMATCH, (), ()))
        missing = _spelled(desired.commands, desired.command_set - observed.command_set)
        if missing:
            found.append((Kind.MISSING_COMMANDS, missing, ()))
        unexpected = _spelled(observed.commands, observed.command_set - desired.command_set)
        if unexpected and policy.unexpected_commands != UnexpectedCommands.IGNORE:
            found.append((Kind.UNEXPECTED_COMMANDS, (), unexpected))

    if observed is not None:
        if (policy.require_https and _scheme(observed.url) != "https") or url_problem(observed.url):
            found.append((Kind.INSECURE_URL, (), ()))
        if not host_allowed(observed.url, policy.allowed_hosts):
            found.append((Kind.HOST_NOT_ALLOWED, (), ()))

    order = list(Kind)
    found.sort(key=lambda item: order.index(item[0]))
    findings = tuple(
        Finding(kind, want, have, missing, unexpected, ignored=kind.value in ignore)
        for kind, missing, unexpected in found
    )
    return Verdict(findings=findings, observed=observed)


def _spelled(commands: Iterable[str], wanted: frozenset[str]) -> tuple[str, ...]:
    """The commands whose canonical form is in ``wanted``, in the config's own spelling, sorted.

    Reporting the spelling the user (or Tencent) wrote keeps an alias from looking like a typo.
    """
    chosen: dict[str, str] = {}
    for command in sorted(commands):  # sorted: a list holding both spellings reports one, whatever the order
        key = canonical(command)
        if key in wanted:
            chosen.setdefault(key, command)
    return tuple(sorted(chosen.values()))


def _split(url: str) -> SplitResult | None:
    """``url`` split, or None when it has no scheme and host or a port that is not a number."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return parts


def _scheme(url: str) -> str:
    parts = _split(url)
    return parts.scheme.lower() if parts is not None else ""


def urls_equal(a: str, b: str) -> bool:
    """Whether two callback URLs name the same endpoint.

    Scheme and host compare case-insensitively and the scheme's default port equals no port; user
    info, path, query, trailing slash and fragment compare exactly. A URL that does not parse as
    scheme://host only equals the identical string.
    """
    if a == b:
        return True
    pa, pb = _split(a), _split(b)
    if pa is None or pb is None:
        return False
    return _key(pa) == _key(pb)


def _key(parts: SplitResult) -> tuple[object, ...]:
    scheme = parts.scheme.lower()
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme)
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else None
    return (scheme, (parts.hostname or "").lower(), port, userinfo, parts.path, parts.query, parts.fragment)


def same_config(a: CallbackConfig | None, b: CallbackConfig | None) -> bool:
    """The same URL, exactly, and the same commands in any order or alias spelling (None only equals None)."""
    if a is None or b is None:
        return a is b
    return a.url == b.url and a.command_set == b.command_set


def config_fingerprint(observed: CallbackConfig | None) -> int:
    """A stable number for the live config, 0 for none; below 2**48, so a float64 gauge holds it exactly.

    Command order and the alias spelling do not change it; any change of URL or command set does.
    """
    if observed is None:
        return 0
    text = json.dumps([observed.url, sorted(observed.command_set)], ensure_ascii=False)
    number = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:6], "big")
    return number or 1  # 0 means "no config"
