"""The HTTP surface over a real loopback server: /metrics, probes, /status JSON and the HTML page."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from asyncio.subprocess import PIPE, STDOUT
from datetime import datetime
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from monitor.config import Config, Policy
from monitor.drift import compare
from monitor.metrics import Metrics
from monitor.state import AppIdentity, AppState, CheckError, Outcome, transition
from monitor.store import ReloadStatus, Store
from monitor.tencent.model import CallbackConfig
from monitor.web import AccessLogger, make_app, relative

NOW = 1_732_770_000.0
TOKEN = "s3cr3t-t0ken-value"
CMDS = ("Room.CallbackAfterCreateRoom", "Room.CallbackAfterDestroyRoom", "Room.CallbackAfterMemberEnter")
WANT = CallbackConfig(f"https://hooks.example.com/room?token={TOKEN}", CMDS)
EVIL = CallbackConfig(f"http://evil.example.net/steal?token={TOKEN}&x=1", CMDS[:2])
POLICY = Policy(allowed_hosts=("hooks.example.com",))

Client = TestClient[web.Request, web.Application]


def identity(name: str, sdkappid: int, labels: dict[str, str] | None = None) -> AppIdentity:
    return AppIdentity(name=name, sdkappid=sdkappid, labels=labels or {"env": "prod"}, desired=WANT)


def verdict_on(state: AppState, live: CallbackConfig | None, at: float) -> AppState:
    new, _ = transition(state, Outcome(at - 0.2, at, verdict=compare(WANT, live, POLICY)), at)
    return new


def error_on(state: AppState, at: float) -> AppState:
    error = CheckError(reason="auth", message="signature rejected", code=70003, request_id="Id-abc-O-Seq-1")
    new, _ = transition(state, Outcome(at - 1, at, error=error), at)
    return new


def put(store: Store, state: AppState) -> None:
    store.states[state.identity.name] = state


@pytest.fixture
def store() -> Store:
    """Four apps: one in sync, one drifted to a plain-http foreign URL, one failing, one not yet checked."""
    store = Store(
        config=Config(source="/etc/callback-monitor/monitor.yaml", apps=(), digest="ab" * 32),
        reload=ReloadStatus(successful=True, last_success=NOW - 3600, last_attempt=NOW - 3600),
        ready=True,
        shard=(1, 3),
    )
    put(store, verdict_on(AppState.initial(identity("alpha-ok", 1400000001)), WANT, NOW - 30))
    drifted = verdict_on(AppState.initial(identity("zulu-drift", 1400000002)), WANT, NOW - 120)
    put(store, verdict_on(drifted, EVIL, NOW - 20))
    put(store, error_on(AppState.initial(identity("mike-failing", 1400000003)), NOW - 5))
    put(store, AppState.initial(identity("new-app", 1400000004, {"owner": "<script>alert(1)</script>"})))
    store.next_check = dict.fromkeys(store.states, NOW + 40)
    return store


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, store: Store) -> Client:
    metrics = Metrics(store, version="9.9.9", process=False)
    return await aiohttp_client(make_app(store, metrics, now=lambda: NOW))


async def scrape(client: Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, app: str, sdkappid: int, **extra: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return ("callback_monitor_" + name, frozenset({"app": app, "sdkappid": str(sdkappid), **extra}.items()))


async def test_metrics_follow_the_store_from_scrape_to_scrape(client: Client, store: Store) -> None:
    before = await scrape(client)
    assert before[key("drift", "zulu-drift", 1400000002, kind="url_mismatch")] == 1
    assert before[key("policy_violation", "zulu-drift", 1400000002, policy="insecure_url")] == 1
    assert before[key("in_sync", "alpha-ok", 1400000001)] == 1
    assert before[key("check_success", "mike-failing", 1400000003)] == 0
    assert before[key("check_failures_total", "mike-failing", 1400000003, reason="auth")] == 1
    assert key("check_success", "new-app", 1400000004) not in before

    put(store, verdict_on(store.states["zulu-drift"], WANT, NOW + 60))  # someone fixed it
    put(store, error_on(store.states["alpha-ok"], NOW + 60))
    after = await scrape(client)
    assert after[key("drift", "zulu-drift", 1400000002, kind="url_mismatch")] == 0
    assert after[key("in_sync", "zulu-drift", 1400000002)] == 1
    assert after[key("checks_total", "zulu-drift", 1400000002)] == 3
    assert after[key("check_success", "alpha-ok", 1400000001)] == 0
    assert after[key("last_check_timestamp_seconds", "alpha-ok", 1400000001)] == NOW + 60
    assert after[key("last_success_timestamp_seconds", "alpha-ok", 1400000001)] == NOW - 30


async def test_metrics_speak_the_prometheus_text_format(client: Client) -> None:
    response = await client.get("/metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert TOKEN not in await response.text()


async def test_metrics_honour_an_openmetrics_accept_header(client: Client) -> None:
    # What Prometheus itself sends.
    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    response = await client.get("/metrics", headers={"Accept": accept})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = await response.text()
    assert text.endswith("# EOF\n")
    names = {f.name for f in parse_openmetrics(text)}
    assert {"callback_monitor_drift", "callback_monitor_checks", "callback_monitor_build_info"} <= names


async def test_metrics_are_gzipped_when_asked(client: Client) -> None:
    response = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert "callback_monitor_in_sync" in await response.text()  # the client inflates it


async def test_promtool_accepts_a_real_scrape(aiohttp_client: AiohttpClient, store: Store) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed; CI must run `promtool check metrics`")
        pytest.skip("promtool is not installed (CI installs it)")
    metrics = Metrics(store, version="9.9.9")  # with the process and Python collectors
    metrics.observe_request("get_callback", "0", 0.12)
    client = await aiohttp_client(make_app(store, metrics))
    body = await (await client.get("/metrics")).read()
    check = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    output, _ = await asyncio.wait_for(check.communicate(body), timeout=30)
    assert check.returncode == 0, output.decode()


async def test_health_and_readiness_never_ask_tencent(client: Client, store: Store) -> None:
    assert (await client.get("/healthz")).status == 200
    assert await (await client.get("/healthz")).text() == "ok\n"
    assert (await client.get("/readyz")).status == 200
    store.ready = False
    assert (await client.get("/readyz")).status == 503
    assert (await client.head("/readyz")).status == 503
    store.ready = True
    assert (await client.head("/readyz")).status == 200


@pytest.mark.parametrize(("method", "path"), [("POST", "/metrics"), ("PUT", "/"), ("DELETE", "/status")])
async def test_only_get_and_head_are_allowed(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path, data=b"x" * 1024)
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD"}


async def status_json(client: Client) -> dict[str, Any]:
    response = await client.get("/status")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert TOKEN not in await response.text()
    document: dict[str, Any] = await response.json()
    return document


def is_iso_utc(value: str) -> bool:
    return (
        value.endswith("Z") and datetime.fromisoformat(value.replace("Z", "+00:00")).utcoffset() is not None
    )


async def test_status_json_has_the_documented_shape(client: Client) -> None:
    document = await status_json(client)
    assert document["version"] == 1
    assert is_iso_utc(document["generated"])
    assert document["shard"] == {"index": 1, "count": 3}
    assert document["config"] == {
        "source": "/etc/callback-monitor/monitor.yaml",
        "hash": "ab" * 32,
        "reload_successful": True,
        "last_reload_success": "2024-11-28T04:00:00.000Z",
        "last_reload_error": None,
    }
    apps = {a["name"]: a for a in document["apps"]}
    assert [a["name"] for a in document["apps"]] == sorted(apps)
    keys = {
        "name", "sdkappid", "labels", "state", "stale", "last_check", "last_success", "next_check",
        "consecutive_errors", "findings", "observed", "desired", "last_error", "history", "probe",
    }  # fmt: skip
    assert all(set(app) == keys for app in apps.values())
    assert {name: a["state"] for name, a in apps.items()} == {
        "alpha-ok": "in_sync",
        "zulu-drift": "drift",
        "mike-failing": "error",
        "new-app": "unknown",
    }


async def test_status_json_shows_findings_with_redacted_urls(client: Client) -> None:
    app = {a["name"]: a for a in (await status_json(client))["apps"]}["zulu-drift"]
    assert app["sdkappid"] == 1400000002
    assert app["labels"] == {"env": "prod"}
    assert is_iso_utc(app["last_check"])
    assert app["next_check"] == "2024-11-28T05:00:40.000Z"
    findings = {f["kind"]: f for f in app["findings"]}
    assert set(findings) == {"url_mismatch", "missing_commands", "insecure_url", "host_not_allowed"}
    mismatch = findings["url_mismatch"]
    assert mismatch["severity"] == "critical"
    assert mismatch["ignored"] is False
    assert mismatch["desired"] == "https://hooks.example.com/room?token=REDACTED"
    assert mismatch["observed"] == "http://evil.example.net/steal?token=REDACTED&x=REDACTED"
    assert findings["missing_commands"]["missing"] == ["Room.CallbackAfterMemberEnter"]
    assert findings["missing_commands"]["severity"] == "warning"
    assert app["observed"] == {
        "url": "http://evil.example.net/steal?token=REDACTED&x=REDACTED",
        "commands": list(CMDS[:2]),
    }
    assert app["desired"]["url"] == "https://hooks.example.com/room?token=REDACTED"
    [change] = app["history"]
    assert change["before"]["url"] == "https://hooks.example.com/room?token=REDACTED"
    assert change["after"]["url"] == "http://evil.example.net/steal?token=REDACTED&x=REDACTED"
    assert change["at"] == "2024-11-28T04:59:40.000Z"


async def test_status_json_shows_the_last_error_and_a_rejected_reload(client: Client, store: Store) -> None:
    store.reload.successful = False
    store.reload.last_error = (
        f"monitor.yaml: 1 problem\n  apps[0].callback.url: http://x/?token={TOKEN} is not https"
    )
    document = await status_json(client)
    assert document["config"]["reload_successful"] is False
    assert "token=REDACTED" in document["config"]["last_reload_error"]
    app = {a["name"]: a for a in document["apps"]}["mike-failing"]
    assert app["last_error"] == {
        "reason": "auth",
        "message": "signature rejected",
        "code": 70003,
        "request_id": "Id-abc-O-Seq-1",
    }
    assert app["stale"] is True
    assert app["consecutive_errors"] == 1
    assert app["observed"] is None
    assert app["findings"] == []
    assert app["last_success"] is None


async def page(client: Client) -> str:
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    return await response.text()


async def test_the_page_shows_a_drifted_app_desired_against_observed(client: Client) -> None:
    text = await page(client)
    assert "4 apps: 1 in sync, 1 drift, 1 error, 0 unknown" not in text  # new-app is unknown
    assert "4 apps: 1 in sync, 1 drift, 1 error, 1 unknown" in text
    # The row's id is the anchor that alerts link to (generatorURL .../#app-<name>).
    row = re.search(r'<tr id="app-zulu-drift"><td><b>zulu-drift</b>.*?</tr>', text)
    assert row is not None
    assert "url_mismatch" in row[0]
    assert "desired: <code>https://hooks.example.com/room?token=REDACTED</code>" in row[0]
    assert "observed: <code>http://evil.example.net/steal?token=REDACTED&amp;x=REDACTED</code>" in row[0]
    assert "missing: <code>Room.CallbackAfterMemberEnter</code>" in row[0]
    assert "20 s ago" in row[0]
    assert "in 40 s" in row[0]


async def test_the_page_never_shows_a_secret_and_escapes_what_it_shows(client: Client, store: Store) -> None:
    store.reload.successful = False
    store.reload.last_error = f"apps[0].callback.url: http://x/?token={TOKEN}"
    text = await page(client)
    assert TOKEN not in text
    assert "REDACTED" in text
    assert "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "The last config reload was rejected" in text


async def test_the_page_lists_problems_first_and_refreshes_itself(client: Client) -> None:
    text = await page(client)
    order = re.findall(r"<tr id=\"app-[a-z-]+\"><td><b>([a-z-]+)</b>", text)
    assert order == ["zulu-drift", "mike-failing", "new-app", "alpha-ok"]
    assert '<meta http-equiv="refresh" content="30">' in text
    row = re.search(r"<tr id=\"app-mike-failing\"><td><b>mike-failing</b>.*?</tr>", text)
    assert row is not None
    assert "<b>auth</b> · ErrorCode 70003 · RequestId <code>Id-abc-O-Seq-1</code>" in row[0]
    assert "Recent changes of live configs" in text
    assert "evil.example.net/steal?token=REDACTED" in text.split("Recent changes of live configs")[1]


def test_relative_times_read_naturally() -> None:
    assert relative(NOW - 20, NOW) == "20 s ago"
    assert relative(NOW + 40, NOW) == "in 40 s"
    assert relative(NOW - 600, NOW) == "10 min ago"
    assert relative(NOW - 7200, NOW) == "2 h ago"
    assert relative(NOW - 3 * 86400, NOW) == "3 d ago"
    assert relative(NOW, NOW) == "now"


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_the_access_log_leaves_out_probes_and_scrapes(store: Store) -> None:
    """Wired the way the daemon wires it: an AppRunner given ``access_log_class=AccessLogger``."""
    logger = logging.getLogger("test_web.access")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = ListHandler()
    logger.addHandler(handler)
    app = make_app(store, Metrics(store, version="1", process=False), now=lambda: NOW)
    runner = web.AppRunner(app, access_log_class=AccessLogger, access_log=logger, access_log_format="%r %s")
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        async with ClientSession(f"http://{host}:{port}") as session:
            for path in ("/healthz", "/", "/readyz", "/metrics", "/status"):
                async with session.get(path) as response:
                    assert response.status == 200
                    await response.read()
    finally:
        await runner.cleanup()
        logger.removeHandler(handler)
    assert handler.messages == ["GET / HTTP/1.1 200", "GET /status HTTP/1.1 200"]
