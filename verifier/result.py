"""The attestation result, shaped after an IETF RATS EAR (draft-ietf-rats-ear).

A result is returned only for authentic evidence: the chain reached the trust anchor and the
COSE signature verified. Its ``status`` is the EAR tier:

* ``affirming``: every check of the policy passed;
* ``warning``: authentic, but something was not appraised or was allowed by exception
  (an accept-any policy, or a debug-mode enclave that the policy allows);
* ``contraindicated``: authentic evidence that violates the policy. Such a result is never
  returned: it travels inside the :class:`~verifier.errors.PolicyViolation` that is raised.

:meth:`AttestationResult.to_ear` gives the JSON-ready EAR form with an AR4SI trustworthiness
vector (RATS trust tiers: 0 none, 2 affirming, 32 warning, 96 contraindicated).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime

from verifier.chain import CertificateInfo
from verifier.document import AttestationDocument, EvidenceKind
from verifier.errors import Violation
from verifier.policy import Policy
from verifier.timefmt import iso_utc

__all__ = ["EAR_PROFILE", "AttestationResult", "PCRAppraisal", "Status", "TimeBasis"]

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
VERIFIER_ID = {"developer": "attestation-ledger", "build": "attestation-ledger verifier 1"}


class Status(enum.StrEnum):
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"


class TimeBasis(enum.StrEnum):
    """Which time the chain and freshness were judged at."""

    #: A time the caller gave: "now" at ingestion, or an explicit instant.
    GIVEN = "given"
    #: The document's own signed timestamp (historical re-verification).
    DOCUMENT = "document_timestamp"


_TIER = {"none": 0, "affirming": 2, "warning": 32, "contraindicated": 96}


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
class AttestationResult:
    status: Status
    document: AttestationDocument
    evidence_sha256: str
    certificates: tuple[CertificateInfo, ...]
    trust_anchor_name: str
    trust_anchor_sha256: str
    policy: Policy
    matched_image: str | None
    pcr_appraisals: tuple[PCRAppraisal, ...]
    violations: tuple[Violation, ...]
    #: Why the status is not simply affirming, or what was not evaluated.
    notes: tuple[str, ...]
    verified_at: datetime
    time_basis: TimeBasis
    nonce_checked: bool
    result_binding_checked: bool

    @property
    def evidence_kind(self) -> EvidenceKind:
        return self.document.kind

    def trustworthiness_vector(self) -> dict[str, int]:
        """AR4SI claims this verifier can speak to, as RATS trust tiers."""
        executables = (
            "contraindicated"
            if any(v.code in ("pcr_mismatch", "debug_mode") for v in self.violations)
            else "warning"
            if self.policy.accepts_any_measurement or self.document.is_debug
            else "affirming"
        )
        freshness = (
            "contraindicated"
            if any(v.code.startswith(("nonce", "document_")) for v in self.violations)
            else "affirming"
            if self.nonce_checked
            else "none"
        )
        sourced = (
            "contraindicated"
            if any(v.code.startswith("result_binding") for v in self.violations)
            else "affirming"
            if self.result_binding_checked
            else "none"
        )
        vector = {
            "hardware": "affirming",  # the chain reached the configured trust anchor
            "instance-identity": "affirming",  # module_id is inside the signed payload
            "executables": executables,
            "sourced-data": sourced,
            "runtime-opaque": freshness,
        }
        return {claim: _TIER[tier] for claim, tier in vector.items()}

    def claims(self) -> dict[str, object]:
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
            "certificates": [info.to_dict() for info in self.certificates],
        }

    def to_ear(self) -> dict[str, object]:
        """The result as an EAR-shaped JSON object; our claims use an ``attestation-ledger.``
        prefix."""
        appraisal: dict[str, object] = {
            "ear.status": str(self.status),
            "ear.trustworthiness-vector": self.trustworthiness_vector(),
            "ear.appraisal-policy-id": self.policy.policy_id,
            "attestation-ledger.evidence-sha256": self.evidence_sha256,
            "attestation-ledger.claims": self.claims(),
            "attestation-ledger.trust-anchor": {
                "name": self.trust_anchor_name,
                "fingerprint_sha256": self.trust_anchor_sha256,
            },
            "attestation-ledger.policy": self.policy.to_dict(),
            "attestation-ledger.matched-image": self.matched_image,
            "attestation-ledger.pcr-appraisals": [p.to_dict() for p in self.pcr_appraisals],
            "attestation-ledger.violations": [v.to_dict() for v in self.violations],
            "attestation-ledger.notes": list(self.notes),
            "attestation-ledger.checks": {
                "nonce": self.nonce_checked,
                "result_binding": self.result_binding_checked,
            },
            "attestation-ledger.time-basis": str(self.time_basis),
        }
        return {
            "eat_profile": EAR_PROFILE,
            "iat": int(self.verified_at.timestamp()),
            "attestation-ledger.verified-at": iso_utc(self.verified_at),
            "ear.verifier-id": dict(VERIFIER_ID),
            "submods": {str(self.document.kind): appraisal},
        }


def evidence_digest(evidence: bytes) -> str:
    return hashlib.sha256(evidence).hexdigest()


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()
