"""End to end: `plan`, `apply` and self-heal in `serve`, as subprocesses against the simulator.

Every test counts the write calls the simulator received: set_callback, update_callback and
delete_callback are the only way the monitor changes anything at Tencent.
"""

from __future__ import annotations

import asyncio
import os
import pty
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator import SAMPLE_DESIRED, Faults, Simulator, _Reject, sample_key
from monitor.tencent.model import CallbackConfig
from tests.serve_helpers import (
    DRIFTED_URL,
    IN_SYNC,
    MISSING_COMMANDS,
    NO_CONFIG,
    PLAIN_HTTP,
    Serve,
    app_metric,
    config_yaml,
    running,
    write_keys,
)
from tests.test_commands import (
    CREATE,
    DESIRED,
    DESTROY,
    ENTER,
    HOOK,
    PASSWORD,
    REPO,
    RUN_TIMEOUT,
    TOKEN,
    Lab,
    Run,
    row,
    run_cli,
)

pytestmark = pytest.mark.slow

WRITES = ("set_callback", "update_callback", "delete_callback")
OTHER = f"https://bot:{PASSWORD}@hooks.example.com/tencent/other?token={TOKEN}"


def writes(sim: Simulator, sdkappid: int | None = None) -> dict[str, int]:
    """The write calls the simulator received (for one app, or all), by action; zero counts left out."""
    counts = {action: sim.count(action=action, sdkappid=sdkappid) for action in WRITES}
    return {action: n for action, n in counts.items() if n}


# One app per drift kind, each allowed to be fixed, plus one in sync and one that is not allowed.
FIXES = {
    "gone": "set_callback",
    "unwanted": "delete_callback",
    "moved": "update_callback",
    "deaf": "update_callback",
    "chatty": "update_callback",
}


def add_drifts(lab: Lab) -> None:
    lab.add("gone", 1400000201, None, remediate=True)
    lab.add("unwanted", 1400000202, DESIRED, None, remediate=True)
    lab.add("moved", 1400000203, CallbackConfig(OTHER, DESIRED.commands), remediate=True)
    lab.add("deaf", 1400000204, CallbackConfig(HOOK, (CREATE,)), remediate=True)
    lab.add("chatty", 1400000205, CallbackConfig(HOOK, (CREATE, DESTROY, ENTER)), remediate=True)
    lab.add("fine", 1400000206, DESIRED, remediate=True)
    lab.add("hands-off", 1400000207, CallbackConfig(HOOK, (CREATE,)))  # self-heal off: apply still may


# ---- plan ----------------------------------------------------------------------------------------


async def test_plan_shows_the_exact_call_per_app_and_writes_nothing(lab: Lab) -> None:
    add_drifts(lab)
    config = lab.write()
    run = await lab.run("plan", "--config", str(config))
    assert run.code == 1, run.err
    for name, call in FIXES.items():
        assert row(run.out, name).splitlines()[0].endswith(f": {call}"), run.out
    moved = row(run.out, "moved")
    assert "  fixes  url_mismatch" in moved
    assert "  before url       https://REDACTED@hooks.example.com/tencent/other?token=REDACTED" in moved
    assert "  after  url       https://hooks.example.com/tencent/room?token=REDACTED" in moved
    assert f"         commands  {CREATE}, {DESTROY}" in moved
    chatty = row(run.out, "chatty")
    assert f"  - {ENTER}" in chatty
    assert f"  + {DESTROY}" in row(run.out, "deaf")
    assert "(no callback configured)" in row(run.out, "gone")
    assert row(run.out, "fine") == "fine (1400000206): nothing to do"
    assert row(run.out, "hands-off").splitlines()[0].endswith(": update_callback")
    assert run.out.endswith("7 apps: 6 to change, 1 nothing to do, 0 not checked or not fixed\n")
    assert writes(lab.sim) == {}
    assert lab.sim.count() == 7  # one get_callback per app, nothing else


async def test_plan_exits_0_when_nothing_is_to_do_and_2_when_an_app_cannot_be_read(lab: Lab) -> None:
    lab.add("fine", 1400000211, DESIRED)
    lab.add("locked", 1400000212, None, key="0" * 64)
    config = lab.write()
    calm, broken = await asyncio.gather(
        lab.run("plan", "--config", str(config), "--app", "fine"), lab.run("plan", "--config", str(config))
    )
    assert (calm.code, calm.err) == (0, "")
    assert broken.code == 2
    assert "locked (1400000212): ERROR auth: " in broken.out
    assert writes(lab.sim) == {}


# ---- apply ---------------------------------------------------------------------------------------


async def test_apply_fixes_each_drift_kind_with_one_call_and_reads_back(lab: Lab) -> None:
    add_drifts(lab)
    config = lab.write()
    selected = [arg for name in [*FIXES, "fine"] for arg in ("--app", name)]
    run = await lab.run("apply", "--config", str(config), "--yes", *selected)
    assert run.code == 0, run.out + run.err
    ids = {entry["name"]: entry["sdkappid"] for entry in lab.apps}
    for name, call in FIXES.items():
        assert f"{name} ({ids[name]}): applied {call}: written and read back in sync" in run.out
    assert "fine (1400000206): in sync, nothing to do" in run.out
    assert run.out.endswith("6 of 6 apps in sync\n")
    assert writes(lab.sim) == {"set_callback": 1, "delete_callback": 1, "update_callback": 3}
    for entry in lab.apps[:5]:
        sdkappid = entry["sdkappid"]
        assert lab.sim.callback(sdkappid) == (None if entry["name"] == "unwanted" else DESIRED)
        # The plan's read, the re-read just before the write (nothing changed), the read-back.
        assert lab.sim.count(action="get_callback", sdkappid=sdkappid) == 3

    again = await lab.run("plan", "--config", str(config), *selected)
    assert again.code == 0, again.out


async def test_apply_is_the_explicit_write_and_needs_no_self_heal_switch(lab: Lab) -> None:
    """remediate: true switches on self-heal in serve; a confirmed apply writes any app it is given."""
    add_drifts(lab)
    config = lab.write()
    run = await lab.run("apply", "--config", str(config), "--yes", "--app", "hands-off", "--app", "fine")
    assert run.code == 0, run.out + run.err
    assert "hands-off (1400000207): applied update_callback: written and read back in sync" in run.out
    assert run.out.endswith("2 of 2 apps in sync\n")
    assert writes(lab.sim) == {"update_callback": 1}


async def test_apply_refuses_without_a_terminal_unless_yes_and_in_read_only_mode(lab: Lab) -> None:
    add_drifts(lab)
    config = str(lab.write())
    no_tty, read_only, typo = await asyncio.gather(
        lab.run("apply", "--config", config),
        lab.run("apply", "--config", config, "--yes", env={"CALLBACK_MONITOR_READ_ONLY": "yes"}),
        lab.run("apply", "--config", config, "--yes", env={"CALLBACK_MONITOR_READ_ONLY": "ture"}),
    )
    assert (no_tty.code, no_tty.out) == (2, "")
    assert "no terminal to ask for confirmation on: pass --yes" in no_tty.err
    assert (read_only.code, read_only.out) == (2, "")
    assert "read-only mode (CALLBACK_MONITOR_READ_ONLY is set)" in read_only.err
    assert (typo.code, typo.out) == (2, "")
    assert "CALLBACK_MONITOR_READ_ONLY: 'ture' is not one of" in typo.err
    assert lab.sim.count() == 0  # refused before asking Tencent anything


async def run_on_terminal(args: list[str], answer: str) -> Run:
    """``python -m monitor ARGS`` with a pseudo-terminal as stdin, on which ``answer`` is typed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACK_MONITOR_")}
    controller, terminal = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            *args,
            stdin=terminal,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
            env=env,
        )
        os.close(terminal)
        terminal = -1
        os.write(controller, answer.encode() + b"\n")  # the terminal keeps the line until it is read
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def test_apply_on_a_terminal_writes_only_after_the_answer_yes(lab: Lab) -> None:
    lab.add("moved", 1400000221, CallbackConfig(OTHER, DESIRED.commands), remediate=True)
    config = str(lab.write())
    declined = await run_on_terminal(["apply", "--config", config], "y")
    assert declined.code == 2
    assert "make 1 call to Tencent? type yes to continue: " in declined.err
    assert "aborted: nothing was written" in declined.err
    assert writes(lab.sim) == {}

    accepted = await run_on_terminal(["apply", "--config", config], "yes")
    assert accepted.code == 0, accepted.out + accepted.err
    assert "moved (1400000221): applied update_callback: written and read back in sync" in accepted.out
    assert writes(lab.sim) == {"update_callback": 1}
    assert lab.sim.callback(1400000221) == DESIRED
    for text in (declined.out, declined.err, accepted.out, accepted.err):
        assert TOKEN not in text
        assert PASSWORD not in text


# ---- self-heal in serve --------------------------------------------------------------------------


def write_config(path: Path, endpoint: str, apps: tuple[tuple[str, int], ...], **kw: Any) -> Path:
    keys = path.parent / "keys"
    write_keys(keys, apps)
    path.write_text(config_yaml(endpoint, keys, apps, **kw), encoding="utf-8")
    return path


def lines_of(serve: Serve, event: str, app: str) -> list[int]:
    return [i for i, line in enumerate(serve.lines) if line.get("event") == event and line.get("app") == app]


async def test_self_heal_fixes_a_persisting_drift_once_and_never_writes_on_errors(
    simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    apps = (DRIFTED_URL, MISSING_COMMANDS, PLAIN_HTTP, IN_SYNC)
    heal = {"remediate": True}
    overrides = {DRIFTED_URL[0]: heal, PLAIN_HTTP[0]: heal, IN_SYNC[0]: heal}  # MISSING_COMMANDS: off
    config = write_config(tmp_path / "config.yaml", simulator_url, apps, overrides=overrides)
    # PLAIN_HTTP drifts too, but no check of it ever reaches a verdict.
    simulator.set_faults(Faults(error_code=70500, error_code_rate=1.0), PLAIN_HTTP[1])
    name, sdkappid = DRIFTED_URL
    async with running(config) as serve:
        applied = await serve.wait_event("remediation_applied", app=name)
        at = serve.lines.index(applied)
        await serve.wait_checks(name, 3, after=at)
        await serve.wait_checks(PLAIN_HTTP[0], 4, after=0)
        await serve.wait_checks(MISSING_COMMANDS[0], 4, after=0)

        assert writes(simulator) == {"update_callback": 1}
        assert writes(simulator, sdkappid) == {"update_callback": 1}
        assert simulator.callback(sdkappid) == SAMPLE_DESIRED
        # Two drifted verdicts (remediate_after defaults to 2) before the write.
        assert len([i for i in lines_of(serve, "check", name) if i < at]) == 2
        assert applied["severity"] == "info"
        assert applied["action"] == "update_callback"
        assert applied["kind"] == "remediation"
        assert applied["desired"] == SAMPLE_DESIRED.url
        assert applied["observed"] == "https://hooks.example.net/collect?token=REDACTED"
        assert applied["labels"] == {"team": "rtc", "env": "test"}
        datetime.fromisoformat(applied["timestamp"])
        (summary,) = serve.find("remediation", app=name)
        assert (summary["action"], summary["result"]) == ("update_callback", "applied")
        # The read-back is a verdict: the drift resolves at once, with no further alert after it.
        resolved = serve.alerts(app=name, event="drift_resolved")
        assert sorted(line["kind"] for line in resolved) == ["host_not_allowed", "url_mismatch"]
        assert all(serve.lines.index(line) > at for line in resolved)
        assert [line["event"] for line in serve.alerts(after=at + 1, app=name)] == ["drift_resolved"] * 2
        assert [line["event"] for line in serve.alerts() if line["event"].startswith("remediation")] == [
            "remediation_applied"
        ]
        entry = await serve.app_status(name)
        assert entry["state"] == "in_sync"
        samples = await serve.metrics()
        assert app_metric(samples, "callback_monitor_remediations_total", DRIFTED_URL, outcome="applied") == 1
        assert (
            app_metric(samples, "callback_monitor_remediations_total", PLAIN_HTTP, outcome="applied") is None
        )
        for raw in serve.raw:
            assert "token=demo" not in raw


async def test_read_only_serve_never_writes_whatever_the_config_says(
    simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    """Two replicas made read-only, one by --read-only and one by CALLBACK_MONITOR_READ_ONLY."""
    apps = (DRIFTED_URL, MISSING_COMMANDS, NO_CONFIG)
    overrides = {name: {"remediate": True, "remediate_after": 1} for name, _ in apps}
    config = write_config(tmp_path / "config.yaml", simulator_url, apps, overrides=overrides)
    serves = [
        await Serve.start(config, "--read-only"),
        await Serve.start(config, env={"CALLBACK_MONITOR_READ_ONLY": "TRUE"}),
    ]
    try:
        for serve in serves:
            assert (await serve.wait_event("started"))["read_only"] is True
        await asyncio.gather(*(serve.wait_checks(name, 3, after=0) for serve in serves for name, _ in apps))
    finally:
        for serve in serves:
            await serve.close()
    assert writes(simulator) == {}
    for serve in serves:
        assert [line for line in serve.lines if str(line.get("event", "")).startswith("remediation")] == []


async def test_a_read_only_switch_with_an_unknown_word_stops_serve_at_start(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", "http://127.0.0.1:9", (DRIFTED_URL,))
    serve = await Serve.start(config, env={"CALLBACK_MONITOR_READ_ONLY": "sometimes"})
    try:
        assert await serve.wait_exit(RUN_TIMEOUT) == 2
    finally:
        await serve.close()
    assert "CALLBACK_MONITOR_READ_ONLY: 'sometimes' is not one of" in "".join(serve.stderr)


class ReadOnlyAccount(Simulator):
    """A vendor on which the monitor's account may read but every write is refused (60017).

    The simulator's faults hit every action alike; this refuses writes only, after every other check
    of the request (signature, admin, body) has passed as usual.
    """

    def _act(self, app: Any, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action in WRITES:
            raise _Reject(60017)
        return super()._act(app, action, payload)


async def test_self_heal_backs_off_after_failures_and_gives_up_with_an_alert(tmp_path: Path) -> None:
    sim = ReadOnlyAccount(seed=0)
    url = await sim.start()
    name, sdkappid = DRIFTED_URL
    sim.add_app(sdkappid, sample_key(sdkappid), callback=CallbackConfig("https://hooks.example.net/x", ()))
    heal = {"remediate": True, "remediate_after": 1, "remediate_max_failures": 2}
    config = write_config(tmp_path / "config.yaml", url, (DRIFTED_URL,), overrides={name: heal})
    try:
        async with running(config) as serve:
            gave_up = await serve.wait_event("remediation_gave_up", app=name)
            at = serve.lines.index(gave_up)
            await serve.wait_checks(name, 3, after=at)
            samples = await serve.metrics()
    finally:
        await sim.stop()
    failed = serve.alerts(app=name, event="remediation_failed")
    assert len(failed) == 2
    assert writes(sim) == {"update_callback": 2}
    first, second = (datetime.fromisoformat(line["timestamp"]) for line in failed)
    # One interval (1s) after the first failure the check runs but backs off: the second try waits 2s.
    assert (second - first).total_seconds() >= 1.99
    first_at, second_at = (serve.lines.index(line) for line in failed)
    assert [i for i in lines_of(serve, "check", name) if first_at < i < second_at]  # a check backed off
    for line in failed:
        assert (line["severity"], line["action"], line["kind"]) == (
            "warning",
            "update_callback",
            "remediation",
        )
        assert (line["error"]["reason"], line["error"]["code"]) == ("permission", 60017)
    assert (gave_up["severity"], gave_up["action"]) == ("critical", "update_callback")
    assert gave_up["fingerprint"] == failed[0]["fingerprint"]
    assert second_at < at
    assert app_metric(samples, "callback_monitor_remediations_total", DRIFTED_URL, outcome="failed") == 2
    assert app_metric(samples, "callback_monitor_remediations_total", DRIFTED_URL, outcome="gave_up") == 1
    assert app_metric(samples, "callback_monitor_remediations_total", DRIFTED_URL, outcome="applied") is None


async def test_help_states_what_plan_and_apply_write_and_their_exit_codes() -> None:
    plan, apply, serve, bare = await asyncio.gather(
        run_cli("plan", "--help"), run_cli("apply", "--help"), run_cli("serve", "--help"), run_cli()
    )
    assert "Makes no write. Exit status: 0 nothing to do, 1 changes planned, 2 some app" in plan.flat_out
    assert "does not need it" in apply.flat_out
    assert "refuses unless --yes is given" in apply.flat_out
    assert "Exit status: 0 every app is in sync (read back after its call), 2 otherwise" in apply.flat_out
    assert "--read-only" in serve.out
    assert "CALLBACK_MONITOR_READ_ONLY" in serve.out
    for command in ("plan", "apply"):
        assert f"    {command} " in bare.err


# ---- another writer between apply's re-read and its write ---------------------------------------


class Racer(Simulator):
    """Another writer lands just before the monitor's first write: it creates the config before a
    set_callback (the vendor answers 100300) or deletes it before an update_callback (100301)."""

    raced = False

    def _act(self, app: Any, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action in ("set_callback", "update_callback") and not self.raced:
            self.raced = True
            app.callback = CallbackConfig(OTHER, (ENTER,)) if action == "set_callback" else None
        return super()._act(app, action, payload)


@pytest.mark.parametrize(
    ("live", "raced"), [(None, "set_callback"), (CallbackConfig(OTHER, (CREATE,)), "update_callback")]
)
async def test_apply_never_overwrites_a_config_another_writer_made_after_the_re_read(
    tmp_path: Path, live: CallbackConfig | None, raced: str
) -> None:
    """The vendor's 100300 (exists) or 100301 (absent) means the config changed since apply read it:
    nothing is written in its place, the app is reported as changed since the plan, exit 2."""
    sim = Racer(seed=0)
    url = await sim.start()
    try:
        lab = Lab(sim, url, tmp_path)
        lab.add("raced", 1400000231, live)
        config = str(lab.write())
        run = await lab.run("apply", "--config", config, "--yes")
        after = sim.callback(1400000231)
    finally:
        await sim.stop()
    assert run.code == 2, run.out
    assert (
        "raced (1400000231): NOT WRITTEN: nothing written: the live config changed since the plan was made"
        in run.out
    )
    assert "plan again" in run.out
    assert writes(sim) == {raced: 1}  # the one refused call, and no second call in its place
    assert after == (CallbackConfig(OTHER, (ENTER,)) if raced == "set_callback" else None)
