"""Shared fixtures: the room_config simulator on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from monitor.simulator import Simulator, sample_state


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    """A started simulator holding the demo's sample apps (see ``monitor.simulator.sample_state``)."""
    sim = Simulator(seed=0)
    sim.load_dict(sample_state())
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def simulator_url(simulator: Simulator) -> str:
    """The base URL of the ``simulator`` fixture, like ``http://127.0.0.1:PORT``."""
    assert simulator.url is not None
    return simulator.url
