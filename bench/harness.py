"""What the measurements drive: generated fleets, the simulator and ``serve`` as child processes, probes.

Every app of a fleet has its own made-up key (a file per app, as a Kubernetes Secret would mount it)
and the same desired callback, which the simulator also holds: the fleet starts in sync. Children
are started through the ``callback-monitor`` command next to the running interpreter, write their
JSON log lines to a pipe that a task drains all the time (a full pipe would stall them), and are
stopped with SIGTERM (SIGKILL after a while) however the measurement ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

FIRST_SDKAPPID = 1400000001
DESIRED_URL = "https://hooks.example.com/tencent/room"
DESIRED_COMMANDS = ("Room.CallbackAfterCreateRoom", "Room.CallbackAfterDestroyRoom")
DRIFTED_URL = "https://hooks.example.net/collect"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A measurement could not be made (a child died, a wait ran out); the message says which."""


def command() -> list[str]:
    """How to run callback-monitor: the installed script beside this interpreter, else ``-m monitor``."""
    script = Path(sys.executable).with_name("callback-monitor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


def key_for(sdkappid: int) -> str:
    """A made-up secret key for a benchmark app (never a real Tencent key)."""
    return hashlib.sha256(f"callback-monitor bench key {sdkappid}".encode()).hexdigest()


@dataclass(frozen=True)
class Fleet:
    """``n`` apps named ``app-00001``... with consecutive SDKAppIDs."""

    n: int
    first: int = FIRST_SDKAPPID

    @property
    def sdkappids(self) -> range:
        return range(self.first, self.first + self.n)

    @staticmethod
    def name(sdkappid: int) -> str:
        return f"app-{sdkappid - FIRST_SDKAPPID + 1:05d}"


class Workdir:
    """A scratch directory for keys, state files, configs and child logs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys = root / "keys"
        self.keys.mkdir(parents=True, exist_ok=True)
        self._written = 0  # keys 0.._written-1 of FIRST_SDKAPPID.. exist

    def write_keys(self, fleet: Fleet) -> None:
        if fleet.first != FIRST_SDKAPPID:
            raise ValueError("fleets start at FIRST_SDKAPPID")
        for sdkappid in range(FIRST_SDKAPPID + self._written, fleet.first + fleet.n):
            (self.keys / str(sdkappid)).write_text(key_for(sdkappid), encoding="ascii")
        self._written = max(self._written, fleet.n)

    def write_state(self, fleet: Fleet, name: str, faults: dict[str, Any] | None = None) -> Path:
        """The simulator's state file: every app with its key and the desired callback."""
        callback = {"url": DESIRED_URL, "commands": list(DESIRED_COMMANDS)}
        apps = [{"sdkappid": s, "key": key_for(s), "callback": callback} for s in fleet.sdkappids]
        path = self.root / f"{name}.sim.json"
        path.write_text(json.dumps({"apps": apps, "faults": faults or {}}), encoding="utf-8")
        return path

    def write_config(
        self,
        fleet: Fleet,
        name: str,
        *,
        endpoint: str,
        interval: str = "60s",
        timeout: str = "5s",
        concurrency: int | None = None,
        requests_per_second: float | None = None,
    ) -> Path:
        """The monitor's config for ``fleet`` against the simulator at ``endpoint``."""
        self.write_keys(fleet)
        lines = [
            "version: 1",
            "defaults:",
            f"  endpoint: {endpoint}",
            f"  interval: {interval}",
            f"  timeout: {timeout}",
            f"  secret_key_file: {self.keys}/{{sdkappid}}",
            "  callback:",
            f"    url: {DESIRED_URL}",
            f"    commands: [{', '.join(DESIRED_COMMANDS)}]",
        ]
        limits = []
        if concurrency is not None:
            limits.append(f"  concurrency: {concurrency}")
        if requests_per_second is not None:
            limits.append(f"  requests_per_second: {requests_per_second:g}")
        if limits:
            lines += ["limits:", *limits]
        lines.append("apps:" if fleet.n else "apps: []")
        for s in fleet.sdkappids:
            lines.append(f"  - name: {Fleet.name(s)}\n    sdkappid: {s}")
        path = self.root / f"{name}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# ---- child processes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    received: float  # time.time() when the bench read it
    fields: dict[str, Any]


class Child:
    """A callback-monitor process whose stdout JSON lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process, label: str, stderr_path: Path) -> None:
        self.proc = proc
        self.label = label
        self.stderr_path = stderr_path
        self.lines: list[LogLine] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name=f"read-{label}")

    @classmethod
    async def start(cls, args: Sequence[str], label: str, workdir: Workdir) -> Child:
        stderr_path = workdir.root / f"{label}.stderr"
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                *command(),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                limit=1 << 22,
            )
        return cls(proc, label, stderr_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                break
            try:
                fields = json.loads(raw)
            except ValueError:
                fields = {"event": "(not json)", "text": raw.decode("utf-8", "replace").rstrip()}
            if isinstance(fields, dict):
                self.lines.append(LogLine(time.time(), fields))
                self._changed.set()
        self._changed.set()

    async def wait_line(
        self, match: Callable[[dict[str, Any]], bool], within: float, *, start: int = 0
    ) -> LogLine:
        """The first line from index ``start`` on that ``match`` accepts; waits up to ``within`` s."""
        deadline = time.monotonic() + within
        seen = start
        while True:
            for line in self.lines[seen:]:
                if match(line.fields):
                    return line
            seen = max(seen, len(self.lines))
            if self.proc.returncode is not None or self._reader.done():
                raise BenchError(f"{self.label} exited ({self.proc.returncode}): {self.stderr_tail()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.label}: no matching log line within {within:g}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def stderr_tail(self, limit: int = 600) -> str:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-limit:].strip()
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """utime + stime of the process so far, from /proc/PID/stat."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak resident) from /proc/PID/status, in KiB."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    async def stop(self, grace: float = 10.0) -> int | None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 5)
        return self.proc.returncode


class Simulator:
    """``callback-monitor simulate`` in its own process, and its control API."""

    def __init__(self, child: Child, url: str, session: aiohttp.ClientSession) -> None:
        self.child = child
        self.url = url
        self.session = session

    async def get(self, path: str) -> Any:
        async with self.session.get(self.url + path) as response:
            response.raise_for_status()
            return await response.json()

    async def put(self, path: str, data: Any) -> Any:
        async with self.session.put(self.url + path, json=data) as response:
            response.raise_for_status()
            return await response.json()

    async def reset_counts(self) -> None:
        async with self.session.post(self.url + "/_sim/reset-counts") as response:
            response.raise_for_status()

    async def counts_by_app(self, action: str = "get_callback") -> dict[int, int]:
        counts = await self.get("/_sim/counts")
        return {int(k): v[action] for k, v in counts["by_sdkappid"].items() if k.isdigit() and action in v}

    async def wait_all_seen(self, fleet: Fleet, within: float, poll: float = 0.5) -> float:
        """Wait until every app of ``fleet`` has been asked for at least once; returns when (epoch)."""
        deadline = time.monotonic() + within
        while True:
            seen = await self.counts_by_app()
            if all(seen.get(s, 0) > 0 for s in fleet.sdkappids):
                return time.time()
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(seen)} of {fleet.n} apps were checked within {within:g}s")
            await asyncio.sleep(poll)


class Serve:
    """``callback-monitor serve`` in its own process, and its HTTP endpoints."""

    def __init__(self, child: Child, url: str, session: aiohttp.ClientSession) -> None:
        self.child = child
        self.url = url.rstrip("/")
        self.session = session

    async def status(self) -> dict[str, Any]:
        async with self.session.get(self.url + "/status") as response:
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data

    async def wait_first_pass(self, fleet: Fleet, within: float) -> dict[str, Any]:
        """Poll /status until every app has a last_check (call once the simulator saw them all)."""
        deadline = time.monotonic() + within
        while True:
            status = await self.status()
            apps = status["apps"]
            if len(apps) == fleet.n and all(a["last_check"] for a in apps):
                return status
            if time.monotonic() > deadline:
                done = sum(1 for a in apps if a["last_check"])
                raise BenchError(f"{done} of {fleet.n} apps had a last_check after {within:g}s")
            await asyncio.sleep(1.0)


@contextlib.asynccontextmanager
async def simulator(
    workdir: Workdir,
    fleet: Fleet,
    session: aiohttp.ClientSession,
    label: str = "simulator",
    faults: dict[str, Any] | None = None,
) -> AsyncIterator[Simulator]:
    state = workdir.write_state(fleet, label, faults)
    child = await Child.start(
        ["simulate", "--listen", "127.0.0.1:0", "--state", str(state), "--log-format", "json"],
        label,
        workdir,
    )
    try:
        line = await child.wait_line(lambda f: f.get("event") == "simulator listening", 60)
        yield Simulator(child, str(line.fields["url"]), session)
    finally:
        await child.stop()


async def serve_process(config: Path, **popen: Any) -> asyncio.subprocess.Process:
    """``serve`` on 127.0.0.1:0 with JSON logs on a pipe (stderr joined to it), for the scripts that read
    its log lines themselves; ``popen`` adds what they need (an environment, a preexec_fn, a limit)."""
    return await asyncio.create_subprocess_exec(
        *command(),
        *("serve", "--config", str(config), "--listen", "127.0.0.1:0", "--log-format", "json"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        **popen,
    )


@contextlib.asynccontextmanager
async def serve(
    workdir: Workdir,
    config: Path,
    session: aiohttp.ClientSession,
    *,
    label: str = "serve",
    extra: Sequence[str] = (),
) -> AsyncIterator[Serve]:
    child = await Child.start(
        ["serve", "--config", str(config), "--listen", "127.0.0.1:0", "--log-format", "json", *extra],
        label,
        workdir,
    )
    try:
        line = await child.wait_line(lambda f: f.get("event") == "started", 120)
        yield Serve(child, str(line.fields["url"]), session)
    finally:
        code = await child.stop()
        if code not in (0, -signal.SIGTERM):
            print(f"  note: {label} exited with {code}: {child.stderr_tail()}", file=sys.stderr)


async def ping_while(
    session: aiohttp.ClientSession, url: str, busy: asyncio.Future[Any], period: float = 0.010
) -> list[float]:
    """Request /healthz every ``period`` s until ``busy`` is done; each request's latency in seconds."""
    latencies: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        started = time.perf_counter()
        async with session.get(url + "/healthz") as response:
            await response.read()
        latencies.append(time.perf_counter() - started)

    due = time.perf_counter()
    while not busy.done():
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        due += period
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
    await asyncio.gather(*tasks)
    return latencies


def http_session() -> aiohttp.ClientSession:
    """The bench's own client: no pool limit (probes must not queue behind a slow request)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    )


def epoch(iso: str) -> float:
    """``2026-11-28T05:56:35.865Z`` -> seconds since the epoch."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile (q in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))
    return ordered[index]
