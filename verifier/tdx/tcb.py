"""The TCB status of a platform and its quoting enclave, as Intel's Quote Verification
Library computes it from signed collateral.

1. The collateral must be of the quote's TEE (TCB info id ``TDX`` / ``SGX``, QE identity
   ``TD_QE`` / ``QE``: :class:`TcbTypeMismatch`) and of its platform (FMSPC and PCE-ID of the
   PCK certificate: :class:`FmspcMismatch`).
2. QE identity: the QE report's MRSIGNER and ISVPRODID equal, MISCSELECT and ATTRIBUTES
   equal under their masks (:class:`QeIdentityMismatch`); the first QE TCB level whose ISVSVN
   the QE reaches gives the QE's status.
3. Platform: the first TCB level whose 16 SGX components and PCESVN the PCK certificate
   reaches and, for TDX, whose TDX components TEE_TCB_SVN reaches (from byte 2 when the TDX
   module's major version, TEE_TCB_SVN[1], is not 0: those two bytes are judged by the TDX
   module identity ``TDX_<major>`` instead: MRSIGNERSEAM, SEAMATTRIBUTES under the mask, and
   the first of its levels whose ISVSVN TEE_TCB_SVN[0] reaches).
4. No matching level, anywhere: :class:`NoMatchingTcbLevel` (collateral newer than the
   platform cannot judge it; never a pass).
5. Converge: an OutOfDate QE or TDX module makes an UpToDate or SWHardeningNeeded platform
   OutOfDate and a Configuration* platform OutOfDateConfigurationNeeded; a Revoked one makes
   it Revoked. Advisory IDs are the union, platform first.
"""

from __future__ import annotations

from dataclasses import dataclass

from verifier.errors import (
    EndorsementMismatch,
    FmspcMismatch,
    NoMatchingTcbLevel,
    QeIdentityMismatch,
    TcbTypeMismatch,
)
from verifier.tdx.collateral import QeIdentity, QeTcbLevel, TcbInfo, TcbLevel
from verifier.tdx.pck import PckExtension
from verifier.tdx.quote import EnclaveReport, Quote, TdReport

__all__ = ["TcbEvaluation", "evaluate_tcb"]


@dataclass(frozen=True, slots=True)
class TcbEvaluation:
    status: str
    advisory_ids: tuple[str, ...]
    platform_level: TcbLevel
    platform_status: str
    qe_level: QeTcbLevel
    tdx_module_id: str | None
    tdx_module_level: QeTcbLevel | None

    def to_dict(self, tcb_info: TcbInfo, qe_identity: QeIdentity) -> dict[str, object]:
        return {
            "status": self.status,
            "advisory_ids": list(self.advisory_ids),
            "platform": {
                "tcb_status": self.platform_status,
                "tcb_date": self.platform_level.tcb_date,
                "tcb_evaluation_data_number": tcb_info.tcb_evaluation_data_number,
                "sgx_components": list(self.platform_level.sgx_components),
                "pce_svn": self.platform_level.pce_svn,
                "tdx_components": None
                if self.platform_level.tdx_components is None
                else list(self.platform_level.tdx_components),
                "advisory_ids": list(self.platform_level.advisory_ids),
            },
            "qe_identity": {
                "id": qe_identity.id,
                "tcb_status": self.qe_level.tcb_status,
                "tcb_date": self.qe_level.tcb_date,
                "isv_svn": self.qe_level.isv_svn,
                "tcb_evaluation_data_number": qe_identity.tcb_evaluation_data_number,
                "advisory_ids": list(self.qe_level.advisory_ids),
            },
            "tdx_module": None
            if self.tdx_module_level is None
            else {
                "id": self.tdx_module_id,
                "tcb_status": self.tdx_module_level.tcb_status,
                "tcb_date": self.tdx_module_level.tcb_date,
                "isv_svn": self.tdx_module_level.isv_svn,
            },
        }


def evaluate_tcb(
    quote: Quote, pck: PckExtension, tcb_info: TcbInfo, qe_identity: QeIdentity
) -> TcbEvaluation:
    tdx = quote.is_tdx
    if tcb_info.id != ("TDX" if tdx else "SGX"):
        raise TcbTypeMismatch(
            f"tcb-info: id {tcb_info.id!r} is for {tcb_info.id} platforms; this is a "
            f"{'TDX' if tdx else 'SGX'} quote"
        )
    if qe_identity.id != ("TD_QE" if tdx else "QE"):
        raise TcbTypeMismatch(
            f"qe-identity: id {qe_identity.id!r}; a {'TDX' if tdx else 'SGX'} quote's quoting "
            f"enclave is {'TD_QE' if tdx else 'QE'}"
        )
    if tcb_info.fmspc != pck.fmspc:
        raise FmspcMismatch(
            f"tcb-info: for FMSPC {tcb_info.fmspc.hex().upper()}, but the PCK certificate's "
            f"platform is FMSPC {pck.fmspc.hex().upper()}"
        )
    if tcb_info.pce_id != pck.pce_id:
        raise EndorsementMismatch(
            f"tcb-info: for PCE-ID {tcb_info.pce_id.hex()}, the PCK certificate's is "
            f"{pck.pce_id.hex()}"
        )
    qe_level = _qe_level(quote.signature_data.qe_report, qe_identity)
    module_id: str | None = None
    module_level: QeTcbLevel | None = None
    start = 0
    if tdx:
        body = quote.body
        assert isinstance(body, TdReport)  # noqa: S101 - a TDX quote's body is a TD report
        module_id, module_level = _tdx_module(body, tcb_info)
        if module_level is not None:
            start = 2
    level = _platform_level(quote, pck, tcb_info, start)
    status = level.tcb_status
    advisories = list(level.advisory_ids)
    for other in (module_level, qe_level):
        if other is None:
            continue
        status = _converge(status, other.tcb_status)
        advisories.extend(a for a in other.advisory_ids if a not in advisories)
    return TcbEvaluation(
        status=status,
        advisory_ids=tuple(advisories),
        platform_level=level,
        platform_status=level.tcb_status,
        qe_level=qe_level,
        tdx_module_id=module_id,
        tdx_module_level=module_level,
    )


def _converge(platform: str, other: str) -> str:
    if other == "Revoked":
        return "Revoked"
    if other == "OutOfDate":
        if platform in ("UpToDate", "SWHardeningNeeded"):
            return "OutOfDate"
        if platform in ("ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"):
            return "OutOfDateConfigurationNeeded"
    return platform


def _qe_level(report: EnclaveReport, identity: QeIdentity) -> QeTcbLevel:
    if report.mr_signer != identity.mr_signer:
        raise QeIdentityMismatch(
            f"qe report: MRSIGNER {report.mr_signer.hex()} is not Intel's "
            f"{identity.id} signer {identity.mr_signer.hex()}"
        )
    if report.isv_prod_id != identity.isv_prod_id:
        raise QeIdentityMismatch(
            f"qe report: ISVPRODID {report.isv_prod_id}, {identity.id} is {identity.isv_prod_id}"
        )
    misc = report.raw[16:20]
    if _masked(misc, identity.misc_select_mask) != _masked(
        identity.misc_select, identity.misc_select_mask
    ):
        raise QeIdentityMismatch(
            f"qe report: MISCSELECT {misc.hex()} does not match {identity.misc_select.hex()} "
            f"under mask {identity.misc_select_mask.hex()}"
        )
    if _masked(report.attributes, identity.attributes_mask) != _masked(
        identity.attributes, identity.attributes_mask
    ):
        raise QeIdentityMismatch(
            f"qe report: ATTRIBUTES {report.attributes.hex()} do not match "
            f"{identity.attributes.hex()} under mask {identity.attributes_mask.hex()}"
        )
    for level in identity.tcb_levels:
        if report.isv_svn >= level.isv_svn:
            return level
    raise NoMatchingTcbLevel(
        f"qe report: ISVSVN {report.isv_svn} is below every level of the {identity.id} "
        f"identity (lowest {min(lv.isv_svn for lv in identity.tcb_levels)})"
    )


def _tdx_module(body: TdReport, tcb_info: TcbInfo) -> tuple[str | None, QeTcbLevel | None]:
    major = body.tee_tcb_svn[1]
    if major == 0:
        module = tcb_info.tdx_module
        if module is not None:
            _check_module(
                body, module.mr_signer, module.attributes, module.attributes_mask, "tdxModule"
            )
        return None, None
    module_id = f"TDX_{major:02X}"
    if not tcb_info.tdx_module_identities:
        return None, None
    identity = next((m for m in tcb_info.tdx_module_identities if m.id == module_id), None)
    if identity is None:
        raise NoMatchingTcbLevel(
            f"tcb-info: no TDX module identity {module_id} (TEE_TCB_SVN[1] = {major}); listed: "
            f"{', '.join(m.id for m in tcb_info.tdx_module_identities)}"
        )
    _check_module(
        body, identity.mr_signer, identity.attributes, identity.attributes_mask, module_id
    )
    for level in identity.tcb_levels:
        if body.tee_tcb_svn[0] >= level.isv_svn:
            return module_id, level
    raise NoMatchingTcbLevel(
        f"tcb-info: TDX module {module_id} SVN {body.tee_tcb_svn[0]} is below every level listed"
    )


def _check_module(
    body: TdReport, mr_signer: bytes, attributes: bytes, mask: bytes, name: str
) -> None:
    if body.mr_signer_seam != mr_signer:
        raise EndorsementMismatch(
            f"td report: MRSIGNERSEAM {body.mr_signer_seam.hex()[:32]}... is not the signer of "
            f"TDX module {name}"
        )
    if _masked(body.seam_attributes, mask) != _masked(attributes, mask):
        raise EndorsementMismatch(
            f"td report: SEAMATTRIBUTES {body.seam_attributes.hex()} do not match TDX module {name}"
        )


def _platform_level(quote: Quote, pck: PckExtension, tcb_info: TcbInfo, start: int) -> TcbLevel:
    tee_tcb_svn = quote.body.tee_tcb_svn if isinstance(quote.body, TdReport) else None
    for level in tcb_info.tcb_levels:
        if pck.pce_svn < level.pce_svn:
            continue
        if any(
            have < need for have, need in zip(pck.tcb_components, level.sgx_components, strict=True)
        ):
            continue
        if tee_tcb_svn is not None:
            needed = level.tdx_components
            assert needed is not None  # noqa: S101 - TDX TCB info levels have TDX components
            if any(tee_tcb_svn[i] < needed[i] for i in range(start, 16)):
                continue
        return level
    raise NoMatchingTcbLevel(
        f"tcb-info: the platform's TCB (PCK SGX components {list(pck.tcb_components)}, PCESVN "
        f"{pck.pce_svn}"
        + ("" if tee_tcb_svn is None else f", TEE_TCB_SVN {tee_tcb_svn.hex()}")
        + f") is below every one of the {len(tcb_info.tcb_levels)} levels of TCB evaluation "
        f"data number {tcb_info.tcb_evaluation_data_number}: collateral newer than the "
        "platform cannot judge it"
    )


def _masked(value: bytes, mask: bytes) -> int:
    if len(value) != len(mask):
        raise ValueError("a value and its mask differ in length")
    return int.from_bytes(value, "little") & int.from_bytes(mask, "little")
