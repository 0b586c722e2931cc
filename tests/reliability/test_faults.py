"""Faults at the API: the daemon never pages falsely, counts every failure under its reason, raises
check_failing only at the threshold, sees a real change made during an outage exactly once, and is
back to every app's true verdict within two intervals after the fault stops.

One ``serve`` subprocess checks 50 apps every second against the simulator. The apps are split by
fault: for each fault the simulator can inject, two apps suffer it on every request (an outage) and
two on about half of them (a flaky API); a few apps suffer nothing. A second run makes every UserSig
expire for real by moving the simulator's clock two days ahead.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator import Faults, Simulator
from monitor.tencent.model import CallbackConfig
from tests.reliability.lab import FIGURES, SHAPES, Fleet, Leaks, ShiftClock, SimServer, lines_of
from tests.serve_helpers import Line, Serve, app_metric, eventually, metric, running

pytestmark = pytest.mark.slow

INTERVAL = 1.0
JITTER = 0.1  # the scheduler's jitter at a 1 s interval
THRESHOLD = 3
DRIFT_EVENTS = ("drift_detected", "drift_resolved")
CHECK_EVENTS = ("check", "check_error")


@dataclass(frozen=True)
class Fault:
    name: str
    reason: str  # the check's error reason
    code: int | None  # the ErrorCode a failed check reports
    api_code: str  # the `code` label of callback_monitor_api_requests_total for a failed attempt
    inject: Callable[[float], Faults] | None  # None: the simulator holds another key for the app
    overrides: dict[str, Any] = field(default_factory=dict)


FAULTS = (
    Fault("http-502", "http_status", None, "http_502", lambda r: Faults(http_502_rate=r)),
    Fault("html-body", "invalid_response", None, "invalid_response", lambda r: Faults(html_rate=r)),
    Fault("garbage-json", "invalid_response", None, "invalid_response", lambda r: Faults(garbage_rate=r)),
    Fault("empty-body", "invalid_response", None, "invalid_response", lambda r: Faults(empty_rate=r)),
    Fault("reset", "network", None, "network", lambda r: Faults(reset_rate=r)),
    # Each attempt gives up after 0.5 s; the whole check after one interval.
    Fault("hang", "timeout", None, "timeout", lambda r: Faults(hang_rate=r), {"timeout": "0.5s"}),
    Fault("100001", "server_error", 100001, "100001", lambda r: Faults(error_code=100001, error_code_rate=r)),
    Fault("70500", "server_error", 70500, "70500", lambda r: Faults(error_code=70500, error_code_rate=r)),
    Fault("rate-limit", "rate_limited", 60007, "60007", lambda r: Faults(rate_limit_rate=r)),
    Fault("sig-expired", "auth", 70001, "70001", lambda r: Faults(error_code=70001, error_code_rate=r)),
    Fault("wrong-key", "auth", 70009, "70009", None),
)
OUTAGE, FLAKY = 1.0, 0.5


def when(line: Line) -> float:
    return datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()


def failing_rule_problems(lines: list[Line], app: str, threshold: int) -> list[str]:
    """Where check_failing/check_recovered broke the rule: check_failing right after the
    threshold-th consecutive failed check, once per streak; check_recovered right after the first
    verdict that ends such a streak. (Alert lines follow the line of the check that caused them.)"""
    problems: list[str] = []
    streak, failing, previous = 0, False, ""
    for line in lines_of(lines, *CHECK_EVENTS, "check_failing", "check_recovered", app=app):
        event = line["event"]
        if previous == "check" and failing and event != "check_recovered":
            problems.append(f"{app}: a verdict ended a failing streak without check_recovered")
            failing = False
        if event == "check_error":
            streak += 1
            if streak > threshold and not failing:
                problems.append(f"{app}: {streak} failed checks in a row and no check_failing")
        elif event == "check":
            streak = 0
        elif event == "check_failing":
            if previous != "check_error" or streak != threshold or failing:
                problems.append(f"{app}: check_failing after {streak} failed checks (failing={failing})")
            failing = True
        elif event == "check_recovered":
            if previous != "check" or not failing:
                problems.append(f"{app}: check_recovered after {previous!r} (failing={failing})")
            failing = False
        previous = event
    return problems


def verdict_lines_after(serve: Serve, fleet: Fleet, after: int) -> dict[str, Line] | None:
    """The first verdict of every app after line ``after``, once every app has one."""
    first: dict[str, Line] = {}
    for line in lines_of(serve.lines[after:], "check"):
        first.setdefault(line["app"], line)
    return first if first.keys() >= fleet.apps.keys() else None


async def recovery_seconds(serve: Serve, fleet: Fleet, after: int, stopped: float) -> dict[str, float]:
    """Seconds from the fault's end to each app's first verdict, checked to be its true verdict."""
    first = await eventually(
        lambda: verdict_lines_after(serve, fleet, after), within=10, what="a verdict of every app"
    )
    for name, line in first.items():
        assert frozenset(line["findings"]) == fleet.apps[name].findings, line
    return {name: when(line) - stopped for name, line in first.items()}


async def assert_true_verdicts(serve: Serve, fleet: Fleet) -> None:
    status = await serve.status()
    seen = {a["name"]: a for a in status["apps"]}
    for name, app in fleet.apps.items():
        entry = seen[name]
        got = (entry["state"], entry["stale"], frozenset(f["kind"] for f in entry["findings"]))
        assert got == (app.state, False, app.findings), (name, entry)


async def assert_failures_counted(serve: Serve, fleet: Fleet) -> Counter[str]:
    """/metrics counts every failed check read so far under its reason, and nothing else.

    Call it once every app has had a verdict after the faults stopped: no check can fail any more,
    so the counters and the log lines read so far describe the same checks.
    """
    samples = await serve.metrics()
    by_reason: Counter[str] = Counter()
    for name, app in fleet.apps.items():
        logged = Counter(line["reason"] for line in lines_of(serve.lines, "check_error", app=name))
        by_reason.update(logged)
        for reason in (
            "timeout",
            "network",
            "http_status",
            "invalid_response",
            "server_error",
            "rate_limited",
        ):
            value = app_metric(
                samples, "callback_monitor_check_failures_total", (name, app.sdkappid), reason=reason
            )
            assert value == logged[reason], (name, reason, value, logged)
        auth = app_metric(
            samples, "callback_monitor_check_failures_total", (name, app.sdkappid), reason="auth"
        )
        assert auth == logged["auth"], (name, auth, logged)
    return by_reason


def drift_alerts(serve: Serve, after: int) -> list[tuple[str, str, str]]:
    return sorted((a["event"], a["app"], a["kind"]) for a in lines_of(serve.lines[after:], *DRIFT_EVENTS))


async def stop_cleanly(serve: Serve) -> None:
    started = time.monotonic()
    serve.signal(signal.SIGTERM)
    assert await serve.wait_exit(10) == 0
    assert time.monotonic() - started < 5
    assert "Traceback" not in "".join(serve.stderr), serve.tail()
    assert not serve.find("background_task_failed")


def keep(leaks: Leaks, serve: Serve, pages: dict[str, str], what: str) -> None:
    leaks.output(f"{what}: serve stdout (debug)", "\n".join(serve.raw))
    leaks.output(f"{what}: serve stderr", "".join(serve.stderr))
    for path, text in pages.items():
        leaks.output(f"{what}: {path}", text)


async def pages(serve: Serve) -> dict[str, str]:
    return {path: (await serve.get(path))[1] for path in ("/metrics", "/status", "/")}


# ---- every fault the simulator can inject, on 42 of 50 apps ---------------------------------------


async def test_faults_at_the_api_never_page_falsely_and_heal_within_two_intervals(
    tmp_path: Path, leaks: Leaks
) -> None:
    sim = Simulator(seed=11)
    fleet = Fleet(sim, tmp_path, leaks)
    plan: dict[str, tuple[Fault, float]] = {}
    for fault in FAULTS:
        modes = [("outage", OUTAGE, ("in_sync", "foreign"))]
        if fault.inject is not None:
            modes.append(("flaky", FLAKY, ("missing", "in_sync")))
        for mode, rate, shapes in modes:
            for i, shape in enumerate(shapes):
                app = fleet.add(f"{fault.name}-{mode}-{i}", shape, **fault.overrides)
                plan[app.name] = (fault, rate)
    for i in range(50 - len(fleet.apps)):
        fleet.add(f"control-{i}", ("in_sync", "foreign", "missing")[i % 3])
    assert len(fleet.apps) == 50
    # Changed at Tencent during the outage of their own API calls: seen only once it answers again.
    evil_app, fixed_app = "reset-outage-0", "http-502-outage-1"
    assert (fleet.apps[evil_app].state, fleet.apps[fixed_app].state) == ("in_sync", "drift")

    async with SimServer(sim, leaks) as server:
        config = fleet.write(server.url, error_threshold=THRESHOLD)
        async with running(config) as serve:
            # The baseline: every app's true verdict, its drift alerted once.
            for name in fleet.apps:
                await serve.wait_checks(name, 2, after=0)
            await assert_true_verdicts(serve, fleet)
            expected = sorted(
                ("drift_detected", a.name, kind) for a in fleet.apps.values() for kind in a.findings
            )
            assert drift_alerts(serve, 0) == expected

            mark = serve.mark
            for name, (fault, rate) in plan.items():
                app = fleet.apps[name]
                if fault.inject is None:
                    sim.add_app(app.sdkappid, "another-key-" + app.key, callback=app.live)
                else:
                    sim.set_faults(fault.inject(rate), app.sdkappid)
            evil = CallbackConfig(
                f"https://evil.example.net/x?token={fleet.new_token()}", fleet.desired.commands
            )
            fleet.change(evil_app, evil, SHAPES["foreign"])
            fleet.change(fixed_app, fleet.desired, SHAPES["in_sync"])

            for name, (_fault, rate) in plan.items():
                if rate == OUTAGE:
                    await serve.wait_event("check_failing", after=mark, app=name, within=20)
                await serve.wait_checks(name, THRESHOLD + 2, after=mark, within=20)

            stop_mark, stopped = serve.mark, time.time()
            for name, (fault, _rate) in plan.items():
                app = fleet.apps[name]
                if fault.inject is None:
                    sim.add_app(app.sdkappid, app.key, callback=app.live)
                else:
                    sim.set_faults(Faults(), app.sdkappid)
            recovery = await recovery_seconds(serve, fleet, stop_mark, stopped)
            await assert_true_verdicts(serve, fleet)
            by_reason = await assert_failures_counted(serve, fleet)
            samples = await serve.metrics()
            seen_pages = await pages(serve)
            assert (await serve.get("/healthz"))[0] == 200

            under_faults = [
                line for line in lines_of(serve.lines[mark:stop_mark], *CHECK_EVENTS) if line["app"] in plan
            ]
            # Each failed check carries its fault's reason (and ErrorCode); controls never fail.
            for line in lines_of(serve.lines, "check_error"):
                assert line["app"] in plan, line
                fault, _rate = plan[line["app"]]
                assert (line["reason"], line["code"]) == (fault.reason, fault.code), line
            for fault in FAULTS:
                attempts = metric(
                    samples, "callback_monitor_api_requests_total", action="get_callback", code=fault.api_code
                )
                assert attempts, (fault.name, attempts)
            # No drift alert but for the two real changes, each exactly once and only after the outage.
            changed_at = [i for i, line in enumerate(serve.lines) if line.get("event") in DRIFT_EVENTS]
            assert drift_alerts(serve, mark) == [
                ("drift_detected", evil_app, "host_not_allowed"),
                ("drift_detected", evil_app, "url_mismatch"),
                ("drift_resolved", fixed_app, "host_not_allowed"),
                ("drift_resolved", fixed_app, "url_mismatch"),
            ]
            assert all(i > stop_mark for i in changed_at if i > mark)
            problems = [p for name in fleet.apps for p in failing_rule_problems(serve.lines, name, THRESHOLD)]
            assert problems == []
            for name, (_fault, rate) in plan.items():
                if rate == OUTAGE:
                    assert len(list(lines_of(serve.lines[mark:], "check_failing", app=name))) == 1, name
                    assert len(list(lines_of(serve.lines[stop_mark:], "check_recovered", app=name))) == 1, (
                        name
                    )
            worst = max(recovery.values())
            assert worst <= 2 * (INTERVAL + JITTER), recovery
            await stop_cleanly(serve)
        keep(leaks, serve, seen_pages, "faults")

    FIGURES["faults tried"] = (
        f"{len(FAULTS)} kinds ({', '.join(f.name for f in FAULTS)}), as outages on "
        f"{sum(1 for _f, r in plan.values() if r == OUTAGE)} apps and at rate {FLAKY} on "
        f"{sum(1 for _f, r in plan.values() if r == FLAKY)} apps, "
        f"{len(fleet.apps) - len(plan)} apps untouched"
    )
    FIGURES["checks under faults"] = (
        f"{len(under_faults)} checks of faulted apps while faults were on; failed checks by reason: "
        f"{dict(sorted(by_reason.items()))}"
    )
    FIGURES["false alerts"] = "0 (no drift alert for an unchanged app; check_failing only at the threshold)"
    FIGURES["real change during an outage"] = "detected once, resolved once, both after the API answered"
    FIGURES["recovery after faults"] = f"every app at its true verdict {worst:.2f} s after the faults stopped"


# ---- UserSigs expired for real: the simulator's clock two days ahead -----------------------------


async def test_usersigs_expired_by_the_clock_are_auth_failures_that_heal(
    tmp_path: Path, leaks: Leaks
) -> None:
    clock = ShiftClock()
    sim = Simulator(clock=clock, seed=12)
    fleet = Fleet(sim, tmp_path, leaks, first_sdkappid=1400200000)
    for i in range(12):
        fleet.add(f"app-{i}", ("in_sync", "foreign", "missing")[i % 3])
    async with SimServer(sim, leaks) as server:
        config = fleet.write(server.url, error_threshold=THRESHOLD)
        async with running(config) as serve:
            for name in fleet.apps:
                await serve.wait_checks(name, 2, after=0)
            mark = serve.mark
            clock.offset = 2 * 86400.0  # every UserSig the monitor can make is expired for the API
            for name in fleet.apps:
                await serve.wait_event("check_failing", after=mark, app=name, within=20)
            stop_mark, stopped = serve.mark, time.time()
            clock.offset = 0.0
            recovery = await recovery_seconds(serve, fleet, stop_mark, stopped)
            await assert_true_verdicts(serve, fleet)
            by_reason = await assert_failures_counted(serve, fleet)
            seen_pages = await pages(serve)

            errors = list(lines_of(serve.lines[mark:], "check_error"))
            assert errors
            assert {(e["reason"], e["code"]) for e in errors} == {("auth", 70001)}
            assert drift_alerts(serve, mark) == []
            assert [
                p for name in fleet.apps for p in failing_rule_problems(serve.lines, name, THRESHOLD)
            ] == []
            samples = await serve.metrics()
            renewals = metric(
                samples, "callback_monitor_api_requests_total", action="get_callback", code="70001"
            )
            assert renewals is not None
            assert renewals >= 2 * len(errors)  # each failed check signed anew and tried again
            worst = max(recovery.values())
            assert worst <= 2 * (INTERVAL + JITTER), recovery
            await stop_cleanly(serve)
        keep(leaks, serve, seen_pages, "clock")
    FIGURES["expired UserSigs (clock +2 days)"] = (
        f"{len(errors)} failed checks ({dict(by_reason)}), 0 false alerts, recovery {worst:.2f} s"
    )
