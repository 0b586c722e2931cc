"""The one error tree of callback-monitor: every failure that leaves a module is one of these.

    MonitorError
    ├── ConfigError              the desired-state file is invalid (every problem, each with its place)
    ├── UserSigError             a UserSig failed verification (the simulator's view of a bad sig)
    ├── SecretUnavailable        an app's secret key cannot be read at check time (reason "auth")
    ├── ResourceExhausted        the process is out of file descriptors (reason "resource_exhausted")
    └── TencentError             a room_config call reached no usable answer
        ├── TransientError       worth retrying inside one check
        │   ├── RequestTimeout       reason "timeout"
        │   ├── NetworkError         reason "network"          (DNS, refused, reset, TLS)
        │   ├── HttpStatusError      reason "http_status"      (a non-200 answer, e.g. a 502 page)
        │   ├── InvalidResponse      reason "invalid_response" (not the documented JSON envelope)
        │   └── ServerError          reason "server_error"     (100001, 70169, 70202, 70500, unknown codes)
        ├── RateLimited          reason "rate_limited"     (60007, 60011, 60018, 60019, 70050)
        ├── AuthError            reason "auth"             (60004, 60005, 70001-70014: key, sig, identifier)
        ├── PermissionDenied     reason "permission"       (60010, 60016, 60017, 60020, 60021)
        ├── AppInvalid           reason "app_invalid"      (60006, 70016, 70020: unknown app or wrong region)
        └── BadRequest           reason "bad_request"      (60002, 60003, 100002, 100300)

``CheckError`` is the record a failed check keeps of its error: what reports, pages and alerts show.
An exception outside this tree that escapes a check's code (a bug, MemoryError) is recorded with
reason "internal" and its type only, so that the app stays checked.

Messages never contain a secret key, a UserSig or a callback URL's query values: the client builds
them from redacted parts only, and ``TencentError`` keeps the vendor's ``ErrorCode``, ``ErrorInfo`` and
``RequestId`` as fields so that on-call can quote them to the vendor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


class MonitorError(Exception):
    """Base of every error callback-monitor raises on purpose."""

    reason: ClassVar[str] = "internal"  # what a check that fails with it reports


@dataclass(frozen=True)
class Problem:
    """One problem found in the config file: where, what, and whether it is only a warning."""

    path: str
    message: str
    line: int | None = None
    warning: bool = False

    def __str__(self) -> str:
        where = self.path or "(top level)"
        if self.line is not None:
            where = f"{where} (line {self.line})"
        suffix = " (warning)" if self.warning else ""
        return f"{where}: {self.message}{suffix}"


class ConfigError(MonitorError):
    """The config file cannot be used.

    ``problems`` lists every error found; ``warnings`` the warnings found alongside them, which the
    message lists after the errors, each marked "(warning)". Both keep the order they are given in
    (the config loader gives file order). The header counts errors: "2 problems and 1 warning".
    """

    def __init__(self, source: str, problems: Sequence[Problem], warnings: Sequence[Problem] = ()) -> None:
        self.source = source
        self.problems = tuple(problems)
        self.warnings = tuple(warnings)
        header = f"{source}: {_count(len(self.problems), 'problem')}"
        if self.warnings:
            header += f" and {_count(len(self.warnings), 'warning')}"
        lines = [header, *(f"  {p}" for p in self.problems), *(f"  {w}" for w in self.warnings)]
        super().__init__("\n".join(lines))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


class UserSigError(MonitorError):
    """A UserSig did not verify. ``problem`` says why, in the words the simulator maps to codes:
    ``malformed``, ``expired``, ``bad_signature``, ``identifier_mismatch``, ``sdkappid_mismatch``."""

    def __init__(self, problem: str, message: str) -> None:
        self.problem = problem
        super().__init__(message)


class SecretUnavailable(MonitorError):
    """The secret key could not be read at check time; the message names the file or variable only."""

    reason: ClassVar[str] = "auth"


class ResourceExhausted(MonitorError):
    """The process ran out of file descriptors during a check: the monitor's trouble, not the app's."""

    reason: ClassVar[str] = "resource_exhausted"


class TencentError(MonitorError):
    """A call to the room_config API reached no usable answer.

    ``code`` is the vendor's ErrorCode when the envelope was readable, else None; ``http_status`` is
    set for answers that were not HTTP 200.
    """

    reason: ClassVar[str] = "server_error"
    transient: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        action: str = "",
        code: int | None = None,
        info: str = "",
        request_id: str = "",
        http_status: int | None = None,
        host: str = "",
    ) -> None:
        self.message = message
        self.action = action
        self.code = code
        self.info = info
        self.request_id = request_id
        self.http_status = http_status
        self.host = host
        super().__init__(self._render())

    @property
    def retryable(self) -> bool:
        """Whether another attempt inside the same check may succeed."""
        return self.transient

    def _render(self) -> str:
        parts = [self.message]
        details = []
        if self.code is not None:
            details.append(f"ErrorCode {self.code}")
        if self.http_status is not None:
            details.append(f"HTTP {self.http_status}")
        if self.info:
            details.append(f"ErrorInfo {self.info!r}")
        if self.request_id:
            details.append(f"RequestId {self.request_id}")
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)


class TransientError(TencentError):
    """Worth retrying: the next attempt may well succeed."""

    transient = True


class RequestTimeout(TransientError):
    reason = "timeout"


class NetworkError(TransientError):
    reason = "network"


class HttpStatusError(TransientError):
    reason = "http_status"

    @property
    def retryable(self) -> bool:
        # A gateway's 5xx passes; a 4xx means the request itself is wrong and will stay wrong.
        return self.http_status is None or self.http_status >= 500


class InvalidResponse(TransientError):
    reason = "invalid_response"


class ServerError(TransientError):
    reason = "server_error"


class RateLimited(TencentError):
    reason = "rate_limited"


class AuthError(TencentError):
    reason = "auth"


class PermissionDenied(TencentError):
    reason = "permission"


class AppInvalid(TencentError):
    reason = "app_invalid"


class BadRequest(TencentError):
    reason = "bad_request"


@dataclass(frozen=True)
class CheckError:
    """Why a check reached no verdict: the error reason, a redacted message and the vendor's ids."""

    reason: str
    message: str
    code: int | None = None
    request_id: str = ""

    @classmethod
    def of(cls, exc: MonitorError) -> CheckError:
        """The record of ``exc``: a vendor error keeps its ErrorCode and RequestId."""
        if isinstance(exc, TencentError):
            return cls(exc.reason, str(exc), exc.code, exc.request_id)
        return cls(exc.reason, str(exc))

    @classmethod
    def unexpected(cls, exc: BaseException, where: str) -> CheckError:
        """The record of an exception nobody planned for: its type only (its text may hold anything)."""
        return cls(INTERNAL, f"unexpected {type(exc).__name__} {where}")


INTERNAL = "internal"


REASONS: tuple[str, ...] = (
    "timeout",
    "network",
    "http_status",
    "invalid_response",
    "server_error",
    "rate_limited",
    "auth",
    "permission",
    "app_invalid",
    "bad_request",
    "resource_exhausted",
    "internal",
)
