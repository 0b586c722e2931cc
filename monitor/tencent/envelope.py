"""The vendor's answer envelope: bounds on every string it sends, parsing into an Answer or a typed error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from monitor.errors import (
    HttpStatusError,
    InvalidResponse,
    TencentError,
)
from monitor.redact import redact_text, scrub
from monitor.tencent import codes
from monitor.tencent.model import CallbackConfig

# Bounds on every string the vendor sends, checked before anything else (redaction, logs, drift)
# touches it; an answer beyond one is invalid_response. Real answers are far inside them: the
# vendor's RequestIds are some 40 characters, its ErrorInfo a sentence, and it knows six commands.
MAX_REQUEST_ID = 128
MAX_ERROR_INFO = 1024
MAX_URL = 4096
MAX_COMMAND = 128
MAX_COMMANDS = 64

_MAX_INFO = 300  # the ErrorInfo as quoted in messages, after redaction

_MAX_INFO = 300  # the ErrorInfo as quoted in messages, after redaction


@dataclass(frozen=True)
class Answer:
    """A readable envelope whose ErrorCode the caller accepts (0, or 100301 for get_callback)."""

    code: int
    request_id: str
    config: CallbackConfig | None = None


def hostname(endpoint: str) -> str:
    """The host part of a base URL, for messages and logs."""
    try:
        return urlsplit(endpoint).hostname or ""
    except ValueError:
        return ""


def parse_envelope(
    status: int,
    content_type: str,
    body: bytes,
    *,
    action: str,
    host: str,
    secrets: frozenset[str] = frozenset(),
) -> Answer | TencentError:
    """Read one HTTP answer strictly. Pure: returns the error instead of raising it.

    ``secrets`` (the key and the UserSig of the request) are scrubbed from the vendor's ErrorInfo and
    RequestId in case a gateway ever echoes the request back.
    """
    where = f"{action} at {host}"
    if status != 200:
        return HttpStatusError(
            f"{where}: the answer had an HTTP status other than 200",
            action=action,
            http_status=status,
            host=host,
        )
    shape = f"{content_type or 'no content type'}, {len(body)} bytes"
    if not body.strip():
        return InvalidResponse(f"{where}: the answer was empty ({shape})", action=action, host=host)
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):
        return InvalidResponse(f"{where}: the answer was not JSON ({shape})", action=action, host=host)
    if not isinstance(envelope, dict):
        return InvalidResponse(f"{where}: the answer was not a JSON object", action=action, host=host)
    code = envelope.get("ErrorCode")
    info = envelope.get("ErrorInfo", "")
    raw_id = envelope.get("RequestId", "")
    if isinstance(raw_id, str) and len(raw_id) > MAX_REQUEST_ID:
        return InvalidResponse(
            f"{where}: the RequestId is longer than {MAX_REQUEST_ID} characters ({len(raw_id)})",
            action=action,
            host=host,
        )
    request_id = _clean_request_id(raw_id, secrets)
    if (
        isinstance(code, bool)
        or not isinstance(code, int)
        or not isinstance(info, str)
        or not isinstance(envelope.get("ActionStatus", ""), str)
    ):
        return InvalidResponse(
            f"{where}: the answer lacks an integer ErrorCode or has fields of the wrong type",
            action=action,
            host=host,
            request_id=request_id,
        )
    if len(info) > MAX_ERROR_INFO:
        return InvalidResponse(
            f"{where}: the ErrorInfo is longer than {MAX_ERROR_INFO} characters ({len(info)})",
            action=action,
            host=host,
            request_id=request_id,
        )
    if code == codes.NO_CONFIGURATION and action == "get_callback":
        return Answer(code, request_id)
    if code != 0:
        clean_info = scrub(redact_text(info), set(secrets))[:_MAX_INFO]
        return codes.error_for(code, clean_info, request_id, action, host)
    if action != "get_callback":
        return Answer(code, request_id)
    response = envelope.get("Response")
    if not isinstance(response, dict):
        return InvalidResponse(
            f"{where}: a successful answer lacks the Response object",
            action=action,
            host=host,
            request_id=request_id,
        )
    url = response.get("Url")
    commands = response.get("CallbackCommandList")
    if (
        not isinstance(url, str)
        or not isinstance(commands, list)
        or not all(isinstance(c, str) for c in commands)
    ):
        return InvalidResponse(
            f"{where}: Response.Url must be a string and Response.CallbackCommandList a list of strings",
            action=action,
            host=host,
            request_id=request_id,
        )
    too_long = _beyond_bounds(url, commands)
    if too_long is not None:
        return InvalidResponse(f"{where}: {too_long}", action=action, host=host, request_id=request_id)
    return Answer(code, request_id, CallbackConfig(url, tuple(commands)))


def _beyond_bounds(url: str, commands: list[str]) -> str | None:
    """Which bound the live config exceeds, as a message, or None."""
    if len(url) > MAX_URL:
        return f"Response.Url is longer than {MAX_URL} characters ({len(url)})"
    if len(commands) > MAX_COMMANDS:
        return f"Response.CallbackCommandList has more than {MAX_COMMANDS} commands ({len(commands)})"
    for index, command in enumerate(commands):
        if len(command) > MAX_COMMAND:
            return (
                f"Response.CallbackCommandList[{index}] is longer than {MAX_COMMAND} characters"
                f" ({len(command)})"
            )
    return None


def _clean_request_id(value: object, secrets: frozenset[str]) -> str:
    """The RequestId (at most MAX_REQUEST_ID characters) as safe to log and quote: secrets and URL
    query values redacted, unprintable characters escaped (messages show it unquoted)."""
    if not isinstance(value, str):
        return ""
    text = scrub(redact_text(value), secrets)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text


def code_label(outcome: Answer | TencentError) -> str:
    """The ``code`` an observer is told about one attempt."""
    if isinstance(outcome, Answer):
        return str(outcome.code)
    if outcome.code is not None:
        return str(outcome.code)
    if outcome.http_status is not None:
        return f"http_{outcome.http_status}"
    return outcome.reason  # "timeout", "network" or "invalid_response"
