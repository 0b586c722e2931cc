"""Sharing probes between apps and the probes' own concurrency limit."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from monitor.probe_model import Phase, ProbeResult, ProbeSettings, parse_expect_status
from monitor.probe_shared import ProbeRunner, ProbeTarget, plan

A = "https://hooks.example.com/a"
B = "https://hooks.example.com/b"
ON = ProbeSettings(enabled=True, interval=300.0)


def result(url: str, ok: bool = True) -> ProbeResult:
    return ProbeResult(url=url, started=0.0, total=0.0, phase=None if ok else Phase.CONNECT)


def test_apps_sharing_a_url_share_one_target_at_the_shortest_interval() -> None:
    targets = plan(
        [
            ("one", A, ON),
            ("two", B, ON),
            ("three", A, replace(ON, interval=60.0, failures_before_alert=5)),
        ]
    )
    assert [(t.url, t.apps, t.settings.interval) for t in targets] == [
        (A, ("one", "three"), 60.0),
        (B, ("two",), 300.0),
    ]


def test_a_url_probed_another_way_is_another_target() -> None:
    targets = plan(
        [
            ("head", A, ON),
            ("get", A, replace(ON, method="GET")),
            ("strict", A, replace(ON, expect_status=parse_expect_status("2xx"))),
            ("private", A, replace(ON, allow_private=True)),
        ]
    )
    assert [t.apps for t in targets] == [("head",), ("get",), ("strict",), ("private",)]


def test_apps_with_probes_off_or_no_callback_have_no_target() -> None:
    assert plan([("off", A, replace(ON, enabled=False)), ("null", None, ON)]) == ()


class GatedProbe:
    """A probe that waits until the test opens its gate; counts how many run at once."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.running = 0
        self.most = 0
        self.calls: list[str] = []
        self.entered = asyncio.Condition()

    async def __call__(self, url: str, settings: ProbeSettings) -> ProbeResult:
        self.calls.append(url)
        self.running += 1
        self.most = max(self.most, self.running)
        async with self.entered:
            self.entered.notify_all()
        await self.gate.wait()
        self.running -= 1
        return result(url)

    async def wait_running(self, count: int) -> None:
        async with self.entered:
            await self.entered.wait_for(lambda: self.running >= count)


async def test_no_more_than_the_limit_of_probes_run_at_once() -> None:
    fake = GatedProbe()
    runner = ProbeRunner(concurrency=2, probe_fn=fake)
    targets = [ProbeTarget(f"https://h{i}.example.com/", ON, (f"app{i}",)) for i in range(5)]
    task = asyncio.create_task(runner.run_all(targets))
    await fake.wait_running(2)
    assert (fake.running, len(fake.calls)) == (2, 2)
    fake.gate.set()
    results = await task
    assert fake.most == 2
    assert len(results) == 5
    assert runner.started == 5


async def test_a_target_already_running_is_joined_not_probed_twice() -> None:
    fake = GatedProbe()
    runner = ProbeRunner(concurrency=4, probe_fn=fake)
    target = ProbeTarget(A, ON, ("one", "two"))
    first = asyncio.create_task(runner.run(target))
    await fake.wait_running(1)
    second = asyncio.create_task(runner.run(target))
    await asyncio.sleep(0)  # let the second caller reach the join
    fake.gate.set()
    assert await first is await second
    assert fake.calls == [A]
    assert await runner.run(target) is not None
    assert fake.calls == [A, A]  # once finished, the next run probes again


def test_the_runner_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ProbeRunner(concurrency=0)
