"""Region name -> admin API host, with the backup host the vendor documents for DNS trouble."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Region:
    name: str
    host: str
    backup_host: str

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}"

    @property
    def backup_endpoint(self) -> str:
        return f"https://{self.backup_host}"


REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region("china", "console.tim.qq.com", "adminapi.my-imcloud.com"),
        Region("singapore", "adminapisgp.im.qcloud.com", "adminapisgp.my-imcloud.com"),
        Region("seoul", "adminapikr.im.qcloud.com", "adminapikr.my-imcloud.com"),
        Region("tokyo", "adminapijpn.im.qcloud.com", "adminapijpn.my-imcloud.com"),
        Region("frankfurt", "adminapiger.im.qcloud.com", "adminapiger.my-imcloud.com"),
        # Newer vendor pages no longer list Mumbai's backup host; it is kept until it stops resolving.
        Region("mumbai", "adminapiind.im.qcloud.com", "adminapiind.my-imcloud.com"),
        Region("silicon-valley", "adminapiusa.im.qcloud.com", "adminapiusa.my-imcloud.com"),
        Region("jakarta", "adminapiidn.im.qcloud.com", "adminapiidn.my-imcloud.com"),
    )
}

DEFAULT_REGION = "singapore"


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """True for localhost names and addresses in 127.0.0.0/8 or ::1."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=1024)  # the client asks before every request; endpoints are few
def endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be used as an API base URL, or None when it can.

    https is required; http is accepted only for loopback hosts (the simulator, tests, the demo).
    """
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https:// URL such as https://adminapisgp.im.qcloud.com"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "must not carry user-info, a query or a fragment"
    if parts.path not in ("", "/"):
        return "must be a base URL without a path (the API path is added by the client)"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "must use https (http:// is accepted only for loopback hosts)"
    return None
