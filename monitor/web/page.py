"""The human status page (/): problems first, then what cannot be seen, then what is fine; no JavaScript."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from monitor.drift import Finding
from monitor.kinds import Kind
from monitor.output import iso
from monitor.probe_eval import EndpointFinding
from monitor.redact import redact_text, redact_url
from monitor.state import AppState, Status
from monitor.tencent.model import CallbackConfig
from monitor.web.view import View

REFRESH_SECONDS = 30
RECENT_CHANGES = 20

# Problems first: what needs a person, then what cannot be seen, then what is fine.
_ORDER = {Status.DRIFT: 0, Status.ERROR: 1, Status.UNKNOWN: 2, Status.IN_SYNC: 3}
_URL_KINDS = frozenset({Kind.URL_MISMATCH, Kind.CONFIG_MISSING, Kind.CONFIG_PRESENT})

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


def _endpoint(f: EndpointFinding) -> str:
    flags = f.severity + (", ignored" if f.ignored else "")
    return (
        f'<p class="f"><b>{_e(f.kind.value)}</b> <small>({_e(flags)})</small><br>'
        f"receiver: {_url(f.desired)}<br>probe: {_e(redact_text(f.observed))}</p>"
    )


def _probe_line(state: AppState, now: float) -> str:
    """The receiver's last probe, for apps with probes on: one short line under the findings."""
    last = state.endpoint.latest
    if last is None:
        return ""
    if last.up:
        what = f"receiver up, HTTP {last.status}"
    else:
        what = f"receiver down in {last.phase}" + (f", HTTP {last.status}" if last.status else "")
    if last.cert_not_after is not None:
        what += f", certificate until {_abs(last.cert_not_after)}"
    return f"<small>probe {_e(relative(last.started, now))}: {_e(what)} ({last.total:.2f}s)</small>"


def _findings_cell(state: AppState, now: float) -> str:
    endpoint = "".join(_endpoint(f) for f in sorted(state.endpoint.findings, key=lambda f: f.ignored))
    endpoint += _probe_line(state, now)
    verdict = state.verdict
    if verdict is None:
        return '<span class="muted">no verdict yet</span>' + endpoint
    parts = [_finding(f) for f in sorted(verdict.findings, key=lambda f: f.ignored)]
    if not parts:
        live = verdict.observed
        parts.append(
            "no findings; live: "
            + (_url(live.url) + f" <small>({len(live.commands)} commands)</small>" if live else "no callback")
        )
    if state.stale and state.last_success is not None:
        parts.append(f"<small>verdict from {_e(relative(state.last_success, now))} (stale)</small>")
    return "".join(parts) + endpoint


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
    receivers = sum(1 for s in view.states if s.endpoint.counted)
    if receivers:
        summary += f"; {receivers} with a receiver problem"
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
    # A receiver that cannot take callbacks needs a person as much as drift does.
    ordered = sorted(
        view.states, key=lambda s: (0 if s.endpoint.counted else _ORDER[s.status], s.identity.name)
    )
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
