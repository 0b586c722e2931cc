"""Shutdown, restart and reload: SIGTERM during a storm of hanging requests ends the process with 0
within 5 seconds, a restarted daemon re-establishes every app's verdict with the same alert
fingerprints, a reload that cannot finish or that breaks the loader is a rejected reload (the last
good config runs on), nothing stuck keeps SIGTERM from ending the process, and a background task
that fails ends it with status 1, never 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from monitor.config import Config, load_config
from monitor.daemon import Daemon
from monitor.settings import ServeSettings
from monitor.simulator import Faults, Simulator
from tests.reliability.lab import FIGURES, Fleet, Leaks, SimServer, lines_of
from tests.serve_helpers import Serve, config_yaml, eventually, running, write_keys

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


ONE_APP = (("lifecycle-one", 1400800001),)


def one_app_config(directory: Path) -> Path:
    """A config of one app checked hourly against a port where nothing listens (no Tencent needed)."""
    write_keys(directory / "keys", ONE_APP)
    path = directory / "monitor.yaml"
    path.write_text(config_yaml("http://127.0.0.1:9", directory / "keys", ONE_APP, interval="1h"))
    return path


def make_fifo(path: Path) -> None:
    """Put a FIFO where the config file was: opening it for reading blocks until a writer comes."""
    path.unlink()
    os.mkfifo(path)


def release_fifo(path: Path) -> None:
    """Let a reader blocked on the FIFO go (a writer opens and closes it), then put a file back."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


async def test_sigterm_ends_serve_within_5_seconds_while_a_reload_hangs_on_a_fifo(tmp_path: Path) -> None:
    config = one_app_config(tmp_path)
    async with running(config) as serve:
        make_fifo(config)
        try:
            serve.signal(signal.SIGHUP)
            await asyncio.sleep(0.5)  # the reload is now blocked opening the FIFO
            started = time.monotonic()
            serve.signal(signal.SIGTERM)
            code = await serve.wait_exit(15)
            elapsed = time.monotonic() - started
        finally:
            release_fifo(config)
    assert elapsed < 5, elapsed
    assert code == 0, serve.tail()
    FIGURES["SIGTERM while a reload hangs on a FIFO"] = f"exit {code} after {elapsed:.2f} s"


@contextlib.asynccontextmanager
async def daemon_running(path: Path, **kwargs: Any) -> AsyncIterator[tuple[Daemon, asyncio.Task[int]]]:
    """A Daemon in this process on 127.0.0.1:0, ready; stopped (if still running) on exit."""
    settings = ServeSettings(config=path, listen=("127.0.0.1", 0), watch_interval=3600)
    daemon = Daemon(settings, load_config(path), **kwargs)
    task = asyncio.create_task(daemon.run())
    await eventually(lambda: daemon.store.ready or task.done(), within=10, what="the daemon ready")
    try:
        yield daemon, task
    finally:
        daemon.stop()
        await asyncio.wait_for(asyncio.shield(task), 10)


async def test_a_reload_that_cannot_finish_is_a_failed_reload_and_the_next_one_works(tmp_path: Path) -> None:
    """A read that never ends (a hung network file system; here a loader held on an event) is a failed
    reload after the deadline, and a later reload works."""
    config = one_app_config(tmp_path)
    good = config.read_text()
    held = threading.Event()

    def hanging(path: Path, **kwargs: Any) -> Config:
        held.wait(30)
        return load_config(path, **kwargs)

    async with daemon_running(config, reload_timeout=0.5, loader=hanging) as (daemon, _task):
        try:
            with capture_logs() as logs:
                started = time.monotonic()
                assert await daemon.reload("SIGHUP") is False
                elapsed = time.monotonic() - started
        finally:
            held.set()
        assert elapsed < 2, elapsed
        assert daemon.store.reload.successful is False
        assert "cannot be read" in daemon.store.reload.last_error
        (failed,) = [line for line in logs if line["event"] == "config_reload_failed"]
        assert failed["keeping"] == "the last good config"
        assert list(daemon.store.states) == ["lifecycle-one"]
        samples = daemon.metrics.render().decode()
        assert "callback_monitor_config_last_reload_successful 0.0" in samples
        config.write_text(good.replace("lifecycle-one", "lifecycle-two"))
        assert await daemon.reload("file changed") is True
        assert list(daemon.store.states) == ["lifecycle-two"]


async def test_a_fifo_at_the_config_path_is_a_failed_reload_at_once(tmp_path: Path) -> None:
    config = one_app_config(tmp_path)
    good = config.read_text()
    async with daemon_running(config) as (daemon, _task):
        make_fifo(config)
        try:
            started = time.monotonic()
            assert await daemon.reload("SIGHUP") is False
            elapsed = time.monotonic() - started
        finally:
            release_fifo(config)
        assert elapsed < 2, elapsed
        assert "is a named pipe, not a regular file" in daemon.store.reload.last_error
        assert list(daemon.store.states) == ["lifecycle-one"]
        config.unlink()
        config.write_text(good.replace("lifecycle-one", "lifecycle-two"))
        assert await daemon.reload("file changed") is True
        assert list(daemon.store.states) == ["lifecycle-two"]


async def test_a_loader_that_breaks_is_a_rejected_reload_not_the_end(tmp_path: Path) -> None:
    config = one_app_config(tmp_path)
    calls = 0

    def broken(path: Path, **kwargs: Any) -> Config:
        nonlocal calls
        calls += 1
        raise KeyError("maybe")  # what a loader bug looks like: anything but ConfigError

    async with daemon_running(config, loader=broken) as (daemon, task):
        before = daemon.store.config
        with capture_logs() as logs:
            assert await daemon.reload("SIGHUP") is False
        assert calls == 1
        assert daemon.store.config is before
        assert daemon.store.reload.successful is False
        assert daemon.store.reload.last_error.endswith("the config loader failed (KeyError)")
        events = [line["event"] for line in logs]
        assert events == ["config_loader_failed", "config_reload_failed"]
        assert not task.done()
    assert task.result() == 0


async def test_a_background_task_that_fails_ends_the_daemon_with_status_1(tmp_path: Path) -> None:
    config = one_app_config(tmp_path)

    async def fails() -> None:
        raise RuntimeError("a bug in a background task")

    with capture_logs() as logs:
        async with daemon_running(config) as (daemon, task):
            daemon.spawn(fails(), "doomed")
            code = await asyncio.wait_for(asyncio.shield(task), 10)
    assert code == 1
    (failed,) = [line for line in logs if line["event"] == "background_task_failed"]
    assert (failed["task"], failed["error"], failed["log_level"]) == ("doomed", "RuntimeError", "error")
    (stopped,) = [line for line in logs if line["event"] == "stopped"]
    assert stopped["exit_status"] == 1


async def test_the_exit_deadline_ends_a_process_whose_main_thread_is_stuck() -> None:
    """The last line of defence behind SIGTERM: once armed, nothing the process does can outlast it."""
    code = (
        "import threading, time\n"
        "from monitor.deadlines import ExitDeadline\n"
        "ExitDeadline(0.5, code=1).arm()\n"
        "threading.Event().wait()  # stuck for good, as a join on a hanging thread would be\n"
    )
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 10)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert 0.5 <= elapsed < 5, elapsed
    assert (
        err.decode()
        == "callback-monitor: error: shutdown did not finish within 0.5s; exiting with status 1\n"
    )
