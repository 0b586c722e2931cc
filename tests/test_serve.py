"""``callback-monitor serve`` end to end: the real command as a subprocess against the simulator.

Each test changes the simulator's state (or the config file, or sends a signal) and reads what the
daemon says: its JSON log lines on stdout, /metrics, /status and the status page. Checks run every
second; every wait ends as soon as its line or value appears, with a generous deadline.
"""

from __future__ import annotations

import itertools
import re
import signal
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator import SAMPLE_DESIRED, Faults, Simulator, sample_key
from monitor.tencent.model import CallbackConfig
from tests.serve_helpers import (
    DRIFTED_URL,
    IN_SYNC,
    MISSING_COMMANDS,
    NO_CONFIG,
    PLAIN_HTTP,
    SAMPLE_APPS,
    AtomicDir,
    Line,
    Serve,
    app_metric,
    config_yaml,
    eventually,
    has_app,
    metric,
    running,
    write_keys,
)

pytestmark = pytest.mark.slow

ALERT_FIELDS = {
    "event",
    "severity",
    "app",
    "sdkappid",
    "kind",
    "desired",
    "observed",
    "missing",
    "unexpected",
    "labels",
    "fingerprint",
    "timestamp",
}
LABELS = {"team": "rtc", "env": "test"}
DESIRED_URL = SAMPLE_DESIRED.url
TOKEN = "s3cr3t-T0KEN-value"  # a callback URL's token: must never leave the process unredacted


def write_config(
    path: Path, endpoint: str, apps: tuple[tuple[str, int], ...] = SAMPLE_APPS, **kw: Any
) -> Path:
    keys = path.parent / "keys"
    write_keys(keys, apps)
    path.write_text(config_yaml(endpoint, keys, apps, **kw), encoding="utf-8")
    return path


def kinds(lines: list[Line]) -> list[tuple[str, str, str]]:
    return sorted((line["event"], line["app"], line["kind"]) for line in lines)


def assert_no_secret(text: str) -> None:
    assert TOKEN not in text
    for _name, sdkappid in SAMPLE_APPS:
        assert sample_key(sdkappid) not in text


# ---- alerts, metrics and pages follow the live configuration -------------------------------------


async def test_each_change_of_live_config_alerts_once_and_shows_everywhere(
    simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.yaml", simulator_url)
    async with running(config) as serve:
        for name, _ in SAMPLE_APPS:
            await serve.wait_checks(name, 3, after=0)

        # The sample apps' initial findings, each alerted exactly once over three checks.
        assert kinds(serve.alerts()) == [
            ("drift_detected", DRIFTED_URL[0], "host_not_allowed"),
            ("drift_detected", DRIFTED_URL[0], "url_mismatch"),
            ("drift_detected", MISSING_COMMANDS[0], "missing_commands"),
            ("drift_detected", PLAIN_HTTP[0], "insecure_url"),
            ("drift_detected", PLAIN_HTTP[0], "url_mismatch"),
        ]
        (drifted,) = serve.alerts(app=DRIFTED_URL[0], kind="url_mismatch")
        assert ALERT_FIELDS <= drifted.keys()
        assert drifted["severity"] == "critical"
        assert drifted["sdkappid"] == DRIFTED_URL[1]
        assert drifted["desired"] == DESIRED_URL
        assert drifted["observed"] == "https://hooks.example.net/collect?token=REDACTED"
        assert (drifted["missing"], drifted["unexpected"]) == ([], [])
        assert drifted["labels"] == LABELS
        assert re.fullmatch(r"[0-9a-f]{16}", drifted["fingerprint"])
        datetime.fromisoformat(drifted["timestamp"])
        (missing,) = serve.alerts(kind="missing_commands")
        assert missing["severity"] == "warning"
        assert missing["missing"] == ["Room.CallbackAfterMemberEnter", "Room.CallbackAfterMemberLeave"]
        (insecure,) = serve.alerts(kind="insecure_url")
        assert (insecure["severity"], insecure["observed"]) == (
            "critical",
            "http://hooks.example.com/tencent/room",
        )

        before = await serve.metrics()
        assert app_metric(before, "callback_monitor_in_sync", IN_SYNC) == 1
        assert app_metric(before, "callback_monitor_in_sync", NO_CONFIG) == 1
        assert app_metric(before, "callback_monitor_in_sync", DRIFTED_URL) == 0
        assert app_metric(before, "callback_monitor_drift", DRIFTED_URL, kind="url_mismatch") == 1
        assert app_metric(before, "callback_monitor_drift", DRIFTED_URL, kind="missing_commands") == 0
        assert app_metric(before, "callback_monitor_policy_violation", PLAIN_HTTP, policy="insecure_url") == 1
        assert app_metric(before, "callback_monitor_observed_config_hash", NO_CONFIG) == 0

        # Someone points the in-sync app at another host, and someone else fixes the drifted one.
        mark = serve.mark
        evil = f"https://evil.example.net/steal?token={TOKEN}"
        simulator.set_callback(IN_SYNC[1], CallbackConfig(evil, SAMPLE_DESIRED.commands))
        simulator.set_callback(DRIFTED_URL[1], SAMPLE_DESIRED)
        # ... and a third moves the plain-http URL elsewhere: its findings stay, their observed value changes.
        moved = "http://hooks.example.com/tencent/other"
        simulator.set_callback(PLAIN_HTTP[1], CallbackConfig(moved, SAMPLE_DESIRED.commands))
        expected = [
            ("drift_detected", IN_SYNC[0], "host_not_allowed"),
            ("drift_detected", IN_SYNC[0], "url_mismatch"),
            ("drift_detected", PLAIN_HTTP[0], "insecure_url"),
            ("drift_detected", PLAIN_HTTP[0], "url_mismatch"),
            ("drift_resolved", DRIFTED_URL[0], "host_not_allowed"),
            ("drift_resolved", DRIFTED_URL[0], "url_mismatch"),
        ]
        for event, app_name, kind in expected:
            await serve.wait_event(event, after=mark, app=app_name, kind=kind)
        settled = serve.mark
        for name, _ in SAMPLE_APPS:
            await serve.wait_checks(name, 3, after=settled)
        assert kinds(serve.alerts(after=mark)) == expected
        for line in serve.alerts(after=mark):
            assert line["changed"] is (line["app"] == PLAIN_HTTP[0]), line
        assert {line["observed"] for line in serve.alerts(after=mark, app=PLAIN_HTTP[0])} == {moved}
        (stolen,) = serve.alerts(after=mark, app=IN_SYNC[0], kind="url_mismatch")
        assert stolen["observed"] == "https://evil.example.net/steal?token=REDACTED"
        assert stolen["desired"] == DESIRED_URL
        (resolved,) = serve.alerts(after=mark, app=DRIFTED_URL[0], kind="url_mismatch")
        assert resolved["fingerprint"] == drifted["fingerprint"]

        after = await serve.metrics()
        for app, in_sync in ((IN_SYNC, 0), (DRIFTED_URL, 1)):
            assert app_metric(after, "callback_monitor_in_sync", app) == in_sync
            assert app_metric(after, "callback_monitor_drift", app, kind="url_mismatch") == 1 - in_sync
            checks_before = app_metric(before, "callback_monitor_checks_total", app)
            checks_after = app_metric(after, "callback_monitor_checks_total", app)
            assert checks_before is not None
            assert checks_after is not None
            assert checks_after >= checks_before + 3
            hash_before = app_metric(before, "callback_monitor_observed_config_hash", app)
            hash_after = app_metric(after, "callback_monitor_observed_config_hash", app)
            assert hash_before is not None
            assert hash_after not in (None, 0, hash_before)
        metrics_text = (await serve.get("/metrics"))[1]
        assert "evil.example.net" not in metrics_text

        entry = await serve.app_status(IN_SYNC[0])
        assert (entry["state"], entry["stale"]) == ("drift", False)
        by_kind = {f["kind"]: f for f in entry["findings"]}
        assert by_kind["url_mismatch"]["desired"] == DESIRED_URL
        assert by_kind["url_mismatch"]["observed"] == "https://evil.example.net/steal?token=REDACTED"
        assert entry["observed"]["url"] == "https://evil.example.net/steal?token=REDACTED"
        assert entry["history"][-1]["after"]["url"] == "https://evil.example.net/steal?token=REDACTED"
        fixed = await serve.app_status(DRIFTED_URL[0])
        assert (fixed["state"], fixed["findings"]) == ("in_sync", [])

        status_code, page = await serve.get("/")
        assert status_code == 200
        assert "https://evil.example.net/steal?token=REDACTED" in page
        assert DESIRED_URL in page
        assert "url_mismatch" in page

        for text in [metrics_text, page, (await serve.get("/status"))[1], *serve.raw, *serve.stderr]:
            assert_no_secret(text)


# ---- an error streak ------------------------------------------------------------------------------


async def test_error_streak_alerts_failing_then_recovered_and_never_drift(
    simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    apps = (DRIFTED_URL, IN_SYNC)
    config = write_config(tmp_path / "config.yaml", simulator_url, apps, error_threshold=2)
    name, sdkappid = DRIFTED_URL
    async with running(config) as serve:
        await serve.wait_checks(name, 2, after=0)  # the first check's alerts are read by then
        mark = serve.mark
        simulator.set_faults(Faults(error_code=70500, error_code_rate=1.0), sdkappid)

        failing_at = await serve.wait_index(
            lambda line: line.get("event") == "check_failing" and line.get("app") == name, after=mark
        )
        failing = serve.lines[failing_at]
        errors = [line for line in serve.lines[mark:failing_at] if line["event"] == "check_error"]
        assert [(e["app"], e["reason"], e["code"]) for e in errors] == [(name, "server_error", 70500)] * 2
        assert ALERT_FIELDS <= failing.keys()
        assert (failing["kind"], failing["sdkappid"], failing["labels"]) == ("server_error", sdkappid, LABELS)
        assert failing["error"]["code"] == 70500
        assert failing["error"]["request_id"]

        # Blind, not fixed: the drift verdict from before the errors is kept and marked stale.
        entry = await serve.app_status(name)
        assert (entry["state"], entry["stale"]) == ("error", True)
        assert {f["kind"] for f in entry["findings"]} == {"url_mismatch", "host_not_allowed"}
        assert (entry["last_error"]["reason"], entry["last_error"]["code"]) == ("server_error", 70500)
        samples = await serve.metrics()
        assert app_metric(samples, "callback_monitor_check_success", DRIFTED_URL) == 0
        assert app_metric(samples, "callback_monitor_in_sync", DRIFTED_URL) == 0
        assert app_metric(samples, "callback_monitor_drift", DRIFTED_URL, kind="url_mismatch") == 1
        failures = app_metric(
            samples, "callback_monitor_check_failures_total", DRIFTED_URL, reason="server_error"
        )
        assert failures is not None
        assert failures >= 2
        assert (
            app_metric(samples, "callback_monitor_check_failures_total", DRIFTED_URL, reason="timeout") == 0
        )

        await serve.wait_checks(name, 2, after=failing_at + 1)
        recover_mark = serve.mark
        simulator.set_faults(Faults(), sdkappid)
        recovered_at = await serve.wait_index(
            lambda line: line.get("event") == "check_recovered" and line.get("app") == name,
            after=recover_mark,
        )
        recovered = serve.lines[recovered_at]
        await serve.wait_checks(name, 2, after=recovered_at + 1)

        assert kinds(serve.alerts(after=mark)) == [
            ("check_failing", name, "server_error"),
            ("check_recovered", name, "server_error"),
        ]
        assert recovered["fingerprint"] == failing["fingerprint"]
        entry = await serve.app_status(name)
        assert (entry["state"], entry["stale"], entry["consecutive_errors"]) == ("drift", False, 0)
        samples = await serve.metrics()
        assert app_metric(samples, "callback_monitor_check_success", DRIFTED_URL) == 1
        assert app_metric(samples, "callback_monitor_in_sync", DRIFTED_URL) == 0
        assert app_metric(
            samples, "callback_monitor_check_failures_total", DRIFTED_URL, reason="server_error"
        ) == len(serve.find("check_error", app=name))


# ---- reloads ---------------------------------------------------------------------------------------


async def test_config_reloads_add_remove_reschedule_reject_and_recover(
    simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """The config is a mounted ConfigMap: every update is a swap of its ``..data`` symlink."""
    mount = AtomicDir(tmp_path / "config")
    secrets = AtomicDir(tmp_path / "secrets")
    keys = {str(sdkappid): sample_key(sdkappid) + "\n" for _name, sdkappid in SAMPLE_APPS}
    secrets.write(keys)

    def publish(apps: tuple[tuple[str, int], ...], **kw: Any) -> None:
        mount.write({"config.yaml": config_yaml(simulator_url, secrets.path, apps, **kw)})

    publish((IN_SYNC, MISSING_COMMANDS))
    async with running(mount.path / "config.yaml") as serve:
        await serve.wait_checks(MISSING_COMMANDS[0], 2, after=0)  # its first alert is read by then
        first_hash = metric(await serve.metrics(), "callback_monitor_config_hash")

        # Add an app: it is checked and alerted on; the others keep their state (no repeated alert).
        mark = serve.mark
        publish((IN_SYNC, MISSING_COMMANDS, DRIFTED_URL))
        reloaded = await serve.wait_event("config_reloaded", after=mark, reason="file changed")
        assert (reloaded["added"], reloaded["removed"], reloaded["apps"]) == (1, 0, 3)
        await serve.wait_event("drift_detected", after=mark, app=DRIFTED_URL[0], kind="url_mismatch")
        samples = await serve.metrics()
        assert has_app(samples, DRIFTED_URL[0])
        assert metric(samples, "callback_monitor_apps") == 3
        assert metric(samples, "callback_monitor_config_hash") not in (None, first_hash)
        await serve.wait_checks(MISSING_COMMANDS[0], 2, after=serve.mark)
        assert serve.alerts(after=mark, app=MISSING_COMMANDS[0]) == []

        # Remove an app: its series leave /metrics and /status.
        mark = serve.mark
        publish((IN_SYNC, DRIFTED_URL))
        reloaded = await serve.wait_event("config_reloaded", after=mark)
        assert (reloaded["added"], reloaded["removed"], reloaded["apps"]) == (0, 1, 2)
        samples = await serve.metrics()
        assert not has_app(samples, MISSING_COMMANDS[0])
        assert metric(samples, "callback_monitor_apps") == 2
        assert [a["name"] for a in (await serve.status())["apps"]] == sorted([IN_SYNC[0], DRIFTED_URL[0]])

        # Change an interval: the simulator sees that app's requests come three seconds apart.
        mark = serve.mark
        publish((IN_SYNC, DRIFTED_URL), overrides={IN_SYNC[0]: {"interval": "3s"}})
        reloaded = await serve.wait_event("config_reloaded", after=mark)
        assert reloaded["rescheduled"] == 1
        since = time.time()
        times = await eventually(
            lambda: _request_times(simulator, IN_SYNC[1], since, 3), within=20, what="3 requests"
        )
        assert times[2] - times[1] >= 2.9  # APScheduler's jitter only ever delays
        drifted_times = _request_times(simulator, DRIFTED_URL[1], since, 1)
        assert drifted_times is not None
        assert len(drifted_times) >= 4
        assert min(b - a for a, b in itertools.pairwise(drifted_times)) < 2

        # Break the file: the last good config keeps running, the metric and the page say so.
        mark = serve.mark
        mount.write(
            {
                "config.yaml": config_yaml(simulator_url, secrets.path, (IN_SYNC, DRIFTED_URL)).replace(
                    f"sdkappid: {DRIFTED_URL[1]}", "sdkappid: not-a-number"
                )
            }
        )
        failed = await serve.wait_event("config_reload_failed", after=mark)
        assert any(p.startswith("apps[1].sdkappid") for p in failed["problems"]), failed
        samples = await serve.metrics()
        assert metric(samples, "callback_monitor_config_last_reload_successful") == 0
        assert metric(samples, "callback_monitor_apps") == 2
        assert (await serve.status())["config"]["reload_successful"] is False
        await serve.wait_checks(DRIFTED_URL[0], 2, after=serve.mark)  # still checked

        # Fix it again.
        mark = serve.mark
        publish((IN_SYNC, DRIFTED_URL))
        await serve.wait_event("config_reloaded", after=mark)
        samples = await serve.metrics()
        assert metric(samples, "callback_monitor_config_last_reload_successful") == 1

        # SIGHUP reloads even an unchanged file.
        mark = serve.mark
        serve.signal(signal.SIGHUP)
        await serve.wait_event("config_reloaded", after=mark, reason="SIGHUP")

        # Rotate a key at Tencent and in the mounted Secret: checks keep succeeding.
        name, sdkappid = DRIFTED_URL
        mark = serve.mark
        rotated = "rotated-key-" + "7" * 32
        simulator.add_app(sdkappid, rotated, callback=simulator.callback(sdkappid))
        secrets.write({**keys, str(sdkappid): rotated + "\n"})
        end = await serve.wait_checks(name, 3, after=mark)
        rotation_checks = [
            line
            for line in serve.lines[mark:end]
            if line["event"] in ("check", "check_error") and line.get("app") == name
        ]
        # A check that read the old key just before the swap may fail once; the later ones may not.
        assert [line["event"] for line in rotation_checks[1:]] == ["check", "check"]
        assert serve.alerts(after=mark, app=name) == []

        # Rotate at Tencent only: the monitor's key is now wrong and it says so.
        mark = serve.mark
        simulator.add_app(sdkappid, "yet-another-key-" + "8" * 32, callback=simulator.callback(sdkappid))
        error = await serve.wait_event("check_error", after=mark, app=name)
        assert (error["reason"], error["code"]) == ("auth", 70009)
        failing = await serve.wait_event("check_failing", after=mark, app=name)
        assert failing["kind"] == "auth"
        for text in [*serve.raw, *serve.stderr]:
            assert rotated not in text


def _request_times(simulator: Simulator, sdkappid: int, since: float, count: int) -> list[float] | None:
    times = [r.time for r in simulator.requests if r.sdkappid == sdkappid and r.time >= since]
    return times if len(times) >= count else None


# ---- stopping -------------------------------------------------------------------------------------


async def test_sigterm_with_checks_hanging_exits_0_within_5_seconds(
    simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    apps = (IN_SYNC, DRIFTED_URL, PLAIN_HTTP)
    config = write_config(tmp_path / "config.yaml", simulator_url, apps, timeout="30s")
    simulator.set_faults(Faults(hang_rate=1.0))
    async with running(config) as serve:
        await eventually(
            lambda: _all_requested(simulator, apps), within=15, what="a hanging request from every app"
        )
        started = time.monotonic()
        serve.signal(signal.SIGTERM)
        code = await serve.wait_exit(10)
        elapsed = time.monotonic() - started
        assert code == 0
        assert elapsed < 5, elapsed
        (stopping,) = serve.find("stopping")
        assert stopping["running_checks"] == len(apps)
        assert serve.find("stopped")
        assert "Traceback" not in "".join(serve.stderr) + "\n".join(serve.raw), serve.tail()
        # Runs skipped while a check hangs are the intended back-pressure, not warnings.
        assert [line for line in serve.lines if _is_problem(line)] == []


def _is_problem(line: Line) -> bool:
    return line.get("level") in ("warning", "error", "critical") and line["event"] != "config_warning"


async def test_sigterm_lets_a_slow_check_finish_within_the_grace(
    simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """A check already waiting on a slow answer (1 s, under the 2 s grace) ends with its verdict."""
    config = write_config(tmp_path / "config.yaml", simulator_url, (IN_SYNC,))
    async with running(config) as serve:
        await serve.wait_checks(IN_SYNC[0], 1, after=0)
        simulator.set_faults(Faults(latency=1.0))
        count = simulator.count("get_callback", IN_SYNC[1])
        await eventually(lambda: simulator.count("get_callback", IN_SYNC[1]) > count, what="a slow request")
        serve.signal(signal.SIGTERM)
        assert await serve.wait_exit(10) == 0
        stopping = serve.lines.index(serve.find("stopping")[0])
        assert serve.lines[stopping]["running_checks"] == 1
        assert serve.find("check", after=stopping, app=IN_SYNC[0])
        assert not serve.find("checks_cancelled")
        assert [line for line in serve.lines if _is_problem(line)] == []


def _all_requested(simulator: Simulator, apps: tuple[tuple[str, int], ...]) -> bool:
    return all(simulator.count("get_callback", sdkappid) >= 1 for _name, sdkappid in apps)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_stop_signal_when_idle_exits_0_promptly(
    simulator_url: str, tmp_path: Path, sig: signal.Signals
) -> None:
    config = write_config(tmp_path / "config.yaml", simulator_url, (IN_SYNC,))
    async with running(config) as serve:
        await serve.wait_checks(IN_SYNC[0], 1, after=0)
        started = time.monotonic()
        serve.signal(sig)
        assert await serve.wait_exit(10) == 0
        assert time.monotonic() - started < 3
        assert serve.find("stopped")
        assert serve.stderr == []


async def test_invalid_config_at_start_exits_2_naming_the_place(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", "http://127.0.0.1:9", (IN_SYNC, DRIFTED_URL))
    config.write_text(config.read_text().replace(f"sdkappid: {DRIFTED_URL[1]}", "sdkappid: 14000x"))
    serve = await Serve.start(config)
    try:
        assert await serve.wait_exit(15) == 2
    finally:
        await serve.close()
    stderr = "".join(serve.stderr)
    assert "apps[1].sdkappid" in stderr
    assert "Traceback" not in stderr + "\n".join(serve.raw)
    assert not serve.find("started")


async def test_a_listen_address_in_use_exits_2_with_a_message(simulator_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", simulator_url, (IN_SYNC,))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        serve = await Serve.start(config, "--listen", f"127.0.0.1:{port}")
        try:
            assert await serve.wait_exit(15) == 2
        finally:
            await serve.close()
    stderr = "".join(serve.stderr)
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in stderr
    assert "Traceback" not in stderr + "\n".join(serve.raw)
    assert serve.find("listen_failed")


# ---- probes ---------------------------------------------------------------------------------------


async def test_health_and_readiness_never_depend_on_tencent(
    simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.yaml", simulator_url, (IN_SYNC,))
    async with running(config) as serve:
        assert await serve.get("/healthz") == (200, "ok\n")
        assert (await serve.get("/readyz"))[0] == 200
        await serve.wait_checks(IN_SYNC[0], 1, after=0)
        mark = serve.mark
        await simulator.stop()
        error = await serve.wait_event("check_error", after=mark, app=IN_SYNC[0])
        assert error["reason"] == "network"
        assert (await serve.get("/readyz"))[0] == 200
        assert (await serve.get("/healthz"))[0] == 200
