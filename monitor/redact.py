"""Redaction of URLs and free text: callback URLs often carry tokens, request URLs carry the UserSig."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

REDACTED = "REDACTED"

# key=value pairs in a query string (value up to the next separator or white space).
_QUERY_VALUE = re.compile(r"([?&;][^=&;#\s]*=)[^&;#\s\"'<>]*")
# scheme://user:pass@ or scheme://token@ inside any text.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s\"'<>]+@")


def redact_url(url: str) -> str:
    """``url`` with every query value and any user-info replaced by REDACTED.

    Keys stay visible (``?token=REDACTED``) so that a reader can see what changed without seeing
    the secret; the scheme, host, port, path and fragment are kept exactly.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" not in netloc and not parts.query:
        return url
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        query = "&".join(_redact_pair(pair) for pair in query.split("&"))
    scheme = url[: len(parts.scheme)]  # urlsplit lower-cases the scheme; show it as written
    return urlunsplit(SplitResult(scheme, netloc, parts.path, query, parts.fragment))


def _redact_pair(pair: str) -> str:
    if not pair:
        return pair
    key, sep, _value = pair.partition("=")
    return f"{key}={REDACTED}" if sep else REDACTED


def redact_text(text: str) -> str:
    """Redact query values and user-info of every URL-like fragment in free text.

    The last line of defence for log lines and exception messages: anything that looks like
    ``?k=v`` or ``scheme://user@`` loses its secret part.
    """
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _QUERY_VALUE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def scrub(text: str, secrets: frozenset[str] | set[str]) -> str:
    """Replace each known secret value in ``text`` with REDACTED (longest first)."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
