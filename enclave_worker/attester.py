"""One attester interface for every TEE.

An :class:`Attester` takes the service's challenge nonce and the hash of the result it
computed, and returns :class:`Evidence`: its kind (the names the service uses everywhere:
``aws-nitro-enclave``, ``amd-sev-snp``, ...), the signed bytes, and the endorsements that
travel with them (for SNP the VCEK, ASK and ARK certificates; Nitro's chain is inside the
document). The job runner and the HTTP client work with any attester.

* :class:`NitroAttester` puts the result binding in the NSM document's ``user_data`` and the
  nonce in its ``nonce`` (over :class:`~enclave_worker.nsm.DeviceNsm` or
  :class:`~enclave_worker.simulated_nsm.SimulatedNsm`).
* SEV-SNP: :class:`~enclave_worker.simulated_snp.SimulatedSnpPlatform` and
  :class:`~enclave_worker.tsm.ConfigfsTsmAttester` put ``nonce || SHA-256(user_data)`` in
  the report's 64 bytes of report data (:func:`enclave_worker.binding.report_data`).
* Intel TDX and SGX: :class:`~enclave_worker.simulated_dcap.SimulatedTdxPlatform`,
  :class:`~enclave_worker.simulated_dcap.SimulatedSgxEnclave` and the TDX
  :class:`~enclave_worker.tsm.ConfigfsTsmAttester` put the same 64 bytes in the quote's
  report data; the simulated ones send the collateral (TCB info, QE identity, CRLs, the TCB
  Signing certificate) as endorsements.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from enclave_worker.binding import ResultDigest
from enclave_worker.nsm import Nsm
from enclave_worker.simulated_nsm import SimulatedNsm

__all__ = [
    "AMD_SEV_SNP",
    "AWS_NITRO_ENCLAVE",
    "INTEL_SGX",
    "INTEL_TDX",
    "Attester",
    "Endorsement",
    "Evidence",
    "NitroAttester",
]

AWS_NITRO_ENCLAVE = "aws-nitro-enclave"
AMD_SEV_SNP = "amd-sev-snp"
INTEL_TDX = "intel-tdx"
INTEL_SGX = "intel-sgx"


@dataclass(frozen=True)
class Endorsement:
    """A certificate or CRL (DER) that endorses the evidence's signing key, or other
    collateral (Intel's TCB info and QE identity, JSON)."""

    kind: str
    data: bytes

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "data": base64.b64encode(self.data).decode()}


@dataclass(frozen=True)
class Evidence:
    kind: str
    data: bytes
    endorsements: tuple[Endorsement, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``evidence`` object of a submission (base64 with padding)."""
        return {
            "kind": self.kind,
            "data": base64.b64encode(self.data).decode(),
            "endorsements": [endorsement.to_json() for endorsement in self.endorsements],
        }


class Attester(Protocol):
    #: The evidence kind this attester produces.
    kind: str

    def attest(self, *, nonce: bytes, result: ResultDigest) -> Evidence:
        """Evidence that carries ``nonce`` and binds ``result``."""
        ...


class NitroAttester:
    """A Nitro enclave's attester: an NSM document with the binding in ``user_data``."""

    kind = AWS_NITRO_ENCLAVE

    def __init__(self, nsm: Nsm) -> None:
        self.nsm = nsm

    def attest(
        self, *, nonce: bytes, result: ResultDigest, timestamp: datetime | None = None
    ) -> Evidence:
        """``timestamp`` back-dates the document, which only a simulated NSM can do."""
        if timestamp is None:
            document = self.nsm.attest(user_data=result.user_data(), nonce=nonce)
        else:
            if not isinstance(self.nsm, SimulatedNsm):
                raise ValueError("only a simulated NSM can stamp a document with another time")
            document = self.nsm.attest(
                user_data=result.user_data(), nonce=nonce, timestamp=timestamp
            )
        return Evidence(self.kind, document)
