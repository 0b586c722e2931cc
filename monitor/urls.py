"""Where a URL points: the host a WHATWG client connects to, shapes parsers disagree on, host allow-lists."""

from __future__ import annotations

import fnmatch
import functools
import re
from urllib.parse import unquote

# Schemes whose URLs a WHATWG parser reads with "special" rules: "\" counts as "/", and any run of
# slashes after the scheme is skipped ("https:evil.net" and "https:\\evil.net" both reach evil.net).
SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# The one shape every parser reads alike: scheme://host[:port] followed by the end, "/", "?" or "#",
# the host plain ASCII or a bracketed IPv6 address. Anchored with match(): one linear pass.
_PLAIN = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*)://([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?(?=[/?#]|\Z)"
)
_AUTHORITY_END = re.compile(r"[/\\?#]")
_AUTHORITY_END_NON_SPECIAL = re.compile(r"[/?#]")
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))


def problem(url: str) -> str | None:
    """Why ``url`` is not an absolute URL that every parser reads alike, or None when it is.

    White space, control or bidi characters, a backslash, user-info, a missing "//" or host, a port
    out of range and a host that is not plain ASCII (percent signs, non-ASCII dots) all let two
    parsers connect to two different hosts.
    """
    if not url.isprintable() or " " in url:
        return "contains white space or a control character"
    if "\\" in url:
        return "contains a backslash"
    plain = _PLAIN.match(url)
    if plain is not None:
        if plain[3] is not None and int(plain[3]) > 65535:
            return "has a port out of range"
        return None
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "has no scheme"
    rest = url[scheme.end() :]
    if not rest.startswith("//"):
        return "has no // after the scheme"
    end = _AUTHORITY_END.search(rest, 2)
    authority = rest[2 : end.start() if end is not None else len(rest)]
    if "@" in authority:
        return "carries user-info"
    if not authority or authority.startswith(":"):
        return "has no host"
    return "has an ambiguous host or port"


def authority_span(url: str) -> tuple[int, int] | None:
    """Where the authority (user-info, host, port) of ``url`` starts and ends as a WHATWG parser reads
    it, or None when there is none: for special schemes any run of "/" and "\\" after the scheme is
    skipped and a "\\" ends the authority as "/", "?" and "#" do."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return None
    start = scheme.end()
    if scheme[0][:-1].lower() in SPECIAL_SCHEMES:
        while start < len(url) and url[start] in "/\\":
            start += 1
        end = _AUTHORITY_END.search(url, start)
    elif url.startswith("//", start):
        start += 2
        end = _AUTHORITY_END_NON_SPECIAL.search(url, start)
    else:
        return None
    return start, end.start() if end is not None else len(url)


def connect_host(url: str) -> str | None:
    """The host a WHATWG-conformant client would connect to for ``url`` (lower case), or None.

    As the WHATWG URL standard says: leading and trailing C0 controls and spaces are dropped, tabs
    and newlines removed, the authority found by ``authority_span``, and user-info (up to the last
    "@") is not the host. The host is percent-decoded; IDNA and IPv4 number forms are left as they
    are (``problem`` reports such hosts).
    """
    text = url.strip(_C0_AND_SPACE).replace("\t", "").replace("\n", "").replace("\r", "")
    span = authority_span(text)
    if span is None:
        return None
    host_port = text[span[0] : span[1]].rpartition("@")[2]
    if host_port.startswith("["):  # an IPv6 address; without its "]" the URL does not parse
        host = host_port[: host_port.index("]") + 1] if "]" in host_port else ""
    else:
        host = host_port.partition(":")[0]
    return unquote(host).lower() or None


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Whether ``host`` matches one of the globs, case-insensitively; any host when there are none.

    A trailing dot is ignored ("hooks.example.com." is the same DNS name); the globs are fnmatch's.
    """
    if not allowed_hosts:
        return True
    return _globs_pattern(allowed_hosts).fullmatch(host.lower().removesuffix(".")) is not None


def url_host_allowed(url: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Whether the host a WHATWG client would connect to for ``url`` is allowed (any, without globs)."""
    if not allowed_hosts:
        return True
    host = connect_host(url)
    return host is not None and host_allowed(host, allowed_hosts)


@functools.lru_cache(maxsize=256)
def _globs_pattern(globs: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(glob.lower())})" for glob in globs))
