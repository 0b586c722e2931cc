"""Fixtures of the end-to-end alert pipeline: the stack of tests/pipeline/stack.py and the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.pipeline.stack import Stack, pipeline


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Real Prometheus (fast rules from deploy/) and Alertmanager, and the webhook they notify."""
    async with pipeline(tmp_path / "pipeline") as started:
        yield started
