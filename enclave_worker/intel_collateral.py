"""Simulated Intel PCS collateral: TCB info and QE identity, signed by the simulated TCB
Signing key, in the team's endorsement form (docs: /work/briefs/issue12-design.md).

* ``tcb-info``: the PCS response body ``{"tcbInfo":{...},"signature":"<hex r||s>"}``; the
  signature (ECDSA P-256 with SHA-256) covers the exact text of the ``tcbInfo`` member, which
  is written once, compactly, and embedded verbatim.
* ``qe-identity``: ``{"enclaveIdentity":{...},"signature":"<hex>"}`` likewise.
* ``crl``: the PCK CA CRL of the platform's CA, then the Root CA CRL (DER).
* ``certificate``: the TCB Signing certificate (DER); the root is never sent (it is pinned).

The TCB info follows Intel's version 3 (``id`` "SGX" or "TDX"; TDX adds ``tdxModule``,
``tdxModuleIdentities`` and ``tdxtcbcomponents``), dates ``YYYY-MM-DDThh:mm:ssZ``, FMSPC upper
case as dcap-qvl's samples write it. The levels are built around the platform's own TCB so
that its status is the one asked for (:class:`TcbStanding`): the platform's level first when it
is up to date; otherwise an UpToDate level above it, then its own with the status and
advisories asked for; always an OutOfDate level below. ``matching=False`` lists only levels
above the platform (what newer collateral does to an older quote: no level matches).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enclave_worker.attester import Endorsement
from enclave_worker.intel_quote import raw_signature
from enclave_worker.simulated_intel import CaName, PckTcb, SimulatedIntelPki

__all__ = [
    "TCB_STATUSES",
    "UP_TO_DATE",
    "QeIdentitySpec",
    "TcbStanding",
    "collateral_endorsements",
    "pcs_body",
    "qe_identity_json",
    "tcb_info_json",
]

TCB_STATUSES: Final = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
_VALIDITY: Final = timedelta(days=30)
_EVALUATION_DATA_NUMBER: Final = 17
_OLD_ADVISORIES: Final = ("INTEL-SA-00837",)


def _date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT00:00:00Z")


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True)
class TcbStanding:
    """Where the platform stands in its TCB info: its status, the advisories of its level,
    and whether any level matches it at all."""

    status: str = "UpToDate"
    advisories: tuple[str, ...] = ()
    matching: bool = True

    def __post_init__(self) -> None:
        if self.status not in TCB_STATUSES:
            raise ValueError(f"unknown TCB status {self.status!r}; one of {TCB_STATUSES}")


#: The default: the platform's own level is the first, UpToDate.
UP_TO_DATE: Final = TcbStanding()


@dataclass(frozen=True)
class QeIdentitySpec:
    """The quoting enclave the QE identity describes (and the QE report shows)."""

    #: "TD_QE" (TDX) or "QE" (SGX).
    id: str
    mr_signer: bytes
    isv_prod_id: int
    #: The QE's ISV SVN, and the lowest SVN the identity calls UpToDate.
    isv_svn: int
    miscselect: int = 0
    #: The QE identity's attributes and mask (Intel's values).
    attributes: bytes = bytes.fromhex("11000000000000000000000000000000")
    attributes_mask: bytes = bytes.fromhex("FBFFFFFFFFFFFFFF0000000000000000")


def _level(
    sgx: Sequence[int],
    pce_svn: int,
    tdx: Sequence[int] | None,
    *,
    date: datetime,
    status: str,
    advisories: Sequence[str] = (),
) -> dict[str, Any]:
    tcb: dict[str, Any] = {
        "sgxtcbcomponents": [{"svn": svn} for svn in sgx],
        "pcesvn": pce_svn,
    }
    if tdx is not None:
        tcb["tdxtcbcomponents"] = [{"svn": svn} for svn in tdx]
    level: dict[str, Any] = {"tcb": tcb, "tcbDate": _day(date), "tcbStatus": status}
    if advisories:
        level["advisoryIDs"] = list(advisories)
    return level


def tcb_info_json(
    tcb: PckTcb,
    *,
    at: datetime,
    tee_tcb_svn: bytes | None = None,
    standing: TcbStanding = UP_TO_DATE,
    fmspc: bytes | None = None,
) -> bytes:
    """The ``tcbInfo`` text for a platform at ``tcb`` (``tee_tcb_svn``: a TD's 16 bytes, for
    TDX TCB info), issued at ``at``, next update 30 days later."""
    tdx = list(tee_tcb_svn) if tee_tcb_svn is not None else None
    if tdx is not None and len(tdx) != 16:
        raise ValueError(f"TEE_TCB_SVN is 16 bytes, not {len(tdx)}")
    sgx = list(tcb.sgx_components)
    # A level strictly above the platform whichever components a verifier compares.
    above_sgx = [min(svn + 1, 255) for svn in sgx]
    above_tdx = [min(svn + 1, 255) for svn in tdx] if tdx is not None else None
    below_pce = max(tcb.pce_svn - 1, 0)
    issued = at.replace(microsecond=0)
    if not standing.matching:
        levels = [
            _level(above_sgx, tcb.pce_svn + 1, above_tdx, date=issued - timedelta(days=20),
                   status="UpToDate"),
            _level(above_sgx, tcb.pce_svn + 1, above_tdx, date=issued - timedelta(days=400),
                   status="OutOfDate", advisories=_OLD_ADVISORIES),
        ]  # fmt: skip
    elif standing.status == "UpToDate":
        levels = [
            _level(sgx, tcb.pce_svn, tdx, date=issued - timedelta(days=90), status="UpToDate",
                   advisories=standing.advisories),
            _level(sgx, below_pce, tdx, date=issued - timedelta(days=400), status="OutOfDate",
                   advisories=_OLD_ADVISORIES),
        ]  # fmt: skip
    else:
        levels = [
            _level(above_sgx, tcb.pce_svn + 1, above_tdx, date=issued - timedelta(days=20),
                   status="UpToDate"),
            _level(sgx, tcb.pce_svn, tdx, date=issued - timedelta(days=90),
                   status=standing.status, advisories=standing.advisories),
            _level(sgx, below_pce, tdx, date=issued - timedelta(days=400), status="OutOfDate",
                   advisories=(*standing.advisories, *_OLD_ADVISORIES)),
        ]  # fmt: skip
    info: dict[str, Any] = {
        "id": "SGX" if tdx is None else "TDX",
        "version": 3,
        "issueDate": _date(issued),
        "nextUpdate": _date(issued + _VALIDITY),
        "fmspc": (fmspc or tcb.fmspc).hex().upper(),
        "pceId": tcb.pce_id.hex().upper(),
        "tcbType": 0,
        "tcbEvaluationDataNumber": _EVALUATION_DATA_NUMBER,
    }
    if tdx is not None:
        module = {
            "mrsigner": "00" * 48,
            "attributes": "00" * 8,
            "attributesMask": "FF" * 8,
        }
        info["tdxModule"] = module
        info["tdxModuleIdentities"] = [
            {
                "id": f"TDX_{tdx[1]:02X}",
                **module,
                "tcbLevels": [
                    {
                        "tcb": {"isvsvn": tdx[0]},
                        "tcbDate": _day(issued - timedelta(days=90)),
                        "tcbStatus": "UpToDate",
                    }
                ],
            }
        ]
    info["tcbLevels"] = levels
    return _compact(info)


def qe_identity_json(qe: QeIdentitySpec, *, at: datetime) -> bytes:
    """The ``enclaveIdentity`` text of the quoting enclave, issued at ``at``; the QE's SVN
    is UpToDate, one below OutOfDate."""
    issued = at.replace(microsecond=0)
    levels: list[dict[str, Any]] = [
        {
            "tcb": {"isvsvn": qe.isv_svn},
            "tcbDate": _day(issued - timedelta(days=90)),
            "tcbStatus": "UpToDate",
        }
    ]
    if qe.isv_svn > 0:
        levels.append(
            {
                "tcb": {"isvsvn": qe.isv_svn - 1},
                "tcbDate": _day(issued - timedelta(days=400)),
                "tcbStatus": "OutOfDate",
                "advisoryIDs": list(_OLD_ADVISORIES),
            }
        )
    return _compact(
        {
            "id": qe.id,
            "version": 2,
            "issueDate": _date(issued),
            "nextUpdate": _date(issued + _VALIDITY),
            "tcbEvaluationDataNumber": _EVALUATION_DATA_NUMBER,
            "miscselect": qe.miscselect.to_bytes(4, "big").hex().upper(),
            "miscselectMask": "FFFFFFFF",
            "attributes": qe.attributes.hex().upper(),
            "attributesMask": qe.attributes_mask.hex().upper(),
            "mrsigner": qe.mr_signer.hex().upper(),
            "isvprodid": qe.isv_prod_id,
            "tcbLevels": levels,
        }
    )


def pcs_body(member: str, text: bytes, signer: ec.EllipticCurvePrivateKey) -> bytes:
    """``{"<member>":<text verbatim>,"signature":"<hex r||s>"}``, signed over ``text``."""
    signature = raw_signature(
        signer.sign(text, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    )
    return (
        b'{"'
        + member.encode()
        + b'":'
        + text
        + b',"signature":"'
        + signature.hex().encode()
        + b'"}'
    )


def collateral_endorsements(
    pki: SimulatedIntelPki,
    *,
    ca: CaName,
    tcb_info: bytes,
    qe_identity: bytes,
    at: datetime,
    revoked_pcks: Sequence[int] = (),
    revoked_cas: Sequence[int] = (),
) -> tuple[Endorsement, ...]:
    """The collateral as endorsements: ``tcb-info``, ``qe-identity``, the PCK CA CRL and the
    Root CA CRL (``crl``), the TCB Signing ``certificate``; CRLs issued at ``at``."""
    signer = pki.tcb_signing.private_key
    return (
        Endorsement("tcb-info", pcs_body("tcbInfo", tcb_info, signer)),
        Endorsement("qe-identity", pcs_body("enclaveIdentity", qe_identity, signer)),
        Endorsement("crl", pki.pck_crl(ca, at=at, revoked=revoked_pcks)),
        Endorsement("crl", pki.root_crl(at=at, revoked=revoked_cas)),
        Endorsement("certificate", pki.tcb_signing.der),
    )
