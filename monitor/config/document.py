"""The whole document: its top-level keys, each section read in turn, and the Config built from them."""

from __future__ import annotations

from monitor.config.alerting import AlertingSection
from monitor.config.apps import Apps
from monitor.config.model import Alerting, AppConfig, Config, Limits
from monitor.config.shapes import BAD, describe
from monitor.config.yamltree import UNREADABLE, Map, Seq
from monitor.errors import Problem

TOP_KEYS = ("version", "defaults", "limits", "alerting", "apps")
LIMITS_KEYS = ("concurrency", "requests_per_second")


class Checker(Apps, AlertingSection):
    """Validates the plain tree against the schema, collecting every problem with its place."""

    def check(self, root: object, source: str, digest: str) -> Config | None:
        """The Config, or None when it cannot be built; ``problems`` ends up in file order either way."""
        sections = self.sections(root)
        self.flush_inherited()
        self.problems.sort(key=_in_file_order)
        if sections is None:
            return None
        limits, alerting, apps = sections
        warnings = tuple(p for p in self.problems if p.warning)
        return Config(
            source=source, apps=apps, limits=limits, warnings=warnings, digest=digest, alerting=alerting
        )

    def sections(self, root: object) -> tuple[Limits, Alerting, tuple[AppConfig, ...]] | None:
        if not isinstance(root, Map):
            line = root.line if isinstance(root, Seq) else None
            message = (
                f"the file must be a mapping with version, defaults, limits and apps; got {describe(root)}"
            )
            self.error("", message, line)
            return None
        self.keys(root, "", TOP_KEYS)
        self.version(root)
        defaults = self.defaults(root)
        limits = self.limits(root)
        alerting = self.alerting(root)
        apps = self.apps(root, defaults)
        if limits is None or alerting is None or apps is None:
            return None
        return limits, alerting, apps

    def version(self, root: Map) -> None:
        if root.get("version") is UNREADABLE:
            return
        if "version" not in root:
            self.error("version", "is required: put 'version: 1' at the top of the file", root.line)
            return
        value, line = root["version"], root.key_lines["version"]
        if isinstance(value, bool) or not isinstance(value, int):
            self.error("version", f"must be the number 1, got {describe(value)}", line)
        elif value != 1:
            self.error(
                "version", f"version {value} is not supported; this callback-monitor reads version 1", line
            )

    def limits(self, root: Map) -> Limits | None:
        value = root.get("limits")
        if value is None:
            return Limits()
        m = self.mapping(value, "limits", root.key_lines["limits"])
        if m is None:
            return None
        self.keys(m, "limits", LIMITS_KEYS)
        concurrency = self.opt(m, "limits", "concurrency", self.positive_int)
        rate = self.opt(m, "limits", "requests_per_second", self.rate)
        if concurrency is BAD or rate is BAD:
            return None
        return Limits(
            concurrency=concurrency.value if concurrency else Limits.concurrency,
            requests_per_second=rate.value if rate else Limits.requests_per_second,
        )


def _in_file_order(problem: Problem) -> tuple[int, str]:
    """By line, then path; a problem of the whole file (no line) comes first."""
    return (problem.line or 0, problem.path)
