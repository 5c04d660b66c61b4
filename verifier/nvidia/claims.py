"""The NVIDIA scheme's typed claims: the report, the device it came from, and how each RIM
compared with it.

What the evidence does not say, the claims do not invent: the confidential-computing mode
is the report's feature flag (opaque field 36, SPT, MPT or PPCIE) when the firmware writes
one, else ``null`` (older firmware; NVIDIA's own verifier reads the CC mode from the driver
on the host, NVML, which is not evidence); ``fwid_checked`` is false when the report has no
FWID field (20); OCSP revocation is not checked (kept, never fetched).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from verifier.nvidia.report import SpdmReport
from verifier.scheme import EvidenceKind

__all__ = ["NvidiaClaims", "RimComparison"]


@dataclass(frozen=True, slots=True)
class RimComparison:
    """One RIM compared with the report: which active indexes matched and which did not."""

    kind: str
    id: str
    version: str
    sha256: str
    matched: int
    mismatched: tuple[int, ...]
    #: Indexes not compared, and why (NVDEC0 disabled: index 35).
    skipped: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "id": self.id,
            "version": self.version,
            "sha256": self.sha256,
            "matched": self.matched,
            "mismatched": list(self.mismatched),
        }


@dataclass(frozen=True, slots=True, eq=False)
class NvidiaClaims:
    report: SpdmReport
    #: HOPPER, BLACKWELL or LS10, from the leaf certificate; None when described without it.
    arch: str | None
    fwid_checked: bool
    rims: tuple[RimComparison, ...]
    leaf_subject: str | None
    leaf_der: bytes | None

    @property
    def evidence_kind(self) -> EvidenceKind:
        return EvidenceKind.NVIDIA_GPU

    def to_dict(self) -> dict[str, object]:
        r = self.report
        return {
            "evidence_kind": str(EvidenceKind.NVIDIA_GPU),
            "arch": self.arch,
            "driver_version": r.driver_version,
            "vbios_version": r.vbios_version,
            "feature_flag": None if r.feature_flag is None else str(r.feature_flag),
            "chip_info": r.chip_info,
            "fwid": None if r.fwid is None else r.fwid.hex(),
            "fwid_checked": self.fwid_checked,
            "nonce": r.requester_nonce.hex(),
            "measurements": {"count": len(r.blocks), "sha256_of_blocks": r.sha256_of_blocks},
            "rims": [rim.to_dict() for rim in self.rims],
            "device": {
                "leaf_subject": self.leaf_subject,
                "leaf_sha256": None
                if self.leaf_der is None
                else hashlib.sha256(self.leaf_der).hexdigest(),
            },
            "trailing_bytes": len(r.trailing),
        }

    def ear_details(self) -> dict[str, object]:
        return {}
