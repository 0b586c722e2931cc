"""CALLBACK_MONITOR_* variables are checked exactly like their flags: a bad value is one line naming the
variable, the value and what is allowed, with exit status 2; never a traceback, never a silent default."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.test_commands import Run, run_cli


def one_error_line(run: Run) -> str:
    """The run ended with status 2 and said why in exactly one line on stderr."""
    assert run.code == 2, (run.out, run.err)
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("callback-monitor: error: "), run.err
    return lines[0]


@pytest.fixture
def config(tmp_path: Path) -> str:
    """A valid config file with one app (a key in the environment is not needed: nothing reads it)."""
    path = tmp_path / "monitor.yaml"
    key = tmp_path / "key"
    key.write_text("k" * 32, encoding="utf-8")
    path.write_text(
        "version: 1\n"
        "defaults:\n"
        "  endpoint: http://127.0.0.1:9\n"
        f"  secret_key_file: {key}\n"
        "  callback: {url: https://hooks.example.com/cb, commands: [Room.CallbackAfterCreateRoom]}\n"
        "apps:\n"
        "  - {name: one, sdkappid: 1400000001}\n",
        encoding="utf-8",
    )
    return str(path)


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("CALLBACK_MONITOR_SHARD_INDEX", "abc", "'abc' is not a whole number"),
        ("CALLBACK_MONITOR_SHARD_COUNT", "two", "'two' is not a whole number"),
        ("CALLBACK_MONITOR_LISTEN", "nonsense", "'nonsense' is not HOST:PORT"),
        ("CALLBACK_MONITOR_LISTEN", "127.0.0.1:99999", "port 99999 is out of range 0-65535"),
        ("CALLBACK_MONITOR_READ_ONLY", "maybe", "'maybe' is not one of 1, true, yes, on, 0, false, no, off"),
        ("CALLBACK_MONITOR_LOG_FORMAT", "xml", "'xml' is not one of json, console"),
        ("CALLBACK_MONITOR_LOG_LEVEL", "verbose", "'verbose' is not one of debug, info, warning, error"),
    ],
)
async def test_a_bad_variable_stops_serve_with_one_line_naming_it(
    config: str, variable: str, value: str, allowed: str
) -> None:
    run = await run_cli("serve", "--config", config, env={variable: value})
    line = one_error_line(run)
    assert line.startswith(f"callback-monitor: error: {variable}: ")
    assert allowed in line
    assert repr(value) in line


async def test_a_shard_index_outside_the_count_names_both_and_the_range(config: str) -> None:
    env = {"CALLBACK_MONITOR_SHARD_INDEX": "3", "CALLBACK_MONITOR_SHARD_COUNT": "2"}
    line = one_error_line(await run_cli("serve", "--config", config, env=env))
    assert "CALLBACK_MONITOR_SHARD_INDEX" in line
    assert "shard index must be in 0..1, not 3" in line


async def test_check_format_variable_is_checked_like_the_flag(config: str) -> None:
    by_variable, by_flag = await asyncio.gather(
        run_cli("check", "--config", config, env={"CALLBACK_MONITOR_FORMAT": "yaml"}),
        run_cli("check", "--config", config, "--format", "yaml"),
    )
    assert one_error_line(by_variable) == (
        "callback-monitor: error: CALLBACK_MONITOR_FORMAT: 'yaml' is not one of text, json"
    )
    assert by_flag.code == 2
    assert "invalid choice: 'yaml'" in by_flag.err


async def test_the_simulator_listen_variable_and_flag_are_checked(tmp_path: Path) -> None:
    by_variable, by_flag = await asyncio.gather(
        run_cli("simulate", env={"CALLBACK_MONITOR_SIMULATOR_LISTEN": "nonsense"}),
        run_cli("simulate", "--listen", "nonsense"),
    )
    assert one_error_line(by_variable) == (
        "callback-monitor: error: CALLBACK_MONITOR_SIMULATOR_LISTEN: 'nonsense' is not HOST:PORT "
        "(for example 0.0.0.0:9765 or 127.0.0.1:0)"
    )
    assert by_flag.code == 2
    assert "argument --listen: 'nonsense' is not HOST:PORT" in by_flag.err


async def test_an_unusable_config_or_ca_bundle_variable_names_the_file(config: str, tmp_path: Path) -> None:
    absent = str(tmp_path / "absent.yaml")
    no_config, no_bundle = await asyncio.gather(
        run_cli("validate", env={"CALLBACK_MONITOR_CONFIG": absent}),
        run_cli("check", "--config", config, env={"CALLBACK_MONITOR_CA_BUNDLE": absent}),
    )
    assert no_config.code == 2
    assert absent in no_config.err
    assert one_error_line(no_bundle).startswith(f"callback-monitor: error: cannot use the CA bundle {absent}")


async def test_a_variable_of_another_command_and_help_are_left_alone(config: str) -> None:
    """SHARD_INDEX belongs to serve: validate and every --help run as if it were not set."""
    env = {"CALLBACK_MONITOR_SHARD_INDEX": "abc", "CALLBACK_MONITOR_FORMAT": "yaml"}
    validate, serve_help, check_help = await asyncio.gather(
        run_cli("validate", "--config", config, env=env),
        run_cli("serve", "--help", env=env),
        run_cli("check", "--help", env=env),
    )
    assert validate.code == 0, validate.err
    assert (serve_help.code, check_help.code) == (0, 0)
    assert serve_help.out.startswith("usage: callback-monitor serve")


async def test_a_valid_variable_is_used_and_an_empty_one_is_unset(config: str) -> None:
    as_json, empty = await asyncio.gather(
        run_cli("check", "--config", config, env={"CALLBACK_MONITOR_FORMAT": "json"}),
        run_cli("check", "--config", config, env={"CALLBACK_MONITOR_FORMAT": ""}),
    )
    assert as_json.code == empty.code == 2  # nothing listens at the endpoint: the app is not checked
    assert json.loads(as_json.out)["apps"][0]["name"] == "one"
    assert empty.out.startswith("APP  SDKAPPID"), empty.out
