"""TLS for receiver probes: the client context, the certificates' earliest notAfter, refusal reasons."""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

from monitor.probe_model import CertProblem

# OpenSSL's X509_V_ERR_* codes that name a problem more precisely than "untrusted".
_EXPIRED = 10  # X509_V_ERR_CERT_HAS_EXPIRED (the leaf or any certificate of the chain)
_NOT_YET_VALID = 9  # X509_V_ERR_CERT_NOT_YET_VALID
_WRONG_HOST = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def client_context(ca_file: Path | None, ca_pem: str | None = None) -> ssl.SSLContext:
    """A context that verifies the whole chain and the host name, against the CA bundle or the system's.

    The bundle is ``ca_pem`` (its text, as the config loader read it) when given, else the file
    ``ca_file``. Contexts are kept per bundle text, or per file and its modification time.
    """
    if ca_pem is not None:
        return _context(None, 0, ca_pem)
    if ca_file is None:
        return _context(None, 0, None)
    return _context(str(ca_file), ca_file.stat().st_mtime_ns, None)


@functools.lru_cache(maxsize=16)
def _context(ca_file: str | None, _mtime_ns: int, ca_pem: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file, cadata=ca_pem)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def cert_problem(error: ssl.SSLCertVerificationError) -> CertProblem:
    """What a failed certificate verification means for the receiver."""
    code = getattr(error, "verify_code", None)
    if code == _EXPIRED:
        return CertProblem.EXPIRED
    if code == _NOT_YET_VALID:
        return CertProblem.NOT_YET_VALID
    if code in _WRONG_HOST:
        return CertProblem.WRONG_HOST
    return CertProblem.UNTRUSTED


def verify_message(error: ssl.SSLCertVerificationError) -> str:
    message = getattr(error, "verify_message", "") or str(error.reason or error)
    return f"certificate refused: {message}"


def earliest_not_after(ssl_object: ssl.SSLObject) -> float | None:
    """The earliest notAfter (epoch seconds) among the certificates of a verified connection.

    Python 3.11 has no public API for the verified chain (``get_verified_chain`` is public from 3.13),
    so this reads the chain through the private method where the interpreter has it (3.10 to 3.12
    keep it on the ``_ssl`` socket object) and falls back to the leaf alone, which ``getpeercert()``
    always gives. The chain read is the one OpenSSL built and verified: the certificates the receiver
    sent that lead to a trusted root, and the root itself. None when nothing could be read.
    """
    infos: list[dict[str, object]] = []
    chain = _verified_chain(ssl_object)
    if chain is not None:
        infos.extend(chain)
    leaf = ssl_object.getpeercert()
    if leaf:
        infos.append(dict(leaf))
    times = [
        ssl.cert_time_to_seconds(value) for info in infos if isinstance(value := info.get("notAfter"), str)
    ]
    return float(min(times)) if times else None


def _verified_chain(ssl_object: ssl.SSLObject) -> list[dict[str, object]] | None:
    public = getattr(ssl_object, "get_verified_chain", None)  # Python 3.13+
    if public is None:
        public = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if public is None:
        return None
    try:
        certificates = public()
    except (ssl.SSLError, ValueError):
        return None
    infos: list[dict[str, object]] = []
    for certificate in certificates or ():
        get_info = getattr(certificate, "get_info", None)
        if get_info is not None:
            info = get_info()
            if isinstance(info, dict):
                infos.append(info)
    return infos
