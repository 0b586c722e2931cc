"""UserSig v2: the reference's test vectors, and properties of sign/verify."""

from __future__ import annotations

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
