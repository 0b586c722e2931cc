"""Shared fixtures: the room_config simulator on a loopback port, and the command tests' lab."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.simulator import Simulator, sample_state
from tests.test_commands import Lab


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


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    """A fresh simulator and a place to write configs and keys, for the one-shot command tests."""
    sim = Simulator(seed=0)
    url = await sim.start()
    try:
        yield Lab(sim, url, tmp_path)
    finally:
        await sim.stop()
