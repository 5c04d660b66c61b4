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

    from verifier import DcapVerifier, endorsements_from_dcap_qvl_json

    dcap = DcapVerifier()  # trusts only the pinned Intel SGX Root CA
    collateral = endorsements_from_dcap_qvl_json(collateral_json)  # TCB info, QE id, CRLs
    evidence = Evidence(EvidenceKind.INTEL_TDX, quote, collateral)
    result = dcap.verify(evidence, at=datetime.now(UTC), policy=tdx_policy, nonce=challenge)

Every failure raises a :class:`VerifierError` with a stable ``code``; every scheme returns
the one :class:`AttestationResult`. The tree::

    errors.py, result.py, policy.py, scheme.py, registry.py, x509.py, binding.py, timefmt.py
        what every scheme shares
    nitro/   AWS Nitro Enclaves and NitroTPM documents
    snp/     AMD SEV-SNP reports
    tdx/     Intel TDX and SGX DCAP quotes, with Intel's collateral
    tpm/     TPM 2.0 quotes, their AK vouched for by NitroTPM, Google or enrolment
    nvidia/  NVIDIA GPU and NVSwitch SPDM reports, with NVIDIA's signed RIMs
"""

from verifier.binding import (
    REPORT_DATA_BYTES,
    RESULT_BINDING_PREFIX,
    ResultHash,
    gpu_nonce,
    report_data,
)
from verifier.errors import (
    AkBindingInvalid,
    AkCertificateMismatch,
    AkEnrolmentRevoked,
    AkUnendorsed,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    ChainInvalid,
    CollateralSignatureInvalid,
    EndorsementMismatch,
    EndorsementMissing,
    EventLogMismatch,
    EvidenceTooLarge,
    FmspcMismatch,
    FwidMismatch,
    MalformedEvidence,
    NoMatchingTcbLevel,
    PcrDigestMismatch,
    PolicyInvalid,
    PolicyViolation,
    QeBindingInvalid,
    QeIdentityMismatch,
    QeReportSignatureInvalid,
    RimChainInvalid,
    RimSignatureInvalid,
    SignatureInvalid,
    TcbTypeMismatch,
    TpmSignatureInvalid,
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
from verifier.nvidia import (
    NVIDIA_DEVICE_ROOT_SHA256,
    NVIDIA_RIM_ROOT_SHA256,
    NvidiaClaims,
    NvidiaImage,
    NvidiaPolicy,
    NvidiaVerifier,
    UnsafeAcceptAnyNvidiaPolicy,
)
from verifier.policy import SchemePolicy, UnsafePolicyWarning
from verifier.registry import (
    detect_kind,
    device_kinds,
    kinds,
    policy_from_dict,
    policy_from_json,
    scheme_for,
)
from verifier.result import AttestationResult, Status, TimeBasis, UsedEndorsement
from verifier.scheme import Claims, Endorsement, EndorsementKind, Evidence, EvidenceKind, Scheme
from verifier.snp.claims import SnpClaims
from verifier.snp.policy import SnpPolicy, SnpReferenceImage, UnsafeAcceptAnySnpPolicy
from verifier.snp.report import AttestationReport
from verifier.snp.roots import AMD_ARK_SHA256
from verifier.snp.verify import SnpVerifier, parse_report
from verifier.tdx import (
    INTEL_SGX_ROOT_CA_SHA256,
    DcapClaims,
    DcapVerifier,
    SgxPolicy,
    SgxReferenceImage,
    TdxPolicy,
    TdxReferenceImage,
    UnsafeAcceptAnySgxPolicy,
    UnsafeAcceptAnyTdxPolicy,
    endorsements_from_dcap_qvl_json,
    parse_quote,
)
from verifier.tpm import (
    Enrolment,
    EnrolmentBook,
    StaticEnrolments,
    TpmClaims,
    TpmPolicy,
    TpmReferenceImage,
    TpmVerifier,
    UnsafeAcceptAnyTpmPolicy,
)
from verifier.x509 import CertificateInfo, TrustAnchor

__all__ = [
    "AMD_ARK_SHA256",
    "AWS_NITRO_ROOT_G1_SHA256",
    "DOCUMENT_TIME",
    "INTEL_SGX_ROOT_CA_SHA256",
    "MAX_EVIDENCE_BYTES",
    "NVIDIA_DEVICE_ROOT_SHA256",
    "NVIDIA_RIM_ROOT_SHA256",
    "REPORT_DATA_BYTES",
    "RESULT_BINDING_PREFIX",
    "AkBindingInvalid",
    "AkCertificateMismatch",
    "AkEnrolmentRevoked",
    "AkUnendorsed",
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
    "CollateralSignatureInvalid",
    "DcapClaims",
    "DcapVerifier",
    "Endorsement",
    "EndorsementKind",
    "EndorsementMismatch",
    "EndorsementMissing",
    "Enrolment",
    "EnrolmentBook",
    "EventLogMismatch",
    "Evidence",
    "EvidenceKind",
    "EvidenceTooLarge",
    "FmspcMismatch",
    "FwidMismatch",
    "MalformedEvidence",
    "NitroClaims",
    "NitroVerifier",
    "NoMatchingTcbLevel",
    "NvidiaClaims",
    "NvidiaImage",
    "NvidiaPolicy",
    "NvidiaVerifier",
    "PCRAppraisal",
    "PcrDigestMismatch",
    "Policy",
    "PolicyInvalid",
    "PolicyViolation",
    "QeBindingInvalid",
    "QeIdentityMismatch",
    "QeReportSignatureInvalid",
    "ReferenceImage",
    "ResultHash",
    "RimChainInvalid",
    "RimSignatureInvalid",
    "Scheme",
    "SchemePolicy",
    "SgxPolicy",
    "SgxReferenceImage",
    "SignatureInvalid",
    "SnpClaims",
    "SnpPolicy",
    "SnpReferenceImage",
    "SnpVerifier",
    "StaticEnrolments",
    "Status",
    "TcbTypeMismatch",
    "TdxPolicy",
    "TdxReferenceImage",
    "TimeBasis",
    "TpmClaims",
    "TpmPolicy",
    "TpmReferenceImage",
    "TpmSignatureInvalid",
    "TpmVerifier",
    "TrustAnchor",
    "UnsafeAcceptAnyNvidiaPolicy",
    "UnsafeAcceptAnyPolicy",
    "UnsafeAcceptAnySgxPolicy",
    "UnsafeAcceptAnySnpPolicy",
    "UnsafeAcceptAnyTdxPolicy",
    "UnsafeAcceptAnyTpmPolicy",
    "UnsafePolicyWarning",
    "UnsupportedEvidence",
    "UntrustedRoot",
    "UsedEndorsement",
    "VerifierError",
    "Violation",
    "aws_nitro_root_g1",
    "detect_kind",
    "device_kinds",
    "endorsements_from_dcap_qvl_json",
    "gpu_nonce",
    "kinds",
    "parse_evidence",
    "parse_quote",
    "parse_report",
    "policy_from_dict",
    "policy_from_json",
    "report_data",
    "scheme_for",
]
