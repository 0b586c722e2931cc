"""The ``alerting`` section: where alerts go besides the log (an Alertmanager, a webhook)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from monitor.config import secrets, values
from monitor.config.model import NO_LABELS, Alerting, AlertmanagerSink, WebhookSink
from monitor.config.problems import BAD, At, Bad, Load
from monitor.config.shapes import either, keys, mapping, opt, required
from monitor.config.yamltree import Map, clip
from monitor.redact import redact_url
from monitor.tencent.regions import is_loopback_host

ALERTING_KEYS = ("external_url", "alertmanager", "webhook", "queue_size")
ALERTMANAGER_KEYS = ("url", "resend_interval", "timeout", "labels")
WEBHOOK_KEYS = ("url", "secret_env", "secret_file", "timeout")

_API_PATH = re.compile(r"/api/v[0-9]+/alerts/*\Z")
_WEBHOOK_SECRET = (secrets.webhook_env, secrets.webhook_file)


def read_alerting(load: Load, root: Map) -> Alerting | None:
    """The section; absent or null means no sink, and one wrong value refuses the file."""
    value = root.get("alerting")
    if value is None:
        return Alerting()
    m = mapping(load, value, "alerting", root.key_lines["alerting"])
    if m is None:
        return None
    keys(load, m, "alerting", ALERTING_KEYS)
    external = opt(load, m, "alerting", "external_url", external_url)
    alertmanager_at = opt(load, m, "alerting", "alertmanager", alertmanager)
    webhook_at = opt(load, m, "alerting", "webhook", webhook)
    queue_size = opt(load, m, "alerting", "queue_size", values.queue_size)
    if external is BAD or alertmanager_at is BAD or webhook_at is BAD or queue_size is BAD:
        return None
    return Alerting(
        external_url=external.value if external else None,
        alertmanager=alertmanager_at.value if alertmanager_at else None,
        webhook=webhook_at.value if webhook_at else None,
        queue_size=queue_size.value if queue_size else Alerting.queue_size,
    )


def external_url(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    url = values.http_url(load, value, path, line)
    return BAD if url is BAD else url[0]


def alertmanager(
    load: Load, value: object, path: str, line: int | None
) -> AlertmanagerSink | Literal[Bad.BAD] | None:
    if value is None:
        return None
    m = mapping(load, value, path, line)
    if m is None:
        return BAD
    keys(load, m, path, ALERTMANAGER_KEYS)
    url = required(load, m, path, "url", alertmanager_url)
    resend = opt(load, m, path, "resend_interval", values.interval)
    timeout = opt(load, m, path, "timeout", values.timeout)
    labels = opt(load, m, path, "labels", values.labels)
    if not isinstance(url, At) or resend is BAD or timeout is BAD or labels is BAD:
        return BAD
    return AlertmanagerSink(
        url=url.value,
        resend_interval=resend.value if resend else AlertmanagerSink.resend_interval,
        timeout=timeout.value if timeout else AlertmanagerSink.timeout,
        labels=labels.value if labels else NO_LABELS,
    )


def alertmanager_url(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    """The base URL without its trailing slashes: the client appends /api/v2/alerts."""
    url = values.http_url(load, value, path, line)
    if url is BAD:
        return BAD
    text = url[0]
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        message = f"must be a base URL with no query or fragment (the API path is appended): {_shown(text)}"
        load.problems.error(path, message, line)
        return BAD
    if _API_PATH.search(parts.path):
        message = f"must be the base URL only, as /api/v2/alerts is appended: got {_shown(text)}"
        load.problems.error(path, message, line)
        return BAD
    return text.rstrip("/")


def webhook(load: Load, value: object, path: str, line: int | None) -> WebhookSink | Literal[Bad.BAD] | None:
    if value is None:
        return None
    m = mapping(load, value, path, line)
    if m is None:
        return BAD
    keys(load, m, path, WEBHOOK_KEYS)
    url = required(load, m, path, "url", webhook_url)
    # The optional signing secret, read now to prove it is there (and never shown).
    secret = either(load, m, path, "secret_env", "secret_file", _WEBHOOK_SECRET)
    timeout = opt(load, m, path, "timeout", values.timeout)
    if not isinstance(url, At) or secret is BAD or timeout is BAD:
        return BAD
    return WebhookSink(
        url=url.value,
        secret=secret.value if secret else None,
        timeout=timeout.value if timeout else WebhookSink.timeout,
    )


def webhook_url(load: Load, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
    url = values.http_url(load, value, path, line)
    if url is BAD:
        return BAD
    text, scheme, host = url
    if scheme != "https" and not is_loopback_host(host):
        message = f"must use https (http:// is accepted only for loopback hosts), got {_shown(text)}"
        load.problems.error(path, message, line)
        return BAD
    return text


def _shown(url: str) -> str:
    """A URL from the file as a message shows it: tokens and passwords redacted, length clipped."""
    return repr(clip(redact_url(url), 200))
