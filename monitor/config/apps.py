"""Defaults and apps: what each place sets, and each app resolved over the defaults key by key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from monitor.config import secrets, values
from monitor.config.model import NO_LABELS, AppConfig, Policy, SecretRef, UnexpectedCommands
from monitor.config.probe import ProbeLayer, bad_probe_layer, read_probe, resolve_probe
from monitor.config.problems import BAD, At, Bad, Load, Slot
from monitor.config.secrets import SecretSpec
from monitor.config.shapes import boolean, describe, either, keys, mapping, opt, required, word
from monitor.config.values import REGION_LOCATIONS, Callback, Location
from monitor.config.yamltree import UNREADABLE, Map, Seq, clip
from monitor.redact import redact_url
from monitor.tencent.regions import DEFAULT_REGION
from monitor.urls import host_allowed

LAYER_KEYS = (
    "region",
    "endpoint",
    "identifier",
    "interval",
    "timeout",
    "secret_key_env",
    "secret_key_file",
    "policy",
    "ignore",
    "callback",
    "error_threshold",
    "remediate",
    "remediate_after",
    "remediate_max_failures",
    "remediate_max_reverts",
    "remediate_revert_window",
    "probe",
)
APP_KEYS = ("name", "sdkappid", "labels", *LAYER_KEYS)
POLICY_KEYS = ("require_https", "allowed_hosts", "unexpected_commands")

_T = TypeVar("_T")
_DEFAULT_LOCATION = REGION_LOCATIONS[DEFAULT_REGION]
_LOCATION = (values.region, values.endpoint)
_SECRET = (secrets.secret_env, secrets.secret_file)

Seen = dict[_T, tuple[int, int | None]]  # a name or sdkappid -> the index and line of its first app


@dataclass(slots=True)
class Layer:
    """What one place (``defaults`` or one app) sets; an app falls back to defaults key by key."""

    place: str
    location: Slot[Location] = None
    identifier: Slot[str] = None
    interval: Slot[float] = None
    timeout: Slot[float] = None
    secret: Slot[SecretSpec] = None
    require_https: Slot[bool] = None
    allowed_hosts: Slot[tuple[str, ...]] = None
    unexpected_commands: Slot[UnexpectedCommands] = None
    ignore: Slot[frozenset[str]] = None
    callback: Slot[Callback] = None
    error_threshold: Slot[int] = None
    remediate: Slot[bool] = None
    remediate_after: Slot[int] = None
    remediate_max_failures: Slot[int] = None
    remediate_max_reverts: Slot[int] = None
    remediate_revert_window: Slot[float] = None
    probe: ProbeLayer | None = None  # None: no probe key here


def bad_layer(place: str) -> Layer:
    """A place whose mapping itself was wrong: apps that would inherit from it are not built."""
    layer = Layer(place)
    for name in Layer.__slots__:
        if name not in ("place", "probe"):
            setattr(layer, name, BAD)
    layer.probe = bad_probe_layer()
    return layer


def pick(own: Slot[_T], inherited: Slot[_T]) -> Slot[_T]:
    return own if own is not None else inherited


def value_of(slot: Slot[_T], default: _T) -> _T | Literal[Bad.BAD]:
    if slot is None:
        return default
    if slot is BAD:
        return BAD
    return slot.value


def read_defaults(load: Load, root: Map) -> Layer:
    value = root.get("defaults")
    if value is None:
        return Layer("defaults")
    m = mapping(load, value, "defaults", root.key_lines["defaults"])
    if m is None:
        return bad_layer("defaults")
    keys(load, m, "defaults", LAYER_KEYS)
    return read_layer(load, m, "defaults")


def read_apps(load: Load, root: Map, defaults: Layer) -> tuple[AppConfig, ...] | None:
    if "apps" not in root:
        load.problems.error("apps", "is required: list the apps to watch", root.line)
        return None
    apps, line = root["apps"], root.key_lines["apps"]
    if apps is UNREADABLE:
        return None  # already reported where it was read
    if not isinstance(apps, Seq):
        load.problems.error("apps", f"must be a list of apps, got {describe(apps)}", line)
        return None
    if not apps:
        load.problems.warn("apps", "is empty: there is nothing to check", line)
    names: Seen[str] = {}
    ids: Seen[int] = {}
    result = []
    for index, item in enumerate(apps):
        app = read_app(load, item, index, apps.item_lines[index], defaults, (names, ids))
        if app is not None:
            result.append(app)
    return tuple(result)


def read_app(
    load: Load, item: object, index: int, line: int, defaults: Layer, seen: tuple[Seen[str], Seen[int]]
) -> AppConfig | None:
    place = f"apps[{index}]"
    m = mapping(load, item, place, line)
    if m is None:
        return None
    keys(load, m, place, APP_KEYS)
    name = required(load, m, place, "name", values.app_name)
    sdkappid = required(load, m, place, "sdkappid", values.sdkappid)
    labels = opt(load, m, place, "labels", values.labels)
    own = read_layer(load, m, place)
    if isinstance(name, At):
        first = seen[0].setdefault(name.value, (index, name.line))
        if first[0] != index:
            message = f"{name.value!r} is already the name of apps[{first[0]}] (line {first[1]})"
            load.problems.error(name.path, message, name.line)
    if isinstance(sdkappid, At):
        first = seen[1].setdefault(sdkappid.value, (index, sdkappid.line))
        if first[0] != index:
            message = f"{sdkappid.value} is already the sdkappid of apps[{first[0]}] (line {first[1]})"
            load.problems.error(sdkappid.path, message, sdkappid.line)
    label = f"{place} {name.value!r}" if isinstance(name, At) else place
    return resolve(load, defaults, own, m.line, (name, sdkappid, labels), label)


def read_layer(load: Load, m: Map, place: str) -> Layer:
    """What one place sets, each key read and checked on its own."""
    layer = Layer(place)
    layer.location = either(load, m, place, "region", "endpoint", _LOCATION)
    layer.identifier = opt(load, m, place, "identifier", word)
    layer.interval = opt(load, m, place, "interval", values.interval)
    layer.timeout = opt(load, m, place, "timeout", values.vendor_timeout)
    layer.secret = either(load, m, place, "secret_key_env", "secret_key_file", _SECRET)
    if "policy" in m:
        path = f"{place}.policy"
        policy = mapping(load, m["policy"], path, m.key_lines["policy"])
        if policy is None:
            layer.require_https = layer.allowed_hosts = layer.unexpected_commands = BAD
        else:
            keys(load, policy, path, POLICY_KEYS)
            layer.require_https = opt(load, policy, path, "require_https", boolean)
            layer.allowed_hosts = opt(load, policy, path, "allowed_hosts", values.allowed_hosts)
            layer.unexpected_commands = opt(load, policy, path, "unexpected_commands", values.unexpected)
    layer.ignore = opt(load, m, place, "ignore", values.ignore)
    layer.callback = opt(load, m, place, "callback", values.callback)
    layer.error_threshold = opt(load, m, place, "error_threshold", values.consecutive)
    layer.remediate = opt(load, m, place, "remediate", boolean)
    layer.remediate_after = opt(load, m, place, "remediate_after", values.consecutive)
    layer.remediate_max_failures = opt(load, m, place, "remediate_max_failures", values.consecutive)
    layer.remediate_max_reverts = opt(load, m, place, "remediate_max_reverts", values.consecutive)
    layer.remediate_revert_window = opt(load, m, place, "remediate_revert_window", values.interval)
    layer.probe = read_probe(load, m, place)
    return layer


def resolve(
    load: Load,
    defaults: Layer,
    own: Layer,
    line: int,
    identity: tuple[Slot[str], Slot[int], Slot[Mapping[str, str]]],
    label: str,
) -> AppConfig | None:
    """The app at ``own.place`` over the defaults, or None when a value it needs is wrong or missing."""
    name, sdkappid, labels = identity
    place = own.place
    location = value_of(pick(own.location, defaults.location), _DEFAULT_LOCATION)
    identifier = value_of(pick(own.identifier, defaults.identifier), "administrator")
    interval_at = pick(own.interval, defaults.interval)
    timeout_at = pick(own.timeout, defaults.timeout)
    interval, timeout = value_of(interval_at, 60.0), value_of(timeout_at, 5.0)
    if interval is not BAD and timeout is not BAD and timeout >= interval:
        at = interval_at if isinstance(interval_at, At) else timeout_at
        if isinstance(at, At):
            message = f"the interval ({interval:g}s) is not longer than the timeout ({timeout:g}s)"
            load.problems.for_app(at.path, at.line, message, place, label, warning=True)
    secret = resolve_secret(load, pick(own.secret, defaults.secret), (name, sdkappid), place, label, line)
    https_at = pick(own.require_https, defaults.require_https)
    hosts_at = pick(own.allowed_hosts, defaults.allowed_hosts)
    unexpected = value_of(
        pick(own.unexpected_commands, defaults.unexpected_commands), Policy.unexpected_commands
    )
    ignore = value_of(pick(own.ignore, defaults.ignore), frozenset[str]())
    threshold = value_of(pick(own.error_threshold, defaults.error_threshold), 3)
    remediate = value_of(pick(own.remediate, defaults.remediate), False)
    remediate_after = value_of(pick(own.remediate_after, defaults.remediate_after), 2)
    max_failures = value_of(pick(own.remediate_max_failures, defaults.remediate_max_failures), 3)
    max_reverts = value_of(pick(own.remediate_max_reverts, defaults.remediate_max_reverts), 3)
    revert_window = value_of(pick(own.remediate_revert_window, defaults.remediate_revert_window), 600.0)
    probe = resolve_probe(load, defaults.probe, own.probe, place, label)
    callback_at = pick(own.callback, defaults.callback)
    if callback_at is None:
        message = (
            "is set neither here nor in defaults.callback "
            "(write 'callback: null' if this app must have no callback configured)"
        )
        load.problems.error(f"{place}.callback", message, line)
    require_https, allowed_hosts = value_of(https_at, True), value_of(hosts_at, ())
    if isinstance(callback_at, At) and require_https is not BAD and allowed_hosts is not BAD:
        obeys_policy(load, callback_at, https_at, hosts_at, place, label)
    if (
        not isinstance(name, At)
        or not isinstance(sdkappid, At)
        or labels is BAD
        or location is BAD
        or identifier is BAD
        or interval is BAD
        or timeout is BAD
        or secret is BAD
        or require_https is BAD
        or allowed_hosts is BAD
        or unexpected is BAD
        or ignore is BAD
        or threshold is BAD
        or remediate is BAD
        or remediate_after is BAD
        or max_failures is BAD
        or max_reverts is BAD
        or revert_window is BAD
        or probe is BAD
        or not isinstance(callback_at, At)
    ):
        return None
    return AppConfig(
        name=name.value,
        sdkappid=sdkappid.value,
        endpoint=location.endpoint,
        backup_endpoint=location.backup_endpoint,
        region=location.region,
        identifier=identifier,
        interval=interval,
        timeout=timeout,
        secret=secret,
        policy=shared_policy(load, require_https, allowed_hosts, unexpected),
        ignore=ignore,
        labels=labels.value if labels else NO_LABELS,
        callback=callback_at.value.config,
        error_threshold=threshold,
        remediate=remediate,
        remediate_after=remediate_after,
        remediate_max_failures=max_failures,
        remediate_max_reverts=max_reverts,
        remediate_revert_window=revert_window,
        probe=probe,
    )


def obeys_policy(
    load: Load,
    callback: At[Callback],
    https_at: Slot[bool],
    hosts_at: Slot[tuple[str, ...]],
    place: str,
    label: str,
) -> None:
    """The desired URL must pass the app's own policy, as the live one will have to."""
    wanted = callback.value.config
    if wanted is None:
        return
    path, line, host = callback.path + ".url", callback.value.url_line, callback.value.host
    require_https = https_at is None or (isinstance(https_at, At) and https_at.value)
    if require_https and callback.value.scheme != "https":
        said = (
            f"{https_at.path} is true"
            if isinstance(https_at, At)
            else "policy.require_https is on by default"
        )
        message = f"must use https ({said}); got {clip(redact_url(wanted.url), 200)!r}"
        load.problems.for_app(path, line, message, place, label)
    if isinstance(hosts_at, At) and not host_allowed(host, hosts_at.value):
        message = f"host {clip(host)!r} is not allowed by {hosts_at.path} ({', '.join(hosts_at.value)})"
        load.problems.for_app(path, line, message, place, label)


def shared_policy(
    load: Load, require_https: bool, allowed_hosts: tuple[str, ...], unexpected: UnexpectedCommands
) -> Policy:
    """One Policy object per distinct policy: ten thousand apps usually share a handful."""
    key = (require_https, allowed_hosts, unexpected)
    if key not in load.policies:
        load.policies[key] = Policy(require_https, allowed_hosts, unexpected)
    return load.policies[key]


def resolve_secret(
    load: Load,
    at: Slot[SecretSpec],
    identity: tuple[Slot[str], Slot[int]],
    place: str,
    label: str,
    line: int,
) -> SecretRef | Literal[Bad.BAD]:
    """The app's secret with its placeholders filled in, proven readable (and never shown)."""
    if at is None:
        message = "has no secret key: set secret_key_env or secret_key_file here or in defaults"
        load.problems.error(place, message, line)
        return BAD
    if at is BAD:
        return BAD
    name, sdkappid = identity
    spec, fields = at.value, load.template_fields[at.value.template]
    if ("name" in fields and not isinstance(name, At)) or (
        "sdkappid" in fields and not isinstance(sdkappid, At)
    ):
        return BAD  # the placeholder's value is already reported as wrong
    where = spec.template
    if "{" in where or "}" in where:
        where = where.format(
            name=name.value if isinstance(name, At) else "",
            sdkappid=sdkappid.value if isinstance(sdkappid, At) else "",
        )
    ref, problem = secrets.secret_ref(load, spec.kind, where)
    if problem is not None:
        load.problems.for_app(at.path, at.line, problem, place, label)
        return BAD
    return ref
