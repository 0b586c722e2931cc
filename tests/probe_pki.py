"""The probe tests' certificates: a test CA, an intermediate, and leaves for each kind of receiver."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.probe_certs import Issued, make_ca, make_leaf, write_pair

HOST = "receiver.test"  # the tests' resolver sends it to 127.0.0.1
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Pki:
    """Files made once per test session; ``pair(name)`` is a (certificate chain, key) pair to serve."""

    directory: Path
    ca_file: Path
    now: datetime
    root: Issued
    intermediate: Issued

    def pair(self, name: str) -> tuple[Path, Path]:
        return self.directory / f"{name}.pem", self.directory / f"{name}.key"

    def not_after(self, name: str) -> float:
        """A served chain's earliest notAfter, read back from the files written."""
        from cryptography import x509

        certs = x509.load_pem_x509_certificates(self.pair(name)[0].read_bytes())
        return min(c.not_valid_after_utc.timestamp() for c in certs)


def make_pki(directory: Path) -> Pki:
    now = datetime.now(UTC).replace(microsecond=0)
    root = make_ca("Probe Test Root", not_before=now - 30 * DAY, not_after=now + 3650 * DAY)
    inter = make_ca(
        "Probe Test Intermediate", not_before=now - 30 * DAY, not_after=now + 1000 * DAY, issuer=root
    )
    short_inter = make_ca("Probe Test Short", not_before=now - 30 * DAY, not_after=now + 5 * DAY, issuer=root)
    write_pair(directory, "root", root)
    ca_file = directory / "root.pem"

    def leaf(days_left: float, *, hosts: tuple[str, ...] = (HOST,), days_old: float = 30) -> Issued:
        return make_leaf(
            list(hosts), not_before=now - days_old * DAY, not_after=now + days_left * DAY, issuer=inter
        )

    write_pair(directory, "valid", leaf(90), [inter])
    write_pair(directory, "expired", leaf(-1), [inter])
    write_pair(directory, "not_yet_valid", leaf(90, days_old=-2), [inter])
    write_pair(directory, "expiring_2d", leaf(2), [inter])
    write_pair(directory, "expiring_10d", leaf(10), [inter])
    write_pair(directory, "wrong_host", leaf(90, hosts=("other.test",)), [inter])
    self_signed = make_leaf([HOST], not_before=now - 30 * DAY, not_after=now + 90 * DAY)
    write_pair(directory, "self_signed", self_signed)
    write_pair(directory, "no_intermediate", leaf(90))  # the leaf alone: its issuer is unknown to the client
    short_leaf = make_leaf([HOST], not_before=now - DAY, not_after=now + 60 * DAY, issuer=short_inter)
    write_pair(directory, "short_intermediate", short_leaf, [short_inter])
    return Pki(directory, ca_file, now, root, inter)
