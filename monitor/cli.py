"""Argument parsing and the commands; the only place that wires everything together."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monitor import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callback-monitor",
        description="Watch the Tencent RTC room callback configuration of each app for drift.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0
