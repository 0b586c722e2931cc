"""The long-running commands: serve (the daemon), demo and simulate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from monitor.cli.changes import read_only_env
from monitor.cli.oneshot import ca_bundle_of, fail
from monitor.settings import Shard, parse_listen


def cmd_serve(args: argparse.Namespace) -> int:
    from monitor.daemon import run
    from monitor.settings import ServeSettings

    if not args.config:
        return fail("no config file given: use --config FILE or CALLBACK_MONITOR_CONFIG")
    try:
        settings = ServeSettings(
            config=Path(args.config),
            listen=parse_listen(args.listen),
            shard=Shard(args.shard_index, args.shard_count),
            external_url=args.external_url,
            ca_bundle=ca_bundle_of(args),
            read_only=args.read_only or read_only_env(),
        )
    except ValueError as exc:
        return fail(str(exc))
    return asyncio.run(run(settings))


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    try:
        listen = parse_listen(args.listen)
        sim_listen = parse_listen(args.simulator_listen)
    except ValueError as exc:
        return fail(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_demo(listen, sim_listen, args.interval))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from monitor.simulator import serve_forever

    def ready(url: str) -> None:
        print(f"simulator listening on {url}", file=sys.stderr, flush=True)

    try:
        host, port = parse_listen(args.listen, empty_host="127.0.0.1")
    except ValueError as exc:
        return fail(str(exc))
    state = Path(args.state) if args.state else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(host, port, state, on_ready=ready))
    return 0
