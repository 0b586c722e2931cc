"""Probes for the one-shot ``check``: every app with probes on, once, each shared URL probed once."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from monitor.config import AppConfig
from monitor.probe_eval import EndpointState, evaluate
from monitor.probe_shared import ProbeRunner, plan, target_key


async def probe_apps(
    apps: Sequence[AppConfig], runner: ProbeRunner, *, clock: Callable[[], float] = time.time
) -> dict[str, EndpointState]:
    """Each probed app's endpoint state after one probe of its desired callback URL.

    One run has no history, so one failed probe counts: ``failures_before_alert`` is taken as 1
    (serve waits for that many in a row; a one-shot check reports what it saw).
    """
    triples = [(a.name, a.callback.url if a.callback else None, a.probe) for a in apps]
    targets = plan(triples)
    results = await runner.run_all(targets)
    now = clock()
    states: dict[str, EndpointState] = {}
    for app in apps:
        if not app.probe.enabled or app.callback is None:
            continue
        result = results[target_key(app.callback.url, app.probe)]
        once = replace(app.probe, failures_before_alert=1)
        states[app.name] = EndpointState((result,), evaluate((result,), once, now, app.ignore))
    return states
