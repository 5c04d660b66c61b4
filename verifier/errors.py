"""Errors raised by the verifier.

Every failure of a piece of evidence raises, never returns a bool. All errors share one root
and carry a stable, machine-readable ``code`` that the service, the CLI and the ledger record;
messages say what was expected and what was found, and never echo secrets.

::

    VerifierError                         code
    ├── MalformedEvidence                 malformed          CBOR, COSE or field-shape problem
    │   └── EvidenceTooLarge              oversize           input larger than the format allows
    ├── SignatureInvalid                  signature_invalid  COSE_Sign1 signature does not verify
    ├── ChainInvalid                      chain_invalid      a certificate link is broken
    │   ├── UntrustedRoot                 untrusted_root     cabundle[0] is not the pinned root
    │   ├── CertificateExpired            expired            a certificate ended before `at`
    │   └── CertificateNotYetValid        not_yet_valid      a certificate starts after `at`
    ├── PolicyViolation                   policy_violation   reference values, freshness, binding
    └── PolicyInvalid                     policy_invalid     the policy itself is unusable

A ``PolicyViolation`` is raised after the evidence was proven authentic, so it carries the
full (contraindicated) result with every violation, not just the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from verifier.document import AttestationDocument
    from verifier.result import AttestationResult

__all__ = [
    "CertificateExpired",
    "CertificateNotYetValid",
    "ChainInvalid",
    "EvidenceTooLarge",
    "MalformedEvidence",
    "PolicyInvalid",
    "PolicyViolation",
    "SignatureInvalid",
    "UntrustedRoot",
    "VerifierError",
    "Violation",
]


class VerifierError(Exception):
    """Root of every error the verifier raises."""

    code: ClassVar[str] = "verifier_error"

    def __init__(self, message: str, *, document: AttestationDocument | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The parsed but *unverified* document, when parsing got that far (for display only).
        self.document = document

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


class MalformedEvidence(VerifierError):
    code = "malformed"


class EvidenceTooLarge(MalformedEvidence):
    code = "oversize"


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


class PolicyInvalid(VerifierError):
    """The policy (reference values) is unusable: empty, contradictory or badly encoded."""

    code = "policy_invalid"


@dataclass(frozen=True, slots=True)
class Violation:
    """One way in which authentic evidence fails the policy.

    ``code`` is stable: pcr_mismatch, debug_mode, evidence_kind_mismatch, nonce_missing,
    nonce_mismatch, result_binding_missing, result_binding_mismatch, document_too_old,
    document_from_future.
    """

    code: str
    message: str
    pcr_index: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.pcr_index is not None:
            out["pcr_index"] = self.pcr_index
        return out


class PolicyViolation(VerifierError):
    code = "policy_violation"

    def __init__(self, result: AttestationResult) -> None:
        violations = result.violations
        summary = "; ".join(v.message for v in violations)
        super().__init__(
            f"{len(violations)} policy violation(s): {summary}", document=result.document
        )
        self.result = result
        self.violations = violations

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out["violations"] = [v.to_dict() for v in self.violations]
        return out
