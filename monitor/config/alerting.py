"""The ``alerting`` section: where alerts go besides the log (an Alertmanager, a webhook)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from monitor.config.model import NO_LABELS, Alerting, AlertmanagerSink, SecretRef, WebhookSink
from monitor.config.shapes import BAD, At, Bad, Slot
from monitor.config.values import MAX_INTERVAL, MAX_TIMEOUT, MIN_INTERVAL, Values
from monitor.config.yamltree import Map, clip
from monitor.redact import redact_url
from monitor.tencent.regions import is_loopback_host

ALERTING_KEYS = ("external_url", "alertmanager", "webhook", "queue_size")
ALERTMANAGER_KEYS = ("url", "resend_interval", "timeout", "labels")
WEBHOOK_KEYS = ("url", "secret_env", "secret_file", "timeout")

_API_PATH = re.compile(r"/api/v[0-9]+/alerts/*\Z")


class AlertingSection(Values):
    """Reads ``alerting``; absent or null means no sink, and one wrong value refuses the file."""

    def alerting(self, root: Map) -> Alerting | None:
        value = root.get("alerting")
        if value is None:
            return Alerting()
        m = self.mapping(value, "alerting", root.key_lines["alerting"])
        if m is None:
            return None
        self.keys(m, "alerting", ALERTING_KEYS)
        external = self.opt(m, "alerting", "external_url", self.external_url)
        alertmanager = self.opt(m, "alerting", "alertmanager", self.alertmanager)
        webhook = self.opt(m, "alerting", "webhook", self.webhook)
        queue_size = self.opt(m, "alerting", "queue_size", self.positive_int)
        if external is BAD or alertmanager is BAD or webhook is BAD or queue_size is BAD:
            return None
        return Alerting(
            external_url=external.value if external else None,
            alertmanager=alertmanager.value if alertmanager else None,
            webhook=webhook.value if webhook else None,
            queue_size=queue_size.value if queue_size else Alerting.queue_size,
        )

    def external_url(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        url = self.http_url(value, path, line)
        return BAD if url is BAD else url[0]

    # --- Alertmanager --------------------------------------------------------------------------

    def alertmanager(
        self, value: object, path: str, line: int | None
    ) -> AlertmanagerSink | Literal[Bad.BAD] | None:
        if value is None:
            return None
        m = self.mapping(value, path, line)
        if m is None:
            return BAD
        self.keys(m, path, ALERTMANAGER_KEYS)
        url = self.required(m, path, "url", self.alertmanager_url)
        resend = self.opt(m, path, "resend_interval", self.resend_interval)
        timeout = self.opt(m, path, "timeout", self.sink_timeout)
        labels = self.opt(m, path, "labels", self.labels)
        if not isinstance(url, At) or resend is BAD or timeout is BAD or labels is BAD:
            return BAD
        return AlertmanagerSink(
            url=url.value,
            resend_interval=resend.value if resend else AlertmanagerSink.resend_interval,
            timeout=timeout.value if timeout else AlertmanagerSink.timeout,
            labels=labels.value if labels else NO_LABELS,
        )

    def alertmanager_url(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        """The base URL without its trailing slashes: the client appends /api/v2/alerts."""
        url = self.http_url(value, path, line)
        if url is BAD:
            return BAD
        text = url[0]
        parts = urlsplit(text)
        if parts.query or parts.fragment:
            message = (
                f"must be a base URL with no query or fragment (the API path is appended): {_shown(text)}"
            )
            self.error(path, message, line)
            return BAD
        if _API_PATH.search(parts.path):
            message = f"must be the base URL only, as /api/v2/alerts is appended: got {_shown(text)}"
            self.error(path, message, line)
            return BAD
        return text.rstrip("/")

    def resend_interval(self, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
        seconds = self.duration(value, path, line)
        if seconds is not BAD and not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            self.error(path, f"must be between 1s and 168h, got {seconds:g}s", line)
            return BAD
        return seconds

    def sink_timeout(self, value: object, path: str, line: int | None) -> float | Literal[Bad.BAD]:
        seconds = self.duration(value, path, line)
        if seconds is not BAD and not 0 < seconds <= MAX_TIMEOUT:
            self.error(path, f"must be more than 0s and at most 10m, got {seconds:g}s", line)
            return BAD
        return seconds

    # --- webhook -------------------------------------------------------------------------------

    def webhook(self, value: object, path: str, line: int | None) -> WebhookSink | Literal[Bad.BAD] | None:
        if value is None:
            return None
        m = self.mapping(value, path, line)
        if m is None:
            return BAD
        self.keys(m, path, WEBHOOK_KEYS)
        url = self.required(m, path, "url", self.webhook_url)
        secret = self.webhook_secret(m, path)
        timeout = self.opt(m, path, "timeout", self.sink_timeout)
        if not isinstance(url, At) or secret is BAD or timeout is BAD:
            return BAD
        return WebhookSink(
            url=url.value,
            secret=secret.value if secret else None,
            timeout=timeout.value if timeout else WebhookSink.timeout,
        )

    def webhook_url(self, value: object, path: str, line: int | None) -> str | Literal[Bad.BAD]:
        url = self.http_url(value, path, line)
        if url is BAD:
            return BAD
        text, scheme, host = url
        if scheme != "https" and not is_loopback_host(host):
            message = f"must use https (http:// is accepted only for loopback hosts), got {_shown(text)}"
            self.error(path, message, line)
            return BAD
        return text

    def webhook_secret(self, m: Map, place: str) -> Slot[SecretRef]:
        """The optional signing secret, read now to prove it is there (and never shown)."""
        if "secret_env" in m and "secret_file" in m:
            message = "set either secret_env or secret_file, not both"
            self.error(f"{place}.secret_file", message, m.key_lines["secret_file"])
            return BAD
        if "secret_file" in m:
            return self.opt(m, place, "secret_file", self.secret_file_ref)
        return self.opt(m, place, "secret_env", self.secret_env_ref)

    def secret_env_ref(self, value: object, path: str, line: int | None) -> SecretRef | Literal[Bad.BAD]:
        name = self.env_name(value, path, line)
        return BAD if name is BAD else self.usable_secret("env", name, path, line)

    def secret_file_ref(self, value: object, path: str, line: int | None) -> SecretRef | Literal[Bad.BAD]:
        name = self.file_name(value, path, line)
        return BAD if name is BAD else self.usable_secret("file", name, path, line)

    def usable_secret(
        self, kind: Literal["env", "file"], where: str, path: str, line: int | None
    ) -> SecretRef | Literal[Bad.BAD]:
        ref, problem = self.secret_ref(kind, where)
        if problem is not None:
            self.error(path, problem, line)
            return BAD
        return ref


def _shown(url: str) -> str:
    """A URL from the file as a message shows it: tokens and passwords redacted, length clipped."""
    return repr(clip(redact_url(url), 200))
