"""The TPM scheme's typed claims: the quote, the AK and who vouches for it, the quoted PCRs,
the replayed event log and the NitroTPM document, in the compact form the ledger records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from verifier.scheme import EvidenceKind
from verifier.tpm.ak import AttestationKey
from verifier.tpm.replay import ReplayedLog
from verifier.tpm.structures import Attest, TpmSignature

__all__ = ["AkEndorsement", "TpmClaims"]


@dataclass(frozen=True, slots=True)
class AkEndorsement:
    """Who vouches for the AK: the path (aws-nitrotpm, gcp, enrolled, unendorsed) and what it
    says."""

    path: str
    enrolment: str | None = None
    certificate_subject: str | None = None
    gcp: Mapping[str, object] | None = None
    #: NitroTPM: {"module_id", "timestamp", "sha256"} of the attestation document.
    nitro_document: Mapping[str, object] | None = None


UNENDORSED = AkEndorsement("unendorsed")


@dataclass(frozen=True, slots=True, eq=False)
class TpmClaims:
    attest: Attest
    signature: TpmSignature
    ak: AttestationKey
    #: The quoted PCR values, bank -> index -> value (exactly the quote's selection).
    pcrs: Mapping[str, Mapping[int, bytes]]
    endorsement: AkEndorsement = UNENDORSED
    event_log: ReplayedLog | None = None

    @property
    def evidence_kind(self) -> EvidenceKind:
        return EvidenceKind.TPM2_QUOTE

    @property
    def ak_path(self) -> str:
        return self.endorsement.path

    def to_dict(self) -> dict[str, object]:
        a = self.attest
        e = self.endorsement
        return {
            "evidence_kind": str(EvidenceKind.TPM2_QUOTE),
            "ak": {
                "path": e.path,
                "sha256": self.ak.sha256,
                "key": self.ak.key,
                "name_alg": a.name_alg,
                "enrolment": e.enrolment,
                "certificate_subject": e.certificate_subject,
                "gcp": None if e.gcp is None else dict(e.gcp),
            },
            "quote": {
                "extra_data": a.extra_data.hex(),
                "clock": a.clock,
                "reset_count": a.reset_count,
                "restart_count": a.restart_count,
                "safe": a.safe,
                "firmware_version": f"{a.firmware_version:016x}",
                "pcr_digest": a.pcr_digest.hex(),
                "signature": self.signature.name,
                "qualified_signer": a.qualified_signer.hex(),
            },
            "pcrs": {
                bank: {str(i): v.hex() for i, v in values.items()}
                for bank, values in self.pcrs.items()
            },
            "event_log": None if self.event_log is None else self.event_log.to_dict(),
            "nitro_document": None if e.nitro_document is None else dict(e.nitro_document),
        }

    def ear_details(self) -> dict[str, object]:
        return {"attestation-ledger.tpm-ak-path": self.endorsement.path}
