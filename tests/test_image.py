"""What the container image does, without a Docker engine: the Dockerfile's steps, run here.

The Dockerfile builds wheels (``pip wheel --wheel-dir /wheels .``), installs only those
(``pip install --no-index --find-links=/wheels callback-monitor==VERSION``) and runs ``serve`` as UID
10001 with a read-only root filesystem. This test does the same in a fresh virtual environment and
runs ``serve`` from it against the simulator, as an unprivileged user whose HOME and working
directory are not writable, then checks that nothing was written anywhere but the one writable
directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from monitor.simulator import SAMPLE_DESIRED, Simulator
from monitor.tencent.model import CallbackConfig

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
UID = 10001
KEY = "image-test-key-0123456789abcdef"


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture(scope="module")
def image_root() -> Iterator[Path]:
    """A world-readable directory holding the build context, the wheels and the installed venv."""
    root = Path(tempfile.mkdtemp(prefix="callback-monitor-image-", dir="/tmp"))
    root.chmod(0o755)
    context = root / "src"
    context.mkdir()
    # The .dockerignore allow-list: only these reach the build stage.
    shutil.copy(ROOT / "pyproject.toml", context)
    shutil.copy(ROOT / "README.md", context)
    shutil.copytree(ROOT / "monitor", context / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = root / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(context)])
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--no-index",
            f"--find-links={wheels}",
            f"callback-monitor=={VERSION}",
        ]
    )
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def unprivileged() -> list[str]:
    """A command prefix that drops to UID 10001 when we are root (CI is), so permissions apply."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to drop privileges for this test")
    return [setpriv, f"--reuid={UID}", f"--regid={UID}", "--clear-groups"]


def test_the_installed_wheel_holds_only_the_package(image_root: Path) -> None:
    wheel = next((image_root / "wheels").glob("callback_monitor-*.whl"))
    listing = run([sys.executable, "-m", "zipfile", "-l", str(wheel)]).stdout
    names = [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]
    top = {name.split("/")[0] for name in names}
    assert top == {"monitor", f"callback_monitor-{VERSION}.dist-info"}
    assert "monitor/py.typed" in names


@pytest.mark.slow
async def test_serve_runs_from_the_wheel_with_nothing_writable(image_root: Path) -> None:
    simulator = Simulator()
    simulator.add_app(1400000001, KEY, callback=SAMPLE_DESIRED)
    simulator.add_app(1400000002, KEY, callback=CallbackConfig("http://evil.example.net/x", ()))
    sim_url = await simulator.start()
    work = Path(tempfile.mkdtemp(prefix="callback-monitor-run-", dir="/tmp"))
    try:
        (work / "key").write_text(KEY)
        (work / "config.yaml").write_text(
            json.dumps(
                {
                    "version": 1,
                    "defaults": {
                        "endpoint": sim_url,
                        "interval": "1s",
                        "secret_key_file": str(work / "key"),
                        "callback": {"url": SAMPLE_DESIRED.url, "commands": list(SAMPLE_DESIRED.commands)},
                    },
                    "apps": [
                        {"name": "in-sync", "sdkappid": 1400000001},
                        {"name": "drifted", "sdkappid": 1400000002},
                    ],
                }
            )
        )
        for path in (work, work / "key", work / "config.yaml"):
            path.chmod(0o755 if path.is_dir() else 0o444)
        before = files_under(image_root)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),  # root-owned, 0755: not writable for UID 10001
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        process = await asyncio.create_subprocess_exec(
            *unprivileged(),
            str(image_root / "venv" / "bin" / "callback-monitor"),
            "serve",
            "--config",
            str(work / "config.yaml"),
            "--listen",
            "127.0.0.1:0",
            cwd=work,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        lines: list[dict[str, object]] = []
        url = ""
        try:
            async with asyncio.timeout(30):
                while not any(line.get("event") == "drift_detected" for line in lines):
                    raw = await process.stdout.readline()
                    assert raw, "serve ended early"
                    line = json.loads(raw)
                    lines.append(line)
                    if line.get("event") == "started":
                        url = str(line["url"])
            async with aiohttp.ClientSession() as session, session.get(f"{url}readyz") as response:
                assert response.status == 200
            if os.geteuid() == 0:  # the permissions above only bind an unprivileged process
                status = Path(f"/proc/{process.pid}/status").read_text()
                uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
                assert uid_line.split()[1:] == [str(UID)] * 4
        finally:
            process.send_signal(signal.SIGTERM)
            _out, err = await asyncio.wait_for(process.communicate(), 10)
        assert process.returncode == 0, err.decode()
        assert b"Traceback" not in err
        assert b"ermission denied" not in err
        detected = [line for line in lines if line.get("event") == "drift_detected"]
        assert {line["app"] for line in detected} == {"drifted"}
        assert files_under(image_root) == before, "serve wrote into the installed image"
        assert files_under(work) == {"key", "config.yaml"}, "serve wrote into HOME or the working directory"
    finally:
        await simulator.stop()
        shutil.rmtree(work, ignore_errors=True)
