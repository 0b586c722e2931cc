"""The aiohttp app: /metrics, /healthz, /readyz, /status (JSON) and / (a plain HTML status page).

Every page is built from a snapshot taken on the event loop and rendered in a worker thread: at
10,000 apps a page is a second of CPU, and the loop must keep running checks meanwhile. Every URL
shown passes through ``redact_url``; metrics carry none.

Access logs: pass ``access_log_class=AccessLogger`` to ``web.AppRunner`` to log the pages people
open without a line for every probe and scrape.

Hostile neighbours: only GET and HEAD are routed (405 otherwise), a request may carry at most
``CLIENT_MAX_SIZE`` bytes of body (413 otherwise, before anything is read), and at most ``MAX_BUSY``
pages are rendered at once: more get 503 with ``Retry-After`` at once instead of queueing up CPU
and memory. The probes are exempt, so liveness holds while /metrics is flooded.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from aiohttp.web_log import AccessLogger as _AiohttpAccessLogger

from monitor.drift import Finding, Kind
from monitor.metrics import Metrics
from monitor.output import callback_dict, error_dict, finding_dict, iso
from monitor.redact import redact_text, redact_url
from monitor.state import AppState, Status
from monitor.store import Store
from monitor.tencent.model import CallbackConfig

STATUS_VERSION = 1
CLIENT_MAX_SIZE = 64 * 1024  # every route is a GET; nothing legitimate sends a body
MAX_BUSY = 4  # pages (/metrics, /status, /) in progress at once: two Prometheus replicas and a person
PROBES = frozenset({"/healthz", "/readyz"})
REFRESH_SECONDS = 30
RECENT_CHANGES = 20
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

# Problems first: what needs a person, then what cannot be seen, then what is fine.
_ORDER = {Status.DRIFT: 0, Status.ERROR: 1, Status.UNKNOWN: 2, Status.IN_SYNC: 3}
_URL_KINDS = frozenset({Kind.URL_MISMATCH, Kind.CONFIG_MISSING, Kind.CONFIG_PRESENT})


class AccessLogger(_AiohttpAccessLogger):
    """aiohttp's access log without the probes and scrapes that would drown it."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path in QUIET_PATHS:
            return
        super().log(request, response, time)


@dataclass(frozen=True)
class View:
    """What /status and / show, copied from the store on the event loop (references only)."""

    generated: float
    states: tuple[AppState, ...]
    next_check: Mapping[str, float]
    shard: tuple[int, int]
    source: str | None
    digest: str | None
    reload_successful: bool
    last_reload_success: float | None
    last_reload_error: str

    @classmethod
    def of(cls, store: Store, now: float) -> View:
        config = store.config
        return cls(
            generated=now,
            states=tuple(store.states.values()),
            next_check=dict(store.next_check),
            shard=store.shard,
            source=config.source if config is not None else None,
            digest=(config.digest or None) if config is not None else None,
            reload_successful=store.reload.successful,
            last_reload_success=store.reload.last_success,
            last_reload_error=store.reload.last_error,
        )


def _change(at: float, before: CallbackConfig | None, after: CallbackConfig | None) -> dict[str, Any]:
    return {"at": iso(at), "before": callback_dict(before), "after": callback_dict(after)}


def _app_json(state: AppState, next_check: float | None) -> dict[str, Any]:
    ident, verdict = state.identity, state.verdict
    error = error_dict(state.last_error)
    if error is not None:
        error["message"] = redact_text(error["message"])  # built redacted; this is the second net
    return {
        "name": ident.name,
        "sdkappid": ident.sdkappid,
        "labels": dict(ident.labels),
        "state": state.status.value,
        "stale": state.stale,
        "last_check": iso(state.last_check),
        "last_success": iso(state.last_success),
        "next_check": iso(next_check),
        "consecutive_errors": state.consecutive_errors,
        "findings": [finding_dict(f) for f in verdict.findings] if verdict is not None else [],
        "observed": callback_dict(verdict.observed) if verdict is not None else None,
        "desired": callback_dict(ident.desired),
        "last_error": error,
        "history": [_change(c.at, c.before, c.after) for c in state.history],
    }


def status_json(view: View) -> str:
    """The /status document: one entry per app, sorted by name; times ISO-8601 UTC, URLs redacted.

    Each app is serialised on its own so that no big tree of dicts ever lives at once: building one
    would wake the cyclic garbage collector, whose full passes stall the event loop too.
    """
    head = {
        "version": STATUS_VERSION,
        "generated": iso(view.generated),
        "shard": {"index": view.shard[0], "count": view.shard[1]},
        "config": {
            "source": view.source,
            "hash": view.digest,
            "reload_successful": view.reload_successful,
            "last_reload_success": iso(view.last_reload_success),
            "last_reload_error": redact_text(view.last_reload_error) or None,
        },
    }
    apps = ",".join(
        json.dumps(_app_json(s, view.next_check.get(s.identity.name)), ensure_ascii=False)
        for s in sorted(view.states, key=lambda s: s.identity.name)
    )
    return json.dumps(head, ensure_ascii=False)[:-1] + f', "apps": [{apps}]}}'


# ---- the HTML page -------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.4em .6em;
text-align:left;vertical-align:top}th{background:#f4f4f4}code{font-size:12px;word-break:break-all}
.drift{color:#b00020;font-weight:bold}.error{color:#b35c00;font-weight:bold}.unknown{color:#666}
.in_sync{color:#1b7f3b}.warn{background:#fff3e0;padding:.5em;border-left:4px solid #b35c00}
small,.muted{color:#666}p.f{margin:0 0 .4em}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _abs(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(ts: float, now: float) -> str:
    """``12 s ago``, ``in 3 min``: how far ``ts`` is from ``now``, roughly."""
    delta = now - ts
    d = abs(delta)
    if d < 1:
        return "now"
    if d < 90:
        text = f"{d:.0f} s"
    elif d < 90 * 60:
        text = f"{d / 60:.0f} min"
    elif d < 48 * 3600:
        text = f"{d / 3600:.0f} h"
    else:
        text = f"{d / 86400:.0f} d"
    return f"{text} ago" if delta > 0 else f"in {text}"


def _when(ts: float | None, now: float, none: str = "never") -> str:
    if ts is None:
        return f'<span class="muted">{none}</span>'
    return f'{_e(relative(ts, now))}<br><small><time datetime="{iso(ts)}">{_abs(ts)}</time></small>'


def _url(url: str | None, none: str = "(none)") -> str:
    return f"<code>{_e(redact_url(url))}</code>" if url is not None else f'<span class="muted">{none}</span>'


def _commands(words: tuple[str, ...]) -> str:
    return ", ".join(f"<code>{_e(w)}</code>" for w in words)


def _finding(f: Finding) -> str:
    flags = f.severity + (", ignored" if f.ignored else "")
    lines = [f"<b>{_e(f.kind.value)}</b> <small>({_e(flags)})</small>"]
    if f.kind in _URL_KINDS:
        lines.append(f"desired: {_url(f.desired, 'no callback (callback: null)')}")
        lines.append(f"observed: {_url(f.observed, 'no callback configured')}")
    elif f.policy:
        lines.append(f"live: {_url(f.observed)}")
    if f.missing:
        lines.append(f"missing: {_commands(f.missing)}")
    if f.unexpected:
        lines.append(f"unexpected: {_commands(f.unexpected)}")
    return '<p class="f">' + "<br>".join(lines) + "</p>"


def _findings_cell(state: AppState, now: float) -> str:
    verdict = state.verdict
    if verdict is None:
        return '<span class="muted">no verdict yet</span>'
    parts = [_finding(f) for f in sorted(verdict.findings, key=lambda f: f.ignored)]
    if not parts:
        live = verdict.observed
        parts.append(
            "no findings; live: "
            + (_url(live.url) + f" <small>({len(live.commands)} commands)</small>" if live else "no callback")
        )
    if state.stale and state.last_success is not None:
        parts.append(f"<small>verdict from {_e(relative(state.last_success, now))} (stale)</small>")
    return "".join(parts)


def _error_cell(state: AppState) -> str:
    error = state.last_error
    if error is None or not state.stale:
        return ""
    ids = [f"<b>{_e(error.reason)}</b>"]
    if error.code is not None:
        ids.append(f"ErrorCode {_e(error.code)}")
    if error.request_id:
        ids.append(f"RequestId <code>{_e(error.request_id)}</code>")
    times = "" if state.consecutive_errors < 2 else f" <small>({state.consecutive_errors} in a row)</small>"
    return " · ".join(ids) + times + f"<br><small>{_e(redact_text(error.message))}</small>"


def _row(state: AppState, next_check: float | None, now: float) -> str:
    ident = state.identity
    labels = ", ".join(f"{k}={v}" for k, v in sorted(ident.labels.items()))
    status = state.status.value
    return (
        f'<tr id="app-{_e(ident.name)}"><td><b>{_e(ident.name)}</b><br><small>{ident.sdkappid}'
        f"{'<br>' + _e(labels) if labels else ''}</small></td>"
        f'<td class="{status}">{_e(status.replace("_", " "))}</td>'
        f"<td>{_when(state.last_check, now)}</td><td>{_findings_cell(state, now)}</td>"
        f"<td>{_error_cell(state)}</td><td>{_when(next_check, now, 'not planned')}</td></tr>"
    )


def _config_value(config: CallbackConfig | None) -> str:
    if config is None:
        return '<span class="muted">no callback</span>'
    return f"{_url(config.url)}<br><small>{_commands(config.commands)}</small>"


def status_html(view: View) -> str:
    """The human page: a summary, one row per app with problems first, and recent live-config changes."""
    now = view.generated
    counts = dict.fromkeys(Status, 0)
    for s in view.states:
        counts[s.status] += 1
    summary = (
        f"{len(view.states)} apps: {counts[Status.IN_SYNC]} in sync, {counts[Status.DRIFT]} drift, "
        f"{counts[Status.ERROR]} error, {counts[Status.UNKNOWN]} unknown"
    )
    config = f"config <code>{_e(view.source or '(none)')}</code>"
    if view.digest:
        config += f" <small>sha256 {_e(view.digest[:12])}</small>"
    if view.last_reload_success is not None:
        config += f", loaded {_e(relative(view.last_reload_success, now))}"
    if view.shard[1] > 1:
        config += f"; shard {view.shard[0]} of {view.shard[1]}"
    warning = ""
    if not view.reload_successful:
        warning = (
            '<p class="warn">The last config reload was rejected; the previous config keeps running.'
            f"<br><small>{_e(redact_text(view.last_reload_error))}</small></p>"
        )
    ordered = sorted(view.states, key=lambda s: (_ORDER[s.status], s.identity.name))
    rows = "".join(_row(s, view.next_check.get(s.identity.name), now) for s in ordered)
    changes = sorted(
        ((c, s.identity.name) for s in view.states for c in s.history), key=lambda item: -item[0].at
    )[:RECENT_CHANGES]
    change_rows = "".join(
        f"<tr><td>{_when(c.at, now)}</td><td>{_e(name)}</td><td>{_config_value(c.before)}</td>"
        f"<td>{_config_value(c.after)}</td></tr>"
        for c, name in changes
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>callback-monitor: {_e(summary)}</title><style>{_CSS}</style></head><body>"
        f"<h1>callback-monitor</h1><p><b>{_e(summary)}</b><br><small>{config}; generated "
        f'{_abs(now)}; <a href="status">JSON</a> · <a href="metrics">metrics</a></small></p>{warning}'
        "<table><thead><tr><th>App</th><th>State</th><th>Last check</th>"
        "<th>Findings (desired vs observed)</th><th>Last error</th><th>Next check</th></tr></thead>"
        f"<tbody>{rows or '<tr><td colspan=6>no apps</td></tr>'}</tbody></table>"
        "<h2>Recent changes of live configs</h2>"
        + (
            "<table><thead><tr><th>When</th><th>App</th><th>Before</th><th>After</th></tr></thead>"
            f"<tbody>{change_rows}</tbody></table>"
            if change_rows
            else '<p class="muted">none seen since start</p>'
        )
        + "</body></html>"
    )


# ---- the application -----------------------------------------------------------------------------

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _headers(request: web.Request, handler: _Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _bounded(max_busy: int) -> Middleware:
    """A middleware refusing bodies over CLIENT_MAX_SIZE (or of unknown length) and pages beyond
    ``max_busy`` in progress; the probes are never refused for being busy."""
    busy = 0

    @web.middleware
    async def bounded(request: web.Request, handler: _Handler) -> web.StreamResponse:
        nonlocal busy
        length = request.content_length
        if request.body_exists and (length is None or length > CLIENT_MAX_SIZE):
            return web.Response(status=413, text=f"a request body may be at most {CLIENT_MAX_SIZE} bytes\n")
        if request.path in PROBES:
            return await handler(request)
        if busy >= max_busy:
            return web.Response(
                status=503, text="too many requests at once; retry shortly\n", headers={"Retry-After": "1"}
            )
        busy += 1
        try:
            return await handler(request)
        finally:
            busy -= 1

    return bounded


def make_app(
    store: Store, metrics: Metrics, *, now: Callable[[], float] = time.time, max_busy: int = MAX_BUSY
) -> web.Application:
    """The daemon's HTTP surface. GET (and HEAD) only; other methods get 405; see the module's
    docstring for the bounds on request size and pages in progress."""

    async def scrape(request: web.Request) -> web.Response:
        snapshot = metrics.snapshot()
        accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
        encoding = ",".join(request.headers.getall(hdrs.ACCEPT_ENCODING, []))
        exposition = await asyncio.to_thread(metrics.expose, snapshot, accept, encoding)
        return web.Response(
            body=exposition.body, headers={**exposition.headers, "Vary": "Accept, Accept-Encoding"}
        )

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        if store.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready: the config is not loaded yet\n")

    async def status(_request: web.Request) -> web.Response:
        view = View.of(store, now())
        text = await asyncio.to_thread(status_json, view)
        response = web.Response(text=text, content_type="application/json", charset="utf-8")
        response.enable_compression()
        return response

    async def page(_request: web.Request) -> web.Response:
        view = View.of(store, now())
        text = await asyncio.to_thread(status_html, view)
        response = web.Response(text=text, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        response.enable_compression()
        return response

    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[_headers, _bounded(max_busy)])
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    app.router.add_get("/", page)
    return app
