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
    ├── ChainInvalid                chain_invalid         a certificate link is broken
    │   ├── UntrustedRoot           untrusted_root        the path ends in no trusted root
    │   ├── CertificateExpired      expired               a certificate or CRL ended before `at`
    │   ├── CertificateNotYetValid  not_yet_valid         a certificate or CRL starts after `at`
    │   └── CertificateRevoked      revoked               a CRL lists a certificate of the path
    ├── EndorsementMissing          endorsement_missing   the key that signed was not given
    ├── EndorsementMismatch         endorsement_mismatch  the endorsement is not this evidence's
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
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateRevoked",
    "ChainInvalid",
    "EndorsementMismatch",
    "EndorsementMissing",
    "EvidenceTooLarge",
    "MalformedEvidence",
    "PolicyInvalid",
    "PolicyViolation",
    "SignatureInvalid",
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


class EndorsementMissing(VerifierError):
    """The endorsement the evidence needs (for SNP: the VCEK or VLEK that signed) was not given."""

    code = "endorsement_missing"


class EndorsementMismatch(VerifierError):
    """An endorsement was given but is not this evidence's: another chip, TCB, product line or
    kind of key than the evidence names."""

    code = "endorsement_mismatch"


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
    vmpl_too_high.
    """

    code: str
    message: str
    pcr_index: int | None = None
    #: The TCB component a ``tcb_too_old`` is about (bootloader, tee, snp, microcode, fmc).
    component: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.pcr_index is not None:
            out["pcr_index"] = self.pcr_index
        if self.component is not None:
            out["component"] = self.component
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
