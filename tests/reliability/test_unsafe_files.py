"""Files swapped for something that is not a file: the config and secret reads refuse it at once.

A FIFO put where a secret file was blocked the event loop in a plain ``read_text()`` until someone
wrote to it; a symlink to /dev/zero read until MemoryError, which escaped the check; a FIFO at the
config path blocked the reload thread in ``open()`` forever. Each read runs in a child process with
a deadline and a memory cap, so a hang or a runaway read is a failure here, not a stuck suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import SecretRef, load_config
from monitor.errors import ConfigError, SecretUnavailable

KEY = "unsafe-files-key-5e0c2b8a41d7"
DEADLINE = 20  # seconds for a child that should answer in milliseconds
MEMORY_CAP = 1024 * 1024 * 1024  # bytes of address space for the child: /dev/zero fails fast
CONFIG = """\
version: 1
defaults:
  endpoint: http://127.0.0.1:9
  callback: {url: "https://hooks.example.com/x", commands: [Room.CallbackAfterCreateRoom]}
alerting:
  webhook: {url: "https://hooks.example.com/alerts", secret_file: hook.key}
apps:
  - {name: a, sdkappid: 1400000001, secret_key_file: app.key}
"""
CAP = f"""\
import resource
resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, {MEMORY_CAP}))
"""
READ_SECRETS = (
    CAP
    + """\
import sys
from monitor.config import load_config
from monitor.errors import SecretUnavailable

config = load_config(sys.argv[1], environ={})
(app,) = config.apps
print("loaded", flush=True)
input()  # the parent swaps the files now
for ref in (app.secret, config.alerting.webhook.secret):
    try:
        ref.read()
    except SecretUnavailable as exc:
        print("SecretUnavailable:", exc, flush=True)
    else:
        print("read", flush=True)
"""
)
LOAD_CONFIG = (
    CAP
    + """\
import sys
from monitor.config import load_config
from monitor.errors import ConfigError

try:
    load_config(sys.argv[1], environ={})
except ConfigError as exc:
    print("ConfigError:", exc, flush=True)
else:
    print("loaded", flush=True)
"""
)


def child(script: str, *args: str, stdin: str = "") -> list[str]:
    """The lines a Python child running ``script`` printed; a hang or a crash fails the test."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the read was still blocked after {DEADLINE}s")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def swap_in(path: Path, kind: str) -> None:
    """Put a FIFO (nobody writing) or a symlink to /dev/zero where ``path`` was."""
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


def write_config(tmp_path: Path) -> Path:
    (tmp_path / "app.key").write_text(KEY, encoding="utf-8")
    (tmp_path / "hook.key").write_text("hook-" + KEY, encoding="utf-8")
    path = tmp_path / "monitor.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.mark.parametrize(("kind", "what"), [("fifo", "a named pipe"), ("zero", "a character device")])
def test_a_secret_file_swapped_for_a_non_file_is_refused_at_once(
    tmp_path: Path, kind: str, what: str
) -> None:
    """Loaded while the keys were files; then each is swapped and read again, as a check would."""
    path = write_config(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-c", READ_SECRETS, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "loaded"
        swap_in(tmp_path / "app.key", kind)
        swap_in(tmp_path / "hook.key", kind)
        out, err = process.communicate("\n", timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the read was still blocked after {DEADLINE}s")
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, err[-2000:]
    assert out.splitlines() == [
        f"SecretUnavailable: cannot read the secret key from file {tmp_path / 'app.key'} "
        f"({what}, not a regular file)",
        f"SecretUnavailable: cannot read the secret key from file {tmp_path / 'hook.key'} "
        f"({what}, not a regular file)",
    ]


@pytest.mark.parametrize(("kind", "what"), [("fifo", "a named pipe"), ("zero", "a character device")])
def test_a_config_file_that_is_not_a_file_is_refused_at_once(tmp_path: Path, kind: str, what: str) -> None:
    path = write_config(tmp_path)
    swap_in(path, kind)
    assert child(LOAD_CONFIG, str(path)) == [
        f"ConfigError: {path}: 1 problem",
        f"  (top level): is {what}, not a regular file",
    ]


@pytest.mark.parametrize(("kind", "what"), [("fifo", "a named pipe"), ("zero", "a character device")])
def test_a_secret_file_that_is_not_a_file_is_refused_at_load(tmp_path: Path, kind: str, what: str) -> None:
    path = write_config(tmp_path)
    swap_in(tmp_path / "app.key", kind)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    (problem,) = caught.value.problems
    assert problem.message == f"secret file {tmp_path / 'app.key'} is {what}, not a regular file"


def test_a_secret_read_raises_only_secret_unavailable(tmp_path: Path) -> None:
    """Every way a secret can be missing is the one error the checker maps to reason "auth"."""
    (tmp_path / "big.key").write_bytes(b"k" * (64 * 1024 + 1))
    (tmp_path / "latin1.key").write_bytes(b"caf\xe9")
    (tmp_path / "dir.key").mkdir()
    cases = {
        SecretRef(file=tmp_path / "absent.key"): "(No such file or directory)",
        SecretRef(file=tmp_path / "big.key"): "(larger than 64 KiB)",
        SecretRef(file=tmp_path / "latin1.key"): "(not UTF-8 text)",
        SecretRef(file=tmp_path / "dir.key"): "(a directory, not a regular file)",
        SecretRef(env="NOT_SET_ANYWHERE"): "(not set)",
    }
    for ref, reason in cases.items():
        with pytest.raises(SecretUnavailable) as caught:
            ref.read({})
        assert str(caught.value) == f"cannot read the secret key from {ref.describe()} {reason}"
