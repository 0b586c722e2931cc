"""The Kubernetes manifests: kustomize layouts, schemas, Prometheus Operator resources and pods.

The schemas are Kubernetes' own (the kubernetes-validate wheel ships them; nothing is downloaded),
checked strictly, so an unknown or misspelled field fails. Tools and helpers are shared with
tests/test_deploy.py, which says how a missing tool is treated.
"""

from __future__ import annotations

import copy
import importlib
import re
import shutil
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from monitor.config import load_config_text
from monitor.settings import DEFAULT_LISTEN
from tests.test_deploy import K8S, PORT, ROOT, TMP, UID, load_docs, missing, run, tool

LAYOUTS = ("sidecar", "standalone", "sharded")


@pytest.fixture(scope="module")
def kv() -> ModuleType:
    """kubernetes_validate.utils: the Kubernetes JSON schemas, shipped in the wheel (no network)."""
    try:
        return importlib.import_module("kubernetes_validate.utils")
    except ImportError:
        missing("the kubernetes-validate package")
        raise


# --- loading -------------------------------------------------------------------------------------


def layout_docs(directory: Path) -> list[dict[str, Any]]:
    """The resources a kustomization lists, following directories (no generators, no transformers)."""
    kustomization = load_docs(directory / "kustomization.yaml")[0]
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = directory / entry
        docs += layout_docs(target) if target.is_dir() else load_docs(target)
    return docs


def generated_configmaps(directory: Path) -> dict[str, list[str]]:
    """ConfigMap name -> file keys, from the configMapGenerators of a kustomization and its bases."""
    kustomization = load_docs(directory / "kustomization.yaml")[0]
    out = {
        g["name"]: [Path(f).name for f in g.get("files", [])]
        for g in kustomization.get("configMapGenerator", [])
    }
    for entry in kustomization.get("resources", []):
        if (directory / entry).is_dir():
            out |= generated_configmaps(directory / entry)
    return out


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def monitor_container(pod: dict[str, Any]) -> dict[str, Any]:
    (found,) = [c for c in all_containers(pod) if c["name"] == "callback-monitor"]
    return found


def workload(layout: str) -> dict[str, Any]:
    docs = layout_docs(K8S / layout)
    (found,) = of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")
    return found


# --- Kubernetes: kustomize layout and schemas ----------------------------------------------------


def test_kustomizations_use_every_file_and_every_file_they_use_exists() -> None:
    for directory in [K8S / "base", *(K8S / layout for layout in LAYOUTS)]:
        kustomization = load_docs(directory / "kustomization.yaml")[0]
        listed = {(directory / entry).resolve() for entry in kustomization.get("resources", [])}
        generated = {
            (directory / f).resolve()
            for g in kustomization.get("configMapGenerator", [])
            for f in g.get("files", [])
        }
        assert all(path.exists() for path in listed | generated), directory
        on_disk = {p.resolve() for p in directory.glob("*.yaml")} - {
            (directory / "kustomization.yaml").resolve()
        }
        assert on_disk - listed - generated == set(), f"{directory}: files no kustomization uses"
        assert (K8S / "base").resolve() in listed or directory.name == "base"


def schema_problems(kv: ModuleType, docs: list[dict[str, Any]], version: str) -> list[str]:
    """Strict validation (unknown fields are errors) of the built-in kinds against one schema version."""
    problems = []
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # not Kubernetes' own: operator_problems() checks them
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")
    return problems


def schema_versions(kv: ModuleType) -> list[str]:
    """The oldest Kubernetes the manifests support (native sidecars) and the newest schema shipped."""
    assert "1.29.0" in kv.all_versions(), "this kubernetes-validate lacks the 1.29 schema: pin an older one"
    return ["1.29.0", kv.latest_version()]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_manifests_validate_against_the_kubernetes_schemas(kv: ModuleType, layout: str) -> None:
    docs = layout_docs(K8S / layout)
    for version in schema_versions(kv):
        assert schema_problems(kv, docs, version) == [], version


@pytest.mark.parametrize("layout", LAYOUTS)
def test_kustomize_builds_each_layout_into_valid_resources(kv: ModuleType, layout: str) -> None:
    """What `kubectl apply -k` would send: rendered by kubectl's own kustomize, then validated."""
    result = run(tool("kubectl"), "kustomize", K8S / layout)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert {"ConfigMap", "PrometheusRule"} <= {d["kind"] for d in docs}
    for version in schema_versions(kv):
        assert schema_problems(kv, docs, version) == [], version
    assert operator_problems(docs) == []
    images = [
        c["image"] for d in docs if "template" in d.get("spec", {}) for c in all_containers(pod_spec(d))
    ]
    # The image of this release: kustomization.yaml's `images:` follows the project's version.
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert [i for i in images if "callback-monitor" in i] == [f"ghcr.io/example/callback-monitor:{version}"]


def built_rules(deploy: Path, layout: str) -> dict[str, Any]:
    """The PrometheusRule that `kubectl kustomize` renders for one layout under ``deploy``."""
    result = run(tool("kubectl"), "kustomize", deploy / layout)
    assert result.returncode == 0, result.stderr
    (rule,) = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "PrometheusRule"]
    return rule


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_runbook_base_is_one_setting(tmp_path: Path, layout: str) -> None:
    """RUNBOOK_BASE in base/kustomization.yaml becomes the base of every alert's runbook_url, in
    every layout, and is not itself applied."""
    deploy = tmp_path / "kubernetes"
    shutil.copytree(K8S, deploy)
    kustomization = deploy / "base" / "kustomization.yaml"
    text = kustomization.read_text()
    old = "RUNBOOK_BASE=https://github.com/example/callback-monitor/blob/main/docs/runbook.md"
    assert text.count(old) == 1
    kustomization.write_text(text.replace(old, "RUNBOOK_BASE=https://wiki.example.org/oncall/callbacks"))
    rule = built_rules(deploy, layout)
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    for alert in alerts:
        assert alert["annotations"]["runbook_url"] == (
            "https://wiki.example.org/oncall/callbacks#" + alert["alert"].lower()
        )
    result = run(tool("kubectl"), "kustomize", deploy / layout)
    assert "callback-monitor-runbook" not in result.stdout
    assert "RUNBOOK_BASE" not in result.stdout


def test_schema_validation_rejects_a_misspelled_or_too_new_field(kv: ModuleType) -> None:
    docs = layout_docs(K8S / "sidecar")
    broken = copy.deepcopy(docs)
    context = monitor_container(pod_spec(of_kind(broken, "Deployment")[0]))["securityContext"]
    context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")
    assert schema_problems(kv, broken, "1.29.0") != []
    # Native sidecars (an init container's restartPolicy) do not exist before Kubernetes 1.28.
    assert any("restartPolicy" in p for p in schema_problems(kv, docs, "1.27.0"))


# --- Kubernetes: Prometheus Operator resources ---------------------------------------------------


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def operator_problems(docs: list[dict[str, Any]]) -> list[str]:
    """PodMonitor, ServiceMonitor and PrometheusRule: the fields the operator needs, and that each
    monitor selects a pod or Service of this layout through a port that exists there."""
    problems: list[str] = []
    pods = [
        pod_spec(d) | {"labels": d["spec"]["template"]["metadata"]["labels"]}
        for d in docs
        if d["kind"] in {"Deployment", "StatefulSet"}
    ]
    services = of_kind(docs, "Service")

    def container_ports(pod: dict[str, Any]) -> set[str]:
        return {p["name"] for c in all_containers(pod) for p in c.get("ports", []) if "name" in p}

    for doc in docs:
        if not doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        name = f"{doc['kind']}/{doc.get('metadata', {}).get('name')}"
        if doc["apiVersion"] != "monitoring.coreos.com/v1" or not doc.get("metadata", {}).get("name"):
            problems.append(f"{name}: needs apiVersion monitoring.coreos.com/v1 and a name")
            continue
        spec = doc.get("spec", {})
        selector = spec.get("selector", {}).get("matchLabels", {})
        if doc["kind"] == "PodMonitor":
            endpoints = spec.get("podMetricsEndpoints", [])
            targets = [pod for pod in pods if _matches(selector, pod["labels"])]
            ports = set().union(*(container_ports(pod) for pod in targets)) if targets else set()
        elif doc["kind"] == "ServiceMonitor":
            endpoints = spec.get("endpoints", [])
            targets = [s for s in services if _matches(selector, s["metadata"].get("labels", {}))]
            ports = {p.get("name") for s in targets for p in s["spec"]["ports"]}
            for service in targets:
                backing = [pod for pod in pods if _matches(service["spec"]["selector"], pod["labels"])]
                named = set().union(*(container_ports(pod) for pod in backing)) if backing else set()
                for port in service["spec"]["ports"]:
                    if port.get("targetPort") not in named:
                        problems.append(f"{name}: Service port {port.get('name')} targets no container port")
        elif doc["kind"] == "PrometheusRule":
            groups = spec.get("groups") or []
            for group in groups:
                for rule in group.get("rules") or []:
                    if (
                        not group.get("name")
                        or not rule.get("expr")
                        or ("alert" in rule) == ("record" in rule)
                    ):
                        problems.append(
                            f"{name}: every group needs a name, every rule an expr and alert or record"
                        )
            if not groups:
                problems.append(f"{name}: no rule groups")
            continue
        else:
            problems.append(f"{name}: unexpected kind")
            continue
        if not targets:
            problems.append(f"{name}: its selector matches nothing in this layout")
        if not endpoints:
            problems.append(f"{name}: no endpoints")
        for endpoint in endpoints:
            if endpoint.get("port") not in ports:
                problems.append(f"{name}: port {endpoint.get('port')!r} is not a named port of its targets")
            if endpoint.get("path", "/metrics") != "/metrics":
                problems.append(f"{name}: scrapes {endpoint['path']}, not /metrics")
    return problems


@pytest.mark.parametrize("layout", LAYOUTS)
def test_prometheus_operator_resources_point_at_the_monitor(layout: str) -> None:
    docs = layout_docs(K8S / layout)
    kinds = {d["kind"] for d in docs}
    assert "PrometheusRule" in kinds
    assert ("ServiceMonitor" if layout == "standalone" else "PodMonitor") in kinds
    assert operator_problems(docs) == []


@pytest.mark.parametrize(
    ("layout", "kind", "field", "value"),
    [
        ("sidecar", "PodMonitor", "podMetricsEndpoints", [{"port": "metrics", "path": "/metrics"}]),
        ("sharded", "PodMonitor", "selector", {"matchLabels": {"app": "nothing"}}),
        ("standalone", "ServiceMonitor", "endpoints", [{"port": "metrics", "path": "/status"}]),
        ("standalone", "ServiceMonitor", "endpoints", []),
        ("standalone", "PrometheusRule", "groups", [{"name": "g", "rules": [{"alert": "A"}]}]),
    ],
)
def test_operator_check_catches_broken_monitors(layout: str, kind: str, field: str, value: object) -> None:
    docs = copy.deepcopy(layout_docs(K8S / layout))
    of_kind(docs, kind)[0]["spec"][field] = value
    assert operator_problems(docs) != []


# --- Kubernetes: pods ----------------------------------------------------------------------------

RESTRICTED_VOLUMES = {"configMap", "secret", "emptyDir", "projected", "downwardAPI", "csi", "ephemeral"}
POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"


def pod_problems(layout: str, workload: dict[str, Any]) -> list[str]:
    """The restricted Pod Security Standard for every container, and how the monitor is wired."""
    problems: list[str] = []
    pod = pod_spec(workload)
    pod_context = pod.get("securityContext", {})
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    problems += [f"pod sets {f}" for f in ("hostNetwork", "hostPID", "hostIPC") if pod.get(f)]
    problems += [
        f"volume {n} is not allowed"
        for n, v in volumes.items()
        if not set(v) - {"name"} <= RESTRICTED_VOLUMES
    ]
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("the pod mounts a service account token it never uses")
    for c in all_containers(pod):
        context = c.get("securityContext", {})
        capabilities = context.get("capabilities", {})
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        checks = {
            "runs as non-root": context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True
            and context.get("runAsUser", pod_context.get("runAsUser")) != 0,
            "forbids privilege escalation": context.get("allowPrivilegeEscalation") is False,
            "is not privileged": not context.get("privileged"),
            "drops all capabilities": "ALL" in capabilities.get("drop", []),
            "adds no capability": set(capabilities.get("add", [])) <= {"NET_BIND_SERVICE"},
            "uses a RuntimeDefault or Localhost seccomp profile": seccomp in {"RuntimeDefault", "Localhost"},
            "has a read-only root filesystem": context.get("readOnlyRootFilesystem") is True,
            "has no host port": not any("hostPort" in p for p in c.get("ports", [])),
            "mounts no subPath (updates would never arrive)": not any(
                "subPath" in m or "subPathExpr" in m for m in c.get("volumeMounts", [])
            ),
        }
        problems += [f"container {c['name']} {what}: no" for what, ok in checks.items() if not ok]

    monitor = monitor_container(pod)
    env = {e["name"]: e for e in monitor.get("env", [])}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in monitor.get("volumeMounts", [])}
    config = Path(env["CALLBACK_MONITOR_CONFIG"]["value"])
    config_volume = mounts.get(str(config.parent), {}).get("configMap", {})
    if config.name not in generated_configmaps(K8S / layout).get(config_volume.get("name", ""), []):
        problems.append(f"{config} is not a key of a generated ConfigMap mounted at {config.parent}")
    if "secret" not in mounts.get(secret_dir(), {}):
        problems.append(f"no Secret mounted at {secret_dir()}")
    if "emptyDir" not in mounts.get(TMP, {}):
        problems.append("no emptyDir at /tmp")
    context = monitor.get("securityContext", {})
    if context.get("runAsUser", pod_context.get("runAsUser")) != UID:
        problems.append(f"the monitor does not run as the image's user {UID}")
    ports = {p["name"]: p["containerPort"] for p in monitor.get("ports", [])}
    listen = env.get("CALLBACK_MONITOR_LISTEN", {}).get("value", DEFAULT_LISTEN)
    if list(ports.values()) != [PORT] or not listen.endswith(f":{PORT}"):
        problems.append(f"the monitor must listen on and declare port {PORT}")
    probes = {
        kind: monitor.get(kind, {}).get("httpGet", {})
        for kind in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    if probes["livenessProbe"].get("path") != "/healthz" or probes["livenessProbe"].get("port") not in ports:
        problems.append("no liveness probe on /healthz")
    want_readiness = {} if layout == "sidecar" else {"path": "/readyz", "port": next(iter(ports), None)}
    if probes["readinessProbe"] != want_readiness or probes["startupProbe"]:
        problems.append(f"readiness must be {want_readiness or 'absent in a sidecar'}, and no startup probe")
    resources = monitor.get("resources", {})
    if set(resources.get("requests", {})) != {"cpu", "memory"} or set(resources.get("limits", {})) != {
        "memory"
    }:
        problems.append("resources: requests of cpu and memory, a memory limit and no cpu limit")
    if layout == "sidecar" and monitor not in [
        c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always"
    ]:
        problems.append("the sidecar is not a native sidecar (an init container with restartPolicy Always)")
    if layout == "sharded":
        index = env.get("CALLBACK_MONITOR_SHARD_INDEX", {}).get("valueFrom", {}).get("fieldRef", {})
        if index.get("fieldPath") != POD_INDEX:
            problems.append("the shard index does not come from the pod index label")
        if env.get("CALLBACK_MONITOR_SHARD_COUNT", {}).get("value") != str(workload["spec"]["replicas"]):
            problems.append("the shard count is not the number of replicas")
    return problems


def secret_dir() -> str:
    """Where the example config expects the secret key files (their directory)."""
    config = yaml.safe_load((K8S / "base" / "config.yaml").read_text())
    return str(Path(config["defaults"]["secret_key_file"]).parent)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pods_are_restricted_and_wired_as_documented(layout: str) -> None:
    assert pod_problems(layout, workload(layout)) == []


def _monitor(w: dict[str, Any]) -> dict[str, Any]:
    return monitor_container(pod_spec(w))


BREAKAGES = {
    "writable root": lambda w: _monitor(w)["securityContext"].pop("readOnlyRootFilesystem"),
    "root user": lambda w: _monitor(w)["securityContext"].update(runAsUser=0),
    "capabilities kept": lambda w: _monitor(w)["securityContext"].pop("capabilities"),
    "subPath mount": lambda w: _monitor(w)["volumeMounts"][0].update(subPath="config.yaml"),
    "cpu limit": lambda w: _monitor(w)["resources"]["limits"].update(cpu="100m"),
    "wrong liveness path": lambda w: _monitor(w)["livenessProbe"]["httpGet"].update(path="/"),
    "hostPath volume": lambda w: pod_spec(w)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_pod_check_catches_a_broken_pod(layout: str, breakage: str) -> None:
    broken = copy.deepcopy(workload(layout))
    BREAKAGES[breakage](broken)
    assert pod_problems(layout, broken) != []


def test_pod_check_catches_a_classic_sidecar_and_a_wrong_shard_count() -> None:
    sidecar = copy.deepcopy(workload("sidecar"))
    pod = pod_spec(sidecar)
    pod["containers"].append(pod.pop("initContainers")[0] | {"restartPolicy": None})
    assert "native sidecar" in " ".join(pod_problems("sidecar", sidecar))
    sharded = copy.deepcopy(workload("sharded"))
    sharded["spec"]["replicas"] += 1
    assert pod_problems("sharded", sharded) == ["the shard count is not the number of replicas"]


def test_example_config_is_a_valid_desired_state(tmp_path: Path) -> None:
    """The ConfigMap's file loads with the monitor's own loader once its key files exist."""
    text = (K8S / "base" / "config.yaml").read_text().replace(secret_dir(), str(tmp_path))
    for sdkappid in re.findall(r"sdkappid: (\d+)", text):
        (tmp_path / sdkappid).write_text("not-a-real-key-" + sdkappid)
    config = load_config_text(text, environ={})
    assert [app.name for app in config.apps] == ["prod-sg", "staging"]
