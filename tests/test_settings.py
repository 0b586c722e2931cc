"""Runtime options: listen addresses, shards and environment names."""

from __future__ import annotations

import pytest

from monitor.settings import Shard, env_name, parse_listen


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9765", ("127.0.0.1", 9765)),
        (":9765", ("0.0.0.0", 9765)),  # noqa: S104 - the all-interfaces default is the point
        ("[::1]:0", ("::1", 0)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen_accepts(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("9765", "HOST:PORT"), ("host:http", "not a number"), ("h:70000", "out of range"), ("[::zz]:1", "IPv6")],
)
def test_parse_listen_rejects_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(text)


def test_shard_index_must_be_inside_the_count() -> None:
    with pytest.raises(ValueError, match=r"0\.\.1"):
        Shard(index=2, count=2)
    with pytest.raises(ValueError, match="at least 1"):
        Shard(index=0, count=0)


def test_environment_names_follow_the_flag() -> None:
    assert env_name("--shard-index") == "CALLBACK_MONITOR_SHARD_INDEX"
    assert env_name("--config") == "CALLBACK_MONITOR_CONFIG"
