"""Hosts that parsers disagree on: a live callback URL that Python's parser reads as going to an
allowed host, while a WHATWG client (a browser, many HTTP stacks) would post every room event to
another one, is a policy violation in `check`, and what a person reads names the real host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.simulator import Simulator
from monitor.tencent.model import CallbackConfig
from tests.reliability.lab import COMMANDS, Fleet, Leaks, SimServer
from tests.test_commands import run_cli

pytestmark = pytest.mark.slow

# What each live URL is, as (the host a WHATWG client connects to, the findings check must report).
TRICKS = {
    "https://evil.example.net\\@hooks.example.com/tencent/room": (
        "evil.example.net",
        {"insecure_url", "host_not_allowed"},
    ),
    "https:\\\\evil.example.net/hooks.example.com": (
        "evil.example.net",
        {"insecure_url", "host_not_allowed"},
    ),
    "https:evil.example.net/@hooks.example.com": ("evil.example.net", {"insecure_url", "host_not_allowed"}),
    "https://evil%2Eexample.net/tencent/room": ("evil.example.net", {"insecure_url", "host_not_allowed"}),
    "https://bot@hooks.example.com/tencent/room": ("hooks.example.com", {"insecure_url"}),
}


async def test_check_reports_the_host_a_whatwg_client_would_reach(tmp_path: Path, leaks: Leaks) -> None:
    sim = Simulator(seed=71)
    fleet = Fleet(sim, tmp_path, leaks, first_sdkappid=1400950000)
    names = {}
    for i, url in enumerate(TRICKS):
        app = fleet.add(f"trick-{i}", "in_sync")
        fleet.change(app.name, CallbackConfig(url, COMMANDS), frozenset())
        names[app.name] = url
    async with SimServer(sim, leaks) as server:
        config = str(fleet.write(server.url))
        text = await run_cli("check", "--config", config)
        report = await run_cli("check", "--config", config, "--format", "json")
    leaks.output("check text (url hosts)", text.out + text.err)
    leaks.output("check json (url hosts)", report.out + report.err)

    assert (text.code, report.code) == (1, 1), text.err
    apps = {app["name"]: app for app in json.loads(report.out)["apps"]}
    for name, url in names.items():
        host, policy_kinds = TRICKS[url]
        kinds = {f["kind"] for f in apps[name]["findings"] if f["policy"]}
        assert kinds == policy_kinds, (url, kinds)
        observed = apps[name]["findings"][0]["observed"]
        assert host in observed.replace("%2E", "."), (url, observed)
        assert "bot@" not in observed
    assert "evil.example.net\\@hooks.example.com" in text.out  # shown as it is, the real host in sight
    assert "REDACTED@hooks.example.com/tencent/room" in text.out  # user-info hidden, host kept
