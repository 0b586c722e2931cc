"""The alert pipeline as on-call runs it: real Prometheus and Alertmanager processes and a webhook.

Prometheus loads ``deploy/prometheus/rules.yaml`` with only its ``for`` and ``keep_firing_for``
durations divided by ``SPEED`` and scrapes ``serve`` every half second; Alertmanager routes every
alert to a notification of its own and sends it, resolved ones too, to a webhook receiver (aiohttp
on port 0) that records each one with the moment it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from tests.serve_helpers import ROOT, eventually

RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
SPEED = 20  # rule durations run this many times faster: `for: 2m` becomes 6 s
SCRAPE = "500ms"


def free_port() -> int:
    """A loopback port nobody listens on now (for a server whose port must survive restarts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary(name: str) -> str:
    """A Debian package's command; skips without it, except under CI where it fails."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if found is None:
        message = f"{name} is not installed (apt-get install {name})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def seconds(duration: str) -> float:
    """A Prometheus duration such as 90s, 2m, 1m30s or 500ms, in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)(ms|s|m|h)", duration)
    assert parts, duration
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def scaled(duration: str) -> float:
    return seconds(duration) / SPEED


def fast_rules() -> dict[str, Any]:
    """rules.yaml with every `for` and `keep_firing_for` divided by SPEED; expressions unchanged."""
    data: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in data["groups"]:
        for rule in group["rules"]:
            for field in ("for", "keep_firing_for"):
                if field in rule:
                    rule[field] = f"{round(scaled(rule[field]) * 1000)}ms"
    return data


@dataclass
class Notification:
    """One alert as one webhook call delivered it."""

    at: float  # time.monotonic() on arrival
    status: str  # firing or resolved
    labels: dict[str, str]
    starts_at: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


class Webhook:
    """Alertmanager's webhook receiver: records every alert of every notification."""

    def __init__(self) -> None:
        self.received: list[Notification] = []
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.json()
        now = time.monotonic()
        for alert in body["alerts"]:
            self.received.append(Notification(now, alert["status"], alert["labels"], alert["startsAt"]))
        self._changed.set()
        return web.Response(status=200)

    def of(self, name: str, status: str | None = None) -> list[Notification]:
        return [n for n in self.received if n.name == name and (status is None or n.status == status)]

    async def wait_for(self, name: str, status: str = "firing", *, within: float) -> Notification:
        """The first notification of alert ``name`` with ``status``, waiting up to ``within`` s."""

        async def found() -> Notification:
            while not (hits := self.of(name, status)):
                self._changed.clear()
                await self._changed.wait()
            return hits[0]

        try:
            return await asyncio.wait_for(found(), within)
        except TimeoutError:
            seen = [(n.name, n.status) for n in self.received]
            raise AssertionError(f"no {status} {name} within {within}s; received {seen}") from None

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Process:
    """A server process on a loopback port, its output drained, stopped at the end."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, what: str) -> None:
        self.proc = proc
        self.url = url
        self.what = what
        self.output: list[str] = []
        assert proc.stdout is not None
        self._drain = asyncio.create_task(self._read(proc.stdout))

    @classmethod
    async def start(cls, what: str, *args: str, port: int) -> Process:
        proc = await asyncio.create_subprocess_exec(
            binary(what),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        process = cls(proc, f"http://127.0.0.1:{port}", what)
        try:
            await eventually(process.ready, within=20, what=f"{what} ready")
        except BaseException:
            await process.stop()
            raise
        return process

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.output.append(raw.decode("utf-8", "replace"))

    async def ready(self) -> bool:
        if self.proc.returncode is not None:
            raise AssertionError(f"{self.what} exited:\n" + "".join(self.output[-20:]))
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(self.url + "/-/ready") as response,
            ):
                return response.status == 200
        return False

    async def get_json(self, path: str, **params: str) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(self.url + path, params=params) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(self._drain, return_exceptions=True)


async def start_alertmanager(workdir: Path, webhook_url: str) -> Process:
    """Every alert is its own group (group_by: ['...']), notified at once, resolved ones too."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "route": {
            "receiver": "record",
            "group_by": ["..."],
            "group_wait": "100ms",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "record", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    return await Process.start(
        "prometheus-alertmanager",
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        port=port,
    )


async def start_prometheus(workdir: Path, target_port: int, alertmanager_url: str) -> Process:
    """Scrapes 127.0.0.1:target_port as job callback-monitor; evaluates the fast rules."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yaml").write_text(yaml.safe_dump(fast_rules(), sort_keys=False))
    config = {
        "global": {"scrape_interval": SCRAPE, "scrape_timeout": SCRAPE, "evaluation_interval": SCRAPE},
        "rule_files": [str(workdir / "rules.yaml")],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager_url.removeprefix("http://")]}]}]
        },
        "scrape_configs": [
            {"job_name": "callback-monitor", "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    return await Process.start(
        "prometheus",
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        port=port,
    )


@dataclass
class Stack:
    """Prometheus -> Alertmanager -> webhook, waiting for a ``serve`` on ``serve_port``."""

    webhook: Webhook
    alertmanager: Process
    prometheus: Process
    serve_port: int

    async def am_alerts(self, name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.alertmanager.get_json(
            "/api/v2/alerts", filter=f'alertname="{name}"'
        )
        return found


@contextlib.asynccontextmanager
async def pipeline(workdir: Path) -> AsyncIterator[Stack]:
    webhook = Webhook()
    await webhook.start()
    started: list[Process] = []
    try:
        am = await start_alertmanager(workdir / "alertmanager", webhook.url)
        started.append(am)
        serve_port = free_port()
        prometheus = await start_prometheus(workdir / "prometheus", serve_port, am.url)
        started.append(prometheus)
        yield Stack(webhook, am, prometheus, serve_port)
    finally:
        for process in reversed(started):
            await process.stop()
        await webhook.stop()
