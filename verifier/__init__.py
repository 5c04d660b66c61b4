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
from verifier.nitro.claims import PCRAppraisal
from verifier.nitro.cose import MAX_EVIDENCE_BYTES, COSESign1
from verifier.nitro.document import AttestationDocument
from verifier.nitro.policy import Policy, ReferenceImage, UnsafeAcceptAnyPolicy
from verifier.nitro.trust import AWS_NITRO_ROOT_G1_SHA256, aws_nitro_root_g1
from verifier.nitro.verify import DOCUMENT_TIME, NitroVerifier, parse_evidence
from verifier.policy import UnsafePolicyWarning
from verifier.result import AttestationResult, Status, TimeBasis
from verifier.scheme import EvidenceKind
from verifier.x509 import CertificateInfo, TrustAnchor

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
