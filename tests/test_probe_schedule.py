"""Probe targets on their own rhythm in serve: started, shared, rescheduled and stopped by sync."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

from monitor.probe_model import ProbeResult, ProbeSettings
from monitor.probe_schedule import ProbeSchedule
from monitor.probe_shared import ProbeRunner, ProbeTarget
from tests.fakes import Ticks

ON = ProbeSettings(enabled=True, interval=300.0)
A = "https://a.example.com/hook"
B = "https://b.example.com/hook"


async def fake_probe(url: str, settings: ProbeSettings) -> ProbeResult:
    return ProbeResult(url=url, started=0.0, total=0.0, status=204)


def schedule() -> tuple[ProbeSchedule, Ticks, asyncio.Queue[tuple[tuple[str, ...], str]]]:
    clock = Ticks()
    seen: asyncio.Queue[tuple[tuple[str, ...], str]] = asyncio.Queue()

    def on_result(target: ProbeTarget, result: ProbeResult) -> None:
        seen.put_nowait((target.apps, result.url))

    runner = ProbeRunner(concurrency=2, probe_fn=fake_probe)
    return ProbeSchedule(runner, on_result, wait=clock.wait, rng=random.Random(1)), clock, seen


async def test_a_target_is_probed_after_its_spread_delay_then_every_interval() -> None:
    probes, clock, seen = schedule()
    probes.sync([ProbeTarget(A, ON, ("one", "two"))])
    clock.ticks.put_nowait(None)  # the first delay ends
    assert await seen.get() == (("one", "two"), A)
    clock.ticks.put_nowait(None)  # one interval later
    assert await seen.get() == (("one", "two"), A)
    assert clock.waits[0] < 5.0
    assert clock.waits[1:] == [300.0, 300.0]
    await probes.stop()


async def test_a_reload_with_new_apps_keeps_the_rhythm_and_gives_results_to_the_new_list() -> None:
    probes, clock, seen = schedule()
    probes.sync([ProbeTarget(A, ON, ("one",))])
    clock.ticks.put_nowait(None)
    assert await seen.get() == (("one",), A)
    probes.sync([ProbeTarget(A, ON, ("one", "two"))])
    clock.ticks.put_nowait(None)
    assert await seen.get() == (("one", "two"), A)
    assert clock.waits[1:] == [300.0, 300.0]  # no new start delay: the same task went on
    await probes.stop()


async def test_removed_targets_stop_and_a_new_interval_restarts() -> None:
    probes, clock, seen = schedule()
    probes.sync([ProbeTarget(A, ON, ("one",)), ProbeTarget(B, ON, ("two",))])
    probes.sync([ProbeTarget(B, replace(ON, interval=60.0), ("two",))])
    assert [t.url for t in probes.targets] == [B]
    clock.ticks.put_nowait(None)
    assert await seen.get() == (("two",), B)
    await probes.stop()
    assert probes.targets == ()
    assert seen.empty()
