"""``callback-monitor demo``: the simulator with sample apps, a matching config, and ``serve`` on it."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.probe_demo import DemoReceivers, ReceiverApp
from monitor.settings import ServeSettings
from monitor.simulator import SAMPLE_DESIRED, Simulator, sample_key, sample_state


def demo_state(receivers: Sequence[ReceiverApp] = ()) -> dict[str, Any]:
    """The simulator's apps: the five samples, and one app per demo receiver, live as desired."""
    state = sample_state()
    commands = list(SAMPLE_DESIRED.commands)
    for app in receivers:
        state["apps"].append(
            {
                "sdkappid": app.sdkappid,
                "name": app.name,
                "key": sample_key(app.sdkappid),
                "callback": {"url": app.url, "commands": commands},
            }
        )
    return state


def demo_config(
    endpoint: str,
    key_dir: Path,
    interval: str,
    receivers: Sequence[ReceiverApp] = (),
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """The desired state the sample apps are compared with (one file, as a user would write it)."""
    desired = {"url": SAMPLE_DESIRED.url, "commands": list(SAMPLE_DESIRED.commands)}
    apps: list[dict[str, Any]] = []
    for app in sample_state()["apps"]:
        entry: dict[str, Any] = {
            "name": app["name"],
            "sdkappid": app["sdkappid"],
            "labels": {"team": "demo"},
        }
        if app["name"] == "demo-no-config":
            entry["callback"] = None
        apps.append(entry)
    for receiver in receivers:
        # Receivers on loopback with the demo's own CA: private addresses allowed, that CA trusted.
        apps.append(
            {
                "name": receiver.name,
                "sdkappid": receiver.sdkappid,
                "labels": {"team": "demo"},
                "policy": {"allowed_hosts": ["127.0.0.1"]},
                "callback": {"url": receiver.url, "commands": desired["commands"]},
                "probe": {
                    "enabled": True,
                    "interval": "15s",
                    "timeout": "5s",
                    "failures_before_alert": 2,
                    "allow_private": True,
                    "ca_file": str(ca_file),
                },
            }
        )
    return {
        "version": 1,
        "defaults": {
            "endpoint": endpoint,
            "interval": interval,
            "timeout": "5s",
            "secret_key_file": str(key_dir / "{sdkappid}"),
            "policy": {"require_https": True, "allowed_hosts": ["hooks.example.com"]},
            "callback": desired,
        },
        "apps": apps,
    }


def write_demo_files(
    directory: Path,
    endpoint: str,
    interval: str,
    receivers: Sequence[ReceiverApp] = (),
    ca_file: Path | None = None,
) -> Path:
    key_dir = directory / "keys"
    key_dir.mkdir(mode=0o700)
    for app in demo_state(receivers)["apps"]:
        path = key_dir / str(app["sdkappid"])
        path.write_text(app["key"] + "\n", encoding="utf-8")
        path.chmod(0o600)
    config_path = directory / "callback-monitor.yaml"
    config = demo_config(endpoint, key_dir, interval, receivers, ca_file)
    config_path.write_text(
        "# written by `callback-monitor demo`: the desired state of the simulator's sample apps\n"
        + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8",
    )
    return config_path


def banner(web_url: str, sim_url: str, config_path: Path) -> str:
    return f"""
callback-monitor demo
  status page   {web_url}
  status JSON   {web_url}status
  metrics       {web_url}metrics
  simulator     {sim_url}   (a fake Tencent API with five sample apps)
  receivers     three HTTPS callback receivers on 127.0.0.1, probed every 15s: one works, one's
                certificate expires in 5 days, one answers 503 (apps demo-receiver-*)
  config        {config_path}

Try a drift: point the in-sync app somewhere else and watch a drift_detected line appear:
  curl -X PUT {sim_url}/_sim/apps/1400000001/callback \\
       -d '{{"url": "https://attacker.example.net/steal", "commands": ["Room.CallbackAfterCreateRoom"]}}'
Stop with Ctrl-C.
"""


async def run_demo(listen: tuple[str, int], sim_listen: tuple[str, int], interval: str) -> int:
    directory = Path(tempfile.mkdtemp(prefix="callback-monitor-demo-"))
    receivers = DemoReceivers(directory)
    simulator = Simulator()
    try:
        apps = await receivers.start()
        simulator.load_dict(demo_state(apps), source="demo_state()")
        sim_url = await simulator.start(*sim_listen)
        config_path = write_demo_files(directory, sim_url, interval, apps, receivers.ca_file)
        config = load_config(config_path)
        settings = ServeSettings(config=config_path, listen=listen)
        host = "127.0.0.1" if listen[0] in ("0.0.0.0", "") else listen[0]  # noqa: S104 - shown only
        print(banner(f"http://{host}:{listen[1]}/", sim_url, config_path), file=sys.stderr, flush=True)
        return await Daemon(settings, config).run()
    finally:
        await simulator.stop()
        await receivers.stop()
        shutil.rmtree(directory, ignore_errors=True)
