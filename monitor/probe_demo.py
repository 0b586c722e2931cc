"""The demo's callback receivers on loopback: one works, one's certificate expires soon, one answers 503."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.probe_certs import make_ca, make_leaf, write_pair
from monitor.probe_receiver import Receiver

PATH = "/tencent/room"
HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class ReceiverApp:
    """A demo app whose desired (and live) callback URL is one of the demo's receivers."""

    name: str
    sdkappid: int
    url: str


# name, SDKAppID, days the receiver's certificate has left, the status it answers with
PLAN: tuple[tuple[str, int, float, int], ...] = (
    ("demo-receiver-ok", 1400000101, 365.0, 204),
    ("demo-receiver-cert-expiring", 1400000102, 5.0, 204),
    ("demo-receiver-503", 1400000103, 365.0, 503),
)


class DemoReceivers:
    """Makes a demo CA and an intermediate in ``directory`` and starts one HTTPS receiver per plan entry."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.ca_file = directory / "demo-ca.pem"
        self._clock = clock
        self._receivers: list[Receiver] = []

    async def start(self) -> tuple[ReceiverApp, ...]:
        now = datetime.fromtimestamp(self._clock(), UTC).replace(microsecond=0)
        day = timedelta(days=1)
        root = make_ca("callback-monitor demo CA", not_before=now - day, not_after=now + 3650 * day)
        inter = make_ca(
            "callback-monitor demo intermediate",
            not_before=now - day,
            not_after=now + 1825 * day,
            issuer=root,
        )
        write_pair(self.directory, "demo-ca", root)
        apps: list[ReceiverApp] = []
        for name, sdkappid, days_left, status in PLAN:
            leaf = make_leaf(HOSTS, not_before=now - day, not_after=now + days_left * day, issuer=inter)
            cert_file, key_file = write_pair(self.directory, name, leaf, [inter])
            receiver = Receiver(default=status, cert_file=cert_file, key_file=key_file)
            port = await receiver.start()
            self._receivers.append(receiver)
            apps.append(ReceiverApp(name, sdkappid, f"https://127.0.0.1:{port}{PATH}"))
        return tuple(apps)

    async def stop(self) -> None:
        for receiver in reversed(self._receivers):
            await receiver.stop()
        self._receivers.clear()
