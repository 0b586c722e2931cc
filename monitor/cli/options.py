"""The command line: every command's options, declared once, the parser built from them, and the
``CALLBACK_MONITOR_*`` variables checked exactly as their flags are.

A variable is read only when its flag is absent from the command line, and only for the command
being run; an empty variable counts as unset. A bad value is a one-line error naming the variable,
the value and what is allowed (``UsageError``), never a traceback and never a silent default.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor import __version__
from monitor.errors import MonitorError
from monitor.settings import DEFAULT_LISTEN, env_name, parse_listen, parse_switch


class UsageError(MonitorError):
    """A variable (or a combination of options) with a value the command cannot run with."""


def listen_address(text: str) -> tuple[str, int]:
    """``--listen`` of serve and demo: HOST:PORT, an empty host meaning every interface."""
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def loopback_default_address(text: str) -> tuple[str, int]:
    """``--listen`` of the simulator: an empty host means loopback (its control API has no auth)."""
    try:
        return parse_listen(text, empty_host="127.0.0.1")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def switch(text: str) -> bool:
    try:
        return parse_switch(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


EPILOG = """\
every option can also be set in the environment: --config is CALLBACK_MONITOR_CONFIG,
--listen is CALLBACK_MONITOR_LISTEN, --shard-index is CALLBACK_MONITOR_SHARD_INDEX, and so on.

examples:
  callback-monitor demo                                  try it with the built-in simulator
  callback-monitor validate --config monitor.yaml        check the file before you commit it
  callback-monitor check --config monitor.yaml           one pass; exit 0 in sync, 1 drift, 2 error
  callback-monitor export --config monitor.yaml > live.yaml
  callback-monitor plan --config monitor.yaml            the calls that would fix drift; writes nothing
  callback-monitor apply --config monitor.yaml           make them after you confirm, read back
  callback-monitor serve --config monitor.yaml           the daemon: /metrics, /status, alerts
"""


@dataclass(frozen=True)
class Option:
    """One flag: its names, help, default, and the variable that may set it instead."""

    flags: tuple[str, ...]
    help: str
    env: str | None = None  # the flag it shares a variable with, when not its own (simulate --listen)
    from_env: bool = True
    default: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)  # metavar, choices, type, action
    env_type: Callable[[str], Any] | None = None  # for a variable whose flag takes no value (a switch)

    @property
    def dest(self) -> str:
        return self.flags[0].lstrip("-").replace("-", "_")

    @property
    def variable(self) -> str | None:
        return env_name(self.env or self.flags[0]) if self.from_env else None

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        # A flag that reads a variable has no argparse default: None says "not on the command line".
        default = None if self.from_env else self.default
        parser.add_argument(*self.flags, default=default, help=self.help, **self.kwargs)

    def from_environ(self, environ: Mapping[str, str]) -> Any:
        """The value of this option's variable, checked like the flag's; the default when unset."""
        assert self.variable is not None
        raw = environ.get(self.variable, "")
        if not raw.strip():
            return self._convert(self.default) if isinstance(self.default, str) else self.default
        choices = self.kwargs.get("choices")
        if choices is not None and raw not in choices:
            raise UsageError(f"{self.variable}: {raw!r} is not one of {', '.join(choices)}")
        try:
            return self._convert(raw)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise UsageError(f"{self.variable}: {exc}") from None

    def _convert(self, raw: str) -> Any:
        convert = self.env_type or self.kwargs.get("type")
        return convert(raw) if convert is not None else raw


CONFIG = Option(
    ("--config", "-c"),
    "the desired-state YAML file (env CALLBACK_MONITOR_CONFIG)",
    kwargs={"metavar": "FILE"},
)
APPS = Option(
    ("--app",),
    "only this app (repeat for several; default: every app in the file)",
    from_env=False,
    default=[],
    kwargs={"action": "append", "metavar": "NAME"},
)
CA_BUNDLE = Option(
    ("--ca-bundle",),
    "verify the Tencent API's certificate against only the CAs in this PEM file instead of the "
    "system's (env CALLBACK_MONITOR_CA_BUNDLE); verification itself is always on",
    kwargs={"metavar": "FILE"},
)
LOGGING = (
    Option(
        ("--log-format",),
        "log line format (default: json unless stdout is a terminal)",
        kwargs={"choices": ("json", "console")},
    ),
    Option(
        ("--log-level",),
        "the least important log level written (default: info)",
        default="info",
        kwargs={"choices": ("debug", "info", "warning", "error")},
    ),
)
SERVE = (
    CONFIG,
    Option(
        ("--listen",),
        f"where the HTTP endpoints listen (default: {DEFAULT_LISTEN})",
        default=DEFAULT_LISTEN,
        kwargs={"metavar": "HOST:PORT", "type": listen_address},
    ),
    Option(
        ("--shard-index",),
        "this replica's shard, 0..N-1 (default: 0)",
        default=0,
        kwargs={"type": whole_number, "metavar": "I"},
    ),
    Option(
        ("--shard-count",),
        "how many replicas share the apps (default: 1, no sharding)",
        default=1,
        kwargs={"type": whole_number, "metavar": "N"},
    ),
    Option(
        ("--external-url",),
        "the URL people use to reach this monitor's status page (used in alert links)",
        kwargs={"metavar": "URL"},
    ),
    Option(
        ("--read-only",),
        "never write to Tencent, whatever the config says: self-heal (remediate: true) is switched "
        "off (env CALLBACK_MONITOR_READ_ONLY=1, true or yes)",
        default=False,
        kwargs={"action": "store_const", "const": True},
        env_type=switch,
    ),
    CA_BUNDLE,
    *LOGGING,
)
CHECK = (
    CONFIG,
    Option(
        ("--format",),
        "text for people (default), json for programs (see the README for its fields)",
        default="text",
        kwargs={"choices": ("text", "json")},
    ),
    APPS,
    Option(
        ("--no-probe",),
        "skip the receiver probes of apps with probe.enabled (env CALLBACK_MONITOR_NO_PROBE=1, true or yes)",
        default=False,
        kwargs={"action": "store_const", "const": True},
        env_type=switch,
    ),
    CA_BUNDLE,
    *LOGGING,
)
VALIDATE = (CONFIG, *LOGGING)
EXPORT = (
    CONFIG,
    APPS,
    Option(
        ("--reveal",),
        "print URLs exactly, query values included (the output then holds secrets)",
        from_env=False,
        default=False,
        kwargs={"action": "store_true"},
    ),
    CA_BUNDLE,
    *LOGGING,
)
PLAN = (CONFIG, APPS, CA_BUNDLE, *LOGGING)
APPLY = (
    CONFIG,
    APPS,
    Option(
        ("--yes", "-y"),
        "make the calls without asking",
        from_env=False,
        default=False,
        kwargs={"action": "store_true"},
    ),
    CA_BUNDLE,
    *LOGGING,
)
DEMO = (
    Option(
        ("--listen",),
        "where the daemon's pages listen (default: 127.0.0.1:9765)",
        default="127.0.0.1:9765",
        kwargs={"metavar": "HOST:PORT", "type": listen_address},
    ),
    Option(
        ("--simulator-listen",),
        "where the simulator listens (default: a free port on 127.0.0.1)",
        from_env=False,
        default=("127.0.0.1", 0),
        kwargs={"metavar": "HOST:PORT", "type": loopback_default_address},
    ),
    Option(
        ("--interval",),
        "how often the demo checks each app (default: 10s)",
        from_env=False,
        default="10s",
    ),
    *LOGGING,
)
SIMULATE = (
    Option(
        ("--listen",),
        "where to listen (default: 127.0.0.1:8080)",
        env="--simulator-listen",
        default="127.0.0.1:8080",
        kwargs={"metavar": "HOST:PORT", "type": loopback_default_address},
    ),
    Option(
        ("--state",),
        "YAML or JSON state file (apps, keys, callbacks)",
        from_env=False,
        kwargs={"metavar": "FILE"},
    ),
    *LOGGING,
)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    options: Sequence[Option]


COMMANDS = (
    Command(
        "serve",
        "run the daemon: scheduled checks, /metrics, /status, alerts, hot reload",
        "Check every app on its interval, serve /metrics, /healthz, /readyz, /status and a status "
        "page, and log an alert line whenever an app drifts or recovers. Reloads the config file when "
        "it changes or on SIGHUP; stops cleanly on SIGTERM.",
        SERVE,
    ),
    Command(
        "check",
        "check the apps once and print a report",
        "Check the apps once and print a report. Exit status: 0 every app in sync, 1 drift or a "
        "policy violation found, 2 some app could not be checked or the config is invalid (2 wins "
        "over 1).",
        CHECK,
    ),
    Command(
        "validate",
        "check the config file without calling Tencent",
        "Load and validate the config file: schema, secrets readable, policies consistent. Makes no "
        "API call. Exit 0 valid, 2 invalid (every problem listed).",
        VALIDATE,
    ),
    Command(
        "export",
        "print the live configs as callback: YAML for the desired state",
        "Read the live callback configuration of each app and print it as YAML that can be pasted "
        "into the desired-state file. Query values in URLs are redacted unless --reveal is given. "
        "Exit status: 0 every app exported, 2 some app could not be read or the config is invalid "
        "(then nothing is printed on stdout and each failing app is named on stderr).",
        EXPORT,
    ),
    Command(
        "plan",
        "show the call that would restore each app's desired state; writes nothing",
        "Read each app's live callback configuration and print the one call that would bring it to "
        "the desired state (set_callback, update_callback or delete_callback), with the URL (query "
        "values redacted) and the command list before and after. Makes no write. Exit status: 0 "
        "nothing to do, 1 changes planned, 2 some app could not be checked or fixed, or the config "
        "is invalid.",
        PLAN,
    ),
    Command(
        "apply",
        "make the planned calls, then read every config back",
        "Plan as the plan command does, ask for confirmation, make the calls, and read each config "
        "back. (remediate: true in the config switches on self-heal in serve; apply is the explicit, "
        "confirmed write and does not need it.) Without a terminal to ask on it refuses unless --yes "
        "is given; with CALLBACK_MONITOR_READ_ONLY set it refuses. Exit status: 0 every app is in "
        "sync (read back after its call), 2 otherwise.",
        APPLY,
    ),
    Command(
        "demo",
        "run the daemon against the built-in simulator with sample apps",
        "Start the simulator of the Tencent API with sample apps (in sync, drifted URL, plain-http "
        "URL, missing commands, no config) and run serve against it.",
        DEMO,
    ),
    Command(
        "simulate",
        "run the simulator of the Tencent room_config API alone",
        "Serve a fake of Tencent's room_config admin API for trying things out, for tests of other "
        "tools and for benchmarks. Without --state it serves the demo's sample apps.",
        SIMULATE,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callback-monitor",
        description=(
            "Watch the Tencent RTC (TUIRoomKit) room callback configuration of each app and report "
            "drift from the desired state kept in git."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        for option in command.options:
            option.add_to(p)
    return parser


def from_environment(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Fill in, from ``environ``, the options of ``args.command`` that the command line left out.

    Raises UsageError for a variable whose value its flag would refuse.
    """
    command = next(c for c in COMMANDS if c.name == args.command)
    for option in command.options:
        if option.variable is not None and getattr(args, option.dest) is None:
            setattr(args, option.dest, option.from_environ(environ))


def read_only_requested(environ: Mapping[str, str]) -> bool:
    """CALLBACK_MONITOR_READ_ONLY, for apply (which has no flag for it); UsageError for an unknown word."""
    option = next(o for o in SERVE if o.dest == "read_only")
    return bool(option.from_environ(environ))
