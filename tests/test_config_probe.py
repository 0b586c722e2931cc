"""The ``probe:`` section: its defaults, the key-by-key merge, and every reject rule with its place."""

from __future__ import annotations

import os
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import Config, load_config
from monitor.errors import ConfigError
from monitor.probe_certs import make_ca, write_pair
from monitor.probe_model import ProbeSettings, StatusRange
from tests.probe_pki import DAY

ENV = {"TENCENT_KEY": "made-up-secret-key-for-probe-config-tests"}


def load(body: str, tmp_path: Path) -> Config:
    text = textwrap.dedent(
        """\
        version: 1
        defaults:
          secret_key_env: TENCENT_KEY
          callback:
            url: https://hooks.example.com/tencent/room?token=abc
            commands: [Room.CallbackAfterCreateRoom]
        """
    ) + textwrap.dedent(body)
    path = tmp_path / "monitor.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ=ENV)


def problems(body: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(body, tmp_path)
    return [str(p) for p in caught.value.problems]


def test_probes_are_off_with_the_documented_defaults_unless_configured(tmp_path: Path) -> None:
    config = load("apps: [{name: a, sdkappid: 1}]\n", tmp_path)
    assert config.apps[0].probe == ProbeSettings(
        enabled=False,
        interval=300.0,
        timeout=10.0,
        method="HEAD",
        expect_status=(StatusRange(100, 499),),
        failures_before_alert=3,
        cert_warning=14 * 86400.0,
        cert_critical=3 * 86400.0,
        allow_private=False,
        ca_file=None,
    )


def test_an_app_overrides_the_default_probe_key_by_key(tmp_path: Path) -> None:
    config = load(
        """\
          probe: {enabled: true, interval: 1m, method: GET, cert_warning: 21d}
        apps:
          - {name: a, sdkappid: 1}
          - name: b
            sdkappid: 2
            probe: {method: OPTIONS, expect_status: [204, "3xx"], cert_critical: 1d12h, allow_private: true}
          - {name: c, sdkappid: 3, probe: {enabled: false}}
        """,
        tmp_path,
    )
    a, b, c = (app.probe for app in config.apps)
    assert (a.enabled, a.interval, a.method, a.cert_warning) == (True, 60.0, "GET", 21 * 86400.0)
    assert (b.enabled, b.interval, b.method, b.allow_private) == (True, 60.0, "OPTIONS", True)
    assert b.expect_status == (StatusRange(204, 204), StatusRange(300, 399))
    assert b.cert_critical == 1.5 * 86400.0
    assert b.cert_warning == 21 * 86400.0
    assert (c.enabled, c.method) == (False, "GET")


def test_a_ca_file_is_read_relative_to_the_config_and_must_hold_a_certificate(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    write_pair(tmp_path, "ca", make_ca("Test CA", not_before=now - DAY, not_after=now + DAY))
    config = load("apps: [{name: a, sdkappid: 1, probe: {ca_file: ca.pem}}]\n", tmp_path)
    assert config.apps[0].probe.ca_file == tmp_path / "ca.pem"
    assert config.apps[0].probe.ca_pem == (tmp_path / "ca.pem").read_text()  # read once, at load
    (tmp_path / "empty.pem").write_text("no certificate here\n")
    assert problems("apps: [{name: a, sdkappid: 1, probe: {ca_file: empty.pem}}]\n", tmp_path) == [
        f"apps[0].probe.ca_file (line 7): {str(tmp_path / 'empty.pem')!r} "
        "is not a PEM bundle of CA certificates"
    ]


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (
            "{method: POST}",
            "probe.method: must be one of HEAD, GET, OPTIONS (a probe never sends a body), got 'POST'",
        ),
        ("{expect_status: 6xx}", "probe.expect_status: '6xx' is not a status code or range"),
        ("{failures_before_alert: 0}", "probe.failures_before_alert: must be at least 1, got 0"),
        ("{cert_warning: 0d}", "probe.cert_warning: must be longer than 0s and at most 3650d, got '0d'"),
        (
            "{cert_warning: 99999d}",
            "probe.cert_warning: must be longer than 0s and at most 3650d, got '99999d'",
        ),
        (
            "{cert_warning: soon}",
            "probe.cert_warning: 'soon' is not a duration (use e.g. 500ms, 30s, 5m, 14d, 1h30m",
        ),
        ("{interval: 0s}", "probe.interval: must be between 1s and 168h, got 0s"),
        ("{enabled: 'yes'}", "probe.enabled: must be true or false, got a string"),
        (
            "{ca_file: /no/such/ca.pem}",
            "probe.ca_file: cannot read '/no/such/ca.pem': No such file or directory",
        ),
        ("{when: always}", "probe.when: unknown key 'when' (allowed here: enabled, interval"),
        ("[]", "probe: must be a mapping, got a list"),
        (
            "{cert_warning: 2d, cert_critical: 3d}",
            "probe.cert_critical: cert_critical (3d) is longer than cert_warning (2d)",
        ),
        ("{interval: 5s}", "probe.interval: the probe timeout (10s) is not shorter than its interval (5s)"),
    ],
)
def test_each_bad_value_is_one_problem_at_its_place(tmp_path: Path, probe: str, message: str) -> None:
    found = problems(f"apps: [{{name: a, sdkappid: 1, probe: {probe}}}]\n", tmp_path)
    assert len(found) == 1, found
    place, text = message.split(": ", 1)
    assert found[0].startswith(f"apps[0].{place} (line 7): {text}"), found[0]


def test_a_bad_default_is_reported_once_for_the_apps_that_use_it(tmp_path: Path) -> None:
    found = problems(
        """\
          probe: {cert_warning: 2d, cert_critical: 3d}
        apps:
          - {name: a, sdkappid: 1}
          - {name: b, sdkappid: 2}
          - {name: c, sdkappid: 3, probe: {cert_warning: 4d}}
        """,
        tmp_path,
    )
    assert found == [
        "defaults.probe.cert_critical (used by apps[0] 'a', apps[1] 'b') (line 7): "
        "cert_critical (3d) is longer than cert_warning (2d): "
        "a certificate would be critical before it is a warning"
    ]


def test_endpoint_kinds_can_be_ignored(tmp_path: Path) -> None:
    config = load(
        "apps: [{name: a, sdkappid: 1, ignore: [endpoint_cert_expiring, endpoint_unreachable]}]\n", tmp_path
    )
    assert config.apps[0].ignore == frozenset({"endpoint_cert_expiring", "endpoint_unreachable"})


def test_a_ca_file_that_is_a_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "ca.pem")
    assert problems("apps: [{name: a, sdkappid: 1, probe: {ca_file: ca.pem}}]\n", tmp_path) == [
        f"apps[0].probe.ca_file (line 7): cannot read {str(tmp_path / 'ca.pem')!r}: "
        "a named pipe, not a regular file"
    ]
