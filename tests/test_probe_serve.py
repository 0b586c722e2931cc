"""``serve`` with receiver probes, as a real process: alert lines, /metrics, /status, recovery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from monitor.probe_receiver import Receiver
from monitor.simulator import Simulator, sample_key
from monitor.tencent.model import CallbackConfig
from tests.serve_helpers import metric, running

pytestmark = pytest.mark.slow

SDKAPPID = 1400000201
TOKEN = "serve-probe-token"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(default=503)
    await receiver.start()
    yield receiver
    await receiver.stop()


def write_config(tmp_path: Path, sim_url: str, url: str) -> Path:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / str(SDKAPPID)).write_text(sample_key(SDKAPPID) + "\n")
    doc = {
        "version": 1,
        "defaults": {"endpoint": sim_url, "interval": "1s", "secret_key_file": str(keys / "{sdkappid}")},
        "apps": [
            {
                "name": "probed",
                "sdkappid": SDKAPPID,
                "policy": {"require_https": False, "allowed_hosts": ["127.0.0.1"]},
                "callback": {"url": url, "commands": ["Room.CallbackAfterCreateRoom"]},
                "probe": {
                    "enabled": True,
                    "interval": "1s",
                    "timeout": "500ms",
                    "failures_before_alert": 2,
                    "allow_private": True,
                },
            }
        ],
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_a_receiver_that_fails_alerts_shows_in_metrics_and_status_then_recovers(
    simulator: Simulator, simulator_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{receiver.port}/hook?token={TOKEN}"
    simulator.add_app(
        SDKAPPID, sample_key(SDKAPPID), callback=CallbackConfig(url, ("Room.CallbackAfterCreateRoom",))
    )
    async with running(write_config(tmp_path, simulator_url, url)) as serve:
        detected = await serve.wait_event("drift_detected", kind="endpoint_unreachable")
        assert detected["severity"] == "critical"
        assert detected["desired"] == f"http://127.0.0.1:{receiver.port}/hook?token=REDACTED"
        assert "(2 probes in a row)" in detected["observed"]
        assert len(serve.find("probe_finished")) >= 2

        samples = await serve.metrics()
        assert metric(samples, "callback_monitor_endpoint_up", app="probed", sdkappid=str(SDKAPPID)) == 0
        assert (
            metric(samples, "callback_monitor_endpoint_http_status", app="probed", sdkappid=str(SDKAPPID))
            == 503
        )
        assert metric(samples, "callback_monitor_endpoint_probe_failures_total", phase="status")
        probed = await serve.app_status("probed")
        assert probed["probe"]["status"] == 503
        assert [f["kind"] for f in probed["findings"]] == ["endpoint_unreachable"]

        receiver.default = 204
        await serve.wait_event("drift_resolved", kind="endpoint_unreachable")
        samples = await serve.metrics()
        assert metric(samples, "callback_monitor_endpoint_up", app="probed", sdkappid=str(SDKAPPID)) == 1
    text = "\n".join(str(line) for line in serve.lines)
    assert TOKEN not in text
