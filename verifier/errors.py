"""Errors raised by the verifier, shared by every evidence scheme.

Every failure of a piece of evidence raises, never returns a bool. All errors share one root
and carry a stable, machine-readable ``code`` that the service, the CLI and the ledger record;
messages say what was expected and what was found, and never echo secrets.

::

    VerifierError                   code
    ├── MalformedEvidence           malformed             bytes, fields or layout wrong
    │   └── EvidenceTooLarge        oversize              larger than the format allows
    ├── UnsupportedEvidence         unsupported           a version or algorithm we do not know
    ├── SignatureInvalid            signature_invalid     the evidence signature does not verify
    │   ├── TpmSignatureInvalid        tpm_signature_invalid  TPM: the AK did not sign the quote
    │   ├── QeReportSignatureInvalid   qe_report_signature_invalid   DCAP: not signed by the PCK
    │   ├── QeBindingInvalid           qe_binding_invalid     DCAP: QE report_data vs the key
    │   ├── CollateralSignatureInvalid collateral_signature_invalid  TCB info, QE identity
    │   └── RimSignatureInvalid        rim_signature_invalid  NVIDIA: a RIM's XML-DSig fails
    ├── ChainInvalid                chain_invalid         a certificate link is broken
    │   ├── UntrustedRoot           untrusted_root        the path ends in no trusted root
    │   ├── CertificateExpired      expired               a certificate or CRL ended before `at`
    │   ├── CertificateNotYetValid  not_yet_valid         a certificate or CRL starts after `at`
    │   ├── CertificateRevoked      revoked               a CRL lists a certificate of the path
    │   └── RimChainInvalid         rim_chain_invalid     NVIDIA: a RIM signer's path is broken
    ├── PcrDigestMismatch           pcr_digest_mismatch   TPM: the PCRs sent are not the quoted
    ├── EventLogMismatch            event_log_mismatch    TPM: the log does not replay to them
    ├── EndorsementMissing          endorsement_missing   the key that signed was not given
    │   └── AkUnendorsed            ak_unendorsed         TPM: nothing vouches for the AK
    │       └── AkEnrolmentRevoked  ak_enrolment_revoked  TPM: its enrolment was revoked
    ├── EndorsementMismatch         endorsement_mismatch  the endorsement is not this evidence's
    │   ├── FmspcMismatch           fmspc_mismatch        Intel collateral of another FMSPC
    │   ├── TcbTypeMismatch         tcb_type_mismatch     Intel collateral of the other TEE
    │   ├── NoMatchingTcbLevel      no_matching_tcb_level the platform is below every level
    │   ├── QeIdentityMismatch      qe_identity_mismatch  not the quoting enclave Intel names
    │   ├── AkBindingInvalid        ak_binding_invalid    TPM: the Nitro document is not the AK's
    │   ├── AkCertificateMismatch   ak_certificate_mismatch  TPM: the certificate's key is another
    │   └── FwidMismatch            fwid_mismatch         NVIDIA: report FWID != the leaf's FWID
    ├── PolicyViolation             policy_violation      reference values, freshness, binding
    └── PolicyInvalid               policy_invalid        the policy itself is unusable

A ``PolicyViolation`` is raised after the evidence was proven authentic, so it carries the
full (contraindicated) result with every violation, not just the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from verifier.nitro.document import AttestationDocument
    from verifier.result import AttestationResult
    from verifier.scheme import Claims

__all__ = [
    "AkBindingInvalid",
    "AkCertificateMismatch",
    "AkEnrolmentRevoked",
    "AkUnendorsed",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateRevoked",
    "ChainInvalid",
    "CollateralSignatureInvalid",
    "EndorsementMismatch",
    "EndorsementMissing",
    "EventLogMismatch",
    "EvidenceTooLarge",
    "FmspcMismatch",
    "FwidMismatch",
    "MalformedEvidence",
    "NoMatchingTcbLevel",
    "PcrDigestMismatch",
    "PolicyInvalid",
    "PolicyViolation",
    "QeBindingInvalid",
    "QeIdentityMismatch",
    "QeReportSignatureInvalid",
    "RimChainInvalid",
    "RimSignatureInvalid",
    "SignatureInvalid",
    "TcbTypeMismatch",
    "TpmSignatureInvalid",
    "UnsupportedEvidence",
    "UntrustedRoot",
    "VerifierError",
    "Violation",
]


class VerifierError(Exception):
    """Root of every error the verifier raises."""

    code: ClassVar[str] = "verifier_error"

    def __init__(
        self,
        message: str,
        *,
        document: AttestationDocument | None = None,
        claims: Claims | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        #: The parsed but *unverified* Nitro document, when parsing got that far (for display).
        self.document = document
        #: The parsed but *unverified* claims of any scheme, when parsing got that far (for
        #: display only: nothing in them is proven).
        self.claims = claims

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


class MalformedEvidence(VerifierError):
    code = "malformed"


class EvidenceTooLarge(MalformedEvidence):
    code = "oversize"


class UnsupportedEvidence(VerifierError):
    """Well-formed as far as it goes, but of a version, product or algorithm this verifier
    does not know, so it cannot be judged (fail closed)."""

    code = "unsupported"


class SignatureInvalid(VerifierError):
    code = "signature_invalid"


class QeReportSignatureInvalid(SignatureInvalid):
    """DCAP: the quoting enclave's report is not signed by the PCK certificate's key."""

    code = "qe_report_signature_invalid"


class QeBindingInvalid(SignatureInvalid):
    """DCAP: the QE report's report_data is not SHA-256(attestation key || QE auth data)."""

    code = "qe_binding_invalid"


class CollateralSignatureInvalid(SignatureInvalid):
    """Signed collateral (Intel TCB info, QE identity) whose signature does not verify."""

    code = "collateral_signature_invalid"


class RimSignatureInvalid(SignatureInvalid):
    """NVIDIA: a reference integrity manifest's XML signature does not verify (the digest of
    the canonicalised document, or the ECDSA signature over SignedInfo)."""

    code = "rim_signature_invalid"


class TpmSignatureInvalid(SignatureInvalid):
    """TPM: the quote (TPMS_ATTEST) is not signed by the attestation key that came with it."""

    code = "tpm_signature_invalid"


class PcrDigestMismatch(VerifierError):
    """TPM: the PCR values sent with a quote do not hash to its signed pcrDigest."""

    code = "pcr_digest_mismatch"


class EventLogMismatch(VerifierError):
    """TPM: the event log does not replay to the quoted PCR values."""

    code = "event_log_mismatch"


class ChainInvalid(VerifierError):
    code = "chain_invalid"


class UntrustedRoot(ChainInvalid):
    code = "untrusted_root"


class CertificateExpired(ChainInvalid):
    code = "expired"


class CertificateNotYetValid(ChainInvalid):
    code = "not_yet_valid"


class CertificateRevoked(ChainInvalid):
    """A certificate revocation list given with the evidence lists a certificate of the path."""

    code = "revoked"


class RimChainInvalid(ChainInvalid):
    """NVIDIA: a RIM signer's certificate path (X509Data) does not chain to the pinned RIM
    root: a broken link, a wrong profile, or another root. Expiry keeps the shared codes
    (``expired``, ``not_yet_valid``), with the RIM named in the message."""

    code = "rim_chain_invalid"


class EndorsementMissing(VerifierError):
    """The endorsement the evidence needs (for SNP: the VCEK or VLEK that signed) was not given."""

    code = "endorsement_missing"


class AkUnendorsed(EndorsementMissing):
    """TPM: nothing vouches for the attestation key (no Nitro document, no AK certificate, no
    enrolment): the quote proves only that the supplied key signed it."""

    code = "ak_unendorsed"


class AkEnrolmentRevoked(AkUnendorsed):
    """TPM: the AK was enrolled, but its enrolment was revoked at or before the verification
    time."""

    code = "ak_enrolment_revoked"


class EndorsementMismatch(VerifierError):
    """An endorsement was given but is not this evidence's: another chip, TCB, product line or
    kind of key than the evidence names."""

    code = "endorsement_mismatch"


class FmspcMismatch(EndorsementMismatch):
    """Intel TCB info for another platform family (FMSPC) than the PCK certificate's."""

    code = "fmspc_mismatch"


class TcbTypeMismatch(EndorsementMismatch):
    """Intel collateral for the other TEE: SGX TCB info or QE identity with a TDX quote, or the
    reverse."""

    code = "tcb_type_mismatch"


class NoMatchingTcbLevel(EndorsementMismatch):
    """The platform's TCB (PCK certificate, TEE_TCB_SVN, TDX module, QE ISVSVN) is below every
    level the collateral lists: collateral newer than the quote cannot judge it. Never a pass."""

    code = "no_matching_tcb_level"


class QeIdentityMismatch(EndorsementMismatch):
    """The quoting enclave's report does not match Intel's QE identity (MRSIGNER, ISVPRODID,
    MISCSELECT or ATTRIBUTES under their masks)."""

    code = "qe_identity_mismatch"


class AkBindingInvalid(EndorsementMismatch):
    """TPM: the NitroTPM attestation document does not bind this quote's AK (its public_key
    is another key) or disagrees with the quote (nonce, nitrotpm_pcrs)."""

    code = "ak_binding_invalid"


class AkCertificateMismatch(EndorsementMismatch):
    """TPM: the AK certificate certifies another key than the one that signed the quote."""

    code = "ak_certificate_mismatch"


class FwidMismatch(EndorsementMismatch):
    """NVIDIA: the firmware ID in the report's opaque data (field 20) is not the one the
    device's leaf certificate certifies (Hopper extension, Blackwell DICE TcbInfo)."""

    code = "fwid_mismatch"


class PolicyInvalid(VerifierError):
    """The policy (reference values) is unusable: empty, contradictory or badly encoded."""

    code = "policy_invalid"


@dataclass(frozen=True, slots=True)
class Violation:
    """One way in which authentic evidence fails the policy.

    ``code`` is stable. Shared: evidence_kind_mismatch, debug_mode, nonce_missing,
    nonce_mismatch, result_binding_missing, result_binding_mismatch. Nitro: pcr_mismatch,
    document_too_old, document_from_future. SNP: measurement_mismatch, host_data_mismatch,
    id_key_mismatch, author_key_mismatch, family_id_mismatch, image_id_mismatch,
    tcb_too_old (one per component), smt_not_allowed, migration_agent_not_allowed,
    vmpl_too_high. DCAP (TDX, SGX): tcb_status (a TCB status the policy refuses),
    advisory_not_allowed, mrtd_mismatch, rtmr_mismatch, mrconfigid_mismatch, mrowner_mismatch,
    mrownerconfig_mismatch, xfam_not_allowed, tee_tcb_svn_too_old, mrenclave_mismatch,
    mrsigner_mismatch, isv_prod_id_mismatch, isv_svn_too_old. TPM: pcr_mismatch (naming the
    bank), event_missing, event_log_missing, ak_path_not_allowed, pcrs_all_reset. NVIDIA:
    measurement_mismatch (one per index, naming it), driver_version_not_allowed,
    vbios_version_not_allowed, arch_not_allowed, rim_missing, feature_flag_not_allowed.
    """

    code: str
    message: str
    pcr_index: int | None = None
    #: The TCB component a ``tcb_too_old`` is about (bootloader, tee, snp, microcode, fmc).
    component: str | None = None
    #: NVIDIA: the RIM index (measurement block index - 1) a ``measurement_mismatch`` names.
    measurement_index: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.pcr_index is not None:
            out["pcr_index"] = self.pcr_index
        if self.component is not None:
            out["component"] = self.component
        if self.measurement_index is not None:
            out["measurement_index"] = self.measurement_index
        return out


class PolicyViolation(VerifierError):
    code = "policy_violation"

    def __init__(self, result: AttestationResult) -> None:
        violations = result.violations
        summary = "; ".join(v.message for v in violations)
        super().__init__(
            f"{len(violations)} policy violation(s): {summary}",
            document=getattr(result.claims, "document", None),
            claims=result.claims,
        )
        self.result = result
        self.violations = violations

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out["violations"] = [v.to_dict() for v in self.violations]
        return out
