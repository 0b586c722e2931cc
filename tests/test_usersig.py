"""UserSig v2: the reference's test vectors, and properties of sign/verify."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.errors import UserSigError
from monitor.tencent.usersig import decode, hmac_sig, sign, verify

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
REFERENCE_SIG = (
    "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwhWZiflZpXlQqeKU7MSCgswUJStDEwMogMiUZOamKlkZmqOKplYU"
    "ZBaBxE1NTY3gosWZ6UpWSj5ljuYp*p7l5unBxXnF2WVhVU4uAf7Ozi5JpX7O5SbuHuUhzgZJmQXaTia2SrUAohcx8g__"
)


@pytest.mark.parametrize(
    ("identifier", "expire", "expected"),
    [
        ("xiaojun", 15552000, "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4="),
        ("admin", 86400, "4lUxqF/B+QS/FhzU388MWw47s2GIKgpTCF1WmWL/l5Y="),
    ],
)
def test_hmac_matches_reference_vectors(identifier: str, expire: int, expected: str) -> None:
    assert hmac_sig(KEY, identifier, 1400000000, 1700000000, expire) == expected


def test_reference_usersig_is_accepted_before_expiry() -> None:
    doc = verify(REFERENCE_SIG, 1400000000, KEY, "xiaojun", now=1700000010)
    assert (doc.identifier, doc.sdkappid, doc.time, doc.expire) == (
        "xiaojun",
        1400000000,
        1700000000,
        15552000,
    )


def test_reference_usersig_is_rejected_after_expiry() -> None:
    with pytest.raises(UserSigError) as caught:
        verify(REFERENCE_SIG, 1400000000, KEY, "xiaojun", now=1715552001)
    assert caught.value.problem == "expired"


def test_our_sig_decodes_to_the_fields_we_signed() -> None:
    doc, sig = decode(sign(1400000000, KEY, "admin", now=1700000000.7, ttl=86400))
    assert (doc.identifier, doc.sdkappid, doc.time, doc.expire) == (
        "admin",
        1400000000,
        1700000000,
        86400,
    )
    assert sig == "4lUxqF/B+QS/FhzU388MWw47s2GIKgpTCF1WmWL/l5Y="


def test_usersig_is_safe_in_a_url_query() -> None:
    sig = sign(1400000000, KEY, "admin", now=1700000000, ttl=86400)
    assert not set(sig) & set("+/=&?# ")


identifiers = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=32)
sdkappids = st.integers(min_value=1, max_value=2**32 - 1)
keys = st.text(alphabet="0123456789abcdef", min_size=8, max_size=64)
times = st.integers(min_value=0, max_value=2**31)
ttls = st.integers(min_value=1, max_value=10**8)


@given(sdkappids, keys, identifiers, times, ttls)
def test_a_signed_usersig_verifies(sdkappid: int, key: str, ident: str, t: int, ttl: int) -> None:
    sig = sign(sdkappid, key, ident, now=t, ttl=ttl)
    assert verify(sig, sdkappid, key, ident, now=t + ttl).expires_at == t + ttl


@given(sdkappids, keys, identifiers, times, ttls, st.data())
def test_changing_any_field_breaks_the_usersig(
    sdkappid: int, key: str, ident: str, t: int, ttl: int, data: st.DataObject
) -> None:
    sig = sign(sdkappid, key, ident, now=t, ttl=ttl)
    change = data.draw(st.sampled_from(["sdkappid", "key", "identifier", "time"]))
    expected = {
        "sdkappid": "sdkappid_mismatch",
        "key": "bad_signature",
        "identifier": "identifier_mismatch",
        "time": "expired",
    }[change]
    with pytest.raises(UserSigError) as caught:
        verify(
            sig,
            sdkappid + 1 if change == "sdkappid" else sdkappid,
            key + "0" if change == "key" else key,
            ident + "x" if change == "identifier" else ident,
            now=t + ttl + 1 if change == "time" else t,
        )
    assert caught.value.problem == expected


@given(st.text(max_size=200))
def test_garbage_never_verifies_and_raises_only_our_error(garbage: str) -> None:
    with pytest.raises(UserSigError):
        verify(garbage, 1400000000, KEY, "admin", now=1700000000)


@given(st.sampled_from(["TLS.time", "TLS.expire", "TLS.identifier", "TLS.sdkappid"]))
def test_tampering_with_the_document_breaks_the_hmac(field: str) -> None:
    """A sig whose fields were edited after signing fails, even with consistent new fields."""
    import base64
    import json
    import zlib

    sig = sign(1400000000, KEY, "admin", now=1700000000, ttl=86400)
    raw = zlib.decompress(base64.b64decode(sig.translate(str.maketrans("*-_", "+/="))))
    doc = json.loads(raw)
    doc[field] = doc[field] + 1 if isinstance(doc[field], int) else doc[field] + "x"
    forged = (
        base64.b64encode(zlib.compress(json.dumps(doc).encode()))
        .decode()
        .translate(str.maketrans("+/=", "*-_"))
    )
    with pytest.raises(UserSigError) as caught:
        verify(forged, doc["TLS.sdkappid"], KEY, doc["TLS.identifier"], now=1700000000)
    assert caught.value.problem == "bad_signature"


# ---- pins: every field of the wire form, and every way the decoder refuses ----------------------------


def _wire(raw: bytes) -> str:
    """Bytes in the UserSig wire form (zlib, base64, '+/=' -> '*-_'), however malformed the JSON."""
    return base64.b64encode(zlib.compress(raw)).decode("ascii").translate(str.maketrans("+/=", "*-_"))


def _unwire(usersig: str) -> dict[str, object]:
    raw = zlib.decompress(base64.b64decode(usersig.translate(str.maketrans("*-_", "+/="))))
    doc = json.loads(raw)
    assert isinstance(doc, dict)
    return doc


GOOD_DOC = {
    "TLS.ver": "2.0",
    "TLS.identifier": "admin",
    "TLS.sdkappid": 1400000000,
    "TLS.expire": 86400,
    "TLS.time": 1700000000,
    "TLS.sig": "4lUxqF/B+QS/FhzU388MWw47s2GIKgpTCF1WmWL/l5Y=",
}


def test_our_usersig_holds_exactly_the_documented_fields_with_version_2() -> None:
    """The vendor's verifier reads TLS.ver; our own decoder ignores it, so only this test guards it."""
    assert _unwire(sign(1400000000, KEY, "admin", now=1700000000.9, ttl=86400)) == GOOD_DOC


def test_the_reference_usersig_decodes_to_each_of_its_fields() -> None:
    doc, sig = decode(REFERENCE_SIG)
    assert doc.identifier == "xiaojun"
    assert doc.sdkappid == 1400000000
    assert doc.time == 1700000000
    assert doc.expire == 15552000
    assert doc.expires_at == 1715552000
    assert sig == "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4="


def test_the_wire_alphabet_is_the_documented_one() -> None:
    """'+' -> '*', '/' -> '-', '=' -> '_': a sig whose base64 holds all three round-trips exactly."""
    for ident in (f"user{i}" for i in range(200)):
        sig = sign(1400000000, KEY, ident, now=1700000000, ttl=86400)
        standard = base64.b64encode(zlib.compress(json.dumps(_unwire(sig), separators=(",", ":")).encode()))
        if {"+", "/", "="} <= set(standard.decode()):
            assert sig == standard.decode().replace("+", "*").replace("/", "-").replace("=", "_")
            return
    pytest.fail("no sig among 200 used all three characters")


def test_the_last_second_of_a_usersig_is_still_valid() -> None:
    assert verify(REFERENCE_SIG, 1400000000, KEY, "xiaojun", now=1715552000).expire == 15552000


@pytest.mark.parametrize(
    ("sdkappid", "identifier", "key", "problem", "message"),
    [
        (1400000001, "xiaojun", KEY, "sdkappid_mismatch", "UserSig was made for another SDKAppID"),
        (1400000000, "xiaojum", KEY, "identifier_mismatch", "UserSig was made for another identifier"),
        (
            1400000000,
            "xiaojun",
            KEY[:-1] + "f",
            "bad_signature",
            "UserSig was not signed with this app's key",
        ),
    ],
)
def test_each_verify_failure_has_its_problem_and_message(
    sdkappid: int, identifier: str, key: str, problem: str, message: str
) -> None:
    with pytest.raises(UserSigError) as caught:
        verify(REFERENCE_SIG, sdkappid, key, identifier, now=1700000010)
    assert (caught.value.problem, str(caught.value)) == (problem, message)


def test_an_expired_usersig_says_so() -> None:
    with pytest.raises(UserSigError) as caught:
        verify(REFERENCE_SIG, 1400000000, KEY, "xiaojun", now=1715552001)
    assert str(caught.value) == "UserSig has expired"


def _padded(size: int) -> bytes:
    """GOOD_DOC as JSON padded with trailing spaces to exactly ``size`` bytes."""
    raw = json.dumps(GOOD_DOC).encode()
    return raw + b" " * (size - len(raw))


def test_the_decoder_inflates_up_to_64_kib() -> None:
    doc, _ = decode(_wire(_padded(65536)))
    assert doc.identifier == "admin"


def test_the_decoder_refuses_to_inflate_beyond_64_kib() -> None:
    with pytest.raises(UserSigError) as caught:
        decode(_wire(_padded(65537)))
    assert (caught.value.problem, str(caught.value)) == ("malformed", "UserSig is too large")


@pytest.mark.parametrize(
    "usersig",
    ["not base64!", _wire(b"{not json"), "eJzLSM3JyVcozy_KSQEAGgQEXQ__"[:-4], _wire(b"\xff\xfe")],
)
def test_undecodable_usersigs_are_malformed(usersig: str) -> None:
    with pytest.raises(UserSigError) as caught:
        decode(usersig)
    assert (caught.value.problem, str(caught.value)) == ("malformed", "UserSig is not valid base64/zlib/JSON")


@pytest.mark.parametrize("document", [b"[1, 2]", b'"TLS.sig"', b"7", b"null"])
def test_a_document_that_is_not_an_object_is_malformed(document: bytes) -> None:
    with pytest.raises(UserSigError) as caught:
        decode(_wire(document))
    assert (caught.value.problem, str(caught.value)) == ("malformed", "UserSig document is not a JSON object")


@pytest.mark.parametrize("field", ["TLS.identifier", "TLS.sdkappid", "TLS.time", "TLS.expire", "TLS.sig"])
def test_a_missing_field_is_named(field: str) -> None:
    doc = {k: v for k, v in GOOD_DOC.items() if k != field}
    with pytest.raises(UserSigError) as caught:
        decode(_wire(json.dumps(doc).encode()))
    assert (caught.value.problem, str(caught.value)) == ("malformed", f"UserSig lacks field {field}")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("TLS.identifier", 7),
        ("TLS.sig", 7),
        ("TLS.sdkappid", "1400000000"),
        ("TLS.sdkappid", True),
        ("TLS.time", 1700000000.0),
        ("TLS.time", False),
        ("TLS.expire", None),
        ("TLS.expire", True),
    ],
)
def test_a_field_of_the_wrong_type_is_malformed(field: str, value: object) -> None:
    with pytest.raises(UserSigError) as caught:
        decode(_wire(json.dumps(GOOD_DOC | {field: value}).encode()))
    assert (caught.value.problem, str(caught.value)) == ("malformed", "UserSig fields have the wrong types")


def test_the_version_field_is_not_required_by_our_decoder() -> None:
    doc = {k: v for k, v in GOOD_DOC.items() if k != "TLS.ver"}
    assert decode(_wire(json.dumps(doc).encode()))[0].identifier == "admin"


def test_a_character_outside_the_wire_alphabet_is_malformed_not_skipped() -> None:
    with pytest.raises(UserSigError) as caught:
        decode(REFERENCE_SIG[:40] + "!" + REFERENCE_SIG[40:])
    assert caught.value.problem == "malformed"


def test_a_sig_field_that_is_not_valid_text_is_a_bad_signature() -> None:
    """A lone surrogate (valid JSON) must fail the comparison, not raise a codec error."""
    doc = json.dumps(GOOD_DOC).replace('"4lUx', '"\\ud800').encode()
    with pytest.raises(UserSigError) as caught:
        verify(_wire(doc), 1400000000, KEY, "admin", now=1700000000)
    assert caught.value.problem == "bad_signature"
