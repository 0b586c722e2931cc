"""A step of the wall clock does not blind the monitor: under libfaketime (Debian's ``faketime``; the
monotonic clock left alone, as NTP and a restored VM snapshot leave it), a ``serve`` checking an app
every second keeps checking it about every second while the wall clock jumps 40 s back or 10 minutes
forward and back again.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from tests.serve_helpers import Serve, config_yaml, write_keys

pytestmark = pytest.mark.slow

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")  # .ci/run installs it
APP = ("clock-one", 1400900001)
INTERVAL = 1.0
HELD = 3.0  # seconds each step is held before the clock is put back


async def check_times(serve: Serve, *, after: int, seconds: float) -> tuple[list[float], int]:
    """The monotonic times at which checks of APP were seen during ``seconds``; and the next index."""
    times: list[float] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            after = await serve.wait_checks(APP[0], 1, after=after, within=left)
        except AssertionError:  # no check within what is left: that gap counts below
            break
        times.append(time.monotonic())
    return times, after


@pytest.mark.skipif(not LIBFAKETIME.exists(), reason="needs Debian's faketime (apt-get install faketime)")
async def test_checks_keep_their_interval_through_wall_clock_steps(tmp_path: Path) -> None:
    write_keys(tmp_path / "keys", (APP,))
    config = tmp_path / "monitor.yaml"
    config.write_text(config_yaml("http://127.0.0.1:9", tmp_path / "keys", (APP,), interval="1s"))
    offset = tmp_path / "offset"
    offset.write_text("+0\n")
    env = {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    serve = await Serve.start(config, env=env)
    gaps: dict[str, float] = {}
    try:
        mark = await serve.wait_checks(APP[0], 2, after=0)
        for label, step in (("40 s back", "-40"), ("10 min forward", "+600")):
            stepped = time.monotonic()
            offset.write_text(f"{step}\n")
            during, mark = await check_times(serve, after=mark, seconds=HELD)
            offset.write_text("+0\n")
            after, mark = await check_times(serve, after=mark, seconds=HELD)
            seen = [stepped, *during, *after, time.monotonic()]
            gaps[label] = max(b - a for a, b in itertools.pairwise(seen))
        steps = serve.find("clock_step")
    finally:
        await serve.close()
    assert all(gap < 2 * INTERVAL + 0.5 for gap in gaps.values()), gaps
    assert [round(line["seconds"]) for line in steps] == [-40, 40, 600, -600], steps
