"""The long-running commands: serve (the daemon), demo and simulate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from monitor.cli.oneshot import ca_bundle_of, fail
from monitor.settings import Shard


def cmd_serve(args: argparse.Namespace) -> int:
    from monitor.daemon import run
    from monitor.settings import ServeSettings

    if not args.config:
        return fail("no config file given: use --config FILE or CALLBACK_MONITOR_CONFIG")
    try:
        shard = Shard(args.shard_index, args.shard_count)
    except ValueError as exc:  # each number was checked alone; this is the pair
        return fail(f"--shard-index / --shard-count (or CALLBACK_MONITOR_SHARD_INDEX / _COUNT): {exc}")
    settings = ServeSettings(
        config=Path(args.config),
        listen=args.listen,
        shard=shard,
        external_url=args.external_url,
        ca_bundle=ca_bundle_of(args),
        read_only=args.read_only,
    )
    return asyncio.run(run(settings))


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_demo(args.listen, args.simulator_listen, args.interval))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from monitor.simulator import serve_forever

    def ready(url: str) -> None:
        print(f"simulator listening on {url}", file=sys.stderr, flush=True)

    host, port = args.listen
    state = Path(args.state) if args.state else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(host, port, state, on_ready=ready))
    return 0
