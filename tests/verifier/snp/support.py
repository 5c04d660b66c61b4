"""The real SEV-SNP samples (tests/fixtures/snp/README.md) and helpers to verify them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier import (
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    SnpPolicy,
    SnpReferenceImage,
    UnsafeAcceptAnySnpPolicy,
    UnsafePolicyWarning,
)

SNP = Path(__file__).resolve().parent.parent.parent / "fixtures" / "snp"
#: Inside the validity window of every real VCEK/VLEK here.
SNP_AT = datetime(2025, 9, 1, tzinfo=UTC)
#: After the VLEK expired (2025-12-10T22:14:21Z), inside the VCEKs' windows.
AFTER_VLEK = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class RealReport:
    """A real report, the key that signed it and what is known about them."""

    report: str
    key: str
    kind: EndorsementKind
    product: str
    version: int
    not_before: datetime
    not_after: datetime
    vmpl: int = 0

    def bytes(self) -> bytes:
        return (SNP / self.report).read_bytes()

    def key_der(self) -> bytes:
        return (SNP / self.key).read_bytes()

    def evidence(self, *extra: Endorsement, data: bytes | None = None) -> Evidence:
        return Evidence(
            EvidenceKind.AMD_SEV_SNP,
            self.bytes() if data is None else data,
            (Endorsement(self.kind, self.key_der()), *extra),
        )

    def policy(self, **overrides: object) -> SnpPolicy:
        """A policy whose one image is this report's own launch values."""
        from verifier import parse_report

        report = parse_report(self.bytes())
        arguments: dict[str, object] = {
            "name": "real",
            "images": (SnpReferenceImage("own", report.measurement),),
            "max_vmpl": self.vmpl,
        }
        arguments.update(overrides)
        return SnpPolicy(**arguments)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


VIRTEE = RealReport(
    "virtee_snp_report_milan.bin",
    "virtee_snp_vcek_milan.der",
    EndorsementKind.VCEK,
    "Milan",
    2,
    utc("2023-04-03T19:23:43"),
    utc("2030-04-03T19:23:43"),
)
VLEK = RealReport(
    "trustee_snp_test-vlek-report.bin",
    "trustee_snp_test-vlek.der",
    EndorsementKind.VLEK,
    "Milan",
    3,
    utc("2024-12-10T22:14:21"),
    utc("2025-12-10T22:14:21"),
    vmpl=1,
)
GENOA = RealReport(
    "snp_oak_genoa_v5_report.bin",
    "snp_oak_genoa_vcek.der",
    EndorsementKind.VCEK,
    "Genoa",
    5,
    utc("2025-08-07T17:21:41"),
    utc("2032-08-07T17:21:41"),
)
REAL_REPORTS = (VIRTEE, VLEK, GENOA)
INVALID_VCEKS = (
    "trustee_snp_test-vcek-invalid-legacy.der",
    "trustee_snp_test-vcek-invalid-new.der",
)


def pem_der(name: str, index: int = 0) -> bytes:
    """The DER of the ``index``-th certificate in a PEM fixture."""
    certificates = x509.load_pem_x509_certificates((SNP / name).read_bytes())
    return certificates[index].public_bytes(Encoding.DER)


def accept_any() -> UnsafeAcceptAnySnpPolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        return UnsafeAcceptAnySnpPolicy(max_vmpl=3)
