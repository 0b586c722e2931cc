"""The JSON status document (/status): a snapshot of the store, serialised app by app."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.output import callback_dict, error_dict, finding_dict, iso, probe_dict
from monitor.redact import redact_text
from monitor.state import AppState
from monitor.store import Store
from monitor.tencent.model import CallbackConfig

STATUS_VERSION = 1


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
        "findings": [finding_dict(f) for f in (verdict.findings if verdict is not None else ())]
        + [finding_dict(f) for f in state.endpoint.findings],
        "observed": callback_dict(verdict.observed) if verdict is not None else None,
        "desired": callback_dict(ident.desired),
        "last_error": error,
        "history": [_change(c.at, c.before, c.after) for c in state.history],
        "probe": probe_dict(state.endpoint.latest),  # the receiver's last probe; null without probes
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
