"""Makes certificates for receivers that probes talk to: the demo's receiver and the probe tests."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def make_ca(
    name: str,
    *,
    not_before: datetime,
    not_after: datetime,
    issuer: Issued | None = None,
) -> Issued:
    """A certificate authority: a self-signed root, or an intermediate when ``issuer`` is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = _builder(subject, key, issuer, not_before, not_after)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    return _sign(builder, key, issuer)


def make_leaf(
    hosts: Sequence[str],
    *,
    not_before: datetime,
    not_after: datetime,
    issuer: Issued | None = None,
) -> Issued:
    """A server certificate for ``hosts`` (DNS names or IP addresses); self-signed without ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    builder = _builder(subject, key, issuer, not_before, not_after)
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return _sign(builder, key, issuer)


def write_pair(directory: Path, stem: str, leaf: Issued, chain: Sequence[Issued] = ()) -> tuple[Path, Path]:
    """Writes ``stem.pem`` (the leaf, then ``chain`` in order) and ``stem.key``; returns both paths."""
    cert_path = directory / f"{stem}.pem"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(leaf.cert_pem() + b"".join(c.cert_pem() for c in chain))
    key_path.write_bytes(leaf.key_pem())
    key_path.chmod(0o600)
    return cert_path, key_path


def _builder(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: Issued | None,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
        builder = builder.add_extension(authority, critical=False)
    return builder


def _sign(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey, issuer: Issued | None) -> Issued:
    signer = issuer.key if issuer is not None else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)
