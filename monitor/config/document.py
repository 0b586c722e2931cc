"""The whole document: its top-level keys, each section read in turn, and the Config built from them."""

from __future__ import annotations

from monitor.config import values
from monitor.config.alerting import read_alerting
from monitor.config.apps import read_apps, read_defaults
from monitor.config.model import Alerting, AppConfig, Config, Limits
from monitor.config.problems import BAD, Load
from monitor.config.shapes import describe, keys, mapping, opt
from monitor.config.yamltree import UNREADABLE, Map, Seq
from monitor.errors import Problem

TOP_KEYS = ("version", "defaults", "limits", "alerting", "apps")
LIMITS_KEYS = ("concurrency", "requests_per_second", "remediation_writes_per_hour")


def read_document(load: Load, root: object, source: str, digest: str) -> tuple[Config | None, list[Problem]]:
    """The Config (None when it cannot be built) and every problem met, in file order either way."""
    sections = _sections(load, root)
    load.problems.flush_inherited()
    found = load.problems.in_file_order()
    if sections is None:
        return None, found
    limits, alerting, apps = sections
    warnings = tuple(p for p in found if p.warning)
    config = Config(
        source=source, apps=apps, limits=limits, warnings=warnings, digest=digest, alerting=alerting
    )
    return config, found


def _sections(load: Load, root: object) -> tuple[Limits, Alerting, tuple[AppConfig, ...]] | None:
    if not isinstance(root, Map):
        line = root.line if isinstance(root, Seq) else None
        message = f"the file must be a mapping with version, defaults, limits and apps; got {describe(root)}"
        load.problems.error("", message, line)
        return None
    keys(load, root, "", TOP_KEYS)
    _version(load, root)
    defaults = read_defaults(load, root)
    limits = _limits(load, root)
    alerting = read_alerting(load, root)
    apps = read_apps(load, root, defaults)
    if limits is None or alerting is None or apps is None:
        return None
    return limits, alerting, apps


def _version(load: Load, root: Map) -> None:
    if root.get("version") is UNREADABLE:
        return
    if "version" not in root:
        load.problems.error("version", "is required: put 'version: 1' at the top of the file", root.line)
        return
    value, line = root["version"], root.key_lines["version"]
    if isinstance(value, bool) or not isinstance(value, int):
        load.problems.error("version", f"must be the number 1, got {describe(value)}", line)
    elif value != 1:
        message = f"version {value} is not supported; this callback-monitor reads version 1"
        load.problems.error("version", message, line)


def _limits(load: Load, root: Map) -> Limits | None:
    value = root.get("limits")
    if value is None:
        return Limits()
    m = mapping(load, value, "limits", root.key_lines["limits"])
    if m is None:
        return None
    keys(load, m, "limits", LIMITS_KEYS)
    concurrency = opt(load, m, "limits", "concurrency", values.concurrency)
    requests = opt(load, m, "limits", "requests_per_second", values.rate)
    writes = opt(load, m, "limits", "remediation_writes_per_hour", values.writes_per_hour)
    if concurrency is BAD or requests is BAD or writes is BAD:
        return None
    return Limits(
        concurrency=concurrency.value if concurrency else Limits.concurrency,
        requests_per_second=requests.value if requests else Limits.requests_per_second,
        remediation_writes_per_hour=writes.value if writes else Limits.remediation_writes_per_hour,
    )
