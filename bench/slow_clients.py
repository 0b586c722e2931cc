"""Half-open HTTP clients against ``serve``: how long they stay open, and what running out of files costs.

``python -m bench.slow_clients [--partial 300] [--silent 50] [--wait 20]`` runs two measurements:

1. ``--partial`` connections that send half a request header and ``--silent`` ones that send nothing;
   after ``--wait`` seconds, how many of each the server still holds open (and when it closed the
   others).
2. ``serve`` started with at most 128 open files, then 300 silent connections: how many log lines and
   bytes the accept errors cost in 5 seconds, whether /healthz still answers from a connection opened
   before, and what ``callback_monitor_accept_errors_total`` says (when it exists).

Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.harness import Fleet, Workdir, serve_process

ENDPOINT = "http://127.0.0.1:9"
PARTIAL = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def _spawn(config: Path, nofile: int | None) -> tuple[asyncio.subprocess.Process, str, list[bytes]]:
    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = await serve_process(config, preexec_fn=limit, limit=1 << 24)
    assert proc.stdout is not None
    lines: list[bytes] = []
    while True:
        raw = await proc.stdout.readline()
        if not raw:
            raise RuntimeError(b"".join(lines[-20:]).decode())
        lines.append(raw)
        if b'"started"' in raw:
            url = json.loads(raw)["url"].rstrip("/")
            break

    async def drain() -> None:
        assert proc.stdout is not None
        while raw := await proc.stdout.readline():
            lines.append(raw)

    asyncio.get_running_loop().create_task(drain())
    return proc, url, lines


async def _hold(host: str, port: int, payload: bytes, opened: float, closed: list[float]) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        closed.append(0.0)
        return
    if payload:
        writer.write(payload)
    try:
        while await reader.read(65536):
            pass
    except OSError:
        pass
    closed.append(time.monotonic() - opened)
    writer.close()


async def half_open(config: Path, partial: int, silent: int, wait: float) -> str:
    proc, url, _lines = await _spawn(config, None)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        opened = time.monotonic()
        closed_partial: list[float] = []
        closed_silent: list[float] = []
        tasks = [
            asyncio.create_task(_hold(host, int(port), PARTIAL, opened, closed_partial))
            for _ in range(partial)
        ]
        tasks += [
            asyncio.create_task(_hold(host, int(port), b"", opened, closed_silent)) for _ in range(silent)
        ]
        await asyncio.sleep(wait)
        result = (
            f"after {wait:g} s: {partial - len(closed_partial)} of {partial} partial-header connections "
            f"and {silent - len(closed_silent)} of {silent} silent ones still open"
        )
        if closed_partial or closed_silent:
            result += f" (closed after at most {max(closed_partial + closed_silent):.1f} s)"
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return result
    finally:
        proc.terminate()
        await proc.wait()


async def out_of_files(config: Path, connections: int) -> str:
    proc, url, lines = await _spawn(config, 128)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    writers = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
            async with session.get(url + "/healthz") as response:  # opens the pooled connection
                await response.read()
            mark, size = len(lines), sum(map(len, lines))
            for _ in range(connections):
                try:
                    _reader, writer = await asyncio.open_connection(host, int(port))
                    writers.append(writer)
                except OSError:
                    break
            await asyncio.sleep(5)
            new = lines[mark:]
            errors = sum(1 for raw in new if b"accept" in raw)
            nbytes = sum(map(len, lines)) - size
            try:
                async with session.get(url + "/healthz") as response:
                    health = str(response.status)
                async with session.get(url + "/metrics") as response:
                    text = await response.text()
                counted = next(
                    (ln for ln in text.splitlines() if ln.startswith("callback_monitor_accept_errors_total")),
                    "no callback_monitor_accept_errors_total",
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                health, counted = f"failed ({type(exc).__name__})", "/metrics failed"
        return (
            f"128 files, {len(writers)} connections held: {errors} accept-error log lines "
            f"({nbytes:,} bytes of output) in 5 s; /healthz {health}; {counted}"
        )
    finally:
        for writer in writers:
            writer.close()
        proc.terminate()
        await proc.wait()


async def measure(partial: int, silent: int, wait: float) -> None:
    workdir = Workdir(Path(tempfile.mkdtemp(prefix="bench-slow-")))
    try:
        config = workdir.write_config(Fleet(1), "one", endpoint=ENDPOINT, interval="1h")
        print(await half_open(config, partial, silent, wait), flush=True)
        print(await out_of_files(config, 300), flush=True)
    finally:
        workdir.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__)
    parser.add_argument("--partial", type=int, default=300)
    parser.add_argument("--silent", type=int, default=50)
    parser.add_argument("--wait", type=float, default=20.0)
    args = parser.parse_args()
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < args.partial + args.silent + 64:
        sys.exit("raise the open-file limit of this shell first (ulimit -n)")
    asyncio.run(measure(args.partial, args.silent, args.wait))


if __name__ == "__main__":
    main()
