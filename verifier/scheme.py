"""What every evidence scheme shares: the kinds of evidence, the evidence and endorsements a
scheme is handed, its claims, and the interface each scheme implements.

A *scheme* knows one family of hardware evidence (Nitro documents, SEV-SNP reports, ...): its
format, its vendor roots and its rules. Each lives in its own sub-package
(``verifier/nitro/``, ``verifier/snp/``) and is found by evidence kind through
:mod:`verifier.registry`. Every scheme returns the one :class:`~verifier.result.AttestationResult`
and raises the shared :mod:`verifier.errors`.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from verifier.errors import EvidenceTooLarge

if TYPE_CHECKING:
    from verifier.binding import ResultHash
    from verifier.policy import SchemePolicy
    from verifier.result import AttestationResult

__all__ = [
    "MAX_ENDORSEMENTS",
    "MAX_ENDORSEMENT_BYTES",
    "Claims",
    "Endorsement",
    "EndorsementKind",
    "Evidence",
    "EvidenceKind",
    "Scheme",
]

#: An endorsement is one certificate, CRL or signed collateral document; AMD's are under 2 KB,
#: CRLs a few KB, Intel's TCB info up to some 20 KB.
MAX_ENDORSEMENT_BYTES = 64 * 1024
#: VEK, ASK or ASVK, ARK and a CRL or two: a bound keeps the work per submission bounded.
MAX_ENDORSEMENTS = 8


class EvidenceKind(enum.StrEnum):
    """The stable names of the kinds of evidence, used everywhere (API, ledger records,
    portal, bundles, CLI). Only the kinds :func:`verifier.registry.kinds` lists can be
    verified today; the others are reserved so that their names never change."""

    AWS_NITRO_ENCLAVE = "aws-nitro-enclave"
    AWS_NITRO_TPM = "aws-nitro-tpm"
    AMD_SEV_SNP = "amd-sev-snp"
    INTEL_TDX = "intel-tdx"
    INTEL_SGX = "intel-sgx"
    TPM2_QUOTE = "tpm2-quote"
    # Reserved for later issues:
    NVIDIA_GPU = "nvidia-gpu"


class EndorsementKind(enum.StrEnum):
    """What an endorsement is. The strings are stable: the ledger records them."""

    VCEK = "vcek"  # AMD: Versioned Chip Endorsement Key certificate (per chip and TCB)
    VLEK = "vlek"  # AMD: Versioned Loaded Endorsement Key certificate (per cloud provider)
    ASK = "ask"  # AMD SEV Signing Key: ARK -> ASK -> VCEK
    ASVK = "asvk"  # AMD SEV VLEK Signing Key: ARK -> ASVK -> VLEK
    ARK = "ark"  # AMD Root Key (only ever trusted if pinned or configured)
    CRL = "crl"  # a certificate revocation list
    # Intel DCAP collateral (TDX and SGX quotes):
    TCB_INFO = "tcb-info"  # Intel PCS TCB info body {"tcbInfo":{...},"signature":"<hex>"}
    QE_IDENTITY = "qe-identity"  # Intel PCS QE identity body {"enclaveIdentity":...}
    CERTIFICATE = "certificate"  # a DER certificate that is not a root (TCB Signing, PCK CA)
    # TPM 2.0 quotes:
    AK_CERTIFICATE = "ak-certificate"  # a TPM attestation key's X.509 certificate (GCP)
    EK_CERTIFICATE = "ek-certificate"  # a TPM's endorsement key certificate (enrolment)
    # NVIDIA GPUs and NVSwitches:
    DEVICE_CERTIFICATE = "device-certificate"  # DER; the device chain, leaf first, in order
    RIM = "rim"  # a signed reference integrity manifest (TCG SWID XML), its exact bytes
    OCSP = "ocsp"  # a DER OCSP response (kept with the entry; never fetched)


@dataclass(frozen=True, slots=True)
class Endorsement:
    """Something that vouches for the evidence and arrived with it or from a local store:
    a certificate or a CRL, DER-encoded. Nothing in it is trusted until a scheme has chained
    it to a pinned or configured root."""

    kind: EndorsementKind
    data: bytes
    _sha256: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # ValueError: what a caller passes here is an argument, not evidence.
        object.__setattr__(self, "kind", EndorsementKind(self.kind))
        if not isinstance(self.data, bytes):
            raise TypeError("endorsement data must be bytes (DER)")
        object.__setattr__(self, "_sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def sha256(self) -> str:
        """Lowercase hex SHA-256 of ``data``: how the ledger stores and names it."""
        return self._sha256


@dataclass(frozen=True, slots=True)
class Evidence:
    """Signed evidence of one kind, with the endorsements that came with it."""

    kind: EvidenceKind
    data: bytes
    endorsements: tuple[Endorsement, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EvidenceKind(self.kind))
        object.__setattr__(self, "endorsements", tuple(self.endorsements))

    def of_kind(self, kind: EndorsementKind) -> tuple[Endorsement, ...]:
        return tuple(e for e in self.endorsements if e.kind is kind)

    def check_endorsement_sizes(self, what: str, *, limit: int = MAX_ENDORSEMENTS) -> None:
        """Raise EvidenceTooLarge if more than ``limit`` (MAX_ENDORSEMENTS unless the scheme
        says otherwise: 12 for NVIDIA, five certificates, two RIMs and OCSP responses) came
        with the evidence (``what``: "report", "quote"...) or one is larger than
        MAX_ENDORSEMENT_BYTES: the work per submission stays bounded."""
        if len(self.endorsements) > limit:
            raise EvidenceTooLarge(
                f"endorsements: at most {limit} may come with a {what}, found "
                f"{len(self.endorsements)}"
            )
        for endorsement in self.endorsements:
            if len(endorsement.data) > MAX_ENDORSEMENT_BYTES:
                raise EvidenceTooLarge(
                    f"{endorsement.kind}: at most {MAX_ENDORSEMENT_BYTES} bytes, found "
                    f"{len(endorsement.data)}"
                )


@runtime_checkable
class Claims(Protocol):
    """A scheme's typed claims: what the evidence says, parsed. ``to_dict()`` is the JSON form
    the ledger records and the EAR carries; ``ear_details()`` adds the scheme's own appraisal
    entries to its EAR submod (``{}`` if none)."""

    @property
    def evidence_kind(self) -> EvidenceKind: ...

    def to_dict(self) -> dict[str, object]: ...

    def ear_details(self) -> dict[str, object]: ...


class Scheme(Protocol):
    """One kind (or family of kinds) of evidence behind the one interface.

    ``verify`` raises a :class:`~verifier.errors.VerifierError` subclass for every failure and
    returns an affirming or warning result; ``describe`` parses without verifying anything,
    for display, and raises :class:`~verifier.errors.MalformedEvidence` (or
    :class:`~verifier.errors.UnsupportedEvidence`) when even that fails.
    """

    @property
    def kinds(self) -> tuple[EvidenceKind, ...]: ...

    def verify(
        self,
        evidence: Evidence,
        *,
        at: datetime,
        policy: SchemePolicy,
        nonce: bytes | None = None,
        result_hash: ResultHash | None = None,
    ) -> AttestationResult: ...

    def describe(self, evidence: Evidence) -> Claims: ...
