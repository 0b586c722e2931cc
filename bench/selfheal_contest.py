"""Self-heal against another writer that flips the live config every 3 s: how many writes in 60 s.

``python -m bench.selfheal_contest``. In process, on a fake clock (one check per second, the default
``remediate_after`` of 2): the real simulator, client, checker, state machine and Remediator; the other
writer changes the simulator's state directly, so every write the simulator counts is self-heal's.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import yaml

from monitor import logs
from monitor.checker import Checker
from monitor.config import load_config_text
from monitor.remediate import Executor, Remediator
from monitor.simulator import Simulator
from monitor.state import AlertEvent, AppIdentity, AppState, transition
from monitor.tencent.client import RetryPolicy, RoomConfigClient
from monitor.tencent.model import CallbackConfig

SDKAPPID = 1400000001
KEY = "contest-key-0123456789abcdef"
DESIRED = CallbackConfig("https://hooks.example.com/cb", ("Room.CallbackAfterCreateRoom",))
THEIRS = CallbackConfig("https://hooks.example.com/other", ("Room.CallbackAfterCreateRoom",))
SECONDS, FLIP_EVERY = 60, 3
WRITES = ("set_callback", "update_callback", "delete_callback")


async def measure() -> str:
    sim = Simulator(seed=0)
    url = await sim.start()
    sim.add_app(SDKAPPID, KEY, callback=DESIRED)
    desired = {"url": DESIRED.url, "commands": list(DESIRED.commands)}
    doc = {
        "version": 1,
        "defaults": {"endpoint": url, "interval": "1s", "remediate": True},
        "apps": [{"name": "shop", "sdkappid": SDKAPPID, "secret_key_env": "K", "callback": desired}],
    }
    app = load_config_text(yaml.safe_dump(doc), environ={"K": KEY}).apps[0]
    now = [1_000_000.0]
    events: list[AlertEvent] = []
    try:
        async with aiohttp.ClientSession() as session:
            client = RoomConfigClient(session, retry=RetryPolicy(attempts=1))
            checker = Checker(client, clock=lambda: now[0], environ={"K": KEY})
            heal = Remediator(
                Executor(client, read_only=False, clock=lambda: now[0]),
                checker.target,
                emit=events.extend,
                count=lambda *_: None,
                clock=lambda: now[0],
            )
            state = AppState.initial(AppIdentity(app.name, app.sdkappid, app.labels, app.callback))
            for second in range(SECONDS):
                if second % FLIP_EVERY == 0:
                    sim.set_callback(SDKAPPID, THEIRS)
                outcome = await checker.check(app)
                state, changes = transition(state, outcome, now[0])
                events.extend(changes)
                await heal.after_check(app, state.status, outcome)
                now[0] += 1.0
        writes = sum(sim.count(action=a) for a in WRITES)
    finally:
        await sim.stop()
    names = [e.event for e in events if e.event.startswith("remediation")]
    counted = ", ".join(f"{n}={names.count(n)}" for n in sorted(set(names)))
    return (
        f"self-heal writes in {SECONDS} s against a writer flipping every {FLIP_EVERY} s: {writes}; "
        f"remediation events: {counted}"
    )


def main() -> None:
    logs.configure(fmt="console", level="error", stream=sys.stderr)
    print(asyncio.run(measure()))


if __name__ == "__main__":
    main()
