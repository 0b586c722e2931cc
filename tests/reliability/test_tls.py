"""TLS: the API's certificate is always verified; ``--ca-bundle`` (or CALLBACK_MONITOR_CA_BUNDLE)
names the only CAs to trust instead of the system's, and never switches verification off.

The simulator is served over https on 127.0.0.1 with a certificate from a throw-away CA (made with
the openssl command): unknown to the system, so refused unless that CA is the bundle.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.simulator import Simulator
from tests.reliability.lab import Certs, Fleet, Leaks, SimServer, make_certs
from tests.serve_helpers import Serve, running
from tests.test_commands import Run, run_cli

pytestmark = pytest.mark.slow

UNVERIFIED = "certificate verify failed"


@dataclass
class Https:
    fleet: Fleet
    server: SimServer
    config: Path
    leaks: Leaks

    async def run(self, *args: str, env: dict[str, str] | None = None) -> Run:
        """The command at debug level; its output is kept for the leak search."""
        run = await run_cli(*args, "--log-level", "debug", env=env)
        self.leaks.output(f"{' '.join(args[:1])} stdout", run.out)
        self.leaks.output(f"{' '.join(args[:1])} stderr", run.err)
        assert "Traceback" not in run.out + run.err, run.err
        return run


@pytest.fixture
async def https(tmp_path: Path, leaks: Leaks, certs: Certs) -> AsyncIterator[Https]:
    sim = Simulator(seed=21)
    fleet = Fleet(sim, tmp_path, leaks, first_sdkappid=1400300000)
    fleet.add("tls-a", "in_sync")
    fleet.add("tls-b", "in_sync")
    async with SimServer(sim, leaks, ssl_context=certs.server_context()) as server:
        yield Https(fleet, server, fleet.write(server.url), leaks)


def errors_of(run: Run) -> list[dict[str, object]]:
    report = json.loads(run.out)
    return [app["error"] for app in report["apps"]]


async def test_check_refuses_an_unknown_ca_and_trusts_the_ca_bundle(https: Https, certs: Certs) -> None:
    refused = await https.run("check", "--config", str(https.config), "--format", "json")
    assert refused.code == 2
    for error in errors_of(refused):
        assert error["reason"] == "network"
        assert UNVERIFIED in str(error["message"])
    assert https.fleet.sim.count() == 0  # no request got past the handshake
    assert https.server.sigs_seen == 0

    trusted = await https.run(
        "check", "--config", str(https.config), "--format", "json", "--ca-bundle", str(certs.ca)
    )
    assert trusted.code == 0, trusted.out + trusted.err
    assert [app["result"] for app in json.loads(trusted.out)["apps"]] == ["in_sync", "in_sync"]
    assert https.server.sigs_seen == 2

    from_env = await https.run(
        "check", "--config", str(https.config), env={"CALLBACK_MONITOR_CA_BUNDLE": str(certs.ca)}
    )
    assert from_env.code == 0, from_env.out + from_env.err


async def test_export_refuses_an_unknown_ca_and_trusts_the_ca_bundle(https: Https, certs: Certs) -> None:
    refused = await https.run("export", "--config", str(https.config))
    assert (refused.code, refused.out) == (2, "")
    assert UNVERIFIED in refused.err
    exported = await https.run("export", "--config", str(https.config), "--ca-bundle", str(certs.ca))
    assert exported.code == 0, exported.err
    assert "token=REDACTED" in exported.out


async def test_a_bundle_of_another_ca_or_another_host_name_is_still_refused(
    https: Https, certs: Certs, tmp_path: Path
) -> None:
    """The bundle replaces the trusted CAs; the certificate's name is still checked."""
    other = make_certs(tmp_path / "other-ca")
    refused = await https.run(
        "check", "--config", str(https.config), "--format", "json", "--ca-bundle", str(other.ca)
    )
    assert refused.code == 2
    assert all(UNVERIFIED in str(e["message"]) for e in errors_of(refused))

    # The certificate names 127.0.0.1 (and a Tencent host), not "localhost".
    by_name = https.fleet.write(https.server.url.replace("127.0.0.1", "localhost"), name="by-name.yaml")
    mismatch = await https.run(
        "check", "--config", str(by_name), "--format", "json", "--ca-bundle", str(certs.ca)
    )
    assert mismatch.code == 2
    assert all("mismatch" in str(e["message"]).lower() for e in errors_of(mismatch)), mismatch.out


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "No such file"), ("not a certificate\n", "cannot use the CA bundle")],
    ids=["missing", "not-pem"],
)
async def test_an_unusable_ca_bundle_is_a_clear_error_at_start(
    https: Https, tmp_path: Path, content: str | None, says: str
) -> None:
    bundle = tmp_path / "bundle.pem"
    if content is not None:
        bundle.write_text(content, encoding="utf-8")
    for command in ("check", "export"):
        run = await https.run(command, "--config", str(https.config), "--ca-bundle", str(bundle))
        assert run.code == 2
        assert says in run.err
        assert f"cannot use the CA bundle {bundle}" in run.err
    serve = await Serve.start(https.config, "--ca-bundle", str(bundle))
    try:
        assert await serve.wait_exit(15) == 2
    finally:
        await serve.close()
    assert f"cannot use the CA bundle {bundle}" in "".join(serve.stderr)
    assert not serve.find("started")


async def test_serve_refuses_an_unknown_ca_and_trusts_the_ca_bundle(https: Https, certs: Certs) -> None:
    name = next(iter(https.fleet.apps))
    async with running(https.config) as blind:
        error = await blind.wait_event("check_error", app=name)
        assert (error["reason"], UNVERIFIED in error["message"]) == ("network", True)
    async with running(https.config, "--ca-bundle", str(certs.ca)) as seeing:
        verdict = await seeing.wait_event("check", app=name)
        assert verdict["result"] == "in_sync"
        assert not seeing.find("check_error")
    for serve in (blind, seeing):
        https.leaks.output("serve stdout (tls)", "\n".join(serve.raw))
        https.leaks.output("serve stderr (tls)", "".join(serve.stderr))
