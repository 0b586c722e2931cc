"""Secrets: the suite-wide leak search finds what it looks for, and check and export at debug level
print no key, no UserSig and no URL query value, whatever the apps' states and errors.

Every test of this suite hands its outputs (logs, pages, command output, exception texts) and the
secrets it made or saw to ``leaks``; conftest searches them after each test and once more at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from monitor.simulator import Faults, Simulator
from monitor.tencent.model import CallbackConfig
from monitor.tencent.usersig import sign
from tests.reliability.lab import COMMANDS, Fleet, Leaks, SimServer, token
from tests.test_commands import run_cli


def test_the_leak_search_finds_a_secret_however_it_is_embedded() -> None:
    leaks = Leaks()
    key = token("key")
    usersig = sign(1400000001, key, "administrator", 1_700_000_000, 86400)
    leaks.secret("a key", key)
    leaks.secret("a UserSig", usersig)
    planted = [
        ("plain", f"the key is {key}."),
        ("in a URL", f"https://h/v4/x?sdkappid=1&usersig={usersig}&random=2"),
        ("percent-encoded", f"url=https://h/?usersig={quote(usersig, safe='')}"),
        ("in JSON", json.dumps({"message": f"failed with {usersig}"})),
        ("glued to other text", f"prefix{key}suffix"),
    ]
    for where, text in planted:
        leaks.output(where, text)
    leaks.output("clean", f"{key[:-1]} and {usersig[:20]}")
    assert {where for where, _label in leaks.scan()} == {where for where, _ in planted}
    with pytest.raises(ValueError, match="a test secret"):
        leaks.secret("too short", "abc")


@pytest.mark.slow
async def test_check_and_export_at_debug_level_print_no_secret(tmp_path: Path, leaks: Leaks) -> None:
    sim = Simulator(seed=61)
    fleet = Fleet(sim, tmp_path, leaks, first_sdkappid=1400800000)
    for i, shape in enumerate(["in_sync", "foreign", "missing", "foreign"]):
        fleet.add(f"secret-{i}", shape)
    password = token("pw")
    leaks.secret("a URL's password", password)
    with_userinfo = CallbackConfig(
        f"https://bot:{password}@collector.example.net/c?token={fleet.new_token()}&x={fleet.new_token()}",
        COMMANDS,
    )
    fleet.change("secret-3", with_userinfo, fleet.apps["secret-3"].findings)
    wrong = fleet.add("secret-wrong-key", "in_sync")
    sim.add_app(wrong.sdkappid, "another-" + wrong.key, callback=wrong.live)  # 70009
    flaky = fleet.add("secret-502", "foreign")
    sim.set_faults(Faults(http_502_rate=1.0), flaky.sdkappid)
    async with SimServer(sim, leaks) as server:
        config = str(fleet.write(server.url))
        runs = {
            "check text": await run_cli("check", "--config", config, "--log-level", "debug"),
            "check json": await run_cli(
                "check", "--config", config, "--format", "json", "--log-level", "debug"
            ),
            "export": await run_cli("export", "--config", config, "--log-level", "debug"),
            "export one": await run_cli(
                "export", "--config", config, "--app", "secret-3", "--log-level", "debug"
            ),
        }
    assert server.sigs_seen > 0
    assert [run.code for run in runs.values()] == [2, 2, 2, 0]
    assert "token=REDACTED" in runs["export one"].out
    assert "REDACTED@collector.example.net" in runs["export one"].out
    report = json.loads(runs["check json"].out)
    reasons = {app["name"]: (app["error"] or {}).get("reason") for app in report["apps"]}
    assert (reasons["secret-wrong-key"], reasons["secret-502"]) == ("auth", "http_status")
    for name, run in runs.items():
        assert "Traceback" not in run.err
        leaks.output(f"{name} stdout", run.out)
        leaks.output(f"{name} stderr", run.err)
