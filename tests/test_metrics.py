"""The metrics contract: names, labels and values from app state, and the one text path's exactness."""

from __future__ import annotations

import ast
import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from monitor import metrics as metrics_module
from monitor import store_metrics
from monitor.config import Config, Policy
from monitor.drift import compare, config_fingerprint
from monitor.errors import REASONS
from monitor.metrics import Metrics, accepts_gzip, wants_openmetrics
from monitor.state import AppIdentity, AppState, CheckError, Outcome, transition
from monitor.store import ReloadStatus, Store
from monitor.store_metrics import app_text, config_hash
from monitor.tencent.model import CallbackConfig

T0 = 1_732_770_000.0
TOKEN = "s3cr3t-t0ken-value"
CMDS = ("Room.CallbackAfterCreateRoom", "Room.CallbackAfterDestroyRoom")
WANT = CallbackConfig(f"https://hooks.example.com/room?token={TOKEN}", CMDS)
DRIFT_KINDS = ("config_missing", "config_present", "url_mismatch", "missing_commands", "unexpected_commands")
POLICIES = ("insecure_url", "host_not_allowed")
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def identity(name: str = "prod-sg", sdkappid: int = 1400000001) -> AppIdentity:
    return AppIdentity(name=name, sdkappid=sdkappid, labels={"team": "rtc"}, desired=WANT)


def verdict_on(
    state: AppState,
    live: CallbackConfig | None,
    at: float,
    *,
    policy: Policy | None = None,
    ignore: Iterable[str] = (),
) -> AppState:
    verdict = compare(state.identity.desired, live, policy or Policy(), frozenset(ignore))
    new, _events = transition(state, Outcome(at - 0.2, at, verdict=verdict), at)
    return new


def error_on(state: AppState, reason: str, at: float) -> AppState:
    error = CheckError(reason=reason, message=f"{reason} talking to the API", code=None)
    new, _events = transition(state, Outcome(at - 5, at, error=error), at)
    return new


def make_store(*states: AppState) -> Store:
    return Store(
        config=Config(source="/etc/monitor.yaml", apps=(), digest="0123456789ab" + "f" * 52),
        states={s.identity.name: s for s in states},
        reload=ReloadStatus(successful=True, last_success=T0 - 100, last_attempt=T0 - 100),
        ready=True,
    )


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: Metrics) -> Samples:
    """Every sample of a scrape, keyed by name and sorted labels."""
    samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def app_value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **extra: str
) -> float:
    labels = tuple(sorted({"app": "prod-sg", "sdkappid": "1400000001", **extra}.items()))
    return samples[("callback_monitor_" + name, labels)]


def app_names(samples: Samples) -> set[str]:
    return {name for name, labels in samples if dict(labels).get("app") == "prod-sg"}


def test_before_the_first_check_only_the_counters_exist() -> None:
    """An app not yet checked has no success, verdict or timestamps to show, but its counters start at 0."""
    metrics = Metrics(make_store(AppState.initial(identity())), version="1.0", process=False)
    samples = scrape(metrics)
    assert app_names(samples) == {"callback_monitor_checks_total", "callback_monitor_check_failures_total"}
    assert app_value(samples, "checks_total") == 0
    assert [app_value(samples, "check_failures_total", reason=r) for r in REASONS] == [0.0] * 12


def test_an_in_sync_verdict_sets_every_per_app_metric() -> None:
    state = verdict_on(AppState.initial(identity()), WANT, T0)
    samples = scrape(Metrics(make_store(state), version="1.0", process=False))
    assert app_value(samples, "check_success") == 1
    assert app_value(samples, "in_sync") == 1
    assert [app_value(samples, "drift", kind=k) for k in DRIFT_KINDS] == [0.0] * 5
    assert [app_value(samples, "policy_violation", policy=p) for p in POLICIES] == [0.0] * 2
    assert app_value(samples, "last_check_timestamp_seconds") == T0
    assert app_value(samples, "last_success_timestamp_seconds") == T0
    assert app_value(samples, "observed_config_hash") == config_fingerprint(WANT)
    assert app_value(samples, "checks_total") == 1


def test_drift_and_policy_findings_raise_their_own_series() -> None:
    live = CallbackConfig(f"http://evil.example.net/room?token={TOKEN}", CMDS[:1])
    policy = Policy(allowed_hosts=("hooks.example.com",))
    state = verdict_on(AppState.initial(identity()), live, T0, policy=policy)
    samples = scrape(Metrics(make_store(state), version="1.0", process=False))
    drift = {k: app_value(samples, "drift", kind=k) for k in DRIFT_KINDS}
    assert drift == {
        "config_missing": 0,
        "config_present": 0,
        "url_mismatch": 1,
        "missing_commands": 1,
        "unexpected_commands": 0,
    }
    assert {p: app_value(samples, "policy_violation", policy=p) for p in POLICIES} == {
        "insecure_url": 1,
        "host_not_allowed": 1,
    }
    assert app_value(samples, "in_sync") == 0
    assert app_value(samples, "observed_config_hash") == config_fingerprint(live) != config_fingerprint(WANT)


def test_a_missing_config_is_drift_with_hash_zero() -> None:
    state = verdict_on(AppState.initial(identity()), None, T0)
    samples = scrape(Metrics(make_store(state), version="1.0", process=False))
    assert app_value(samples, "drift", kind="config_missing") == 1
    assert app_value(samples, "observed_config_hash") == 0


def test_a_failed_check_keeps_the_previous_verdict_and_counts_its_reason() -> None:
    state = verdict_on(AppState.initial(identity()), WANT, T0)
    state = error_on(state, "timeout", T0 + 60)
    state = error_on(state, "rate_limited", T0 + 120)
    samples = scrape(Metrics(make_store(state), version="1.0", process=False))
    assert app_value(samples, "check_success") == 0
    assert app_value(samples, "in_sync") == 1  # stale, but no drift is resolved or raised by an error
    assert app_value(samples, "last_check_timestamp_seconds") == T0 + 120
    assert app_value(samples, "last_success_timestamp_seconds") == T0
    assert app_value(samples, "checks_total") == 3
    failures = {r: app_value(samples, "check_failures_total", reason=r) for r in REASONS}
    assert failures == {r: (1.0 if r in ("timeout", "rate_limited") else 0.0) for r in REASONS}


def test_an_error_before_any_verdict_shows_no_verdict_metrics() -> None:
    state = error_on(AppState.initial(identity()), "auth", T0)
    samples = scrape(Metrics(make_store(state), version="1.0", process=False))
    assert app_value(samples, "check_success") == 0
    assert "callback_monitor_in_sync" not in app_names(samples)
    assert "callback_monitor_drift" not in app_names(samples)
    assert "callback_monitor_observed_config_hash" not in app_names(samples)


def test_ignored_kinds_count_as_zero() -> None:
    live = CallbackConfig(WANT.url, (*CMDS, "Room.CallbackAfterMemberEnter"))
    state = verdict_on(AppState.initial(identity()), live, T0, ignore={"unexpected_commands"})
    samples = scrape(Metrics(make_store(state), version="1.0", process=False))
    assert app_value(samples, "drift", kind="unexpected_commands") == 0
    assert app_value(samples, "in_sync") == 1


def test_a_removed_app_disappears_from_the_next_scrape() -> None:
    store = make_store(verdict_on(AppState.initial(identity()), WANT, T0))
    metrics = Metrics(store, version="1.0", process=False)
    assert app_names(scrape(metrics))
    store.states.clear()
    assert not app_names(scrape(metrics))
    assert scrape(metrics)[("callback_monitor_apps", ())] == 0


def test_process_wide_metrics() -> None:
    store = make_store(AppState.initial(identity()), AppState.initial(identity("staging", 1400000002)))
    metrics = Metrics(store, version="1.4.2", process=False)
    metrics.observe_request("get_callback", "0", 0.3)
    metrics.observe_request("get_callback", "0", 4.0)
    metrics.observe_request("get_callback", "http_502", 0.07)
    samples = scrape(metrics)
    assert samples[("callback_monitor_api_requests_total", (("action", "get_callback"), ("code", "0")))] == 2
    assert (
        samples[("callback_monitor_api_requests_total", (("action", "get_callback"), ("code", "http_502")))]
        == 1
    )
    bucket = "callback_monitor_api_request_duration_seconds_bucket"
    assert samples[(bucket, (("action", "get_callback"), ("le", "0.1")))] == 1
    assert samples[(bucket, (("action", "get_callback"), ("le", "0.5")))] == 2
    assert samples[(bucket, (("action", "get_callback"), ("le", "5.0")))] == 3
    les = sorted({dict(labels)["le"] for name, labels in samples if name == bucket}, key=float)
    assert les == ["0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"]
    assert samples[("callback_monitor_apps", ())] == 2
    assert samples[("callback_monitor_config_last_reload_successful", ())] == 1
    assert samples[("callback_monitor_config_last_reload_success_timestamp_seconds", ())] == T0 - 100
    assert samples[("callback_monitor_config_hash", ())] == 0x0123456789AB
    assert samples[("callback_monitor_build_info", (("version", "1.4.2"),))] == 1
    store.reload.successful = False
    assert scrape(metrics)[("callback_monitor_config_last_reload_successful", ())] == 0


def test_config_hash_is_exact_in_a_float64() -> None:
    value = config_hash("f" * 64)
    assert value == 2**48 - 1
    assert float(value) == value
    assert config_hash("not hex at all") == config_hash("not hex at all") < 2**48


def test_process_and_python_collectors_are_included_by_default() -> None:
    names = {
        f.name for f in text_string_to_metric_families(Metrics(make_store(), version="1").render().decode())
    }
    assert {
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "python_info",
        "python_gc_collections",
    } <= names


def test_each_metrics_object_has_a_private_registry() -> None:
    """Two instances in one process (tests, a reload) never collide in a shared registry."""
    first = Metrics(make_store(), version="1")
    second = Metrics(make_store(), version="1")
    assert first.registry is not second.registry
    shared = CollectorRegistry()
    Metrics(make_store(), version="1", registry=shared, process=False)
    assert b"callback_monitor_build_info" in generate_latest(shared)


def test_no_url_ever_reaches_a_label() -> None:
    live = CallbackConfig(f"http://user:pw@evil.example.net/room?token={TOKEN}", CMDS)
    state = verdict_on(AppState.initial(identity()), live, T0)
    body = Metrics(make_store(state), version="1.0", process=False).render().decode()
    assert TOKEN not in body
    assert "://" not in body
    assert "example" not in body


def mixed_states() -> list[AppState]:
    """Every shape a state takes, including a name that needs escaping in a label value."""
    odd = AppIdentity(name='we"ird\\name\nx', sdkappid=7, labels={}, desired=None)
    live = CallbackConfig(f"http://evil.example.net/?token={TOKEN}", CMDS[:1])
    return [
        AppState.initial(identity("fresh", 1)),
        verdict_on(AppState.initial(identity("ok", 2)), WANT, T0 + 0.123456),
        verdict_on(AppState.initial(identity("drifted", 3)), live, T0, policy=Policy(allowed_hosts=("a.b",))),
        error_on(verdict_on(AppState.initial(identity("stale", 4)), None, T0), "network", T0 + 9),
        error_on(AppState.initial(identity("blind", 5)), "auth", T0),
        verdict_on(AppState.initial(odd), live, 1e9 + 0.5, ignore={"config_present", "insecure_url"}),
    ]


class _Replay:
    """A collector that yields fixed metric families (parsed from a scrape)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def reencoded(text: bytes, *, openmetrics: bool = False) -> bytes:
    """``text`` parsed by prometheus_client and printed again by its own encoder."""
    registry = CollectorRegistry(auto_describe=False)
    if openmetrics:
        registry.register(_Replay(parse_openmetrics(text.decode())))
        return generate_openmetrics(registry)
    registry.register(_Replay(text_string_to_metric_families(text.decode())))
    return generate_latest(registry)


def test_the_text_written_from_app_state_is_exactly_what_the_librarys_encoders_print() -> None:
    """Escaping, label order, float formatting, HELP and TYPE: byte for byte, in both formats."""
    states = mixed_states()
    text = app_text(states).encode()
    assert text.count(b"\n") > 100
    assert reencoded(text) == text
    openmetrics = app_text(states, openmetrics=True).encode() + b"# EOF\n"
    assert reencoded(openmetrics, openmetrics=True) == openmetrics


@pytest.mark.parametrize(
    "value",
    [0.0, 1.0, 2.5, 0.123456, 1e-9, 17.0, 999999.0, 1234567.0, 1_732_770_000.123456, 2.0**48 - 1, 1e22],
)
def test_sample_values_print_as_the_library_prints_them(value: float) -> None:
    state = verdict_on(AppState.initial(identity()), WANT, value)
    text = app_text([state]).encode()
    assert reencoded(text) == text


def test_a_whole_scrape_is_exactly_what_the_librarys_encoders_print() -> None:
    metrics = Metrics(make_store(*mixed_states()), version="1.0", process=False)
    metrics.observe_request("get_callback", "70001", 1.5)
    text = metrics.render()
    assert reencoded(text) == text
    openmetrics = metrics.expose(metrics.snapshot(), accept=OM)
    assert reencoded(openmetrics.body, openmetrics=True) == openmetrics.body
    assert openmetrics.headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    names = {f.name for f in parse_openmetrics(openmetrics.body.decode())}
    assert {"callback_monitor_checks", "callback_monitor_drift", "callback_monitor_api_requests"} <= names


def test_everything_registered_in_the_registry_is_served() -> None:
    """No list to keep beside the registry: a new instrument reaches /metrics by being registered."""
    metrics = Metrics(make_store(), version="1.0", process=False)
    Counter("callback_monitor_new_things", "A counter added later.", registry=metrics.registry).inc(3)
    samples = scrape(metrics)
    assert samples[("callback_monitor_new_things_total", ())] == 3
    registry_text = generate_latest(metrics.registry)
    assert metrics.render().startswith(registry_text)


def test_only_public_names_of_prometheus_client_are_used() -> None:
    """Internals (floatToGoString, choose_encoder, gzip_accepted) move between releases: none is used."""
    public = {
        "prometheus_client": set(prometheus_client.__all__),
        "prometheus_client.openmetrics": {"exposition"},
        "prometheus_client.openmetrics.exposition": {"generate_latest", "CONTENT_TYPE_LATEST"},
    }
    for module in (metrics_module, store_metrics):
        assert module.__file__ is not None
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("prometheus_client.") for a in node.names), module
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus_client"):
                names = {a.name for a in node.names}
                assert names <= public.get(node.module or "", set()), (module.__name__, node.module, names)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("", False),
        ("text/plain;version=0.0.4", False),
        ("application/openmetrics-text", True),
        (OM, True),
        # What Prometheus 2.x sends.
        (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
            "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            True,
        ),
        ("application/openmetrics-text;version=0.0.1,text/plain;version=0.0.4;q=0.5", False),
        ("application/openmetrics-text;q=0", False),
        ("*/*", False),
    ],
)
def test_openmetrics_is_served_when_asked_for(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        ("", False),
        ("gzip", True),
        ("br, gzip;q=0.8", True),
        ("GZIP", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("br", False),
    ],
)
def test_gzip_is_recognised_in_accept_encoding(header: str, gzip_ok: bool) -> None:
    assert accepts_gzip(header) is gzip_ok


@pytest.mark.parametrize("accept", ["", OM])
def test_gzip_is_used_only_when_asked(accept: str) -> None:
    metrics = Metrics(make_store(*mixed_states()), version="1.0", process=False)
    snapshot = metrics.snapshot()
    plain = metrics.expose(snapshot, accept=accept)
    packed = metrics.expose(snapshot, accept=accept, accept_encoding="br, gzip;q=0.8")
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.body) == plain.body


DESIGN = {
    "callback_monitor_check_success": "gauge",
    "callback_monitor_in_sync": "gauge",
    "callback_monitor_drift": "gauge",
    "callback_monitor_policy_violation": "gauge",
    "callback_monitor_last_check_timestamp_seconds": "gauge",
    "callback_monitor_last_success_timestamp_seconds": "gauge",
    "callback_monitor_observed_config_hash": "gauge",
    "callback_monitor_checks": "counter",
    "callback_monitor_check_failures": "counter",
    "callback_monitor_api_requests": "counter",
    "callback_monitor_api_request_duration_seconds": "histogram",
    "callback_monitor_apps": "gauge",
    "callback_monitor_config_last_reload_successful": "gauge",
    "callback_monitor_config_last_reload_success_timestamp_seconds": "gauge",
    "callback_monitor_config_hash": "gauge",
    "callback_monitor_build_info": "gauge",
    "callback_monitor_remediations": "counter",
    "callback_monitor_alerts_sent": "counter",
    "callback_monitor_alert_send_failures": "counter",
    "callback_monitor_alerts_dropped": "counter",
    "callback_monitor_alert_queue_length": "gauge",
    "callback_monitor_accept_errors": "counter",
}


def test_exactly_the_designs_metrics_each_with_a_help_text_that_teaches() -> None:
    metrics = Metrics(make_store(*mixed_states()), version="1.0", process=False)
    metrics.observe_request("get_callback", "0", 0.1)
    families = {
        f.name: f
        for f in text_string_to_metric_families(metrics.render().decode())
        if f.name.startswith("callback_monitor_") and not f.name.endswith("_created")
    }
    assert {name: f.type for name, f in families.items()} == DESIGN
    for family in families.values():
        assert len(family.documentation.split()) >= 8, family.name
