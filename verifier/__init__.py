"""Verification of AWS Nitro attestation evidence.

Pure: no database, no web framework, no network, no clock, no environment. The verification
time, the trust anchor and the policy are arguments. Typical use::

    from datetime import UTC, datetime
    from verifier import NitroVerifier, Policy

    verifier = NitroVerifier()  # trusts only the pinned AWS Nitro Enclaves Root-G1
    result = verifier.verify(raw, at=datetime.now(UTC), policy=policy, nonce=challenge)

Every failure raises a :class:`VerifierError` with a stable ``code``.
"""

from verifier.binding import RESULT_BINDING_PREFIX, ResultHash
from verifier.chain import CertificateInfo
from verifier.cose import MAX_EVIDENCE_BYTES, COSESign1
from verifier.document import AttestationDocument, EvidenceKind
from verifier.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    ChainInvalid,
    EvidenceTooLarge,
    MalformedEvidence,
    PolicyInvalid,
    PolicyViolation,
    SignatureInvalid,
    UntrustedRoot,
    VerifierError,
    Violation,
)
from verifier.policy import Policy, ReferenceImage, UnsafeAcceptAnyPolicy, UnsafePolicyWarning
from verifier.result import AttestationResult, PCRAppraisal, Status, TimeBasis
from verifier.trust import AWS_NITRO_ROOT_G1_SHA256, TrustAnchor, aws_nitro_root_g1
from verifier.verify import DOCUMENT_TIME, NitroVerifier, parse_evidence

__all__ = [
    "AWS_NITRO_ROOT_G1_SHA256",
    "DOCUMENT_TIME",
    "MAX_EVIDENCE_BYTES",
    "RESULT_BINDING_PREFIX",
    "AttestationDocument",
    "AttestationResult",
    "COSESign1",
    "CertificateExpired",
    "CertificateInfo",
    "CertificateNotYetValid",
    "ChainInvalid",
    "EvidenceKind",
    "EvidenceTooLarge",
    "MalformedEvidence",
    "NitroVerifier",
    "PCRAppraisal",
    "Policy",
    "PolicyInvalid",
    "PolicyViolation",
    "ReferenceImage",
    "ResultHash",
    "SignatureInvalid",
    "Status",
    "TimeBasis",
    "TrustAnchor",
    "UnsafeAcceptAnyPolicy",
    "UnsafePolicyWarning",
    "UntrustedRoot",
    "VerifierError",
    "Violation",
    "aws_nitro_root_g1",
    "parse_evidence",
]
