"""The DCAP scheme's typed claims: the quote (header, body, QE report), what the PCK
certificate says of the platform, and, once verified, the TCB evaluation and the collateral
that judged it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from verifier.scheme import EvidenceKind
from verifier.tdx.collateral import QeIdentity, TcbInfo
from verifier.tdx.pck import PckExtension
from verifier.tdx.quote import Quote, TdReport
from verifier.tdx.tcb import TcbEvaluation
from verifier.timefmt import iso_utc

__all__ = ["DcapClaims"]


@dataclass(frozen=True, slots=True, eq=False)
class DcapClaims:
    """What a quote says. ``pck`` is None when the PCK certificate could not be read;
    ``tcb``, ``tcb_info`` and ``qe_identity`` are None until the collateral was verified."""

    quote: Quote
    pck: PckExtension | None = None
    tcb: TcbEvaluation | None = None
    tcb_info: TcbInfo | None = None
    qe_identity: QeIdentity | None = None
    #: SHA-256 of each collateral document used, by role (tcb_info, qe_identity, pck_crl,
    #: root_ca_crl, tcb_signing_certificate).
    collateral: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def evidence_kind(self) -> EvidenceKind:
        return EvidenceKind.INTEL_TDX if self.quote.is_tdx else EvidenceKind.INTEL_SGX

    @property
    def debug(self) -> bool:
        return self.quote.body.debug

    @property
    def tcb_status(self) -> str | None:
        return None if self.tcb is None else self.tcb.status

    @property
    def advisory_ids(self) -> tuple[str, ...]:
        return () if self.tcb is None else self.tcb.advisory_ids

    def to_dict(self) -> dict[str, object]:
        q = self.quote
        body = q.body
        out: dict[str, object] = {
            "evidence_kind": str(self.evidence_kind),
            "header": q.header.to_dict(),
            "body_type": q.body_type,
            "td_report" if isinstance(body, TdReport) else "enclave_report": body.to_dict(),
            "qe_report": q.signature_data.qe_report.to_dict(),
            "qe_auth_data": q.signature_data.qe_auth_data.hex(),
            "attestation_key": q.signature_data.attestation_key.hex(),
            "padding_bytes": q.padding,
            "debug": self.debug,
            "fmspc": None if self.pck is None else self.pck.fmspc.hex().upper(),
            "pck": None if self.pck is None else self.pck.to_dict(),
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "tcb": None,
            "collateral": dict(self.collateral),
        }
        if self.tcb is not None and self.tcb_info is not None and self.qe_identity is not None:
            tcb = self.tcb.to_dict(self.tcb_info, self.qe_identity)
            tcb["tcb_info"] = {
                "id": self.tcb_info.id,
                "version": self.tcb_info.version,
                "issue_date": iso_utc(self.tcb_info.issue_date, "seconds"),
                "next_update": iso_utc(self.tcb_info.next_update, "seconds"),
                "tcb_evaluation_data_number": self.tcb_info.tcb_evaluation_data_number,
            }
            tcb["qe_identity_document"] = {
                "issue_date": iso_utc(self.qe_identity.issue_date, "seconds"),
                "next_update": iso_utc(self.qe_identity.next_update, "seconds"),
            }
            out["tcb"] = tcb
        return out

    def ear_details(self) -> dict[str, object]:
        if self.tcb is None:
            return {}
        return {
            "attestation-ledger.tcb-status": self.tcb.status,
            "attestation-ledger.advisory-ids": list(self.tcb.advisory_ids),
        }
