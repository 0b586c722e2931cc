"""Run ``callback-monitor serve`` as a real subprocess and watch it: log lines, HTTP pages, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from monitor.simulator import SAMPLE_DESIRED, sample_key

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 15.0  # generous: every wait ends as soon as its condition holds

# The demo's sample apps (see monitor.simulator.sample_state): name -> sdkappid.
IN_SYNC = ("demo-in-sync", 1400000001)
DRIFTED_URL = ("demo-drifted-url", 1400000002)
PLAIN_HTTP = ("demo-plain-http", 1400000003)
MISSING_COMMANDS = ("demo-missing-commands", 1400000004)
NO_CONFIG = ("demo-no-config", 1400000005)
SAMPLE_APPS = (IN_SYNC, DRIFTED_URL, PLAIN_HTTP, MISSING_COMMANDS, NO_CONFIG)

Line = dict[str, Any]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def config_dict(
    endpoint: str,
    key_dir: Path,
    apps: Sequence[tuple[str, int]] = SAMPLE_APPS,
    *,
    interval: str = "1s",
    timeout: str = "5s",
    error_threshold: int | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A config for ``apps`` against the simulator, desired state as in the demo; ``overrides`` by name."""
    defaults: dict[str, Any] = {
        "endpoint": endpoint,
        "interval": interval,
        "timeout": timeout,
        "secret_key_file": str(key_dir / "{sdkappid}"),
        "policy": {"require_https": True, "allowed_hosts": ["hooks.example.com"]},
        "callback": {"url": SAMPLE_DESIRED.url, "commands": list(SAMPLE_DESIRED.commands)},
    }
    if error_threshold is not None:
        defaults["error_threshold"] = error_threshold
    entries: list[dict[str, Any]] = []
    for name, sdkappid in apps:
        entry: dict[str, Any] = {"name": name, "sdkappid": sdkappid, "labels": {"team": "rtc", "env": "test"}}
        if (name, sdkappid) == NO_CONFIG:
            entry["callback"] = None
        entry.update((overrides or {}).get(name, {}))
        entries.append(entry)
    return {"version": 1, "defaults": defaults, "apps": entries}


def config_yaml(*args: Any, **kwargs: Any) -> str:
    return yaml.safe_dump(config_dict(*args, **kwargs), sort_keys=False)


def write_keys(key_dir: Path, apps: Sequence[tuple[str, int]] = SAMPLE_APPS) -> None:
    """The simulator's sample keys, one file per sdkappid, as a mounted Secret holds them."""
    key_dir.mkdir(parents=True, exist_ok=True)
    for _name, sdkappid in apps:
        (key_dir / str(sdkappid)).write_text(sample_key(sdkappid) + "\n", encoding="utf-8")


class AtomicDir:
    """A directory updated the way the kubelet updates a mounted ConfigMap or Secret.

    Each visible file is a symlink ``name -> ..data/name``; ``..data`` is a symlink to a timestamped
    directory, and an update writes a new such directory and swaps ``..data`` with one rename.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._generation = 0
        path.mkdir(parents=True, exist_ok=True)

    def write(self, files: Mapping[str, str]) -> None:
        self._generation += 1
        target = self.path / f"..{self._generation:04d}_{time.time_ns()}"
        target.mkdir()
        for name, text in files.items():
            (target / name).write_text(text, encoding="utf-8")
        data = self.path / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        tmp = self.path / "..data_tmp"
        os.symlink(target.name, tmp)
        os.replace(tmp, data)
        for name in files:
            link = self.path / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        if old is not None:
            shutil.rmtree(self.path / old)


class Serve:
    """One ``serve`` subprocess: its stdout parsed as JSON lines, its stderr kept, its HTTP pages."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[Line] = []
        self.raw: list[str] = []
        self.stderr: list[str] = []
        self.url = ""
        self._changed = asyncio.Condition()
        self._eof = False
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    async def start(cls, config: Path, *args: str, env: dict[str, str] | None = None) -> Serve:
        """Spawn the process, with only the CALLBACK_MONITOR_* variables of ``env``; see ``running``
        for one that is ready and always cleaned up."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACK_MONITOR_")} | (env or {})
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "serve",
            "--config",
            str(config),
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "debug",  # one `check` line per verdict: the tests count checks by them
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        return cls(proc)

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                line = json.loads(text)
            except ValueError:
                line = {"event": None, "unparsed": text}
            async with self._changed:
                self.raw.append(text)
                self.lines.append(line)
                self._changed.notify_all()
        async with self._changed:
            self._eof = True
            self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.stderr.append(raw.decode("utf-8", "replace"))

    # ---- log lines -------------------------------------------------------------------------------

    @property
    def mark(self) -> int:
        """The number of lines read so far: pass it as ``after`` to look only at later lines."""
        return len(self.lines)

    def find(self, event: str | None = None, *, after: int = 0, **fields: Any) -> list[Line]:
        """The lines after index ``after`` with this ``event`` and these field values."""
        return [
            line
            for line in self.lines[after:]
            if (event is None or line.get("event") == event)
            and all(line.get(k) == v for k, v in fields.items())
        ]

    def alerts(self, *, after: int = 0, **fields: Any) -> list[Line]:
        return [line for line in self.find(after=after, **fields) if line.get("alert") is True]

    async def wait_for(
        self,
        predicate: Callable[[Line], bool],
        *,
        after: int = 0,
        count: int = 1,
        within: float = DEADLINE,
        what: str = "",
    ) -> Line:
        """The ``count``-th line after index ``after`` that satisfies ``predicate``, within ``within`` s."""
        return self.lines[
            await self.wait_index(predicate, after=after, count=count, within=within, what=what)
        ]

    async def wait_index(
        self,
        predicate: Callable[[Line], bool],
        *,
        after: int = 0,
        count: int = 1,
        within: float = DEADLINE,
        what: str = "",
    ) -> int:
        """Like ``wait_for``, but the index of the line."""

        def found() -> int | None:
            hits = [i for i in range(after, len(self.lines)) if predicate(self.lines[i])]
            return hits[count - 1] if len(hits) >= count else None

        async def wait() -> int:
            async with self._changed:
                while (hit := found()) is None:
                    if self._eof:
                        raise AssertionError(f"serve closed its output before {what}\n{self.tail()}")
                    await self._changed.wait()
                return hit

        try:
            return await asyncio.wait_for(wait(), within)
        except TimeoutError:
            raise AssertionError(f"no {what or 'matching line'} within {within}s\n{self.tail()}") from None

    async def wait_event(
        self, event: str, *, after: int = 0, count: int = 1, within: float = DEADLINE, **fields: Any
    ) -> Line:
        def match(line: Line) -> bool:
            return line.get("event") == event and all(line.get(k) == v for k, v in fields.items())

        return await self.wait_for(match, after=after, count=count, within=within, what=f"{event} {fields}")

    async def wait_checks(self, app: str, count: int, *, after: int, within: float = DEADLINE) -> int:
        """Wait for ``count`` more checks of ``app`` (verdicts or errors); returns the index after the last.

        Alert lines follow the `check` line of the check that caused them, so every alert of the
        checks before the last one waited for has been read when this returns.
        """

        def match(line: Line) -> bool:
            return line.get("event") in ("check", "check_error") and line.get("app") == app

        return await self.wait_index(match, after=after, count=count, what=f"{count} checks of {app}") + 1

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.raw[-n:]) + ("\nstderr:\n" + "".join(self.stderr[-20:]) if self.stderr else "")

    # ---- HTTP ------------------------------------------------------------------------------------

    async def get(self, path: str) -> tuple[int, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        async with self._session.get(self.url + path) as response:
            return response.status, await response.text()

    async def metrics(self) -> Samples:
        status, text = await self.get("/metrics")
        assert status == 200, text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    async def status(self) -> dict[str, Any]:
        status, text = await self.get("/status")
        assert status == 200, text
        data: dict[str, Any] = json.loads(text)
        return data

    async def app_status(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = next(a for a in (await self.status())["apps"] if a["name"] == name)
        return entry

    # ---- lifecycle -------------------------------------------------------------------------------

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait_exit(self, within: float) -> int:
        await asyncio.wait_for(self.proc.wait(), within)
        await asyncio.gather(*self._readers)
        return self.proc.returncode if self.proc.returncode is not None else -1

    async def close(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and release everything; safe to call twice."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)


def metric(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly these labels, or None when absent."""
    return samples.get((name, frozenset(labels.items())))


def app_metric(samples: Samples, name: str, app: tuple[str, int], **labels: str) -> float | None:
    """The value of one app's sample ``name`` (``app`` is (name, sdkappid)), or None when absent."""
    return metric(samples, name, app=app[0], sdkappid=str(app[1]), **labels)


def has_app(samples: Samples, app: str) -> bool:
    return any(("app", app) in labels for _name, labels in samples)


async def eventually(
    probe: Callable[[], Awaitable[Any] | Any], *, within: float = DEADLINE, what: str = "condition"
) -> Any:
    """Poll ``probe`` (plain or async) until it returns something truthy, and return that."""
    deadline = time.monotonic() + within
    while True:
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within}s (last: {result!r})")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(config: Path, *args: str) -> AsyncIterator[Serve]:
    """A started ``serve`` (its `started` line read), stopped and cleaned up on exit."""
    serve = await Serve.start(config, *args)
    try:
        started = await serve.wait_event("started")
        serve.url = started["url"].rstrip("/")
        yield serve
    finally:
        await serve.close()


@contextlib.asynccontextmanager
async def post_receiver(
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """``handle`` answering every POST on a loopback port; yields its base URL, like http://127.0.0.1:PORT."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
