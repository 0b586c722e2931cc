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
        ("host:0", ("host", 0)),
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


def test_an_empty_host_is_the_one_the_caller_names() -> None:
    """The simulator passes loopback: its control API must not listen on every interface by default."""
    assert parse_listen(":9", empty_host="127.0.0.1") == ("127.0.0.1", 9)


@pytest.mark.parametrize("text", ["localhost", "host:http", "host:70000", "host:-1", "[::1]", ""])
def test_parse_listen_rejects_what_is_not_host_port(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|not a number|out of range"):
        parse_listen(text)
