"""The reliability suite's lab: the simulator on loopback (http or https) recording the UserSigs it
sees, a fleet of apps with fresh keys and URL tokens, test certificates, the real command as a
subprocess, and the search for known secrets in everything the monitor printed or served."""

from __future__ import annotations

import asyncio
import re
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from aiohttp import web

from monitor.simulator import Simulator
from monitor.tencent.model import CallbackConfig
from tests.fakes import ShiftClock as ShiftClock  # the lab's users take it from here

ROOT = Path(__file__).resolve().parents[2]

CREATE = "Room.CallbackAfterCreateRoom"
DESTROY = "Room.CallbackAfterDestroyRoom"
ENTER = "Room.CallbackAfterMemberEnter"
COMMANDS = (CREATE, DESTROY, ENTER)
ALLOWED_HOST = "hooks.example.com"

# Figures the suite reports at the end of the run (see conftest.pytest_terminal_summary).
FIGURES: dict[str, str] = {}


def token(prefix: str = "tok") -> str:
    """A fresh secret-looking value: nothing else in any output can contain it by chance."""
    return f"{prefix}-{secrets.token_urlsafe(18)}"


# ---- the leak search ------------------------------------------------------------------------------

_MIN_SECRET = 12
# Every secret here is made of these characters (keys, tokens, UserSigs in their wire alphabet, and
# their percent-encoded forms), so an occurrence always lies inside one run of them.
_RUN = re.compile(r"[A-Za-z0-9%*_.~+/=-]{" + str(_MIN_SECRET) + ",}")


class Leaks:
    """Known secret values and every output of the suite; ``scan`` says which secret shows where."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}  # value -> what it is (never the value itself)
        self._index: dict[str, list[str]] = {}  # first _MIN_SECRET characters -> values
        self.outputs: list[tuple[str, str]] = []
        self.scanned_bytes = 0

    def secret(self, label: str, value: str) -> None:
        """Remember ``value`` (and its percent-encoded form) as a secret named ``label``."""
        if len(value) < _MIN_SECRET or not _RUN.fullmatch(value):
            raise ValueError(f"a test secret must be {_MIN_SECRET}+ characters of {_RUN.pattern}")
        for form in {value, quote(value, safe="")}:
            if form not in self._labels:
                self._labels[form] = label
                self._index.setdefault(form[:_MIN_SECRET], []).append(form)

    @property
    def secret_count(self) -> int:
        return len(self._labels)

    def output(self, where: str, text: str) -> None:
        self.outputs.append((where, text))

    def outputs_since(self, mark: int) -> list[tuple[str, str]]:
        return self.outputs[mark:]

    def scan(self, outputs: Iterable[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        """(where, label) for each secret found in ``outputs`` (default: all of them)."""
        found: set[tuple[str, str]] = set()
        for where, text in self.outputs if outputs is None else outputs:
            self.scanned_bytes += len(text)
            for run in set(_RUN.findall(text)):
                for i in range(len(run) - _MIN_SECRET + 1):
                    for value in self._index.get(run[i : i + _MIN_SECRET], ()):
                        if run.startswith(value, i):
                            found.add((where, self._labels[value]))
        return sorted(found)


# ---- the simulator on loopback ----------------------------------------------------------------------


class SimServer:
    """``sim`` served on a loopback port, over https when given a context; every UserSig a request
    carries is handed to ``leaks`` as a secret (the simulator itself deliberately keeps none)."""

    def __init__(self, sim: Simulator, leaks: Leaks, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.sim = sim
        self.leaks = leaks
        self.ssl_context = ssl_context
        self.url = ""
        self.sigs_seen = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> SimServer:
        @web.middleware
        async def capture(request: web.Request, handler: Any) -> web.StreamResponse:
            sig = request.query.get("usersig", "")
            if len(sig) >= _MIN_SECRET:
                self.sigs_seen += 1
                self.leaks.secret(f"UserSig of {request.query.get('sdkappid', '?')}", sig)
            response: web.StreamResponse = await handler(request)
            return response

        app = self.sim.make_app()
        app.middlewares.append(capture)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self._runner = runner
        scheme = "https" if self.ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.sim.stop()  # releases hanging requests
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# ---- a fleet of apps ----------------------------------------------------------------------------------


@dataclass
class App:
    name: str
    sdkappid: int
    key: str
    live: CallbackConfig | None
    findings: frozenset[str]  # the kinds of the true verdict; empty when in sync
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return "drift" if self.findings else "in_sync"


# What each shape of live config is, against the fleet's desired state and allowed_hosts.
SHAPES: dict[str, frozenset[str]] = {
    "in_sync": frozenset(),
    "foreign": frozenset({"url_mismatch", "host_not_allowed"}),
    "missing": frozenset({"missing_commands"}),
}


class Fleet:
    """Apps live in the simulator and listed in a config file, each with a fresh key and URL token."""

    def __init__(self, sim: Simulator, root: Path, leaks: Leaks, *, first_sdkappid: int = 1400100000) -> None:
        self.sim = sim
        self.root = root
        self.leaks = leaks
        self.keys = root / "keys"
        self.keys.mkdir(parents=True, exist_ok=True)
        self.apps: dict[str, App] = {}
        self._next = first_sdkappid
        desired_token = token("desired")
        leaks.secret("the desired URL's token", desired_token)
        self.desired = CallbackConfig(f"https://{ALLOWED_HOST}/tencent/room?token={desired_token}", COMMANDS)

    def live_of(self, shape: str) -> CallbackConfig:
        if shape == "in_sync":
            return self.desired
        if shape == "missing":
            return CallbackConfig(self.desired.url, COMMANDS[:1])
        assert shape == "foreign", shape
        return CallbackConfig(f"https://collector.example.net/c?token={self.new_token()}", COMMANDS)

    def new_token(self) -> str:
        value = token()
        self.leaks.secret("a live URL's token", value)
        return value

    def add(self, name: str, shape: str, **overrides: Any) -> App:
        key = token("key")
        self.leaks.secret(f"the key of {name}", key)
        app = App(name, self._next, key, self.live_of(shape), SHAPES[shape], overrides)
        self._next += 1
        self.apps[name] = app
        self.sim.add_app(app.sdkappid, key, callback=app.live)
        (self.keys / str(app.sdkappid)).write_text(key + "\n", encoding="utf-8")
        return app

    def change(self, name: str, live: CallbackConfig, findings: frozenset[str]) -> None:
        """Someone edits the live config at Tencent: the app's true verdict changes with it."""
        app = self.apps[name]
        app.live, app.findings = live, findings
        self.sim.set_callback(app.sdkappid, live)

    def write(
        self,
        endpoint: str | None,
        *,
        name: str = "monitor.yaml",
        limits: dict[str, Any] | None = None,
        **defaults: Any,
    ) -> Path:
        """The config file; ``endpoint`` None leaves the API host to ``region`` (in ``defaults``)."""
        place = {} if endpoint is None else {"endpoint": endpoint}
        doc = {
            "version": 1,
            "defaults": {
                **place,
                "interval": "1s",
                "secret_key_file": str(self.keys / "{sdkappid}"),
                "policy": {"require_https": True, "allowed_hosts": [ALLOWED_HOST]},
                "callback": {"url": self.desired.url, "commands": list(self.desired.commands)},
                **defaults,
            },
            **({"limits": limits} if limits else {}),
            "apps": [
                {"name": a.name, "sdkappid": a.sdkappid, "labels": {"team": "rtc"}, **a.overrides}
                for a in self.apps.values()
            ],
        }
        path = self.root / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path


# ---- certificates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path  # the test CA's certificate (PEM): what --ca-bundle gets
    cert: Path  # the server's certificate, for 127.0.0.1 and the singapore backup host
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


SERVER_NAMES = "IP:127.0.0.1,DNS:adminapisgp.my-imcloud.com"


def make_certs(directory: Path) -> Certs:
    """A throw-away CA and a server certificate it signed, made with the openssl command."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={SERVER_NAMES}\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        encoding="utf-8",
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_subject = "/CN=callback-monitor reliability test CA"
    ca_exts = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]
    signing = ["-days", "2", "-set_serial", str(secrets.randbits(63)), "-extfile", ext]
    steps = [
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", ca_subject, *ca_exts],
        ["req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-out", cert, *signing],
    ]
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True, timeout=30)
    return Certs(ca, cert, key)


# ---- the real command ---------------------------------------------------------------------------------


def lines_of(
    items: Iterable[dict[str, Any]], *events: str, app: str | None = None
) -> Iterator[dict[str, Any]]:
    """The log lines with one of ``events`` (of ``app`` when given)."""
    for line in items:
        if line.get("event") in events and (app is None or line.get("app") == app):
            yield line


LEAKS = Leaks()
"""Every output and secret of the whole suite (see conftest: each test is scanned, then the suite)."""


# ---- a flood of requests from another process ----------------------------------------------------


async def flood(url: str, seconds: float, clients: int) -> dict[str, int]:
    """``clients`` connections GET ``url`` back to back for ``seconds``: how many answers of each status
    (and ``no_retry_after``: 503 answers without a Retry-After header)."""
    import aiohttp

    counts: dict[str, int] = {}
    stop_at = time.monotonic() + seconds

    async def one(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop_at:
            try:
                async with session.get(url) as response:
                    await response.read()
                    status = str(response.status)
                    if response.status == 503 and "Retry-After" not in response.headers:
                        counts["no_retry_after"] = counts.get("no_retry_after", 0) + 1
            except aiohttp.ClientError as exc:
                status = type(exc).__name__
            counts[status] = counts.get(status, 0) + 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(one(session) for _ in range(clients)))
    return counts


async def flood_in_a_process(url: str, seconds: float, clients: int) -> dict[str, int]:
    """``flood`` run by another Python process, so that its load does not slow this one's probes."""
    import json

    code = (
        "import asyncio, json, sys\n"
        "from tests.reliability.lab import flood\n"
        "print(json.dumps(asyncio.run(flood(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        url,
        str(seconds),
        str(clients),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), seconds + 60)
    assert proc.returncode == 0, err.decode()
    counts: dict[str, int] = json.loads(out)
    return counts
