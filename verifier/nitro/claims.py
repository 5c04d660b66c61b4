"""The Nitro scheme's typed claims: the document itself, and each PCR as the policy saw it."""

from __future__ import annotations

from dataclasses import dataclass

from verifier.nitro.document import AttestationDocument
from verifier.scheme import EvidenceKind
from verifier.timefmt import iso_utc

__all__ = ["NitroClaims", "PCRAppraisal"]


@dataclass(frozen=True, slots=True)
class PCRAppraisal:
    """One PCR as the policy saw it."""

    index: int
    value: bytes
    #: Names of the reference images that list this index with exactly this value.
    matched_images: tuple[str, ...]
    #: True if some image lists this index (so it was appraised at all).
    referenced: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "value": self.value.hex(),
            "referenced": self.referenced,
            "matched_images": list(self.matched_images),
        }


@dataclass(frozen=True, slots=True, eq=False)
class NitroClaims:
    """What a Nitro document says (``document``) and how its PCRs compared with the policy's
    reference images (``pcr_appraisals``, empty when only described)."""

    document: AttestationDocument
    pcr_appraisals: tuple[PCRAppraisal, ...] = ()

    @property
    def evidence_kind(self) -> EvidenceKind:
        return self.document.kind

    def to_dict(self) -> dict[str, object]:
        doc = self.document
        return {
            "evidence_kind": str(doc.kind),
            "module_id": doc.module_id,
            "timestamp": iso_utc(doc.timestamp),
            "timestamp_ms": doc.timestamp_ms,
            "digest": doc.digest,
            "pcrs": {str(index): value.hex() for index, value in doc.pcrs.items()},
            "debug_mode": doc.is_debug,
            "user_data": _hex(doc.user_data),
            "nonce": _hex(doc.nonce),
            "public_key": _hex(doc.public_key),
        }

    def ear_details(self) -> dict[str, object]:
        return {"attestation-ledger.pcr-appraisals": [p.to_dict() for p in self.pcr_appraisals]}


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()
