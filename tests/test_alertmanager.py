"""Alerts reach a real Alertmanager: ``serve`` runs as a subprocess against the simulator and posts to
Debian's ``prometheus-alertmanager`` on loopback; the tests read the alerts back from its API.

Without the binary these tests skip, except under CI (``CI`` set), where they fail: ``.ci/run``
installs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from monitor.simulator import SAMPLE_DESIRED, Simulator
from monitor.tencent.model import CallbackConfig
from tests.serve_helpers import (
    DRIFTED_URL,
    IN_SYNC,
    Serve,
    config_dict,
    eventually,
    metric,
    running,
    write_keys,
)

pytestmark = pytest.mark.slow

BINARY = "prometheus-alertmanager"
TOKEN = "s3cr3t-T0KEN-value"
EXTERNAL = "https://monitor.example.com"
STATIC = {"source": "callback-monitor", "cluster": "test"}
AM_CONFIG = """\
route:
  receiver: nobody
  group_wait: 1h
receivers:
  - name: nobody
"""


class Alertmanager:
    """One ``prometheus-alertmanager`` process on a free loopback port, clustering off, state in tmp."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, log: asyncio.Task[None]) -> None:
        self.proc = proc
        self.url = url
        self._log = log
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    @classmethod
    async def start(cls, workdir: Path) -> Alertmanager:
        binary = shutil.which(BINARY) or (
            f"/usr/bin/{BINARY}" if os.path.exists(f"/usr/bin/{BINARY}") else None
        )
        if binary is None:
            message = f"{BINARY} is not installed (apt-get install {BINARY})"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "alertmanager.yml").write_text(AM_CONFIG, encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            "--web.listen-address=127.0.0.1:0",  # it logs the port it got
            "--cluster.listen-address=",  # no gossip port: a single, private instance
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        seen: list[str] = []
        try:
            async with asyncio.timeout(15):
                async for raw in proc.stderr:
                    line = raw.decode("utf-8", "replace")
                    seen.append(line)
                    if found := re.search(r'msg="Listening on" address=(127\.0\.0\.1:\d+)', line):
                        break
                else:
                    raise AssertionError("alertmanager exited:\n" + "".join(seen))
        except BaseException:
            proc.kill()
            await proc.wait()
            raise
        # Keep reading its log, so that it never blocks on a full pipe.
        am = cls(proc, f"http://{found.group(1)}", asyncio.create_task(_drain(proc.stderr)))
        await eventually(am.ready, within=10, what="alertmanager ready")
        return am

    async def ready(self) -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with self._session.get(self.url + "/-/ready") as response:
                return response.status == 200
        return False

    async def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds as active (resolved ones are not listed) with these labels."""
        filters = [("filter", f'{k}="{v}"') for k, v in labels.items()]
        async with self._session.get(self.url + "/api/v2/alerts", params=filters) as response:
            assert response.status == 200, await response.text()
            found: list[dict[str, Any]] = await response.json()
        return found

    async def stop(self) -> None:
        await self._session.close()
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(self._log, return_exceptions=True)


async def _drain(stream: asyncio.StreamReader) -> None:
    async for _line in stream:
        pass


@pytest.fixture
async def alertmanager(tmp_path: Path) -> AsyncIterator[Alertmanager]:
    am = await Alertmanager.start(tmp_path / "alertmanager")
    try:
        yield am
    finally:
        await am.stop()


def write_config(
    path: Path, endpoint: str, am_url: str, apps: tuple[tuple[str, int], ...], resend: str = "1m"
) -> Path:
    keys = path.parent / "keys"
    write_keys(keys, apps)
    config = config_dict(endpoint, keys, apps)
    config["alerting"] = {
        "external_url": EXTERNAL,
        "alertmanager": {"url": am_url, "resend_interval": resend, "timeout": "2s", "labels": STATIC},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


async def sent(serve: Serve) -> float:
    return metric(await serve.metrics(), "callback_monitor_alerts_sent_total", sink="alertmanager") or 0.0


async def test_a_drift_is_an_alert_in_alertmanager_until_it_is_fixed(
    alertmanager: Alertmanager, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.yaml", simulator_url, alertmanager.url, (IN_SYNC,))
    name, sdkappid = IN_SYNC
    async with running(config) as serve:
        await serve.wait_checks(name, 1, after=0)
        assert await alertmanager.alerts(app=name) == []

        simulator.set_callback(sdkappid, CallbackConfig(f"https://evil.example.net/x?token={TOKEN}", ()))
        found = await eventually(
            lambda: alertmanager.alerts(app=name, alertname="CallbackConfigDrift", kind="url_mismatch"),
            what="the url_mismatch alert in Alertmanager",
        )
        (alert,) = found
        assert alert["labels"] == {
            "alertname": "CallbackConfigDrift",
            "app": name,
            "sdkappid": str(sdkappid),
            "kind": "url_mismatch",
            "severity": "critical",
            "team": "rtc",
            "env": "test",
            **STATIC,
        }
        assert alert["status"]["state"] == "active"
        assert alert["generatorURL"] == f"{EXTERNAL}/#app-{name}"
        assert alert["annotations"]["description"] == (
            f"Desired: {SAMPLE_DESIRED.url}. Observed: https://evil.example.net/x?token=REDACTED."
        )
        every = await eventually(lambda: _at_least(alertmanager, 3, app=name), what="all three alerts")
        found_kinds = sorted(
            (
                a["labels"]["alertname"],
                a["labels"].get("kind") or a["labels"]["policy"],
                a["labels"]["severity"],
            )
            for a in every
        )
        assert found_kinds == [
            ("CallbackConfigDrift", "missing_commands", "warning"),
            ("CallbackConfigDrift", "url_mismatch", "critical"),
            ("CallbackPolicyViolation", "host_not_allowed", "critical"),
        ]

        simulator.set_callback(sdkappid, SAMPLE_DESIRED)
        await eventually(lambda: _none(alertmanager, app=name), what="the alerts resolved")
        assert await sent(serve) >= 6  # three firing, three resolved
        for line in serve.raw:
            assert TOKEN not in line


async def _at_least(am: Alertmanager, count: int, **labels: str) -> list[dict[str, Any]] | None:
    found = await am.alerts(**labels)
    return found if len(found) >= count else None


async def _none(am: Alertmanager, **labels: str) -> bool:
    return await am.alerts(**labels) == []


async def test_restarting_the_monitor_does_not_duplicate_alerts(
    alertmanager: Alertmanager, simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.yaml", simulator_url, alertmanager.url, (DRIFTED_URL,))
    name = DRIFTED_URL[0]
    async with running(config) as serve:
        before = await eventually(lambda: _at_least(alertmanager, 2, app=name), what="the drift alerts")
        serve.signal(signal.SIGTERM)
        assert await serve.wait_exit(10) == 0
    async with running(config) as serve:
        # The new process detects the same drift again and posts it with a later startsAt.
        await eventually(lambda: _sent_at_least(serve, 2), what="the restarted monitor's alerts")
        after = await alertmanager.alerts(app=name)
    assert len(after) == len(before) == 2
    assert {a["fingerprint"]: a["startsAt"] for a in after} == {
        a["fingerprint"]: a["startsAt"] for a in before
    }
    assert all(a["updatedAt"] > b["updatedAt"] for a, b in zip(_sorted(after), _sorted(before), strict=True))


async def _sent_at_least(serve: Serve, count: float) -> bool:
    return await sent(serve) >= count


def _sorted(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(alerts, key=lambda a: str(a["fingerprint"]))
