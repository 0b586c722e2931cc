"""Shutdown and restart: SIGTERM during a storm of hanging requests ends the process with 0 within
5 seconds, and a restarted daemon re-establishes every app's verdict with the same alert fingerprints.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from monitor.simulator import Faults, Simulator
from tests.reliability.lab import FIGURES, Fleet, Leaks, SimServer, lines_of
from tests.serve_helpers import Serve, eventually, running

pytestmark = pytest.mark.slow

SHAPES = ("in_sync", "foreign", "missing")


def keep(leaks: Leaks, serve: Serve, what: str) -> None:
    leaks.output(f"serve stdout ({what})", "\n".join(serve.raw))
    leaks.output(f"serve stderr ({what})", "".join(serve.stderr))


async def test_sigterm_during_a_storm_of_hanging_requests_exits_0_within_5_seconds(
    tmp_path: Path, leaks: Leaks
) -> None:
    sim = Simulator(seed=51)
    fleet = Fleet(sim, tmp_path, leaks, first_sdkappid=1400600000)
    for i in range(60):
        fleet.add(f"storm-{i}", SHAPES[i % 3])
    sim.set_faults(Faults(hang_rate=1.0))
    async with SimServer(sim, leaks) as server:
        config = fleet.write(server.url, timeout="30s", limits={"concurrency": 48})
        async with running(config) as serve:
            # Every slot of the concurrency limit holds a request the API never answers.
            await eventually(lambda: sim.count("get_callback") >= 48, within=15, what="48 hanging requests")
            started = time.monotonic()
            serve.signal(signal.SIGTERM)
            code = await serve.wait_exit(10)
            elapsed = time.monotonic() - started
        keep(leaks, serve, "storm")
    assert code == 0
    assert elapsed < 5, elapsed
    (stopping,) = serve.find("stopping")
    assert stopping["running_checks"] >= 48
    assert serve.find("stopped")
    assert "Traceback" not in "".join(serve.stderr) + "\n".join(serve.raw)
    assert not serve.find("background_task_failed")
    FIGURES["SIGTERM in a storm"] = (
        f"{stopping['running_checks']} checks hanging on the API: exit 0 after {elapsed:.2f} s"
    )


async def test_a_restart_re_establishes_every_verdict_with_the_same_fingerprints(
    tmp_path: Path, leaks: Leaks
) -> None:
    sim = Simulator(seed=52)
    fleet = Fleet(sim, tmp_path, leaks, first_sdkappid=1400700000)
    for i in range(20):
        fleet.add(f"restart-{i}", SHAPES[i % 3])
    runs = []
    async with SimServer(sim, leaks) as server:
        config = fleet.write(server.url)
        for _ in range(2):
            async with running(config) as serve:
                for name in fleet.apps:
                    await serve.wait_checks(name, 2, after=0)
                status = await serve.status()
                serve.signal(signal.SIGTERM)
                assert await serve.wait_exit(10) == 0
            keep(leaks, serve, "restart")
            verdicts = {
                a["name"]: (a["state"], a["stale"], frozenset(f["kind"] for f in a["findings"]))
                for a in status["apps"]
            }
            alerts = {
                (a["app"], a["kind"]): a["fingerprint"] for a in lines_of(serve.lines, "drift_detected")
            }
            runs.append((verdicts, alerts))
    (first, first_alerts), (second, second_alerts) = runs
    assert first == {name: (app.state, False, app.findings) for name, app in fleet.apps.items()}
    assert second == first
    # The log sink keeps no state across a restart, so it says each finding again; a receiver that
    # groups by fingerprint (Alertmanager) sees the same alert, not a new one.
    assert second_alerts == first_alerts
    assert len(first_alerts) == sum(len(app.findings) for app in fleet.apps.values())


# That a restart does not duplicate alerts already in Alertmanager is proven against a real one in
# tests/test_alertmanager.py::test_restarting_the_monitor_does_not_duplicate_alerts.
