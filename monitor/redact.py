"""Redaction of URLs and free text: callback URLs often carry tokens, request URLs carry the UserSig."""

from __future__ import annotations

import re

from monitor.urls import authority_span

REDACTED = "REDACTED"

# Both patterns see untrusted text (vendor answers, exception messages) and run in linear time: a
# match can only start at a separator or at "://", and what it scans stops at the next one, so no
# character is scanned by more than one attempt ("?" * n or "a." * n cost n steps, not n * n).
# key=value pairs in a query string (value up to the next separator or white space).
_QUERY_VALUE = re.compile(r"([?&;][^=&;#?\s]*=)[^&;#\s\"'<>]*")
# ://user:pass@ or ://token@ inside any text; the user-info runs to the LAST "@" of the authority
# (a password may hold "@"), which ends at "/", "\", "?", "#" or white space as a WHATWG parser says.
_USERINFO = re.compile(r"://[^/\\?#\s\"'<>]*@")


def redact_url(url: str) -> str:
    """``url`` with every query value and any user-info replaced by REDACTED.

    Keys stay visible (``?token=REDACTED``) so that a reader can see what changed without seeing
    the secret; the scheme, host, port, path and fragment are kept exactly. The user-info is what a
    WHATWG parser takes for it, so the host shown is the host such a client would connect to
    (``https://evil.net\\@hooks.example.com/`` keeps ``evil.net`` in sight).
    """
    span = authority_span(url)
    if span is not None:
        start, end = span
        at = url.rfind("@", start, end)
        if at != -1:
            url = f"{url[:start]}{REDACTED}{url[at:]}"
    fragment = url.find("#")
    query_end = fragment if fragment != -1 else len(url)
    mark = url.find("?", 0, query_end)
    if mark == -1:
        return url
    query = "&".join(_redact_pair(pair) for pair in url[mark + 1 : query_end].split("&"))
    return f"{url[: mark + 1]}{query}{url[query_end:]}"


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
    text = _USERINFO.sub(f"://{REDACTED}@", text)
    return _QUERY_VALUE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def scrub(text: str, secrets: frozenset[str] | set[str]) -> str:
    """Replace each known secret value in ``text`` with REDACTED (longest first)."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class SecretSet:
    """Many known secrets, scrubbed from text in time that does not grow with their number.

    The daemon registers every app's key; with 10,000 apps a replace per key per log field would
    cost a tenth of a second a line. Secrets are grouped by length and each group is found by
    sliding a window of that length over the text: one set lookup per position and length.
    """

    def __init__(self) -> None:
        self._by_length: dict[int, set[str]] = {}
        self._lengths: list[int] = []  # longest first, so a secret inside a longer one loses to it

    def __bool__(self) -> bool:
        return bool(self._lengths)

    def add(self, secret: str) -> None:
        if len(secret) < 4:  # shorter strings occur by chance; no real key is this short
            return
        group = self._by_length.setdefault(len(secret), set())
        if not group:
            self._lengths = sorted(self._by_length, reverse=True)
        group.add(secret)

    def scrub(self, text: str) -> str:
        for length in self._lengths:
            if len(text) < length:
                continue
            group = self._by_length[length]
            pieces: list[str] = []
            start = i = 0
            end = len(text) - length
            while i <= end:
                if text[i : i + length] in group:
                    pieces += (text[start:i], REDACTED)
                    i += length
                    start = i
                else:
                    i += 1
            if pieces:
                pieces.append(text[start:])
                text = "".join(pieces)
        return text
