"""Verification of hardware attestation evidence, one scheme per kind of evidence.

Pure: no database, no web framework, no network, no clock, no environment. The verification
time, the trust anchors, the endorsements and the policy are arguments. Typical use::

    from datetime import UTC, datetime
    from verifier import NitroVerifier, Policy

    verifier = NitroVerifier()  # trusts only the pinned AWS Nitro Enclaves Root-G1
    result = verifier.verify(raw, at=datetime.now(UTC), policy=policy, nonce=challenge)

    from verifier import Endorsement, EndorsementKind, Evidence, SnpVerifier

    snp = SnpVerifier()  # trusts only the pinned AMD ARKs (Milan, Genoa, Turin)
    vcek_endorsement = Endorsement(EndorsementKind.VCEK, vcek_der)
    evidence = Evidence(EvidenceKind.AMD_SEV_SNP, report, (vcek_endorsement,))
    result = snp.verify(evidence, at=datetime.now(UTC), policy=snp_policy, nonce=challenge)

Every failure raises a :class:`VerifierError` with a stable ``code``; every scheme returns
the one :class:`AttestationResult`. The tree::

    errors.py, result.py, policy.py, scheme.py, registry.py, x509.py, binding.py, timefmt.py
        what every scheme shares
    nitro/   AWS Nitro Enclaves and NitroTPM documents
    snp/     AMD SEV-SNP reports
"""

from verifier.binding import (
    REPORT_DATA_BYTES,
    RESULT_BINDING_PREFIX,
    ResultHash,
    report_data,
)
from verifier.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    ChainInvalid,
    EndorsementMismatch,
    EndorsementMissing,
    EvidenceTooLarge,
    MalformedEvidence,
    PolicyInvalid,
    PolicyViolation,
    SignatureInvalid,
    UnsupportedEvidence,
    UntrustedRoot,
    VerifierError,
    Violation,
)
from verifier.nitro.claims import NitroClaims, PCRAppraisal
from verifier.nitro.cose import MAX_EVIDENCE_BYTES, COSESign1
from verifier.nitro.document import AttestationDocument
from verifier.nitro.policy import Policy, ReferenceImage, UnsafeAcceptAnyPolicy
from verifier.nitro.trust import AWS_NITRO_ROOT_G1_SHA256, aws_nitro_root_g1
from verifier.nitro.verify import DOCUMENT_TIME, NitroVerifier, parse_evidence
from verifier.policy import SchemePolicy, UnsafePolicyWarning
from verifier.registry import detect_kind, kinds, policy_from_dict, policy_from_json, scheme_for
from verifier.result import AttestationResult, Status, TimeBasis, UsedEndorsement
from verifier.scheme import Claims, Endorsement, EndorsementKind, Evidence, EvidenceKind, Scheme
from verifier.snp.claims import SnpClaims
from verifier.snp.policy import SnpPolicy, SnpReferenceImage, UnsafeAcceptAnySnpPolicy
from verifier.snp.report import AttestationReport
from verifier.snp.roots import AMD_ARK_SHA256
from verifier.snp.verify import SnpVerifier, parse_report
from verifier.x509 import CertificateInfo, TrustAnchor

__all__ = [
    "AMD_ARK_SHA256",
    "AWS_NITRO_ROOT_G1_SHA256",
    "DOCUMENT_TIME",
    "MAX_EVIDENCE_BYTES",
    "REPORT_DATA_BYTES",
    "RESULT_BINDING_PREFIX",
    "AttestationDocument",
    "AttestationReport",
    "AttestationResult",
    "COSESign1",
    "CertificateExpired",
    "CertificateInfo",
    "CertificateNotYetValid",
    "CertificateRevoked",
    "ChainInvalid",
    "Claims",
    "Endorsement",
    "EndorsementKind",
    "EndorsementMismatch",
    "EndorsementMissing",
    "Evidence",
    "EvidenceKind",
    "EvidenceTooLarge",
    "MalformedEvidence",
    "NitroClaims",
    "NitroVerifier",
    "PCRAppraisal",
    "Policy",
    "PolicyInvalid",
    "PolicyViolation",
    "ReferenceImage",
    "ResultHash",
    "Scheme",
    "SchemePolicy",
    "SignatureInvalid",
    "SnpClaims",
    "SnpPolicy",
    "SnpReferenceImage",
    "SnpVerifier",
    "Status",
    "TimeBasis",
    "TrustAnchor",
    "UnsafeAcceptAnyPolicy",
    "UnsafeAcceptAnySnpPolicy",
    "UnsafePolicyWarning",
    "UnsupportedEvidence",
    "UntrustedRoot",
    "UsedEndorsement",
    "VerifierError",
    "Violation",
    "aws_nitro_root_g1",
    "detect_kind",
    "kinds",
    "parse_evidence",
    "parse_report",
    "policy_from_dict",
    "policy_from_json",
    "report_data",
    "scheme_for",
]
