"""``check`` with probes: each shared URL probed once, endpoint findings in the report and exit status."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.config import Config, load_config
from monitor.drift import Verdict
from monitor.probe_check import probe_apps
from monitor.probe_receiver import Receiver
from monitor.probe_shared import ProbeRunner
from monitor.report import AppResult, exit_code, render_text, to_json
from monitor.state import Outcome

SECRET = "probe-check-token"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(default=503)
    await receiver.start()
    yield receiver
    await receiver.stop()


def config(tmp_path: Path, url: str) -> Config:
    text = f"""\
        version: 1
        defaults:
          endpoint: http://127.0.0.1:9
          secret_key_env: KEY
          policy: {{require_https: false}}
          callback: {{url: "{url}", commands: [Room.CallbackAfterCreateRoom]}}
          probe: {{enabled: true, allow_private: true, timeout: 5s}}
        apps:
          - {{name: one, sdkappid: 1}}
          - {{name: two, sdkappid: 2}}
          - {{name: quiet, sdkappid: 3, probe: {{enabled: false}}}}
          - {{name: ignoring, sdkappid: 4, ignore: [endpoint_unreachable]}}
          - {{name: none, sdkappid: 5, callback: null}}
        """
    path = tmp_path / "monitor.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path, environ={"KEY": "made-up"})


async def test_apps_sharing_a_url_are_probed_once_and_one_failure_counts(
    receiver: Receiver, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{receiver.port}/hook?token={SECRET}"
    runner = ProbeRunner()
    states = await probe_apps(config(tmp_path, url).apps, runner)
    assert runner.started == 1
    assert len(receiver.seen) == 1
    assert sorted(states) == ["ignoring", "one", "two"]
    assert [f.kind.value for f in states["one"].counted] == ["endpoint_unreachable"]
    assert states["ignoring"].counted == ()
    assert [f.ignored for f in states["ignoring"].findings] == [True]


async def test_the_report_shows_the_probe_and_exits_1_for_an_endpoint_finding(
    receiver: Receiver, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{receiver.port}/hook?token={SECRET}"
    cfg = config(tmp_path, url)
    states = await probe_apps(cfg.apps, ProbeRunner())
    in_sync = Outcome(started=0.0, finished=0.5, verdict=Verdict(findings=(), observed=None))
    results = [AppResult(app, in_sync, states.get(app.name)) for app in cfg.apps]
    assert [r.result for r in results] == ["drift", "drift", "in_sync", "in_sync", "in_sync"]
    assert exit_code(results) == 1

    doc = to_json(results, source=cfg.source, generated=0.0)
    one = doc["apps"][0]
    (finding,) = one["findings"]
    assert finding["kind"] == "endpoint_unreachable"
    assert finding["severity"] == "critical"
    assert finding["desired"] == f"http://127.0.0.1:{receiver.port}/hook?token=REDACTED"
    assert finding["observed"] == "status failed: answered 503, expected 100-499 (1 probe in a row)"
    probe = one["probe"]
    assert (probe["up"], probe["phase"], probe["status"], probe["cert_not_after"]) == (
        False,
        "status",
        503,
        None,
    )
    assert list(probe["phases"]) == ["dns", "address", "connect", "request", "response"]
    assert doc["apps"][2]["probe"] is None
    assert SECRET not in json.dumps(doc)

    text = render_text(results)
    assert "endpoint_unreachable (critical)" in text
    assert "observed   status failed: answered 503, expected 100-499 (1 probe in a row)" in text
    assert SECRET not in text
