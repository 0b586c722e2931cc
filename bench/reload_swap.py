"""Big reloads: swap a 40,000-app config into a running one-app ``serve`` and back, ten times.

``python -m bench.reload_swap [--apps 40000] [--swaps 10]`` prints, for each swap, the slowest
/healthz answer while the reload ran (probed every 10 ms from the parse's start to the
``config_reloaded`` line) and the resident memory of ``serve`` a second after the reload. The apps
point at a closed loopback port and the rate limit is 1 request/s, so checks cost next to nothing and
what is measured is the reload itself. Not part of ``make bench``: it takes a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench.harness import Fleet, Workdir, http_session, ping_while, serve

ENDPOINT = "http://127.0.0.1:9"  # the discard port: nothing listens, every check is a quick error


async def measure(apps: int, swaps: int) -> list[str]:
    out: list[str] = []
    workdir = Workdir(Path(tempfile.mkdtemp(prefix="bench-reload-")))
    try:
        big = workdir.write_config(
            Fleet(apps), "big", endpoint=ENDPOINT, interval="1h", requests_per_second=1
        )
        small = workdir.write_config(
            Fleet(1), "small", endpoint=ENDPOINT, interval="1h", requests_per_second=1
        )
        texts = {apps: big.read_text(), 1: small.read_text()}
        config = workdir.root / "live.yaml"
        config.write_text(texts[1], encoding="utf-8")
        async with http_session() as session, serve(workdir, config, session) as daemon:
            child = daemon.child
            out.append(f"start (1 app): RSS {child.memory_kib()['VmRSS'] / 1024:.0f} MiB")
            print(out[-1], flush=True)
            sizes = [apps, 1] * swaps
            for i, n in enumerate(sizes, 1):
                mark = len(child.lines)
                tmp = workdir.root / "next.yaml"
                tmp.write_text(texts[n], encoding="utf-8")
                started = time.monotonic()
                os.replace(tmp, config)
                done = asyncio.ensure_future(
                    child.wait_line(
                        lambda f, n=n: (
                            f.get("event") in ("config_reloaded", "config_reload_failed")
                            and f.get("apps", n) == n
                        ),
                        600,
                        start=mark,
                    )
                )
                pings = await ping_while(session, daemon.url, done)
                line = done.result()
                elapsed = time.monotonic() - started
                await asyncio.sleep(1.0)
                rss = child.memory_kib()["VmRSS"] / 1024
                out.append(
                    f"swap {i:2d} to {n:>6,} apps: {line.fields['event']} after {elapsed:5.1f} s, "
                    f"/healthz max {max(pings) * 1000:6.0f} ms over {len(pings)} probes, RSS {rss:.0f} MiB"
                )
                print(out[-1], flush=True)
    finally:
        workdir.cleanup()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reload_swap", description=__doc__)
    parser.add_argument("--apps", type=int, default=40_000)
    parser.add_argument("--swaps", type=int, default=10, help="round trips big -> 1 app")
    args = parser.parse_args()
    asyncio.run(measure(args.apps, args.swaps))


if __name__ == "__main__":
    main()
