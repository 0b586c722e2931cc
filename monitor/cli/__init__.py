"""The command line: parse, set up logging, run one command, turn known errors into exit status 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from monitor import logs
from monitor.cli.changes import cmd_apply, cmd_plan
from monitor.cli.oneshot import EXIT_USAGE, cmd_check, cmd_export, cmd_validate, fail
from monitor.cli.options import UsageError, build_parser, from_environment
from monitor.cli.servers import cmd_demo, cmd_serve, cmd_simulate
from monitor.errors import ConfigError, MonitorError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "check": cmd_check,
    "validate": cmd_validate,
    "export": cmd_export,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "demo": cmd_demo,
    "simulate": cmd_simulate,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        from_environment(args, os.environ)
    except UsageError as exc:
        return fail(str(exc))
    # Logs go to stderr for the one-shot commands so that stdout stays a clean report.
    stream = sys.stdout if args.command in ("serve", "demo", "simulate") else sys.stderr
    logs.configure(fmt=args.log_format, level=args.log_level, stream=stream)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except MonitorError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130
