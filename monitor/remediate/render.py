"""What plan and apply print: one app's planned call as a person reads it before typing yes."""

from __future__ import annotations

from monitor.config import AppConfig
from monitor.output import printable
from monitor.redact import redact_url
from monitor.remediate.planner import Plan, command_changes
from monitor.tencent.model import CallbackConfig


def _config_lines(label: str, config: CallbackConfig | None) -> list[str]:
    if config is None:
        return [f"  {label:<7}(no callback configured)"]
    commands = ", ".join(config.commands) if config.commands else "(none)"
    return [f"  {label:<7}url       {redact_url(config.url)}", f"  {'':<7}commands  {commands}"]


def render_plan(app: AppConfig, planned: Plan) -> list[str]:
    """One app's plan: the call, what it fixes, the config before and after; every line terminal-safe."""
    return [printable(line) for line in _plan_lines(app, planned)]


def _plan_lines(app: AppConfig, planned: Plan) -> list[str]:
    head = f"{app.name} ({app.sdkappid}): "
    if planned.blocked:
        return [head + "CANNOT FIX", f"  reason {planned.blocked}"]
    if not planned.writes:
        return [head + "nothing to do"]
    lines = [head + planned.action.value, f"  fixes  {', '.join(k.value for k in planned.fixes)}"]
    lines += _config_lines("before", planned.before)
    lines += _config_lines("after", planned.after)
    if planned.before is not None and planned.after is not None:
        added, removed = command_changes(planned.before, planned.after)
        lines += [f"  + {word}" for word in added] + [f"  - {word}" for word in removed]
    return lines
