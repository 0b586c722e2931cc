"""The desired-state file loader: values, inheritance, every reject rule, places, and robustness."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import textwrap
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.config import (
    MAX_FILE_BYTES,
    Alerting,
    AlertmanagerSink,
    AppConfig,
    Config,
    Policy,
    SecretRef,
    UnexpectedCommands,
    WebhookSink,
    files,
    load_config,
    load_config_text,
    parse_duration,
)
from monitor.config.files import TooLarge, read_regular
from monitor.config.problems import MAX_HINTS, Load, did_you_mean
from monitor.config.secrets import secret_file_problem
from monitor.errors import ConfigError, Problem
from monitor.tencent.model import CallbackConfig

KEY = "made-up-secret-key-5bd2850fff3ecb11d7c805251c51ee46"
FILE_KEY = "made-up-file-key-3a25727bddc2385f3fa8bfee1bb93b5e"
ENV = {"TENCENT_KEY": KEY}
DESIGN = Path(__file__).parent / "configs" / "valid" / "design.yaml"

CALLBACK = """\
    callback:
      url: https://hooks.example.com/tencent/room
      commands: [Room.CallbackAfterCreateRoom]
"""


def load(text: str, tmp_path: Path, environ: Mapping[str, str] = ENV) -> Config:
    """Write ``text`` (dedented) as tmp_path/monitor.yaml and load it."""
    path = tmp_path / "monitor.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path, environ=environ)


def problems(text: str, tmp_path: Path, environ: Mapping[str, str] = ENV) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load(text, tmp_path, environ)
    for secret in (KEY, FILE_KEY):
        assert secret not in str(caught.value)
    return list(caught.value.problems)


def only_problem(text: str, tmp_path: Path, environ: Mapping[str, str] = ENV) -> Problem:
    found = problems(text, tmp_path, environ)
    assert len(found) == 1, found
    return found[0]


# --- the documented example ----------------------------------------------------------------------


def test_the_design_example_loads_with_the_documented_values(tmp_path: Path) -> None:
    (tmp_path / "1400000002").write_text(FILE_KEY + "\n", encoding="utf-8")
    data = DESIGN.read_bytes().replace(b"/var/run/secrets/tencent/", f"{tmp_path}/".encode())
    path = tmp_path / "design.yaml"
    path.write_bytes(data)

    config = load_config(path, environ={"TENCENT_KEY_PROD_SG": KEY})

    assert config.source == str(path)
    assert config.digest == hashlib.sha256(data).hexdigest()
    assert config.warnings == ()
    assert (config.limits.concurrency, config.limits.requests_per_second) == (32, 200.0)
    prod, staging = config.apps
    assert (prod.name, prod.sdkappid, staging.name, staging.sdkappid) == (
        "prod-sg",
        1400000001,
        "staging",
        1400000002,
    )
    policy = Policy(True, ("hooks.example.com", "*.hooks.example.com"), UnexpectedCommands.DRIFT)
    for app in (prod, staging):
        assert app.region == "singapore"
        assert app.endpoint == "https://adminapisgp.im.qcloud.com"
        assert app.backup_endpoint == "https://adminapisgp.my-imcloud.com"
        assert (app.identifier, app.interval, app.timeout, app.error_threshold) == ("administrator", 60, 5, 3)
        assert app.policy == policy
        assert app.ignore == frozenset()
    assert prod.secret == SecretRef(env="TENCENT_KEY_PROD_SG")
    assert staging.secret == SecretRef(file=tmp_path / "1400000002")
    assert staging.secret.read() == FILE_KEY
    assert dict(prod.labels) == {"team": "rtc", "env": "prod"}
    assert dict(staging.labels) == {}
    assert prod.callback == CallbackConfig(
        "https://hooks.example.com/tencent/room",
        (
            "Room.CallbackAfterCreateRoom",
            "Room.CallbackAfterDestroyRoom",
            "Room.CallbackAfterMemberEnter",
            "Room.CallbackAfterMemberLeave",
        ),
    )
    assert staging.callback is None
    assert config.app("staging") is staging


def test_text_and_file_give_the_same_config(tmp_path: Path) -> None:
    text = "version: 1\napps:\n  - name: a\n    sdkappid: 1\n    secret_key_env: TENCENT_KEY\n" + CALLBACK
    from_text = load_config_text(text, source="inline", environ=ENV)
    from_file = load(text, tmp_path)
    assert from_text.apps == from_file.apps
    assert from_text.digest == from_file.digest == hashlib.sha256(text.encode()).hexdigest()
    assert from_text.source == "inline"


# --- inheritance -----------------------------------------------------------------------------------

DEFAULT_CALLBACK = """\
  callback:
    url: https://hooks.example.com/default
    commands: [Room.CallbackAfterCreateRoom]
"""
BASE = (
    """\
version: 1
defaults:
  region: tokyo
  identifier: admin
  interval: 2m
  timeout: 4s
  secret_key_env: TENCENT_KEY
  policy:
    require_https: true
    allowed_hosts: ["*.example.com"]
    unexpected_commands: ignore
  ignore: [unexpected_commands]
  error_threshold: 5
"""
    + DEFAULT_CALLBACK
    + """\
apps:
  - name: plain
    sdkappid: 1
"""
)


def test_an_app_inherits_every_default_it_does_not_set(tmp_path: Path) -> None:
    (app,) = load(BASE, tmp_path).apps
    assert app.region == "tokyo"
    assert app.endpoint == "https://adminapijpn.im.qcloud.com"
    assert (app.identifier, app.interval, app.timeout, app.error_threshold) == ("admin", 120, 4, 5)
    assert app.secret == SecretRef(env="TENCENT_KEY")
    assert app.policy == Policy(True, ("*.example.com",), UnexpectedCommands.IGNORE)
    assert app.ignore == frozenset({"unexpected_commands"})
    assert app.callback == CallbackConfig(
        "https://hooks.example.com/default", ("Room.CallbackAfterCreateRoom",)
    )


def test_an_app_overrides_defaults_key_by_key(tmp_path: Path) -> None:
    text = BASE + textwrap.indent(
        textwrap.dedent("""\
            region: frankfurt
            identifier: ops
            interval: 45s
            timeout: 3500ms
            ignore: []
            error_threshold: 1
            labels: {team: rtc}
            callback:
              url: https://own.example.com/cb
              commands: [Room.CallbackAfterMemberEnter]
        """),
        "    ",
    )
    (app,) = load(text, tmp_path).apps
    assert (app.region, app.endpoint) == ("frankfurt", "https://adminapiger.im.qcloud.com")
    assert (app.identifier, app.interval, app.timeout, app.error_threshold) == ("ops", 45, 3.5, 1)
    assert app.ignore == frozenset()
    assert dict(app.labels) == {"team": "rtc"}
    assert app.callback == CallbackConfig("https://own.example.com/cb", ("Room.CallbackAfterMemberEnter",))


def test_policy_merges_key_by_key(tmp_path: Path) -> None:
    """An app that only turns require_https off keeps the default allowed_hosts and unexpected_commands."""
    text = BASE + "    policy: {require_https: false}\n"
    (app,) = load(text, tmp_path).apps
    assert app.policy == Policy(False, ("*.example.com",), UnexpectedCommands.IGNORE)


def test_an_app_endpoint_replaces_the_default_region(tmp_path: Path) -> None:
    text = BASE + "    endpoint: HTTP://127.0.0.1:8080/\n"
    (app,) = load(text, tmp_path).apps
    assert (app.endpoint, app.backup_endpoint, app.region) == ("http://127.0.0.1:8080", None, None)


def test_an_app_region_replaces_the_default_endpoint(tmp_path: Path) -> None:
    text = (
        BASE.replace("region: tokyo", "endpoint: https://adminapisgp.im.qcloud.com") + "    region: seoul\n"
    )
    (app,) = load(text, tmp_path).apps
    assert (app.region, app.backup_endpoint) == ("seoul", "https://adminapikr.my-imcloud.com")


def test_without_region_or_endpoint_the_region_is_singapore(tmp_path: Path) -> None:
    (app,) = load(BASE.replace("  region: tokyo\n", ""), tmp_path).apps
    assert (app.region, app.endpoint) == ("singapore", "https://adminapisgp.im.qcloud.com")


def test_built_in_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    text = "version: 1\napps:\n  - name: a\n    sdkappid: 7\n    secret_key_env: TENCENT_KEY\n" + CALLBACK
    config = load(text, tmp_path)
    (app,) = config.apps
    assert (app.identifier, app.interval, app.timeout, app.error_threshold) == ("administrator", 60, 5, 3)
    assert app.policy == Policy()
    assert (config.limits.concurrency, config.limits.requests_per_second) == (32, 200)


def test_labels_are_read_only(tmp_path: Path) -> None:
    (app,) = load(BASE + "    labels: {team: rtc}\n", tmp_path).apps
    with pytest.raises(TypeError):
        app.labels["team"] = "other"  # type: ignore[index]


def test_yaml_merge_keys_share_blocks_and_own_keys_win(tmp_path: Path) -> None:
    text = BASE + textwrap.indent(
        textwrap.dedent("""\
            labels: &labels {team: rtc, env: prod}
          - name: second
            sdkappid: 2
            labels:
              <<: *labels
              env: staging
        """),
        "  ",
    )
    _, second = load(text, tmp_path).apps
    assert dict(second.labels) == {"team": "rtc", "env": "staging"}


# --- secrets -------------------------------------------------------------------------------------


def test_an_app_secret_env_replaces_the_default_file(tmp_path: Path) -> None:
    text = BASE.replace("secret_key_env: TENCENT_KEY", "secret_key_file: /nonexistent/key")
    (app,) = load(text + "    secret_key_env: TENCENT_KEY\n", tmp_path).apps
    assert app.secret == SecretRef(env="TENCENT_KEY")


def test_an_app_secret_file_replaces_the_default_env(tmp_path: Path) -> None:
    (tmp_path / "own.key").write_text(FILE_KEY, encoding="utf-8")
    (app,) = load(BASE + "    secret_key_file: own.key\n", tmp_path, environ={}).apps
    assert app.secret == SecretRef(file=tmp_path / "own.key")


def test_placeholders_fill_in_the_sdkappid_and_name(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "1-plain.key").write_text(FILE_KEY, encoding="utf-8")
    text = BASE.replace("secret_key_env: TENCENT_KEY", "secret_key_file: keys/{sdkappid}-{name}.key")
    text += "  - name: by-env\n    sdkappid: 2\n    secret_key_env: KEY_{name}_{sdkappid}\n"
    plain, by_env = load(text, tmp_path, environ={"KEY_by-env_2": KEY}).apps
    assert plain.secret == SecretRef(file=keys / "1-plain.key")
    assert by_env.secret == SecretRef(env="KEY_by-env_2")


def test_a_relative_secret_file_is_found_beside_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "key").write_text(FILE_KEY, encoding="utf-8")
    (conf / "monitor.yaml").write_text(BASE.replace("secret_key_env: TENCENT_KEY", "secret_key_file: key"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (app,) = load_config(Path("..") / "conf" / "monitor.yaml", environ={}).apps
    assert app.secret.file is not None
    assert app.secret.file.is_absolute()
    assert app.secret.read() == FILE_KEY


def test_text_takes_relative_secret_files_from_base_dir(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(FILE_KEY, encoding="utf-8")
    text = BASE.replace("secret_key_env: TENCENT_KEY", "secret_key_file: key")
    (app,) = load_config_text(text, base_dir=tmp_path, environ={}).apps
    assert app.secret.file == tmp_path / "key"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"  \n\t\n", "is empty"),
        (b"\xff\xfe" + FILE_KEY.encode(), "is not UTF-8 text"),
        (b"k" * (64 * 1024 + 1), "is larger than 64 KiB"),
    ],
)
def test_an_unusable_secret_file_is_named_but_never_quoted(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "key").write_bytes(content)
    text = BASE.replace("secret_key_env: TENCENT_KEY", "secret_key_file: key")
    problem = only_problem(text, tmp_path, environ={})
    assert problem.path == "defaults.secret_key_file (used by apps[0] 'plain')"
    assert problem.message.startswith(f"secret file {tmp_path / 'key'} {message}")
    assert FILE_KEY not in str(problem)


def test_a_secret_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    problem = only_problem(BASE + "    secret_key_file: keys\n", tmp_path, environ={})
    assert problem.path == "apps[0].secret_key_file"
    assert problem.message == f"secret file {tmp_path / 'keys'} is a directory, not a regular file"


def test_one_missing_secret_file_shared_by_many_apps_is_one_problem(tmp_path: Path) -> None:
    text = BASE.replace("secret_key_env: TENCENT_KEY", "secret_key_file: shared.key")
    text += "".join(f"  - name: app{n}\n    sdkappid: {n}\n" for n in range(2, 7))
    problem = only_problem(text, tmp_path, environ={})
    assert problem.path == (
        "defaults.secret_key_file (used by apps[0] 'plain', apps[1] 'app2', apps[2] 'app3' and 3 more)"
    )
    assert problem.line == 7


def test_a_secret_file_is_read_once_per_load(tmp_path: Path) -> None:
    """Ten thousand apps may share one key file: one load reads it once; the next load reads it again."""
    key = tmp_path / "key"
    key.write_text(FILE_KEY, encoding="utf-8")
    load = Load(tmp_path, {})  # white box: nothing outside shows how often a file is read
    assert secret_file_problem(load, str(key)) is None
    key.unlink()
    assert secret_file_problem(load, str(key)) is None
    assert "No such file" in str(secret_file_problem(Load(tmp_path, {}), str(key)))


def test_secrets_appear_in_no_message_and_no_repr(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(FILE_KEY, encoding="utf-8")
    good = BASE + "  - name: filed\n    sdkappid: 2\n    secret_key_file: key\n"
    config = load(good, tmp_path)
    assert KEY not in repr(config)
    assert FILE_KEY not in repr(config)
    bad = good.replace("sdkappid: 2", "sdkappid: -2").replace("interval: 2m", "interval: soon")
    assert len(problems(bad, tmp_path)) == 2


# --- callback: null versus absent ----------------------------------------------------------------


def test_callback_null_means_the_app_must_have_none(tmp_path: Path) -> None:
    (app,) = load(BASE + "    callback: null\n", tmp_path).apps
    assert app.callback is None


def test_a_null_default_callback_is_inherited(tmp_path: Path) -> None:
    (app,) = load(BASE.replace(DEFAULT_CALLBACK, "  callback: ~\n"), tmp_path).apps
    assert app.callback is None


def test_an_app_with_no_callback_anywhere_is_an_error(tmp_path: Path) -> None:
    text = "version: 1\ndefaults:\n  secret_key_env: TENCENT_KEY\napps:\n  - name: a\n    sdkappid: 1\n"
    problem = only_problem(text, tmp_path)
    assert (problem.path, problem.line) == ("apps[0].callback", 5)
    assert "callback: null" in problem.message


# --- policy of the desired state -----------------------------------------------------------------


def test_a_desired_http_url_is_fine_when_https_is_not_required(tmp_path: Path) -> None:
    text = BASE + "    policy: {require_https: false}\n    callback:\n"
    text += "      url: http://hooks.example.com/x\n      commands: [Room.CallbackAfterCreateRoom]\n"
    (app,) = load(text, tmp_path).apps
    assert app.callback == CallbackConfig("http://hooks.example.com/x", ("Room.CallbackAfterCreateRoom",))


def test_allowed_hosts_match_case_insensitively(tmp_path: Path) -> None:
    text = BASE + "    callback:\n      url: https://API.Example.COM./x\n      commands: [Room.Foo]\n"
    (app,) = load(text, tmp_path).apps
    assert app.callback == CallbackConfig("https://API.Example.COM./x", ("Room.Foo",))


def test_a_default_url_breaking_an_app_policy_names_both_places(tmp_path: Path) -> None:
    text = BASE + "    policy:\n      allowed_hosts: [only.example.org]\n"
    problem = only_problem(text, tmp_path)
    assert problem.path == "defaults.callback.url (used by apps[0] 'plain')"
    assert problem.line == 15
    assert problem.message == (
        "host 'hooks.example.com' is not allowed by apps[0].policy.allowed_hosts (only.example.org)"
    )


def test_a_token_in_a_refused_url_is_redacted(tmp_path: Path) -> None:
    text = (
        BASE + "    callback:\n      url: http://hooks.example.com/x?token=hunter2\n      commands: [X.Y]\n"
    )
    found = problems(text, tmp_path)
    assert all("hunter2" not in str(p) for p in found)
    assert any("token=REDACTED" in p.message for p in found)


# --- commands ------------------------------------------------------------------------------------


def test_an_unknown_command_word_is_a_warning(tmp_path: Path) -> None:
    text = BASE + textwrap.indent(
        "callback:\n  url: https://a.example.com/x\n  commands:\n    - Room.CallbackAfterCreateRoom\n"
        "    - Room.Foo\n",
        "    ",
    )
    config = load(text, tmp_path)
    assert config.warnings == (
        Problem("apps[0].callback.commands[1]", "unknown command word 'Room.Foo'", 24, warning=True),
    )
    assert config.apps[0].callback is not None
    assert config.apps[0].callback.commands == ("Room.CallbackAfterCreateRoom", "Room.Foo")


def test_each_app_gets_its_own_command_problems(tmp_path: Path) -> None:
    """Apps repeating a list are each checked: a warning or error is reported at every place."""
    apps = "".join(
        f"  - name: app{n}\n    sdkappid: {n}\n    callback:\n      url: https://a.example.com/x\n"
        f"      commands: [{words}]\n"
        for n, words in enumerate(["Room.Foo", "Room.Foo", "A.B, A.B", "A.B, A.B"], start=2)
    )
    found = problems(BASE + apps, tmp_path)
    assert [p.path for p in found] == ["apps[3].callback.commands[1]", "apps[4].callback.commands[1]"]
    text = BASE + apps.replace("A.B, A.B", "Room.CallbackAfterCreateRoom")
    config = load(text, tmp_path)
    assert [w.path for w in config.warnings] == [
        "apps[1].callback.commands[0]",
        "apps[2].callback.commands[0]",
    ]


def test_both_spellings_of_update_room_info_are_accepted_alone(tmp_path: Path) -> None:
    for word in ("Room.CallbackUpdateRoomInfo", "Room.CallbackAfterUpdateRoomInfo"):
        text = BASE + f"    callback:\n      url: https://a.example.com/x\n      commands: [{word}]\n"
        assert load(text, tmp_path).warnings == ()


def test_a_repeated_command_is_an_error(tmp_path: Path) -> None:
    text = BASE + "    callback:\n      url: https://a.example.com/x\n      commands: [A.B, A.B]\n"
    found = problems(text, tmp_path)
    assert [(p.path, p.message) for p in found] == [
        ("apps[0].callback.commands[1]", "duplicates commands[0]")
    ]


# --- remediation settings ------------------------------------------------------------------------


def test_remediation_is_off_unless_asked_for(tmp_path: Path) -> None:
    (app,) = load(BASE, tmp_path).apps
    assert (app.remediate, app.remediate_after, app.remediate_max_failures) == (False, 2, 3)


def test_remediation_settings_are_inherited_key_by_key(tmp_path: Path) -> None:
    text = BASE.replace(
        "  error_threshold: 5\n", "  error_threshold: 5\n  remediate: true\n  remediate_after: 4\n"
    )
    text += "    remediate_max_failures: 1\n  - name: manual\n    sdkappid: 2\n    remediate: false\n"
    plain, manual = load(text, tmp_path).apps
    assert (plain.remediate, plain.remediate_after, plain.remediate_max_failures) == (True, 4, 1)
    assert (manual.remediate, manual.remediate_after, manual.remediate_max_failures) == (False, 4, 3)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("remediate: 'true'", "must be true or false, got a string"),
        ("remediate: 1", "must be true or false, got an integer"),
        ("remediate_after: 0", "must be at least 1, got 0"),
        ("remediate_after: 1.5", "must be an integer, got a number"),
        ("remediate_max_failures: -1", "must be at least 1, got -1"),
        ("remediate_max_failures: '3'", "must be an integer, got a string; remove the quotes"),
    ],
)
def test_a_wrong_remediation_setting_is_refused(tmp_path: Path, setting: str, message: str) -> None:
    problem = only_problem(BASE + f"    {setting}\n", tmp_path)
    assert (problem.path, problem.line) == (f"apps[0].{setting.split(':')[0]}", 20)
    assert problem.message == message


def test_app_config_built_by_position_gets_the_remediation_defaults() -> None:
    """Other modules and tests build AppConfig by position; the new fields come last, with defaults."""
    app = AppConfig(
        "a", 1, "https://x", None, None, "administrator", 60, 5, SecretRef(env="K"), Policy(),
        frozenset(), {}, None, 3,
    )  # fmt: skip
    assert (app.remediate, app.remediate_after, app.remediate_max_failures) == (False, 2, 3)


# --- alerting ------------------------------------------------------------------------------------

WEBHOOK_KEY = "made-up-webhook-secret-8c1d0a7e5f2b4c39"
ALERTING = """\
alerting:
  external_url: https://monitor.example.com/
  alertmanager:
    url: http://alertmanager:9093/
    resend_interval: 2m
    timeout: 10s
    labels: {cluster: prod}
  webhook:
    url: https://hooks.example.com/alerts?token=abc
    secret_env: WEBHOOK_SECRET
    timeout: 7s
  queue_size: 50
"""


def test_without_an_alerting_section_there_is_no_sink(tmp_path: Path) -> None:
    assert load(BASE, tmp_path).alerting == Alerting(None, None, None, 1000)
    assert load(BASE + "alerting: null\n", tmp_path).alerting == Alerting()
    assert load(BASE + "alerting: {}\n", tmp_path).alerting == Alerting()


def test_the_alerting_section_is_read(tmp_path: Path) -> None:
    config = load(BASE + ALERTING, tmp_path, environ={**ENV, "WEBHOOK_SECRET": WEBHOOK_KEY})
    assert config.alerting == Alerting(
        external_url="https://monitor.example.com/",
        alertmanager=AlertmanagerSink("http://alertmanager:9093", 120, 10, {"cluster": "prod"}),
        webhook=WebhookSink("https://hooks.example.com/alerts?token=abc", SecretRef(env="WEBHOOK_SECRET"), 7),
        queue_size=50,
    )
    assert config.warnings == ()
    assert WEBHOOK_KEY not in repr(config)
    assert config.alerting.alertmanager is not None
    with pytest.raises(TypeError):
        config.alerting.alertmanager.labels["cluster"] = "other"  # type: ignore[index]


def test_each_sink_has_defaults_for_all_but_its_url(tmp_path: Path) -> None:
    text = BASE + "alerting:\n  alertmanager: {url: https://am.example.com/prefix}\n"
    text += "  webhook: {url: 'http://[::1]:8080/hook'}\n"
    alerting = load(text, tmp_path).alerting
    assert alerting == Alerting(
        external_url=None,
        alertmanager=AlertmanagerSink("https://am.example.com/prefix", 60, 5, {}),
        webhook=WebhookSink("http://[::1]:8080/hook", None, 5),
        queue_size=1000,
    )


def test_a_webhook_secret_file_is_found_beside_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "webhook.key").write_text(WEBHOOK_KEY + "\n", encoding="utf-8")
    text = (
        BASE + "alerting:\n  webhook:\n    url: https://hooks.example.com/a\n    secret_file: webhook.key\n"
    )
    webhook = load(text, tmp_path).alerting.webhook
    assert webhook is not None
    assert webhook.secret == SecretRef(file=tmp_path / "webhook.key")
    assert webhook.secret.read() == WEBHOOK_KEY


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        ("alerting: [a]", "alerting", "must be a mapping, got a list"),
        ("alerting: {queue_size: 0}", "alerting.queue_size", "must be at least 1, got 0"),
        ("alerting: {queue_size: '9'}", "alerting.queue_size", "must be an integer, got a string"),
        ("alerting: {external_url: /status}", "alerting.external_url", "must be an absolute http"),
        ("alerting: {alertmanger: {}}", "alerting.alertmanger", "did you mean 'alertmanager'?"),
        ("alerting: {alertmanager: []}", "alerting.alertmanager", "must be a mapping"),
        ("alerting: {alertmanager: {}}", "alerting.alertmanager.url", "is required"),
        ("alerting: {alertmanager: {url: 'ftp://am'}}", "alerting.alertmanager.url", "absolute http"),
        (
            "alerting: {alertmanager: {url: 'http://am:9093/api/v2/alerts'}}",
            "alerting.alertmanager.url",
            "must be the base URL only, as /api/v2/alerts is appended",
        ),
        ("alerting: {alertmanager: {url: 'http://am/?x=1'}}", "alerting.alertmanager.url", "no query"),
        (
            "alerting: {alertmanager: {url: 'http://am', resend_interval: 500ms}}",
            "alerting.alertmanager.resend_interval",
            "must be between 1s and 168h, got 0.5s",
        ),
        (
            "alerting: {alertmanager: {url: 'http://am', timeout: 0s}}",
            "alerting.alertmanager.timeout",
            "must be more than 0s and at most 10m",
        ),
        (
            "alerting: {alertmanager: {url: 'http://am', labels: {__name__: x}}}",
            "alerting.alertmanager.labels",
            "label name '__name__' must be letters",
        ),
        (
            "alerting: {alertmanager: {url: 'http://am', labels: {env: 1}}}",
            "alerting.alertmanager.labels.env",
            "must be a string, got an integer; quote it",
        ),
        (
            "alerting: {alertmanager: {url: 'http://am', resend_intervl: 1m}}",
            "alerting.alertmanager.resend_intervl",
            "did you mean 'resend_interval'?",
        ),
        (
            "alerting: {webhook: {url: 'http://hooks.example.com/a'}}",
            "alerting.webhook.url",
            "must use https (http:// is accepted only for loopback hosts)",
        ),
        ("alerting: {webhook: {url: 'https://h/a', timout: 5s}}", "alerting.webhook.timout", "'timeout'?"),
        (
            "alerting: {webhook: {url: 'https://h/a', secret_env: A, secret_file: b}}",
            "alerting.webhook.secret_file",
            "set either secret_env or secret_file, not both",
        ),
        (
            "alerting: {webhook: {url: 'https://h/a', secret_env: NOPE}}",
            "alerting.webhook.secret_env",
            "environment variable NOPE is not set",
        ),
        (
            "alerting: {webhook: {url: 'https://h/a', secret_env: BLANK}}",
            "alerting.webhook.secret_env",
            "environment variable BLANK is empty",
        ),
        (
            "alerting: {webhook: {url: 'https://h/a', secret_env: 'A=B'}}",
            "alerting.webhook.secret_env",
            "must be an environment variable name",
        ),
        (
            "alerting: {webhook: {url: 'https://h/a', secret_file: absent.key}}",
            "alerting.webhook.secret_file",
            "cannot read secret file",
        ),
        (
            "alerting: {webhook: {url: 'https://h/a', timeout: 11m}}",
            "alerting.webhook.timeout",
            "at most 10m",
        ),
        ("alerting: {webhook: {}}", "alerting.webhook.url", "is required"),
    ],
)
def test_a_wrong_alerting_value_is_refused_with_its_place(
    tmp_path: Path, section: str, path: str, message: str
) -> None:
    problem = only_problem(BASE + section + "\n", tmp_path, environ={**ENV, "BLANK": " \n"})
    assert (problem.path, problem.line) == (path, 20)
    assert message in problem.message


def test_a_refused_sink_url_is_redacted(tmp_path: Path) -> None:
    text = BASE + "alerting:\n  webhook: {url: 'http://bob:hunter2@hooks.example.com/a?token=hunter2'}\n"
    problem = only_problem(text, tmp_path)
    assert "hunter2" not in str(problem)
    assert "token=REDACTED" in problem.message


def test_a_webhook_secret_is_never_quoted(tmp_path: Path) -> None:
    (tmp_path / "webhook.key").write_bytes(b"\xff" + WEBHOOK_KEY.encode())
    text = BASE + "alerting:\n  webhook: {url: 'https://h/a', secret_file: webhook.key}\n"
    problem = only_problem(text, tmp_path)
    assert problem.message == f"secret file {tmp_path / 'webhook.key'} is not UTF-8 text"
    assert WEBHOOK_KEY not in str(problem)


# --- places and line numbers ---------------------------------------------------------------------


def test_every_problem_is_listed_at_once_with_its_line(tmp_path: Path) -> None:
    text = """\
        version: 1
        defaults:
          region: mars
          secret_key_env: TENCENT_KEY
          callback: {url: https://hooks.example.com/x, commands: [Room.CallbackAfterCreateRoom]}
        limits:
          concurrency: many
        apps:
          - name: one
            sdkappid: 1
            interval: 0s
          - name: two
            sdkappid: 1
            lables: {}
    """
    found = problems(text, tmp_path)
    assert [(p.path, p.line) for p in found] == [
        ("defaults.region", 3),
        ("limits.concurrency", 7),
        ("apps[0].interval", 11),
        ("apps[1].sdkappid", 13),
        ("apps[1].lables", 14),
    ]
    assert "did you mean 'labels'?" in found[4].message
    assert "did you mean 'singapore'" not in found[0].message


def test_a_bool_is_never_taken_for_a_number(tmp_path: Path) -> None:
    problem = only_problem(BASE.replace("error_threshold: 5", "error_threshold: yes"), tmp_path)
    assert (problem.path, problem.line) == ("defaults.error_threshold", 13)
    assert "boolean" in problem.message


def test_warnings_do_not_stop_loading(tmp_path: Path) -> None:
    text = BASE.replace("timeout: 4s", "timeout: 3s").replace("interval: 2m", "interval: 2s")
    text = text.replace("ignore: [unexpected_commands]", "ignore: [url_mismatch, url_mismatch]")
    text += "limits:\n  requests_per_second: 1000\n"
    config = load(text, tmp_path)
    assert [(w.path, w.line, w.warning) for w in config.warnings] == [
        ("defaults.interval (used by apps[0] 'plain')", 5, True),
        ("defaults.timeout", 6, True),
        ("defaults.ignore", 12, True),
        ("limits.requests_per_second", 21, True),
    ]


def test_problems_on_one_line_are_listed_by_path(tmp_path: Path) -> None:
    text = BASE + "    policy: {require_https: maybe, unexpected_commands: never, allowed_hosts: 5}\n"
    found = problems(text, tmp_path)
    assert [(p.path, p.line) for p in found] == [
        ("apps[0].policy.allowed_hosts", 20),
        ("apps[0].policy.require_https", 20),
        ("apps[0].policy.unexpected_commands", 20),
    ]


def test_an_invalid_file_lists_its_warnings_after_its_errors(tmp_path: Path) -> None:
    """The header counts errors; warnings follow them, marked, so one run shows everything to fix."""
    text = BASE.replace("timeout: 4s", "timeout: 3s").replace("error_threshold: 5", "error_threshold: 0")
    text += "limits:\n  requests_per_second: 1000\n"
    with pytest.raises(ConfigError) as caught:
        load(text, tmp_path)
    error = caught.value
    assert [(p.path, p.line) for p in error.problems] == [("defaults.error_threshold", 13)]
    assert [(w.path, w.line, w.warning) for w in error.warnings] == [
        ("defaults.timeout", 6, True),
        ("limits.requests_per_second", 21, True),
    ]
    source = str(tmp_path / "monitor.yaml")
    assert str(error).splitlines() == [
        f"{source}: 1 problem and 2 warnings",
        "  defaults.error_threshold (line 13): must be at least 1, got 0",
        "  defaults.timeout (line 6): 3s is not above the vendor backend's own timeout of about 3s: "
        "slow answers will count as timeouts (the default is 5s) (warning)",
        "  limits.requests_per_second (line 21): 1000 is above the vendor's documented limit "
        "of 200 requests/s per API (warning)",
    ]


def test_an_invalid_file_without_warnings_keeps_the_short_header(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(BASE.replace("error_threshold: 5", "error_threshold: 0"), tmp_path)
    assert caught.value.warnings == ()
    assert str(caught.value).splitlines()[0] == f"{tmp_path / 'monitor.yaml'}: 1 problem"


# --- files that are not configs at all -----------------------------------------------------------


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file: No such file or directory"):
        load_config(tmp_path / "absent.yaml")


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_a_file_over_32_mib_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no 32 MiB written to disk
    with pytest.raises(ConfigError, match="at most 32 MiB"):
        load_config(path)


def test_reading_a_small_file_allocates_about_its_size(tmp_path: Path) -> None:
    """Every load once allocated MAX_FILE_BYTES to read into, whatever the file's size."""
    path = tmp_path / "monitor.yaml"
    path.write_text(BASE, encoding="utf-8")
    load_config(path, environ=ENV)  # first use fills caches that are not the read's
    tracemalloc.start()
    try:
        load_config(path, environ=ENV)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Only a regular file is read: a pipe may never send its end (its writer is a separate test in
    tests/reliability/test_unsafe_files.py, run in a child with a deadline)."""
    os.mkfifo(tmp_path / "monitor.yaml")
    with pytest.raises(ConfigError, match="is a named pipe, not a regular file"):
        load_config(tmp_path / "monitor.yaml", environ=ENV)


def test_a_file_that_grows_past_the_limit_while_read_is_refused(tmp_path: Path) -> None:
    """The size fstat saw does not bound the read: a file that grew since is read on up to the cap only.

    White box: the race between fstat and read is played by calling the reader with the old size.
    """
    path = tmp_path / "monitor.yaml"
    path.write_bytes(b"#" * 110)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(TooLarge) as caught:
            files._read_up_to(fd, 10, 50)  # fstat saw 10 bytes; 110 are there; the cap is 50
    finally:
        os.close(fd)
    assert caught.value.size is None
    assert str(caught.value) == "larger than 50 bytes"
    assert read_regular(path, 110) == b"#" * 110


@pytest.mark.parametrize(
    ("data", "message", "line"),
    [
        (b"", "the file is empty", None),
        (b"# only a comment\n", "the file is empty", None),
        (b"version: 1\nname: caf\xe9\n", "is not UTF-8 text", 2),
        (b"[1, 2]\n", "the file must be a mapping", 1),
        (b"just words\n", "the file must be a mapping", None),
        (b"version: 1\napps: [\n", "invalid YAML", 3),
        (b"a: 1\n---\nb: 2\n", "more than one YAML document", 2),
        (b"version: 1\napps: *nowhere\n", "alias *nowhere is not defined", 2),
        (b"version: 1\napps: [a\x00]\n", "at column 9: control characters are not allowed (U+0000)", 2),
        # the column counts characters, not the UTF-8 bytes libyaml counts
        (
            b"name: caf\xc3\xa9\nx: \xc3\xa9\x1b\n",
            "at column 5: control characters are not allowed (U+001B)",
            2,
        ),
        (b"a: 1\r\nb: 2\rc: \x07\n", "at column 4: control characters", 3),  # a lone CR ends a line too
        ("version: 1\napps: []\n".encode("utf-16-be"), "is the file UTF-16 or UTF-32? Save it as UTF-8", 1),
    ],
)
def test_files_that_are_not_configs_give_one_clean_problem(
    tmp_path: Path, data: bytes, message: str, line: int | None
) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert message in problem.message
    assert problem.line == line
    assert "\n" not in str(problem)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    text = (
        "\ufeffversion: 1\napps:\n  - name: a\n    sdkappid: 1\n    secret_key_env: TENCENT_KEY\n" + CALLBACK
    )
    assert load(text, tmp_path).apps[0].name == "a"


def test_deep_nesting_is_refused_cleanly(tmp_path: Path) -> None:
    for text in ("[" * 100_000, "a: " + "[" * 70 + "]" * 70, "- " * 5000 + "x"):
        with pytest.raises(ConfigError) as caught:
            load_config_text(text)
        assert len(caught.value.problems) == 1


def test_a_billion_laughs_file_is_refused_quickly() -> None:
    lines = ["version: 1", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]
    with pytest.raises(ConfigError) as caught:
        load_config_text("\n".join(lines))
    (problem,) = caught.value.problems
    assert "expands to more than 1,000,000 values" in problem.message


@pytest.mark.parametrize("where", ["version: {}", "limits: {{concurrency: {}}}", "? {}\n: x", "x: [{}]"])
def test_an_integer_too_long_to_print_is_refused_cleanly(where: str) -> None:
    """Python will not turn an int of more than 4300 digits into text; hex makes one from 4000 bytes."""
    with pytest.raises(ConfigError) as caught:
        load_config_text("version: 1\n" + where.format("0x" + "f" * 4000) + "\napps: []\n")
    assert "an integer far too large for any setting" in str(caught.value)


def test_long_text_from_the_file_is_clipped_in_messages(tmp_path: Path) -> None:
    found = problems(
        BASE.replace("region: tokyo", "region: " + "x" * 100_000) + "    " + "k" * 1000 + ": 1\n", tmp_path
    )
    assert [p.path for p in found] == ["defaults.region", "apps[0]." + "k" * 57 + "..."]
    assert all(len(str(p)) < 500 for p in found)


def test_a_key_with_control_characters_is_shown_escaped_in_its_path() -> None:
    """A terminal escape or a bidi override in a key must not reach a terminal as it is."""
    with pytest.raises(ConfigError) as caught:
        load_config_text('version: 1\napps: []\n"\\e[2Jboom\\u202e": 1\n')
    (problem,) = caught.value.problems
    assert problem.path == "\\x1b[2Jboom\\u202e"
    assert "\x1b" not in str(caught.value)
    assert "\u202e" not in str(caught.value)


def test_a_long_key_of_control_characters_is_clipped_between_escapes() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text('version: 1\napps: []\n"' + "\\e" * 100 + '": 1\n')
    assert caught.value.problems[0].path == "\\x1b" * 14 + "..."


def test_a_path_too_deep_for_a_message_keeps_its_start_and_its_end() -> None:
    text = "version: 1\napps: []\nx:\n" + "".join("  " * n + f"level{n}:\n" for n in range(1, 70))
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    (problem,) = caught.value.problems
    assert "nested more than 64 levels deep" in problem.message
    assert problem.path.startswith("x.level1.level2.level3.")
    assert problem.path.endswith(".level62.level63")
    assert "..." in problem.path
    assert len(problem.path) <= 200


def test_a_problem_inside_a_merged_mapping_names_the_merge_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text("version: 1\napps: []\nm: {<<: {x: !!foo 1}}\n")
    assert ("m.<<.x", "unsupported YAML tag tag:yaml.org,2002:foo") in [
        (p.path, p.message) for p in caught.value.problems
    ]


def test_suggestions_stop_after_max_hints_different_words_but_every_problem_is_listed() -> None:
    """difflib is slow enough that half a million unknown keys took seconds of suggesting alone."""
    with pytest.raises(ConfigError) as caught:
        load_config_text("version: 1\napps: []\n" + "".join(f"versio{n}: 1\n" for n in range(MAX_HINTS + 50)))
    found = caught.value.problems
    assert len(found) == MAX_HINTS + 50
    assert sum("did you mean 'version'?" in p.message for p in found) == MAX_HINTS


def test_the_same_typo_in_every_app_keeps_its_suggestion(tmp_path: Path) -> None:
    apps = "".join(
        f"  - {{name: a{n}, sdkappid: {n + 2}, secret_key_fle: x}}\n" for n in range(MAX_HINTS + 50)
    )
    found = problems(BASE + apps, tmp_path)
    assert len(found) == MAX_HINTS + 50
    assert all(
        p.message.startswith("unknown key 'secret_key_fle'; did you mean 'secret_key_file'?") for p in found
    )


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=40),
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6),
    st.sampled_from([0.6, 0.9]),
)
def test_skipping_words_too_long_to_match_never_changes_a_suggestion(
    word: str, choices: list[str], cutoff: float
) -> None:
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    assert did_you_mean(word, tuple(choices), cutoff) == (
        f"; did you mean {lowered[close[0]]!r}?" if close else ""
    )


def test_a_key_that_is_a_list_is_refused(tmp_path: Path) -> None:
    found = problems("version: 1\n? [a, b]\n: c\napps: []\n", tmp_path)
    assert [(p.path, p.message) for p in found] == [
        ("", "a key must be a plain string, not a list or mapping")
    ]


def test_an_unknown_yaml_tag_is_refused(tmp_path: Path) -> None:
    found = problems("version: !!python/name:os.system 1\napps: []\n", tmp_path)
    assert found[0].path == "version"
    assert "unsupported YAML tag tag:yaml.org,2002:python/name:os.system" in found[0].message


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("1m30s500ms", 90.5),
        (" 2.5s ", 2.5),
        ("90", 90),
        ("0.25", 0.25),
        (45, 45),
        (1.5, 1.5),
        (0, 0),
    ],
)
def test_parse_duration_reads_units_and_bare_seconds(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 minutes", "'5 minutes' is not a duration"),
        ("1d", "is not a duration"),
        ("", "'' is not a duration"),
        ("-5s", "is not a duration"),
        (-1, "zero or more seconds"),
        (float("nan"), "zero or more seconds"),
        (float("inf"), "far too large"),
        (10**400, "far too large"),
        (True, "got a boolean"),
        (None, "got null"),
        ([1], "got a list"),
    ],
)
def test_parse_duration_says_what_is_wrong(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=r"use e\.g\. 500ms|far too large") as caught:
        parse_duration(value)
    assert message in str(caught.value)


# --- the loader never raises anything but ConfigError --------------------------------------------

YAMLISH = st.text(alphabet=st.sampled_from([*"{}[]:,-&*!|>'\"#%@`?<=~ \n\t.aAz019_", "\u00e9", "\x00"]))
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
NESTED = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10) | st.integers(), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "version",
        "defaults",
        "limits",
        "apps",
        "name",
        "sdkappid",
        "callback",
        "url",
        "commands",
        "policy",
        "region",
        "endpoint",
        "interval",
        "timeout",
        "secret_key_env",
        "secret_key_file",
        "labels",
        "ignore",
        "allowed_hosts",
        "require_https",
        "unexpected_commands",
        "concurrency",
        "requests_per_second",
        "identifier",
        "error_threshold",
        "remediate",
        "remediate_after",
        "remediate_max_failures",
        "alerting",
        "external_url",
        "alertmanager",
        "resend_interval",
        "webhook",
        "secret_env",
        "secret_file",
        "queue_size",
    ]
)


def valid_document() -> dict[str, Any]:
    return {
        "version": 1,
        "defaults": {
            "region": "singapore",
            "secret_key_env": "TENCENT_KEY",
            "policy": {"allowed_hosts": ["*.example.com"], "require_https": True},
            "callback": {"url": "https://a.example.com/x", "commands": ["Room.CallbackAfterCreateRoom"]},
        },
        "limits": {"concurrency": 4, "requests_per_second": 10},
        "alerting": {
            "external_url": "https://monitor.example.com/",
            "alertmanager": {"url": "http://am:9093", "resend_interval": "1m", "labels": {"c": "prod"}},
            "webhook": {"url": "https://hooks.example.com/a", "secret_env": "TENCENT_KEY", "timeout": "5s"},
            "queue_size": 10,
        },
        "apps": [
            {"name": "a", "sdkappid": 1, "labels": {"team": "rtc"}, "interval": "30s", "remediate": True},
            {"name": "b", "sdkappid": 2, "callback": None, "ignore": ["url_mismatch"], "remediate_after": 3},
        ],
    }


def paths_of(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_of(item, (*prefix, index))
    return found


def replaced(document: Any, path: tuple[object, ...], new: object) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        return {**document, head: replaced(document[head], rest, new)}
    copy = list(document)
    assert isinstance(head, int)
    copy[head] = replaced(copy[head], rest, new)
    return copy


def only_config_errors(text: str) -> None:
    """Loading either succeeds or raises ConfigError; no key leaks either way."""
    outcome: Config | ConfigError
    try:
        outcome = load_config_text(text, environ=ENV)
    except ConfigError as exc:
        outcome = exc
    if isinstance(outcome, ConfigError):
        assert outcome.problems
    assert KEY not in repr(outcome)
    assert KEY not in str(outcome)


@settings(max_examples=300, deadline=None)
@given(YAMLISH)
@example("=")  # the YAML 1.1 "value" type, which PyYAML's safe loader cannot construct
@example("<<: *a")
@example("? - a\n: b\n")
def test_yamlish_text_never_raises_anything_but_config_error(text: str) -> None:
    only_config_errors(text)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS | st.text(max_size=8), NESTED, max_size=6) | NESTED)
def test_arbitrary_data_never_raises_anything_but_config_error(data: object) -> None:
    only_config_errors(yaml.safe_dump(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_valid_document_with_any_part_replaced_loads_or_is_refused_cleanly(data: st.DataObject) -> None:
    document = valid_document()
    path = data.draw(st.sampled_from(paths_of(document)))
    new = data.draw(NESTED | KEYS | st.sampled_from(["30s", "http://x", "Room.Foo", "", "{name}", "1e999"]))
    only_config_errors(yaml.safe_dump(replaced(document, path, new)))


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "monitor.yaml"


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_in_a_file_never_raise_anything_but_config_error(
    fuzz_file: Path, data: bytes
) -> None:
    fuzz_file.write_bytes(b"version: 1\n" + data)
    with contextlib.suppress(ConfigError):
        load_config(fuzz_file, environ=ENV)


def test_the_valid_document_used_above_is_valid() -> None:
    """The mutation test above starts from a valid document, or it would test only refusals."""
    config = load_config_text(yaml.safe_dump(valid_document()), environ=ENV)
    assert [app.name for app in config.apps] == ["a", "b"]
    assert [(app.remediate, app.remediate_after) for app in config.apps] == [(True, 2), (False, 3)]
    assert config.alerting.alertmanager is not None
    assert config.alerting.webhook is not None
