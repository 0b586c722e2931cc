"""The vendor's envelope read strictly: every refusal names the action, the host and (once known) the
RequestId; every string is measured against its bound (written out here) before anything reads it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.errors import (
    AuthError,
    HttpStatusError,
    InvalidResponse,
    NetworkError,
    RequestTimeout,
    TencentError,
)
from monitor.tencent.envelope import Answer, code_label, hostname, parse_envelope
from monitor.tencent.model import CallbackConfig

CREATE = "Room.CallbackAfterCreateRoom"
GOOD = {"ErrorCode": 0, "ErrorInfo": "", "ActionStatus": "OK", "RequestId": "Id-7"}


def parse(
    payload: Any, action: str = "get_callback", *, status: int = 200, ctype: str = "application/json"
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_envelope(status, ctype, body, action=action, host="api.example.com")


def get(url: Any = "https://h.example.com/cb", commands: Any = (CREATE,), **envelope: Any) -> Any:
    cmds = list(commands) if isinstance(commands, tuple) else commands
    return parse({**GOOD, **envelope, "Response": {"Url": url, "CallbackCommandList": cmds}})


def refusal(outcome: Any) -> tuple[str, str | None, str | None, str]:
    assert isinstance(outcome, InvalidResponse), outcome
    return outcome.message, outcome.action, outcome.host, outcome.request_id


@pytest.mark.parametrize(
    ("payload", "ctype", "message"),
    [
        (b"", "application/json", "the answer was empty (application/json, 0 bytes)"),
        (b" \n", "", "the answer was empty (no content type, 2 bytes)"),
        (b"<html>", "text/html", "the answer was not JSON (text/html, 6 bytes)"),
        (b"[" * 100_000, "", "the answer was not JSON (no content type, 100000 bytes)"),
        (b"[1]", "application/json", "the answer was not a JSON object"),
    ],
)
def test_an_unreadable_answer_names_its_shape(payload: bytes, ctype: str, message: str) -> None:
    assert refusal(parse(payload, ctype=ctype)) == (
        f"get_callback at api.example.com: {message}",
        "get_callback",
        "api.example.com",
        "",
    )


@pytest.mark.parametrize(
    "envelope",
    [
        {"ErrorCode": "0"},
        {"ErrorCode": True},
        {"ErrorCode": None},
        {"ErrorCode": 0, "ErrorInfo": 7},
        {"ErrorCode": 0, "ActionStatus": 1},
    ],
)
def test_fields_of_the_wrong_type_are_refused_with_the_request_id(envelope: dict[str, Any]) -> None:
    assert refusal(parse({"RequestId": "Id-3", **envelope}, "set_callback")) == (
        "set_callback at api.example.com: the answer lacks an integer ErrorCode"
        " or has fields of the wrong type",
        "set_callback",
        "api.example.com",
        "Id-3",
    )


def test_a_missing_request_id_or_error_info_is_empty() -> None:
    assert parse({"ErrorCode": 0}, "delete_callback") == Answer(0, "")
    err = parse({"ErrorCode": 70003})
    assert isinstance(err, AuthError)
    assert (err.info, err.request_id, err.code, err.action, err.host) == (
        "",
        "",
        70003,
        "get_callback",
        "api.example.com",
    )


def test_a_missing_response_is_refused() -> None:
    assert refusal(parse(GOOD)) == (
        "get_callback at api.example.com: a successful answer lacks the Response object",
        "get_callback",
        "api.example.com",
        "Id-7",
    )


@pytest.mark.parametrize(
    ("url", "commands"),
    [(7, (CREATE,)), ("https://h/", "Room.X"), ("https://h/", [CREATE, 7]), (None, None)],
)
def test_a_response_of_the_wrong_shape_is_refused(url: Any, commands: Any) -> None:
    assert refusal(get(url, commands)) == (
        "get_callback at api.example.com: Response.Url must be a string"
        " and Response.CallbackCommandList a list of strings",
        "get_callback",
        "api.example.com",
        "Id-7",
    )


def test_a_good_answer_keeps_the_url_and_commands_exactly() -> None:
    assert get("HTTPS://H.example.com/cb?t=x", (CREATE, "Room.X")) == Answer(
        0, "Id-7", CallbackConfig("HTTPS://H.example.com/cb?t=x", (CREATE, "Room.X"))
    )


def test_no_configuration_is_an_answer_for_get_callback_only() -> None:
    assert parse({**GOOD, "ErrorCode": 100301}) == Answer(100301, "Id-7")
    err = parse({**GOOD, "ErrorCode": 100301}, "delete_callback")
    assert isinstance(err, TencentError)
    assert err.code == 100301


def test_writes_need_no_response() -> None:
    assert parse(GOOD, "update_callback") == Answer(0, "Id-7")


# ---- bounds: at the bound is accepted, one beyond is invalid_response ------------------------------


def test_a_request_id_of_exactly_128_characters_is_kept() -> None:
    assert parse({**GOOD, "RequestId": "R" * 128}, "set_callback") == Answer(0, "R" * 128)


def test_a_request_id_with_a_control_character_is_escaped_and_its_backslashes_kept() -> None:
    answer = parse({**GOOD, "RequestId": "a\\b\x1bc"}, "set_callback")
    assert answer == Answer(0, "a\\b\\x1bc")


def test_a_request_id_of_129_characters_is_refused_before_anything_reads_it() -> None:
    assert refusal(parse({**GOOD, "RequestId": "?" * 129}, "set_callback")) == (
        "set_callback at api.example.com: the RequestId is longer than 128 characters (129)",
        "set_callback",
        "api.example.com",
        "",
    )


def test_an_error_info_of_exactly_1024_characters_is_kept_and_quoted_up_to_300() -> None:
    err = parse({**GOOD, "ErrorCode": 70003, "ErrorInfo": "e" * 1024})
    assert isinstance(err, AuthError)
    assert err.info == "e" * 300


def test_an_error_info_of_1025_characters_is_refused() -> None:
    assert refusal(parse({**GOOD, "ErrorCode": 70003, "ErrorInfo": "a." * 512 + "a"})) == (
        "get_callback at api.example.com: the ErrorInfo is longer than 1024 characters (1025)",
        "get_callback",
        "api.example.com",
        "Id-7",
    )


def test_a_url_of_exactly_4096_characters_is_kept() -> None:
    url = "https://h.example.com/" + "p" * (4096 - 22)
    assert get(url).config == CallbackConfig(url, (CREATE,))


def test_a_url_of_4097_characters_is_refused() -> None:
    assert refusal(get("https://h.example.com/" + "?" * (4097 - 22))) == (
        "get_callback at api.example.com: Response.Url is longer than 4096 characters (4097)",
        "get_callback",
        "api.example.com",
        "Id-7",
    )


def test_64_commands_of_128_characters_are_kept() -> None:
    commands = tuple(f"{i:02d}" + "c" * 126 for i in range(64))
    assert get(commands=commands).config.commands == commands


def test_65_commands_are_refused() -> None:
    assert refusal(get(commands=(CREATE,) * 65)) == (
        "get_callback at api.example.com: Response.CallbackCommandList has more than 64 commands (65)",
        "get_callback",
        "api.example.com",
        "Id-7",
    )


def test_a_command_of_129_characters_is_refused_by_its_index() -> None:
    assert refusal(get(commands=(CREATE, "c" * 128, "c" * 129))) == (
        "get_callback at api.example.com:"
        " Response.CallbackCommandList[2] is longer than 128 characters (129)",
        "get_callback",
        "api.example.com",
        "Id-7",
    )


# ---- what an observer is told, and hosts for messages ----------------------------------------------


def test_code_labels() -> None:
    assert code_label(Answer(0, "")) == "0"
    assert code_label(Answer(100301, "")) == "100301"
    assert code_label(AuthError("m", action="a", code=70001)) == "70001"
    assert code_label(HttpStatusError("m", action="a", http_status=502)) == "http_502"
    assert code_label(RequestTimeout("m", action="a")) == "timeout"
    assert code_label(NetworkError("m", action="a")) == "network"
    assert code_label(InvalidResponse("m", action="a")) == "invalid_response"


def test_an_http_status_other_than_200_is_its_own_error() -> None:
    err = parse(GOOD, status=502)
    assert isinstance(err, HttpStatusError)
    assert (err.message, err.http_status, err.action, err.host) == (
        "get_callback at api.example.com: the answer had an HTTP status other than 200",
        502,
        "get_callback",
        "api.example.com",
    )


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://adminapisgp.im.qcloud.com", "adminapisgp.im.qcloud.com"),
        ("http://127.0.0.1:8080/", "127.0.0.1"),
        ("HTTPS://API.Example.com", "api.example.com"),
        ("http://[::1", ""),
        ("not a url", ""),
    ],
)
def test_hostname_of_an_endpoint(endpoint: str, host: str) -> None:
    assert hostname(endpoint) == host
