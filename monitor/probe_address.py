"""Which resolved addresses a receiver probe may connect to (no I/O)."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def forbidden_reason(address: str) -> str | None:
    """Why a probe must not connect to ``address`` unless private addresses are allowed; None if it may.

    Refused: loopback, private, link-local, unspecified, multicast and reserved addresses, and every
    other range that is not globally reachable (shared address space, documentation, benchmarking).
    An IPv4 address inside IPv6 (mapped, 6to4, Teredo) is judged by the IPv4 address it carries, so
    ``::ffff:127.0.0.1`` is loopback. A text that is not an address is refused too.
    """
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return "not an IP address"
    reasons: list[str] = []
    for candidate in _embedded(ip):
        reason = _reason(candidate)
        if reason is not None:
            reasons.append(reason)
    return reasons[0] if reasons else None


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """``ip`` and every IPv4 address it carries."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.sixtofour is not None:
            found.append(ip.sixtofour)
        if ip.teredo is not None:
            found.extend(ip.teredo)
    return found


def _reason(ip: IPAddress) -> str | None:
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a globally reachable address"),
    )
    for hit, reason in checks:
        if hit:
            return reason
    return None
