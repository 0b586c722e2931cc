"""Every ErrorCode the room_config API documents -> our error class and a message a person can act on."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.errors import (
    AppInvalid,
    AuthError,
    BadRequest,
    PermissionDenied,
    RateLimited,
    ServerError,
    TencentError,
)

NO_CONFIGURATION = 100301
"""get_callback's answer when the app has no callback configuration: a verdict, not an error."""

SIG_EXPIRED = 70001
"""The server thinks the UserSig has expired: sign a new one and retry once."""

SIG_LOCKOUT = 70050
"""Too many failed signature checks: the vendor asks for a minute's pause, so it is never retried."""


@dataclass(frozen=True)
class CodeInfo:
    """What one ErrorCode means to us: the class raised and what the operator should do about it."""

    error: type[TencentError]
    message: str


_WRONG_HOST = (
    "check the region or endpoint: an app answers only at its own region's host, and a wrong host "
    "typically reports its SDKAppID as unknown"
)

CODES: dict[int, CodeInfo] = {
    # Requests we built wrongly: a bug in callback-monitor, never fixed by retrying.
    60002: CodeInfo(BadRequest, "the server could not parse the HTTP request or its URL (a client bug)"),
    60003: CodeInfo(BadRequest, "the server says the request body is not valid JSON (a client bug)"),
    100002: CodeInfo(BadRequest, "the server rejected a request parameter (see ErrorInfo)"),
    100300: CodeInfo(
        BadRequest, "a callback configuration already exists: use update_callback instead of set_callback"
    ),
    NO_CONFIGURATION: CodeInfo(
        BadRequest, "no callback configuration exists: create one with set_callback instead of updating it"
    ),
    # Account and signature: the key, the identifier or the UserSig.
    60004: CodeInfo(
        AuthError, "the account or its signature was rejected: check `identifier` and the secret key"
    ),
    60005: CodeInfo(
        AuthError, "the account or its signature was rejected: check `identifier` and the secret key"
    ),
    SIG_EXPIRED: CodeInfo(
        AuthError,
        "the UserSig was reported expired even after a fresh one was signed: check this host's clock",
    ),
    70002: CodeInfo(AuthError, "the server received an empty UserSig (a client bug)"),
    70003: CodeInfo(
        AuthError, "the UserSig is invalid: check that the secret key is this SDKAppID's current key"
    ),
    70005: CodeInfo(
        AuthError, "the UserSig is invalid: check that the secret key is this SDKAppID's current key"
    ),
    70009: CodeInfo(
        AuthError, "the UserSig was signed with another app's key: set the secret key of this SDKAppID"
    ),
    70013: CodeInfo(AuthError, "the identifier does not match the UserSig (a client bug)"),
    70014: CodeInfo(AuthError, "the SDKAppID does not match the UserSig (a client bug)"),
    # Permission: the app or the caller is not allowed; only a person can fix it.
    60010: CodeInfo(
        PermissionDenied,
        "the identifier is not an app administrator: set `identifier` to an admin account of this SDKAppID",
    ),
    60016: CodeInfo(
        PermissionDenied, "the SDKAppID or this request is disabled: check the app's status in the console"
    ),
    60017: CodeInfo(
        PermissionDenied, "the SDKAppID or this request is disabled: check the app's status in the console"
    ),
    60020: CodeInfo(
        PermissionDenied, "the app's edition has expired: renew it in the console before it can be checked"
    ),
    60021: CodeInfo(
        PermissionDenied,
        "this host's IP address is not on the app's allow-list: add the monitor's egress IP in the console",
    ),
    # The app is unknown where we asked.
    60006: CodeInfo(AppInvalid, f"the SDKAppID is not valid here: {_WRONG_HOST}"),
    70016: CodeInfo(AppInvalid, f"no key was found for this SDKAppID: {_WRONG_HOST}"),
    70020: CodeInfo(AppInvalid, f"the SDKAppID was not found: {_WRONG_HOST}"),
    # Rate limits.
    60007: CodeInfo(
        RateLimited, "the request frequency limit was exceeded: lower `limits.requests_per_second`"
    ),
    60011: CodeInfo(
        RateLimited, "the request frequency limit was exceeded: lower `limits.requests_per_second`"
    ),
    60018: CodeInfo(
        RateLimited, "the request frequency limit was exceeded: lower `limits.requests_per_second`"
    ),
    60019: CodeInfo(
        RateLimited, "the request frequency limit was exceeded: lower `limits.requests_per_second`"
    ),
    SIG_LOCKOUT: CodeInfo(
        RateLimited,
        "too many failed signature checks: the server pauses this account for a minute; "
        "fix the key or identifier first",
    ),
    # The vendor's side failed; worth another try.
    100001: CodeInfo(ServerError, "the server reported an internal error"),
    70169: CodeInfo(ServerError, "the vendor's backend timed out before answering"),
    70202: CodeInfo(ServerError, "the server reported an internal error"),
    70500: CodeInfo(ServerError, "the server reported an internal error"),
}

RATE_LIMIT_RETRY_CODES: frozenset[int] = frozenset(
    code for code, entry in CODES.items() if entry.error is RateLimited and code != SIG_LOCKOUT
)
"""Rate-limit codes that earn one delayed retry (70050 asks for a minute: not inside one check)."""


def describe(code: int) -> CodeInfo:
    """The table entry for ``code``; an unknown code is a server error that names itself."""
    entry = CODES.get(code)
    if entry is not None:
        return entry
    return CodeInfo(
        ServerError, f"the server answered with ErrorCode {code}, which callback-monitor does not know"
    )


def error_for(code: int, info: str, request_id: str, action: str, host: str) -> TencentError:
    """The exception for a non-zero ErrorCode, with the vendor's fields kept for on-call to quote."""
    entry = describe(code)
    return entry.error(
        f"{action} at {host}: {entry.message}" if host else f"{action}: {entry.message}",
        action=action,
        code=code,
        info=info,
        request_id=request_id,
        host=host,
    )
