"""The one-shot commands' output: the check report (text and JSON) and the export YAML.

The dictionaries of callbacks, findings and errors are the shared ones of ``monitor.output``, so that
the report, the status page and the alerts spell them alike.

The JSON report is a public format (CI jobs parse it); its shape is documented in the README and
versioned by its ``version`` field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from monitor.config import AppConfig
from monitor.kinds import ENDPOINT_KINDS
from monitor.output import (
    FindingLike,
    callback_dict,
    error_dict,
    finding_dict,
    iso,
    probe_dict,
    text_lines,
    url_or_none,
)
from monitor.probe_eval import EndpointState
from monitor.redact import redact_text, redact_url
from monitor.state import Outcome
from monitor.tencent.model import CallbackConfig

REPORT_VERSION = 1

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class AppResult:
    app: AppConfig
    outcome: Outcome
    endpoint: EndpointState | None = None  # the receiver probe's, for apps with probes on

    @property
    def result(self) -> str:
        """error, drift (drift, a policy violation or an endpoint finding that counts) or in_sync."""
        verdict = self.outcome.verdict
        if verdict is None:
            return "error"
        endpoint_ok = self.endpoint is None or not self.endpoint.counted
        return "in_sync" if verdict.in_sync and endpoint_ok else "drift"

    @property
    def findings(self) -> tuple[FindingLike, ...]:
        """The verdict's findings, then the receiver's."""
        verdict = self.outcome.verdict
        found: tuple[FindingLike, ...] = verdict.findings if verdict is not None else ()
        return found + (self.endpoint.findings if self.endpoint is not None else ())


def exit_code(results: Sequence[AppResult]) -> int:
    """0 all in sync, 1 drift or policy violation, 2 any app not checked (2 wins over 1)."""
    kinds = {r.result for r in results}
    if "error" in kinds:
        return EXIT_ERROR
    return EXIT_DRIFT if "drift" in kinds else EXIT_OK


def to_json(results: Sequence[AppResult], *, source: str, generated: float) -> dict[str, Any]:
    counts = {"in_sync": 0, "drift": 0, "error": 0}
    apps = []
    for r in results:
        counts[r.result] += 1
        verdict = r.outcome.verdict
        apps.append(
            {
                "name": r.app.name,
                "sdkappid": r.app.sdkappid,
                "result": r.result,
                "findings": [finding_dict(f) for f in r.findings],
                "desired": callback_dict(r.app.callback),
                "observed": callback_dict(verdict.observed) if verdict else None,
                "error": error_dict(r.outcome.error),
                "duration_seconds": round(r.outcome.finished - r.outcome.started, 3),
                "probe": probe_dict(r.endpoint.latest) if r.endpoint is not None else None,
            }
        )
    return {
        "version": REPORT_VERSION,
        "generated": iso(generated),
        "config": source,
        "summary": {"apps": len(results), **counts, "exit_code": exit_code(results)},
        "apps": apps,
    }


def _finding_lines(finding: FindingLike) -> list[str]:
    label = f"{finding.kind} ({finding.severity}{', ignored' if finding.ignored else ''})"
    lines = [label]
    if finding.missing:
        lines.append(f"  missing    {', '.join(finding.missing)}")
    if finding.unexpected:
        lines.append(f"  unexpected {', '.join(finding.unexpected)}")
    if finding.kind in ENDPOINT_KINDS:
        lines.append(f"  desired    {url_or_none(finding.desired)}")
        lines.append(f"  observed   {redact_text(finding.observed or '')}")
    if finding.kind in ("url_mismatch", "insecure_url", "host_not_allowed", "config_present"):
        if finding.desired is not None:
            lines.append(f"  desired    {redact_url(finding.desired)}")
        lines.append(f"  observed   {url_or_none(finding.observed) or '(none)'}")
    if finding.kind == "config_missing" and finding.desired is not None:
        lines.append(f"  desired    {redact_url(finding.desired)}")
        lines.append("  observed   (no callback configured)")
    return lines


def render_text(results: Sequence[AppResult]) -> str:
    """A table a person reads: one row per app, details of findings and errors indented below.

    Every line is terminal-safe: control and bidi characters in any text are shown as escapes."""
    name_w = max([len("APP"), *(len(r.app.name) for r in results)])
    id_w = max([len("SDKAPPID"), *(len(str(r.app.sdkappid)) for r in results)])
    head = f"{'APP':<{name_w}}  {'SDKAPPID':<{id_w}}  {'RESULT':<7}  DETAILS"
    out = [head]
    indent = " " * (name_w + id_w + 13)
    order = {"error": 0, "drift": 1, "in_sync": 2}
    for r in sorted(results, key=lambda r: (order[r.result], r.app.name)):
        shown = {"in_sync": "in sync", "drift": "DRIFT", "error": "ERROR"}[r.result]
        details: list[str] = []
        if r.outcome.error is not None:
            details = [f"{r.outcome.error.reason}: {r.outcome.error.message}"]
        else:
            for finding in r.findings:
                details += _finding_lines(finding)
        row = f"{r.app.name:<{name_w}}  {r.app.sdkappid:<{id_w}}  {shown:<7}"
        out.append(f"{row}  {details[0]}" if details else row)
        out += [indent + line for line in details[1:]]
    counts = {k: sum(1 for r in results if r.result == k) for k in ("in_sync", "drift", "error")}
    out.append("")
    out.append(
        f"{len(results)} app{'s' if len(results) != 1 else ''}: {counts['in_sync']} in sync, "
        f"{counts['drift']} drifted, {counts['error']} not checked"
    )
    return text_lines(out)  # vendor text (messages, RequestIds) shown escaped, never acted on


def export_yaml(
    items: Sequence[tuple[AppConfig, CallbackConfig | None]], *, reveal: bool, header: str
) -> str:
    """The live configs as ``callback:`` blocks, ready to paste into the desired-state file."""
    apps = []
    for app, observed in items:
        callback: dict[str, Any] | None = None
        if observed is not None:
            url = observed.url if reveal else redact_url(observed.url)
            callback = {"url": url, "commands": list(observed.commands)}
        apps.append({"name": app.name, "sdkappid": app.sdkappid, "callback": callback})
    body = yaml.safe_dump({"apps": apps}, sort_keys=False, default_flow_style=False, width=1000)
    return header + body
