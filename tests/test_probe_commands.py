"""``check`` with receiver probes, through the real command: findings, exit status, --no-probe."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from monitor.probe_receiver import Receiver
from monitor.tencent.model import CallbackConfig
from tests.test_commands import TOKEN, Lab

CREATE = "Room.CallbackAfterCreateRoom"


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    working, failing = Receiver(default=204), Receiver(default=503)
    await working.start()
    await failing.start()
    yield working, failing
    await working.stop()
    await failing.stop()


def add_probed(lab: Lab, name: str, sdkappid: int, port: int, **probe: object) -> None:
    callback = CallbackConfig(f"http://127.0.0.1:{port}/hook?token={TOKEN}", (CREATE,))
    lab.add(
        name,
        sdkappid,
        callback,
        callback,
        policy={"require_https": False, "allowed_hosts": ["127.0.0.1"]},
        probe={"enabled": True, "allow_private": True, "timeout": "5s", **probe},
    )


async def test_a_failing_receiver_exits_1_and_is_reported_and_no_probe_skips_it(
    lab: Lab, receivers: tuple[Receiver, Receiver]
) -> None:
    working, failing = receivers
    add_probed(lab, "works", 1400000101, working.port)
    add_probed(lab, "answers-503", 1400000102, failing.port)
    config = lab.write()

    run = await lab.run("check", "--config", str(config), "--format", "json")
    assert run.code == 1, run.err
    apps = {a["name"]: a for a in json.loads(run.out)["apps"]}
    assert apps["works"]["result"] == "in_sync"
    assert apps["works"]["probe"]["up"] is True
    assert apps["works"]["probe"]["status"] == 204
    assert apps["answers-503"]["result"] == "drift"
    (finding,) = apps["answers-503"]["findings"]
    assert (finding["kind"], finding["severity"]) == ("endpoint_unreachable", "critical")
    assert finding["observed"] == "status failed: answered 503, expected 100-499 (1 probe in a row)"
    assert [s.method for s in working.seen + failing.seen] == ["HEAD", "HEAD"]

    text = await lab.run("check", "--config", str(config))
    assert text.code == 1
    assert "endpoint_unreachable (critical)" in text.out

    skipped = await lab.run("check", "--config", str(config), "--no-probe")
    assert skipped.code == 0, skipped.out
    assert len(working.seen + failing.seen) == 4  # the two runs above, none from --no-probe
    from_env = await lab.run("check", "--config", str(config), env={"CALLBACK_MONITOR_NO_PROBE": "yes"})
    assert from_env.code == 0


async def test_an_ignored_endpoint_kind_is_shown_but_exits_0(
    lab: Lab, receivers: tuple[Receiver, Receiver]
) -> None:
    _, failing = receivers
    add_probed(lab, "answers-503", 1400000102, failing.port)
    lab.apps[-1]["ignore"] = ["endpoint_unreachable"]
    run = await lab.run("check", "--config", str(lab.write()), "--format", "json")
    assert run.code == 0, run.out
    (finding,) = json.loads(run.out)["apps"][0]["findings"]
    assert (finding["kind"], finding["ignored"]) == ("endpoint_unreachable", True)
