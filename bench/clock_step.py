"""Wall-clock steps under a running ``serve``: the longest gap between checks of an app at a 2 s interval.

``python -m bench.clock_step`` runs ``serve`` under Debian's libfaketime (package ``faketime``), whose
offset a file sets while the process runs; the monotonic clock is left alone, as NTP or a restored VM
snapshot leave it. Two steps, each held for 3 s and then undone: the wall clock 40 s back, then
10 minutes forward. For each, the longest gap between two checks (as this process received their log
lines, on its own monotonic clock) from the step until 60 s after. Not part of ``make bench``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import Fleet, Workdir, serve_process

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
ENDPOINT = "http://127.0.0.1:9"


def faketime_env(offset_file: Path) -> dict[str, str]:
    """Environment that makes a child's wall clock follow the offset in ``offset_file`` (``+0``, ``-40``)."""
    return {
        **os.environ,
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


async def measure() -> list[str]:
    workdir = Workdir(Path(tempfile.mkdtemp(prefix="bench-clock-")))
    offset = workdir.root / "offset"
    offset.write_text("+0\n")
    config = workdir.write_config(Fleet(1), "one", endpoint=ENDPOINT, interval="2s")
    proc = await serve_process(config, env=faketime_env(offset))
    checks: list[float] = []
    out: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        while raw := await proc.stdout.readline():
            if b'"check_error"' in raw or b'"event": "check"' in raw:
                checks.append(time.monotonic())

    reader = asyncio.create_task(read())
    try:
        while len(checks) < 3:
            if reader.done():
                raise RuntimeError("serve stopped")
            await asyncio.sleep(0.1)
        for label, step in (("40 s back", "-40"), ("10 min forward", "+600")):
            at = time.monotonic()
            offset.write_text(f"{step}\n")
            await asyncio.sleep(3)
            offset.write_text("+0\n")
            await asyncio.sleep(57)
            seen = [at] + [t for t in checks if t > at]
            gaps = [b - a for a, b in itertools.pairwise(seen)] or [60.0]
            out.append(
                f"wall clock {label} for 3 s, interval 2 s: {len(seen) - 1} checks in the next 60 s, "
                f"longest gap {max([*gaps, time.monotonic() - seen[-1]]):.1f} s"
            )
            print(out[-1], flush=True)
    finally:
        proc.terminate()
        await proc.wait()
        reader.cancel()
        workdir.cleanup()
    return out


def main() -> None:
    if not LIBFAKETIME.exists():
        sys.exit(f"{LIBFAKETIME} is missing: apt-get install faketime")
    asyncio.run(measure())


if __name__ == "__main__":
    main()
