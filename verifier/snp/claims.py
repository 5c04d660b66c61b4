"""The SEV-SNP scheme's typed claims: the report, its product line, and what the VCEK or VLEK
that signed it says."""

from __future__ import annotations

from dataclasses import dataclass

from verifier.scheme import EvidenceKind
from verifier.snp.product import ProductLine, TcbVersion
from verifier.snp.report import AttestationReport
from verifier.snp.vek import Vek

__all__ = ["SnpClaims"]


@dataclass(frozen=True, slots=True, eq=False)
class SnpClaims:
    """What a report says, read with its product line's layout.

    ``product`` and the decoded TCBs are None when the line cannot be told (a version 2
    report described without its VCEK); ``vek`` is None when only described without one.
    """

    report: AttestationReport
    product: ProductLine | None
    vek: Vek | None
    reported_tcb: TcbVersion | None
    current_tcb: TcbVersion | None
    committed_tcb: TcbVersion | None
    launch_tcb: TcbVersion | None

    @property
    def evidence_kind(self) -> EvidenceKind:
        return EvidenceKind.AMD_SEV_SNP

    @classmethod
    def of(
        cls, report: AttestationReport, product: ProductLine | None, vek: Vek | None
    ) -> SnpClaims:
        """Decode the four TCBs for ``product``; raises MalformedEvidence for a TCB whose
        reserved bytes are set."""
        if product is None:
            return cls(report, None, vek, None, None, None, None)
        return cls(
            report,
            product,
            vek,
            TcbVersion.decode(report.reported_tcb, product, what="reported_tcb"),
            TcbVersion.decode(report.current_tcb, product, what="current_tcb"),
            TcbVersion.decode(report.committed_tcb, product, what="committed_tcb"),
            TcbVersion.decode(report.launch_tcb, product, what="launch_tcb"),
        )

    def to_dict(self) -> dict[str, object]:
        """The claims summary the ledger records (JSON: strings, integers, booleans)."""
        r = self.report
        cpuid = (
            None
            if r.cpuid is None
            else {
                "family": f"0x{r.cpuid[0]:02x}",
                "model": f"0x{r.cpuid[1]:02x}",
                "stepping": r.cpuid[2],
            }
        )
        return {
            "evidence_kind": str(EvidenceKind.AMD_SEV_SNP),
            "version": r.version,
            "product": None if self.product is None else str(self.product),
            "signing_key": r.signing_key.name.lower(),
            "guest_svn": r.guest_svn,
            "policy": r.policy.to_dict(),
            "vmpl": r.vmpl,
            "measurement": r.measurement.hex(),
            "host_data": r.host_data.hex(),
            "id_key_digest": r.id_key_digest.hex(),
            "author_key_digest": r.author_key_digest.hex(),
            "author_key_en": r.author_key_en,
            "family_id": r.family_id.hex(),
            "image_id": r.image_id.hex(),
            "report_data": r.report_data.hex(),
            "report_id": r.report_id.hex(),
            "report_id_ma": r.report_id_ma.hex(),
            "chip_id": r.chip_id.hex(),
            "csp_id": None if self.vek is None else self.vek.csp_id,
            "mask_chip_key": r.mask_chip_key,
            "reported_tcb": _tcb(self.reported_tcb, r.reported_tcb),
            "current_tcb": _tcb(self.current_tcb, r.current_tcb),
            "committed_tcb": _tcb(self.committed_tcb, r.committed_tcb),
            "launch_tcb": _tcb(self.launch_tcb, r.launch_tcb),
            "cpuid": cpuid,
            "platform_info": r.platform_info.to_dict(),
            "firmware": {
                "current": ".".join(map(str, r.current_version)),
                "committed": ".".join(map(str, r.committed_version)),
            },
            "launch_mit_vector": _vector(r.launch_mit_vector),
            "current_mit_vector": _vector(r.current_mit_vector),
            "vek": None if self.vek is None else self.vek.to_dict(),
        }

    def ear_details(self) -> dict[str, object]:
        return {}


def _tcb(decoded: TcbVersion | None, raw: bytes) -> dict[str, object]:
    return decoded.to_dict() if decoded is not None else {"raw": raw.hex()}


def _vector(value: int | None) -> str | None:
    return None if value is None else f"0x{value:x}"
