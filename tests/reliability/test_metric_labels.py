"""No label value comes unbounded from outside: a vendor answering with any ErrorCode it likes adds at
most one series (``code="other"``), while the log line keeps the code it really sent."""

from __future__ import annotations

import random
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from monitor.checker import Checker
from monitor.config import load_config
from monitor.errors import TencentError
from monitor.metrics import Metrics
from monitor.simulator import Simulator
from monitor.simulator.state import Faults
from monitor.store import Store
from monitor.tencent.client import RetryPolicy, RoomConfigClient
from tests.reliability.lab import FIGURES
from tests.serve_helpers import IN_SYNC, config_yaml, write_keys

UNKNOWN_CODES = 300


def api_requests(metrics: Metrics) -> dict[str, float]:
    """callback_monitor_api_requests_total by code (every action is get_callback here)."""
    return {
        s.labels["code"]: s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        if s.name == "callback_monitor_api_requests_total"
    }


async def test_error_codes_outside_the_reference_table_share_one_series(
    simulator: Simulator, simulator_url: str, tmp_path: Path
) -> None:
    write_keys(tmp_path / "keys", (IN_SYNC,))
    path = tmp_path / "config.yaml"
    path.write_text(config_yaml(simulator_url, tmp_path / "keys", (IN_SYNC,)), encoding="utf-8")
    (app,) = load_config(path).apps
    metrics = Metrics(Store(), version="test", process=False)
    rng = random.Random(13)
    # Codes no table lists: well above the vendor's own ranges (the table's largest is 100301).
    codes = rng.sample(range(200_000, 2**31 - 1), UNKNOWN_CODES)
    async with aiohttp.ClientSession() as session:
        client = RoomConfigClient(session, observer=metrics.observe_request, retry=RetryPolicy(attempts=1))
        target = await Checker(client).target(app)
        with capture_logs() as logs:
            for code in [*codes, 70003, 100001]:
                simulator.set_faults(Faults(error_code=code, error_code_rate=1.0))
                with pytest.raises(TencentError):
                    await client.get_callback(target)
            simulator.set_faults(Faults())
            await client.get_callback(target)
    counted = api_requests(metrics)
    assert counted == {"other": UNKNOWN_CODES, "70003": 1, "100001": 1, "0": 1}
    logged = [line["code"] for line in logs if line["event"] == "api_request"]
    assert logged == [*map(str, codes), "70003", "100001", "0"]
    FIGURES["vendor error codes"] = (
        f"{UNKNOWN_CODES} unknown ErrorCodes answered: {len(counted)} api_requests_total series "
        f"({', '.join(sorted(counted))}); every code kept in the api_request log line"
    )


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("http_502", "http_502"),
        ("http_429", "http_429"),
        ("http_599", "other"),  # not an HTTP status any registry lists
        ("http_abc", "other"),
        ("timeout", "timeout"),
        ("network", "network"),
        ("invalid_response", "invalid_response"),
        ("100301", "100301"),
        ("0", "0"),
        ("-1", "other"),
        ("70001", "70001"),
        ("123456789", "other"),
        ("", "other"),
    ],
)
def test_every_code_label_value_comes_from_a_closed_set(code: str, label: str) -> None:
    metrics = Metrics(Store(), version="test", process=False)
    metrics.observe_request("get_callback", code, 0.1)
    assert api_requests(metrics) == {label: 1}
