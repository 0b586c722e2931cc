"""The ErrorCode table: every documented code has a class and a message someone can act on."""

from __future__ import annotations

import pytest

from monitor.errors import (
    AppInvalid,
    AuthError,
    BadRequest,
    PermissionDenied,
    RateLimited,
    ServerError,
    TencentError,
)
from monitor.tencent.codes import CODES, RATE_LIMIT_RETRY_CODES, describe, error_for

# Every code named by the vendor's get_callback page and by the reference page of the four calls.
DOCUMENTED = {
    60002: BadRequest,
    60003: BadRequest,
    60004: AuthError,
    60005: AuthError,
    60006: AppInvalid,
    60007: RateLimited,
    60010: PermissionDenied,
    60011: RateLimited,
    60016: PermissionDenied,
    60017: PermissionDenied,
    60018: RateLimited,
    60019: RateLimited,
    60020: PermissionDenied,
    60021: PermissionDenied,
    70001: AuthError,
    70002: AuthError,
    70003: AuthError,
    70005: AuthError,
    70009: AuthError,
    70013: AuthError,
    70014: AuthError,
    70016: AppInvalid,
    70020: AppInvalid,
    70050: RateLimited,
    70169: ServerError,
    70202: ServerError,
    70500: ServerError,
    100001: ServerError,
    100002: BadRequest,
    100300: BadRequest,
    100301: BadRequest,
}


def test_the_table_holds_exactly_the_documented_codes() -> None:
    assert set(CODES) == set(DOCUMENTED)


@pytest.mark.parametrize(("code", "expected"), sorted(DOCUMENTED.items()))
def test_each_code_raises_its_class(code: int, expected: type[TencentError]) -> None:
    err = error_for(code, "vendor words", "Id-1", "get_callback", "adminapisgp.im.qcloud.com")
    assert type(err) is expected
    assert err.message.startswith("get_callback at adminapisgp.im.qcloud.com: ")
    assert len(describe(code).message) > 20


def test_the_vendor_fields_are_kept_for_on_call() -> None:
    err = error_for(60010, "identifier is not admin", "Id-42-O-Seq-7", "set_callback", "console.tim.qq.com")
    assert (err.code, err.info, err.request_id, err.action, err.host) == (
        60010,
        "identifier is not admin",
        "Id-42-O-Seq-7",
        "set_callback",
        "console.tim.qq.com",
    )
    assert "RequestId Id-42-O-Seq-7" in str(err)
    assert "ErrorCode 60010" in str(err)


def test_a_non_admin_identifier_says_which_setting_to_change() -> None:
    assert "`identifier`" in describe(60010).message
    assert "admin" in describe(60010).message


@pytest.mark.parametrize("code", [60006, 70016, 70020])
def test_an_unknown_app_suggests_a_wrong_region_host(code: int) -> None:
    message = str(error_for(code, "", "", "get_callback", "adminapikr.im.qcloud.com"))
    assert "region" in message
    assert "adminapikr.im.qcloud.com" in message


def test_an_unknown_code_is_a_server_error_that_names_the_code() -> None:
    err = error_for(91234, "new thing", "Id-9", "get_callback", "h")
    assert type(err) is ServerError
    assert "91234" in err.message
    assert err.retryable


def test_only_server_side_failures_are_retryable() -> None:
    retryable = {code for code in DOCUMENTED if error_for(code, "", "", "a", "h").retryable}
    assert retryable == {70169, 70202, 70500, 100001}


def test_rate_limits_earn_a_retry_except_the_signature_lockout() -> None:
    assert RATE_LIMIT_RETRY_CODES == {60007, 60011, 60018, 60019}


def test_messages_without_a_host_still_read_well() -> None:
    assert error_for(100002, "", "", "get_callback", "").message.startswith("get_callback: ")
