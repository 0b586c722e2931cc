"""A check always ends as an Outcome: an unplanned exception, running out of file descriptors or a
secret file that blocks its reader fail one check with a reason of its own, never the app's checks."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import resource
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from structlog.testing import capture_logs

from monitor.checker import Checker
from monitor.config import AppConfig, load_config_text
from monitor.simulator import Simulator
from monitor.state import Outcome
from monitor.tencent.client import RetryPolicy, RoomConfigClient
from tests.reliability.lab import Leaks

SDKAPPID = 1400000001
KEY = "a-good-secret-key-0123456789"


def app_config(endpoint: str, environ: dict[str, str], **secret: Any) -> AppConfig:
    entry = {
        "name": "shop",
        "sdkappid": SDKAPPID,
        "callback": None,
        **(secret or {"secret_key_env": "SHOP_KEY"}),
    }
    doc = {"version": 1, "defaults": {"endpoint": endpoint, "timeout": "2s"}, "apps": [entry]}
    return load_config_text(yaml.safe_dump(doc), environ=environ).apps[0]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    sim = Simulator(seed=0)
    await sim.start()
    sim.add_app(SDKAPPID, KEY, callback=None)
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def client() -> AsyncIterator[RoomConfigClient]:
    async with aiohttp.ClientSession() as session:
        yield RoomConfigClient(session, retry=RetryPolicy(attempts=1))


async def test_an_unplanned_exception_fails_the_check_as_internal_and_the_app_stays_checked(
    sim: Simulator, client: RoomConfigClient, leaks: Leaks
) -> None:
    """A key that cannot be encoded (an environment variable holding bytes that are not UTF-8 reads
    as surrogates) made the signing raise UnicodeEncodeError out of the check: serve's scheduler logged
    "Job raised an exception" and the app was never checked again."""
    assert sim.url is not None
    environ = {"SHOP_KEY": KEY}
    app = app_config(sim.url, environ)
    checker = Checker(client, environ=environ)
    assert (await checker.check(app)).verdict is not None

    environ["SHOP_KEY"] = "bad-\udcff-key"  # what os.environ makes of the byte 0xff
    with capture_logs() as logs:
        outcomes = [await checker.check(app) for _ in range(2)]

    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.reason, outcome.error.message) == (
            "internal",
            "unexpected UnicodeEncodeError inside the check",
        )
    errors = [e for e in logs if e["event"] == "check_error"]
    assert [(e["log_level"], e["reason"]) for e in errors] == [("error", "internal"), ("error", "internal")]
    leaks.secret("the app's key", KEY)
    leaks.output("the check's log lines", repr(logs))
    assert "bad-" not in repr(logs)

    environ["SHOP_KEY"] = KEY
    assert (await checker.check(app)).verdict is not None


async def exhausted(checker: Checker, app: AppConfig) -> Outcome:
    """One check of ``app`` while every file descriptor the process may open is taken."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
    try:
        with pytest.raises(OSError, match="Too many open files") as full:  # noqa: PT012 - fill it up
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        assert full.value.errno == errno.EMFILE
        return await checker.check(app)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_running_out_of_file_descriptors_reading_the_key_is_its_own_reason_not_a_bad_key(
    sim: Simulator, client: RoomConfigClient, tmp_path: Path
) -> None:
    assert sim.url is not None
    key_file = tmp_path / "shop.key"
    key_file.write_text(KEY)
    app = app_config(sim.url, {}, secret_key_file=str(key_file))
    assert (await Checker(client).check(app)).verdict is not None  # everything a check uses is loaded
    checker = Checker(client)  # one that has not read the key yet

    outcome = await exhausted(checker, app)

    assert outcome.error is not None
    assert outcome.error.reason == "resource_exhausted"
    expected = f"out of file descriptors (EMFILE) reading the secret key from file {key_file}"
    assert outcome.error.message == expected
    assert (await checker.check(app)).verdict is not None


async def test_a_secret_file_that_blocks_its_reader_never_stalls_the_event_loop(
    sim: Simulator, client: RoomConfigClient, tmp_path: Path
) -> None:
    """A FIFO swapped in for the key file blocks whoever opens it until a writer comes: the event loop
    must keep running meanwhile. A timer thread plays the writer after 3 s, so that the old code
    (which read on the loop) ends the test instead of hanging it."""
    assert sim.url is not None
    key_file = tmp_path / "shop.key"
    key_file.write_text(KEY)
    app = app_config(sim.url, {}, secret_key_file=str(key_file))
    checker = Checker(client)
    assert (await checker.check(app)).verdict is not None

    key_file.unlink()
    os.mkfifo(key_file)
    release = threading.Timer(3.0, lambda: os.close(os.open(key_file, os.O_WRONLY)))
    release.start()
    loop = asyncio.get_running_loop()
    beats = [loop.time()]

    async def beat() -> None:
        while True:
            await asyncio.sleep(0.05)
            beats.append(loop.time())

    beating = asyncio.create_task(beat())
    try:
        outcome = await checker.check(app)
        beats.append(loop.time())
    finally:
        beating.cancel()
        release.cancel()
        with contextlib.suppress(OSError):  # let a reader still waiting on the FIFO go
            os.close(os.open(key_file, os.O_WRONLY | os.O_NONBLOCK))
        release.join()

    assert outcome.error is not None  # the FIFO never gave a key: refused, or timed out while it blocked
    longest = max(later - earlier for earlier, later in itertools.pairwise(beats))
    assert longest < 1.0, f"the event loop stood still for {longest:.1f}s while the key was read"
