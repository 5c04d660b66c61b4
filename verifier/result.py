"""The one attestation result of every scheme, shaped after an IETF RATS EAR
(draft-ietf-rats-ear).

A result is returned only for authentic evidence: its signature verified and its
endorsements chained to a trusted root. Its ``status`` is the EAR tier:

* ``affirming``: every check of the policy passed;
* ``warning``: authentic, but something was not appraised or was allowed by exception
  (an accept-any policy, or a debug-mode guest that the policy allows);
* ``contraindicated``: authentic evidence that violates the policy. Such a result is never
  returned: it travels inside the :class:`~verifier.errors.PolicyViolation` that is raised.

What differs between schemes is in ``claims`` (a typed object per scheme, with ``to_dict()``)
and in the AR4SI trustworthiness vector the scheme derived from its checks.
:meth:`AttestationResult.to_ear` gives the JSON-ready EAR form: one submod named after the
evidence kind, with RATS trust tiers (0 none, 2 affirming, 32 warning, 96 contraindicated).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from verifier.errors import PolicyViolation, Violation
from verifier.policy import SchemePolicy
from verifier.scheme import Claims, EvidenceKind
from verifier.timefmt import iso_utc
from verifier.x509 import CertificateInfo

if TYPE_CHECKING:
    from verifier.nitro.claims import PCRAppraisal
    from verifier.nitro.document import AttestationDocument

__all__ = [
    "AR4SI_TIERS",
    "EAR_PROFILE",
    "AttestationResult",
    "Status",
    "TimeBasis",
    "UsedEndorsement",
    "evidence_digest",
    "judged",
    "status_of",
]

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
VERIFIER_ID = {"developer": "attestation-ledger", "build": "attestation-ledger verifier 1"}
#: RATS trust tiers (draft-ietf-rats-ar4si) by name.
AR4SI_TIERS = {"none": 0, "affirming": 2, "warning": 32, "contraindicated": 96}


class Status(enum.StrEnum):
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"


class TimeBasis(enum.StrEnum):
    """Which time the chain and freshness were judged at."""

    #: A time the caller gave: "now" at ingestion, or an explicit instant.
    GIVEN = "given"
    #: The document's own signed timestamp (historical re-verification; Nitro only).
    DOCUMENT = "document_timestamp"


@dataclass(frozen=True, slots=True)
class UsedEndorsement:
    """One endorsement a verdict rests on: a certificate or CRL, by kind and SHA-256 of its
    DER. ``origin`` says where it came from: ``"evidence"`` (it arrived with the evidence or
    from the caller's store, so it must be kept with the entry), ``"pinned"`` (package data of
    this verifier, pinned by hash) or ``"configured"`` (a trust anchor given explicitly)."""

    kind: str
    sha256: str
    subject: str
    origin: str

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "sha256": self.sha256,
            "subject": self.subject,
            "origin": self.origin,
        }


@dataclass(frozen=True, slots=True, eq=False)
class AttestationResult:
    status: Status
    evidence_kind: EvidenceKind
    evidence_sha256: str
    #: The scheme's typed claims (NitroClaims, SnpClaims), with ``to_dict()``.
    claims: Claims
    #: The certificate path, root first: Nitro's cabundle and signing certificate; SNP's ARK,
    #: ASK or ASVK, and VCEK or VLEK.
    certificates: tuple[CertificateInfo, ...]
    #: Everything outside the evidence the verdict rests on (empty for Nitro, whose chain is
    #: inside the signed document).
    endorsements: tuple[UsedEndorsement, ...]
    trust_anchor_name: str
    trust_anchor_sha256: str
    policy: SchemePolicy
    #: The name of the policy's reference image that matched, if any.
    matched_reference: str | None
    violations: tuple[Violation, ...]
    #: Why the status is not simply affirming, or what was not evaluated.
    notes: tuple[str, ...]
    verified_at: datetime
    time_basis: TimeBasis
    nonce_checked: bool
    result_binding_checked: bool
    #: AR4SI claim -> tier name, as the scheme judged it (see trustworthiness_vector()); a
    #: read-only mapping (schemes pass a MappingProxyType of a dict of their own).
    trustworthiness: Mapping[str, str]

    # --- what the Nitro result always had; properties over its claims -------------------

    @property
    def document(self) -> AttestationDocument:
        """The Nitro attestation document (Nitro results only; see ``claims`` otherwise)."""
        document: AttestationDocument | None = getattr(self.claims, "document", None)
        if document is None:
            raise AttributeError(f"an {self.evidence_kind} result has no Nitro document")
        return document

    @property
    def pcr_appraisals(self) -> tuple[PCRAppraisal, ...]:
        """Each PCR as the policy saw it (Nitro results; empty for other kinds)."""
        appraisals: tuple[PCRAppraisal, ...] = getattr(self.claims, "pcr_appraisals", ())
        return appraisals

    @property
    def matched_image(self) -> str | None:
        return self.matched_reference

    # --- EAR ------------------------------------------------------------------------------

    def trustworthiness_vector(self) -> dict[str, int]:
        """AR4SI claims this verifier can speak to, as RATS trust tiers."""
        return {claim: AR4SI_TIERS[tier] for claim, tier in self.trustworthiness.items()}

    def to_ear(self) -> dict[str, object]:
        """The result as an EAR-shaped JSON object; our claims use an ``attestation-ledger.``
        prefix. One submod, named after the evidence kind."""
        claims = self.claims.to_dict()
        claims["certificates"] = [info.to_dict() for info in self.certificates]
        appraisal: dict[str, object] = {
            "ear.status": str(self.status),
            "ear.trustworthiness-vector": self.trustworthiness_vector(),
            "ear.appraisal-policy-id": self.policy.policy_id,
            "attestation-ledger.evidence-sha256": self.evidence_sha256,
            "attestation-ledger.claims": claims,
            "attestation-ledger.trust-anchor": {
                "name": self.trust_anchor_name,
                "fingerprint_sha256": self.trust_anchor_sha256,
            },
            "attestation-ledger.endorsements": [e.to_dict() for e in self.endorsements],
            "attestation-ledger.policy": self.policy.to_dict(),
            "attestation-ledger.matched-image": self.matched_reference,
            **self.claims.ear_details(),
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
            "submods": {str(self.evidence_kind): appraisal},
        }


def evidence_digest(evidence: bytes) -> str:
    return hashlib.sha256(evidence).hexdigest()


def status_of(violations: tuple[Violation, ...], *, warning: bool) -> Status:
    """The EAR tier of an appraisal: ``contraindicated`` with any violation, else
    ``warning`` when the scheme says something was not appraised or was allowed by exception
    (an accept-any policy, a debug guest the policy allows, ...), else ``affirming``."""
    if violations:
        return Status.CONTRAINDICATED
    return Status.WARNING if warning else Status.AFFIRMING


def judged(result: AttestationResult) -> AttestationResult:
    """``result`` to return, or the :class:`~verifier.errors.PolicyViolation` carrying it
    raised when it is contraindicated: no scheme returns such a result."""
    if result.status is Status.CONTRAINDICATED:
        raise PolicyViolation(result)
    return result
