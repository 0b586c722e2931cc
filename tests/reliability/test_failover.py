"""Failover: when the primary regional host cannot be reached (its name does not resolve, or nothing
listens), each check goes to the region's backup host and succeeds; the ``api_failover`` log line
and ``callback_monitor_api_requests_total`` (a ``network`` attempt, then a good one) say so.

The config cannot name a backup host: it comes from the region table. The DNS case therefore uses
the real singapore entry with a resolver that knows only the backup host (on 127.0.0.1, over https
with the test CA); the refused case builds each app's endpoints by hand around a closed port.
"""

from __future__ import annotations

import dataclasses
import socket
import traceback
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from prometheus_client.parser import text_string_to_metric_families

from monitor.checker import Checker
from monitor.config import AppConfig, load_config
from monitor.errors import NetworkError, TencentError
from monitor.metrics import Metrics
from monitor.settings import tls_context
from monitor.simulator import Simulator
from monitor.store import Store
from monitor.tencent.client import RetryPolicy, RoomConfigClient
from monitor.tencent.regions import REGIONS
from tests.reliability.lab import FIGURES, Certs, Fleet, Leaks, SimServer

SINGAPORE = REGIONS["singapore"]
CHECKS_PER_APP = 3


class LoopbackHosts(AbstractResolver):
    """A resolver that knows a few names, each at a port of 127.0.0.1; any other name does not exist."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.ports:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=self.ports[host],
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        pass


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def api_requests(metrics: Metrics) -> dict[str, float]:
    """callback_monitor_api_requests_total of get_callback by code."""
    text = metrics.render().decode()
    return {
        sample.labels["code"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "callback_monitor_api_requests_total" and sample.labels["action"] == "get_callback"
    }


@pytest.fixture
def fleet(tmp_path: Path, leaks: Leaks) -> Fleet:
    fleet = Fleet(Simulator(seed=31), tmp_path, leaks, first_sdkappid=1400400000)
    for i, shape in enumerate(["in_sync", "foreign", "missing", "in_sync"]):
        fleet.add(f"failover-{i}", shape)
    return fleet


async def check_all(fleet: Fleet, checker: Checker, apps: tuple[AppConfig, ...]) -> list[dict[str, Any]]:
    """Every app checked CHECKS_PER_APP times: each check reaches the app's true verdict."""
    with structlog.testing.capture_logs() as logs:
        for _ in range(CHECKS_PER_APP):
            for app in apps:
                outcome = await checker.check(app)
                assert outcome.verdict is not None, outcome.error
                assert (
                    frozenset(f.kind.value for f in outcome.verdict.counted) == fleet.apps[app.name].findings
                )
    return logs


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(Store(), version="test", process=False)


async def test_a_primary_host_that_does_not_resolve_fails_over_to_the_regions_backup_host(
    fleet: Fleet, certs: Certs, leaks: Leaks, metrics: Metrics
) -> None:
    async with SimServer(fleet.sim, leaks, ssl_context=certs.server_context()) as server:
        config = load_config(fleet.write(None, region="singapore"))
        assert {(a.endpoint, a.backup_endpoint) for a in config.apps} == {
            (SINGAPORE.endpoint, SINGAPORE.backup_endpoint)
        }
        port = int(server.url.rsplit(":", 1)[1])
        hosts = LoopbackHosts({SINGAPORE.backup_host: port})
        connector = aiohttp.TCPConnector(resolver=hosts, ssl=tls_context(certs.ca))
        async with aiohttp.ClientSession(connector=connector) as session:
            client = RoomConfigClient(session, observer=metrics.observe_request)
            logs = await check_all(fleet, Checker(client), config.apps)

    checks = CHECKS_PER_APP * len(config.apps)
    failovers = [e for e in logs if e["event"] == "api_failover"]
    assert len(failovers) == checks
    for entry in failovers:
        assert (entry["host"], entry["backup_host"]) == (SINGAPORE.host, SINGAPORE.backup_host)
        assert "Name or service not known" in entry["error"]
    assert set(hosts.asked) == {SINGAPORE.host, SINGAPORE.backup_host}
    assert api_requests(metrics) == {"network": checks, "0": checks}
    assert fleet.sim.count("get_callback") == checks
    leaks.output("failover (dns) logs", repr(logs))
    FIGURES["failover"] = (
        f"primary {SINGAPORE.host} unresolvable: {checks} of {checks} checks answered by "
        f"{SINGAPORE.backup_host}; api_failover logged {len(failovers)} times; "
        f"api_requests_total{{code=network}}={checks}, {{code=0}}={checks}"
    )


async def test_a_primary_host_that_refuses_connections_fails_over_to_the_backup_host(
    fleet: Fleet, leaks: Leaks, metrics: Metrics
) -> None:
    async with SimServer(fleet.sim, leaks) as server:
        loaded = load_config(fleet.write(server.url)).apps
        dead = closed_port_url()
        apps = tuple(dataclasses.replace(a, endpoint=dead, backup_endpoint=server.url) for a in loaded)
        async with aiohttp.ClientSession() as session:
            client = RoomConfigClient(session, observer=metrics.observe_request)
            logs = await check_all(fleet, Checker(client), apps)

            # Both hosts down: one network error, whose every rendering is kept for the leak search.
            both_dead = RoomConfigClient(session, retry=RetryPolicy(attempts=2, base_delay=0.01))
            target = await Checker(both_dead).target(dataclasses.replace(apps[0], backup_endpoint=dead))
            error = await _error_of(both_dead, target)

    checks = CHECKS_PER_APP * len(apps)
    assert len([e for e in logs if e["event"] == "api_failover"]) == checks
    assert api_requests(metrics) == {"network": checks, "0": checks}
    assert isinstance(error, NetworkError)
    texts = {
        "str": str(error),
        "repr": repr(error),
        "traceback": "".join(traceback.format_exception(error)),
        "traceback with locals": "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        ),
    }
    for how, text in texts.items():
        leaks.output(f"failover error ({how})", text)
    leaks.output("failover (refused) logs", repr(logs))


async def _error_of(client: RoomConfigClient, target: Any) -> TencentError:
    """The error as a caller catches it (this frame, not the test's, is in its traceback)."""
    try:
        await client.get_callback(target)
    except TencentError as exc:
        return exc
    raise AssertionError("get_callback succeeded with both hosts down")
