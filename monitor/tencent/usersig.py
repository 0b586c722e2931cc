"""UserSig v2 (HMAC-SHA256): pure sign and verify, with the time passed in."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass

from monitor.errors import UserSigError

# Base64 alphabet of the UserSig wire form: '+' -> '*', '/' -> '-', '=' -> '_' (URL-safe as is).
_TO_WIRE = str.maketrans("+/=", "*-_")
_FROM_WIRE = str.maketrans("*-_", "+/=")


@dataclass(frozen=True)
class SigDocument:
    """The decoded contents of a UserSig (the HMAC itself is not kept: it is checked, not used)."""

    identifier: str
    sdkappid: int
    time: int
    expire: int

    @property
    def expires_at(self) -> int:
        return self.time + self.expire


def hmac_sig(key: str, identifier: str, sdkappid: int, time: int, expire: int) -> str:
    """``TLS.sig``: standard base64 of HMAC-SHA256 over the four-line text, keyed by the key's UTF-8."""
    text = f"TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n"
    digest = hmac.new(key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(sdkappid: int, key: str, identifier: str, now: float, ttl: int) -> str:
    """A UserSig for ``identifier`` of ``sdkappid``, valid from ``now`` for ``ttl`` seconds."""
    t = int(now)
    document = {
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": ttl,
        "TLS.time": t,
        "TLS.sig": hmac_sig(key, identifier, sdkappid, t, ttl),
    }
    raw = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(zlib.compress(raw)).decode("ascii").translate(_TO_WIRE)


def decode(usersig: str) -> tuple[SigDocument, str]:
    """Undo the wire form: the document's fields and its ``TLS.sig``. Raises UserSigError."""
    try:
        compressed = base64.b64decode(usersig.translate(_FROM_WIRE), validate=True)
        # A UserSig is a few hundred bytes; refuse to inflate anything that grows beyond 64 KiB.
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, 65536)
        if inflater.unconsumed_tail:
            raise UserSigError("malformed", "UserSig is too large")
        doc = json.loads(raw)
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise UserSigError("malformed", "UserSig is not valid base64/zlib/JSON") from exc
    if not isinstance(doc, dict):
        raise UserSigError("malformed", "UserSig document is not a JSON object")
    try:
        identifier = doc["TLS.identifier"]
        sdkappid = doc["TLS.sdkappid"]
        time = doc["TLS.time"]
        expire = doc["TLS.expire"]
        sig = doc["TLS.sig"]
    except KeyError as exc:
        raise UserSigError("malformed", f"UserSig lacks field {exc.args[0]}") from exc
    if not (
        isinstance(identifier, str)
        and isinstance(sig, str)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in (sdkappid, time, expire))
    ):
        raise UserSigError("malformed", "UserSig fields have the wrong types")
    return SigDocument(identifier, sdkappid, time, expire), sig


def verify(usersig: str, sdkappid: int, key: str, identifier: str, now: float) -> SigDocument:
    """Check ``usersig`` as the server does; return its document or raise UserSigError."""
    doc, sig = decode(usersig)
    if doc.sdkappid != sdkappid:
        raise UserSigError("sdkappid_mismatch", "UserSig was made for another SDKAppID")
    if doc.identifier != identifier:
        raise UserSigError("identifier_mismatch", "UserSig was made for another identifier")
    if now > doc.expires_at:
        raise UserSigError("expired", "UserSig has expired")
    expected = hmac_sig(key, doc.identifier, doc.sdkappid, doc.time, doc.expire)
    if not hmac.compare_digest(expected.encode("ascii"), sig.encode("utf-8", "replace")):
        raise UserSigError("bad_signature", "UserSig was not signed with this app's key")
    return doc
