"""End to end: the real `check`, `validate` and `export` commands as subprocesses against the simulator."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.simulator import Faults, Simulator
from monitor.tencent.model import CallbackConfig

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 30.0

TOKEN = "tok-7Hq2ZpX9vW"  # a query value in callback URLs: printed only under --reveal
PASSWORD = "pw-Qm4Ld8Vs3K"  # user-info in a live URL: never printed either
WRONG_KEY = "0123456789abcdef" * 4  # a key file that holds the wrong key for its app
CREATE = "Room.CallbackAfterCreateRoom"
DESTROY = "Room.CallbackAfterDestroyRoom"
ENTER = "Room.CallbackAfterMemberEnter"
HOOK = f"https://hooks.example.com/tencent/room?token={TOKEN}"
DESIRED = CallbackConfig(HOOK, (CREATE, DESTROY))
REQUEST_ID = re.compile(r"Id-[0-9a-f]{32}-O-Seq-\d+")

INHERIT = object()  # an app that leaves `callback` out and gets defaults.callback


def key_of(sdkappid: int) -> str:
    return hashlib.sha256(f"test_commands secret key {sdkappid}".encode()).hexdigest()


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def flat_out(self) -> str:
        """stdout with white space runs joined, so that wrapped help text reads as one line."""
        return " ".join(self.out.split())


async def run_cli(*args: str, env: dict[str, str] | None = None) -> Run:
    """``python -m monitor ARGS`` with only the CALLBACK_MONITOR_* variables in ``env``; never a traceback."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACK_MONITOR_")} | (env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
        env=environ,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"callback-monitor {' '.join(args)} ran for more than {RUN_TIMEOUT:g}s")
    assert proc.returncode is not None
    run = Run(proc.returncode, out.decode(), err.decode())
    assert "Traceback" not in run.out + run.err, run.err
    return run


class Lab:
    """The simulator, key files and a config file built app by app; runs the real command against them."""

    def __init__(self, sim: Simulator, url: str, root: Path) -> None:
        self.sim = sim
        self.url = url
        self.root = root
        self.keys = root / "keys"
        self.keys.mkdir()
        self.apps: list[dict[str, Any]] = []
        self.secrets: set[str] = set()

    def add(
        self,
        name: str,
        sdkappid: int,
        live: CallbackConfig | None,
        desired: CallbackConfig | object | None = INHERIT,
        *,
        key: str | None = None,
        **extra: Any,
    ) -> None:
        """An app live in the simulator and listed in the config; ``key`` is what its key file holds."""
        real = key_of(sdkappid)
        self.sim.add_app(sdkappid, real, callback=live)
        written = real if key is None else key
        (self.keys / str(sdkappid)).write_text(written + "\n")
        self.secrets |= {real, written}
        entry: dict[str, Any] = {"name": name, "sdkappid": sdkappid, **extra}
        if desired is not INHERIT:
            assert desired is None or isinstance(desired, CallbackConfig)
            entry["callback"] = callback_block(desired)
        self.apps.append(entry)

    def write(self, apps: list[dict[str, Any]] | None = None, name: str = "monitor.yaml") -> Path:
        doc = {
            "version": 1,
            "defaults": {
                "endpoint": self.url,
                "secret_key_file": str(self.keys / "{sdkappid}"),
                "policy": {
                    "require_https": True,
                    "allowed_hosts": ["hooks.example.com", "*.hooks.example.com"],
                },
                "callback": callback_block(DESIRED),
            },
            "apps": self.apps if apps is None else apps,
        }
        path = self.root / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    async def run(self, *args: str, reveal: bool = False, env: dict[str, str] | None = None) -> Run:
        """Run the command; no output ever holds a secret key, user-info or (unless ``reveal``) a token."""
        run = await run_cli(*args, env=env)
        both = run.out + run.err
        for secret in self.secrets:
            assert secret not in both, "a secret key was printed"
        assert PASSWORD not in both, "URL user-info was printed"
        if not reveal:
            assert TOKEN not in both, "a URL query value was printed unredacted"
        return run


def callback_block(callback: CallbackConfig | None) -> dict[str, Any] | None:
    return None if callback is None else {"url": callback.url, "commands": list(callback.commands)}


# One app per finding kind; the policy apps ignore url_mismatch so that their policy kind alone counts.
KIND_APPS: dict[str, str] = {
    "config_missing": "gone",
    "config_present": "unwanted",
    "url_mismatch": "moved",
    "missing_commands": "deaf",
    "unexpected_commands": "chatty",
    "insecure_url": "plain",
    "host_not_allowed": "foreign",
}
IN_SYNC_APPS = ("exact", "none-wanted", "tolerated", "lenient")


def add_scenario(lab: Lab) -> None:
    """Every finding kind, and four apps that are in sync in four different ways."""
    shouted = HOOK.replace("https://hooks.example.com", "HTTPS://Hooks.Example.COM:443")
    lab.add("exact", 1400000101, CallbackConfig(shouted, (DESTROY, CREATE)))
    lab.add("gone", 1400000102, None)
    lab.add("unwanted", 1400000103, DESIRED, None)
    moved = f"https://bot:{PASSWORD}@hooks.example.com/tencent/other?token={TOKEN}"
    lab.add("moved", 1400000104, CallbackConfig(moved, DESIRED.commands))
    lab.add("deaf", 1400000105, CallbackConfig(HOOK, (CREATE,)))
    lab.add("chatty", 1400000106, CallbackConfig(HOOK, (CREATE, DESTROY, ENTER)))
    plain = HOOK.replace("https://", "http://")
    lab.add("plain", 1400000107, CallbackConfig(plain, DESIRED.commands), ignore=["url_mismatch"])
    foreign = HOOK.replace("hooks.example.com", "collector.example.net")
    lab.add("foreign", 1400000108, CallbackConfig(foreign, DESIRED.commands), ignore=["url_mismatch"])
    lab.add("none-wanted", 1400000109, None, None)
    lab.add("tolerated", 1400000110, CallbackConfig(HOOK, (CREATE,)), ignore=["missing_commands"])
    lenient = CallbackConfig(HOOK, (CREATE, DESTROY, ENTER))
    lab.add("lenient", 1400000111, lenient, policy={"unexpected_commands": "ignore"})


def row(text: str, name: str) -> str:
    """The report lines of one app: its table row and the indented details under it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name} "))
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    return "\n".join(lines[start:end])


# ---- check: verdicts --------------------------------------------------------------------------


async def test_each_finding_kind_alone_exits_1_and_is_named_in_the_report(lab: Lab) -> None:
    add_scenario(lab)
    config = str(lab.write())
    runs = await asyncio.gather(
        *(lab.run("check", "--config", config, "--app", a) for a in KIND_APPS.values())
    )
    for (kind, app), run in zip(KIND_APPS.items(), runs, strict=True):
        assert run.code == 1, (kind, run.out, run.err)
        details = row(run.out, app)
        assert "DRIFT" in details, (kind, run.out)
        assert f"{kind} (critical" in details or f"{kind} (warning" in details, (kind, run.out)
        assert "1 app: 0 in sync, 1 drifted, 0 not checked" in run.out, (kind, run.out)
    by_kind = dict(zip(KIND_APPS, runs, strict=True))
    assert f"missing    {DESTROY}" in by_kind["missing_commands"].out
    assert f"unexpected {ENTER}" in by_kind["unexpected_commands"].out
    assert "observed   (no callback configured)" in by_kind["config_missing"].out
    assert "observed   http://hooks.example.com/tencent/room?token=REDACTED" in by_kind["insecure_url"].out
    assert "url_mismatch (critical, ignored)" in by_kind["insecure_url"].out


async def test_apps_in_sync_in_every_way_exit_0(lab: Lab) -> None:
    """Case and default port, callback: null with none live, an ignored kind, unexpected_commands: ignore."""
    add_scenario(lab)
    selection = [arg for app in IN_SYNC_APPS for arg in ("--app", app)]
    run = await lab.run("check", "--config", str(lab.write()), *selection)
    assert run.code == 0, (run.out, run.err)
    assert "4 apps: 4 in sync, 0 drifted, 0 not checked" in run.out
    tolerated = row(run.out, "tolerated").splitlines()[0].split()
    assert tolerated[2:] == ["in", "sync", "missing_commands", "(warning,", "ignored)"], run.out
    for app in ("exact", "none-wanted", "lenient"):
        assert row(run.out, app).split()[2:] == ["in", "sync"], run.out  # and no details at all


async def test_text_report_is_a_table_with_redacted_urls(lab: Lab) -> None:
    add_scenario(lab)
    run = await lab.run("check", "--config", str(lab.write()))
    assert run.code == 1, run.err
    assert run.out.splitlines()[0].split() == ["APP", "SDKAPPID", "RESULT", "DETAILS"]
    for entry in lab.apps:
        first = row(run.out, entry["name"]).splitlines()[0].split()
        assert first[1] == str(entry["sdkappid"])
        assert first[2] == ("DRIFT" if entry["name"] in KIND_APPS.values() else "in")
    assert run.out.rstrip().endswith("11 apps: 4 in sync, 7 drifted, 0 not checked")
    moved = row(run.out, "moved")
    assert "desired    https://hooks.example.com/tencent/room?token=REDACTED" in moved
    assert "observed   https://REDACTED@hooks.example.com/tencent/other?token=REDACTED" in moved


REPORT_KEYS = {"version", "generated", "config", "summary", "apps"}
APP_KEYS = {
    "name",
    "sdkappid",
    "result",
    "findings",
    "desired",
    "observed",
    "error",
    "duration_seconds",
    "probe",
}
FINDING_KEYS = {"kind", "severity", "policy", "ignored", "desired", "observed", "missing", "unexpected"}
ERROR_KEYS = {"reason", "message", "code", "request_id"}


async def test_json_report_has_a_stable_shape_and_every_finding(lab: Lab) -> None:
    """Debug logging on: not even debug lines on stderr may show a key, a token or user-info."""
    add_scenario(lab)
    run = await lab.run("check", "--config", str(lab.write()), "--format", "json", "--log-level", "debug")
    assert run.code == 1, run.err
    assert '"event": "api_request"' in run.err  # debug lines were written...
    assert "usersig=" not in run.err.lower()  # ...and no request URL with its UserSig among them
    doc = json.loads(run.out)  # stdout holds nothing but the document
    assert set(doc) == REPORT_KEYS
    assert doc["version"] == 1
    assert doc["summary"] == {"apps": 11, "in_sync": 4, "drift": 7, "error": 0, "exit_code": 1}
    apps = {a["name"]: a for a in doc["apps"]}
    assert [a["name"] for a in doc["apps"]] == [e["name"] for e in lab.apps]
    for app in doc["apps"]:
        assert set(app) == APP_KEYS
        assert app["error"] is None
        for finding in app["findings"]:
            assert set(finding) == FINDING_KEYS
    for kind, name in KIND_APPS.items():
        app = apps[name]
        assert app["result"] == "drift"
        counted = [f["kind"] for f in app["findings"] if not f["ignored"]]
        # the moved URL carries user-info, which is a policy violation of its own
        assert counted == ([kind, "insecure_url"] if name == "moved" else [kind]), name
        assert next(f for f in app["findings"] if f["kind"] == kind)["policy"] is (
            kind in ("insecure_url", "host_not_allowed")
        )
    for name in IN_SYNC_APPS:
        assert apps[name]["result"] == "in_sync", name
    assert apps["tolerated"]["findings"] == [
        {
            "kind": "missing_commands",
            "severity": "warning",
            "policy": False,
            "ignored": True,
            "desired": "https://hooks.example.com/tencent/room?token=REDACTED",
            "observed": "https://hooks.example.com/tencent/room?token=REDACTED",
            "missing": [DESTROY],
            "unexpected": [],
        }
    ]
    assert apps["lenient"]["findings"] == []
    assert apps["chatty"]["findings"][0]["unexpected"] == [ENTER]
    assert apps["unwanted"]["desired"] is None
    assert apps["unwanted"]["observed"] == {
        "url": HOOK.replace(TOKEN, "REDACTED"),
        "commands": [CREATE, DESTROY],
    }
    assert apps["gone"]["observed"] is None
    assert apps["moved"]["findings"][0]["observed"] == (
        "https://REDACTED@hooks.example.com/tencent/other?token=REDACTED"
    )


# ---- check: errors and selection ----------------------------------------------------------------


def add_failing_scenario(lab: Lab) -> None:
    lab.add("fine", 1400000201, DESIRED)
    lab.add("drifted", 1400000202, CallbackConfig(HOOK, (CREATE,)))
    lab.add("wrong-key", 1400000203, DESIRED, key=WRONG_KEY)
    lab.add("refused", 1400000204, DESIRED)
    lab.sim.set_faults(Faults(error_code=60010, error_code_rate=1.0), sdkappid=1400000204)


async def test_an_app_that_errors_exits_2_and_the_others_are_still_reported(lab: Lab) -> None:
    add_failing_scenario(lab)
    config = str(lab.write())
    text, js = await asyncio.gather(
        lab.run("check", "--config", config), lab.run("check", "--config", config, "--format", "json")
    )
    assert text.code == 2, text.err
    assert js.code == 2, js.err
    assert "4 apps: 1 in sync, 1 drifted, 2 not checked" in text.out
    assert row(text.out, "fine").split()[2:] == ["in", "sync"]
    assert "missing_commands" in row(text.out, "drifted")
    wrong_key = row(text.out, "wrong-key")
    assert wrong_key.split()[2:4] == ["ERROR", "auth:"]
    assert "ErrorCode 70009" in wrong_key
    assert REQUEST_ID.search(wrong_key)
    refused = row(text.out, "refused")
    assert refused.split()[2:4] == ["ERROR", "permission:"]
    assert "ErrorCode 60010" in refused
    assert REQUEST_ID.search(refused)

    doc = json.loads(js.out)
    assert doc["summary"] == {"apps": 4, "in_sync": 1, "drift": 1, "error": 2, "exit_code": 2}
    apps = {a["name"]: a for a in doc["apps"]}
    assert apps["fine"]["result"] == "in_sync"
    assert [f["kind"] for f in apps["drifted"]["findings"]] == ["missing_commands"]
    for name, reason, code in (("wrong-key", "auth", 70009), ("refused", "permission", 60010)):
        error = apps[name]["error"]
        assert apps[name]["result"] == "error"
        assert apps[name]["findings"] == []
        assert set(error) == ERROR_KEYS
        assert (error["reason"], error["code"]) == (reason, code)
        assert REQUEST_ID.fullmatch(error["request_id"])
        assert error["request_id"] in error["message"]


async def test_app_option_selects_apps_and_an_unknown_name_is_refused(lab: Lab) -> None:
    add_failing_scenario(lab)
    config = str(lab.write())
    unknown = await lab.run("check", "--config", config, "--app", "fine", "--app", "no-such-app")
    assert unknown.code == 2
    assert unknown.out == ""
    assert "no app named 'no-such-app'" in unknown.err
    assert lab.sim.count() == 0

    run = await lab.run("check", "--config", config, "--app", "drifted", "--format", "json")
    assert run.code == 1, run.err
    assert [a["name"] for a in json.loads(run.out)["apps"]] == ["drifted"]
    assert lab.sim.count() == lab.sim.count("get_callback", 1400000202) == 1


# ---- validate ----------------------------------------------------------------------------------


async def test_validate_accepts_a_valid_file_without_calling_the_api(lab: Lab) -> None:
    """The file named by CALLBACK_MONITOR_CONFIG, as Kubernetes would set it; an unknown command warns."""
    add_scenario(lab)
    lab.apps[0]["callback"] = {"url": HOOK, "commands": [CREATE, "Room.CallbackAfterSomethingNew"]}
    run = await lab.run("validate", env={"CALLBACK_MONITOR_CONFIG": str(lab.write())})
    assert run.code == 0, run.err
    assert run.out.strip().endswith(": valid, 11 apps, 1 warning(s)")
    assert "apps[0].callback.commands[1]" in run.err
    assert "unknown command word 'Room.CallbackAfterSomethingNew'" in run.err
    assert lab.sim.count() == 0


async def test_an_invalid_file_lists_every_problem_with_its_place_and_calls_nothing(lab: Lab) -> None:
    lab.add("good", 1400000301, DESIRED)
    lab.add("typo", 1400000302, DESIRED, intervall="30s")
    lab.add("good", 1400000303, DESIRED)
    lab.add("cleartext", 1400000304, DESIRED, CallbackConfig("http://hooks.example.com/x", (CREATE,)))
    lab.add("no-key", 1400000305, DESIRED, secret_key_file=str(lab.root / "absent"))
    lab.add("bad-id", 1400000306, DESIRED)
    lab.apps[-1]["sdkappid"] = "1400000306"
    config = str(lab.write())
    validate, check, export = await asyncio.gather(
        lab.run("validate", "--config", config),
        lab.run("check", "--config", config),
        lab.run("export", "--config", config),
    )
    places = [
        "apps[1].intervall",
        "did you mean 'interval'",
        "apps[2].name",
        "apps[3].callback.url",
        "apps[4].secret_key_file",
        "apps[5].sdkappid",
    ]
    for run in (validate, check, export):
        assert run.code == 2, run.out
        assert run.out == ""
        assert "5 problems" in run.err
        for place in places:
            assert place in run.err, (place, run.err)
        assert re.search(r"apps\[1\]\.intervall \(line \d+\)", run.err), run.err
    assert lab.sim.count() == 0


# ---- export ------------------------------------------------------------------------------------


def add_export_scenario(lab: Lab) -> None:
    """Live configs that differ from the desired state, with and without query strings."""
    lab.add(
        "tokened", 1400000401, CallbackConfig(f"https://a.hooks.example.com/cb?token={TOKEN}&v=2", (ENTER,))
    )
    lab.add(
        "bare", 1400000402, CallbackConfig("https://hooks.example.com/bare", ("Room.CallbackUpdateRoomInfo",))
    )
    lab.add(
        "shuffled", 1400000403, CallbackConfig("https://hooks.example.com/tencent/room", (DESTROY, CREATE))
    )
    lab.add("silent", 1400000404, None)


async def test_export_then_check_is_in_sync(lab: Lab) -> None:
    add_export_scenario(lab)
    before = await lab.run("check", "--config", str(lab.write()))
    assert before.code == 1, before.err

    export = await lab.run("export", "--config", str(lab.write()), "--reveal", reveal=True)
    assert export.code == 0, export.err
    assert "warning" in export.err
    assert "--reveal" in export.err
    exported = {a["name"]: a for a in yaml.safe_load(export.out)["apps"]}
    assert exported["tokened"]["callback"]["url"] == f"https://a.hooks.example.com/cb?token={TOKEN}&v=2"
    assert exported["silent"]["callback"] is None
    merged = [{**entry, "callback": exported[entry["name"]]["callback"]} for entry in lab.apps]

    after = await lab.run("check", "--config", str(lab.write(merged, name="merged.yaml")))
    assert after.code == 0, (after.out, after.err)
    assert "4 apps: 4 in sync, 0 drifted, 0 not checked" in after.out


async def test_export_redacts_query_values_unless_revealed(lab: Lab) -> None:
    add_export_scenario(lab)
    run = await lab.run("export", "--config", str(lab.write()))
    assert run.code == 0, run.err
    assert "REDACTED" in run.out.split("apps:")[0]  # the header says so
    assert "warning" not in run.err
    assert yaml.safe_load(run.out) == {
        "apps": [
            {
                "name": "tokened",
                "sdkappid": 1400000401,
                "callback": {
                    "url": "https://a.hooks.example.com/cb?token=REDACTED&v=REDACTED",
                    "commands": [ENTER],
                },
            },
            {
                "name": "bare",
                "sdkappid": 1400000402,
                "callback": {
                    "url": "https://hooks.example.com/bare",
                    "commands": ["Room.CallbackUpdateRoomInfo"],
                },
            },
            {
                "name": "shuffled",
                "sdkappid": 1400000403,
                "callback": {"url": "https://hooks.example.com/tencent/room", "commands": [DESTROY, CREATE]},
            },
            {"name": "silent", "sdkappid": 1400000404, "callback": None},
        ]
    }


async def test_export_prints_nothing_when_an_app_cannot_be_read(lab: Lab) -> None:
    add_failing_scenario(lab)
    run = await lab.run("export", "--config", str(lab.write()))
    assert run.code == 2
    assert run.out == ""
    assert re.search(r"cannot export app wrong-key \(1400000203\): auth: .*ErrorCode 70009", run.err), run.err
    assert re.search(r"cannot export app refused \(1400000204\): permission: .*ErrorCode 60010", run.err), (
        run.err
    )
    assert "fine (" not in run.err
    assert "nothing exported: 2 of 4 apps could not be read" in run.err


# ---- usage -------------------------------------------------------------------------------------


async def test_a_missing_config_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    absent = str(tmp_path / "absent.yaml")
    runs = await asyncio.gather(
        *(run_cli(command) for command in ("check", "validate", "export")),
        run_cli("check", "--config", absent),
    )
    for run in runs[:3]:
        assert run.code == 2
        assert run.out == ""
        assert "no config file given: use --config FILE or set CALLBACK_MONITOR_CONFIG" in run.err
    assert runs[3].code == 2
    assert runs[3].out == ""
    assert absent in runs[3].err
    assert "cannot read" in runs[3].err


async def test_help_of_each_command_states_its_exit_codes() -> None:
    check, validate, export, bare = await asyncio.gather(
        run_cli("check", "--help"), run_cli("validate", "--help"), run_cli("export", "--help"), run_cli()
    )
    for run in (check, validate, export):
        assert run.code == 0, run.err
        assert run.out.startswith("usage: callback-monitor ")
        assert "--config FILE" in run.out
    assert (
        "Exit status: 0 every app in sync, 1 drift or a policy violation found, 2 some app" in check.flat_out
    )
    assert "Exit 0 valid, 2 invalid" in validate.flat_out
    assert "Exit status: 0 every app exported, 2 some app could not be read" in export.flat_out
    assert "--reveal" in export.out
    assert bare.code == 2
    assert bare.out == ""
    assert bare.err.startswith("usage: callback-monitor")
    for command in ("serve", "check", "validate", "export", "demo", "simulate"):
        assert f"    {command} " in bare.err


# ---- vendor text on a terminal -------------------------------------------------------------------

FORGED = "\n\x1b[32mall-good (1400000999)  in sync\x1b[0m\u202e"  # a fake report line, coloured, reversed
RAW = ("\x1b", "\u202e", "\nall-good")


async def test_a_live_url_or_command_with_control_characters_is_reported_escaped_never_shown_raw(
    lab: Lab,
) -> None:
    """A live URL holding a newline and ESC sequences could forge a line of the report or of the plan
    a person confirms; it is an invalid answer, shown with every such character escaped."""
    lab.add(
        "forged-url", 1400000901, CallbackConfig(f"https://hooks.example.com/cb{FORGED}?token={TOKEN}", ())
    )
    lab.add(
        "forged-cmd", 1400000902, CallbackConfig(HOOK, (CREATE, f"Room.CallbackAfterDestroyRoom{FORGED}"))
    )
    config = str(lab.write())
    check, plan, apply = await asyncio.gather(
        lab.run("check", "--config", config),
        lab.run("plan", "--config", config),
        lab.run("apply", "--config", config, "--yes"),
    )
    for run in (check, plan, apply):
        for raw in RAW:
            assert raw not in run.out + run.err
    assert (check.code, plan.code, apply.code) == (2, 2, 2)
    url_line = row(check.out, "forged-url")
    assert (
        "ERROR    invalid_response: the live callback URL holds control or invisible characters" in url_line
    )
    assert (
        "https://hooks.example.com/cb\\n\\x1b[32mall-good (1400000999)  in sync\\x1b[0m\\u202e?token=REDACTED"
        in url_line
    )
    cmd_line = row(check.out, "forged-cmd")
    assert (
        "invalid_response: the live command list holds control or invisible characters: "
        "Room.CallbackAfterDestroyRoom\\n\\x1b[32mall-good (1400000999)  in sync\\x1b[0m\\u202e"
    ) in cmd_line
    assert "forged-url (1400000901): ERROR invalid_response: the live callback URL holds" in plan.out
    assert "forged-cmd (1400000902): ERROR not checked: invalid_response: the live command list" in apply.out
    assert writes_of(lab.sim) == 0


def writes_of(sim: Simulator) -> int:
    return sum(sim.count(action=a) for a in ("set_callback", "update_callback", "delete_callback"))
