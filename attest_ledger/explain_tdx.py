"""The Intel TDX and SGX part of an entry's page: what the stored quote says, laid out against
the policy revision the entry names, the TCB evaluation the entry records, the collateral
documents it names and the instant it was judged at.

Framework-free, and nothing here verifies: the quote is parsed (``describe``), the PCK chain
it carries is read for display, and every comparison shown (measurements against each
reference image, the debug bit against the settings, report_data against the recorded result
hash, validity windows against ``verified_at``) is one a person can check by eye. The TCB
status, the level that judged the quote and the QE identity and TDX module results are the
ones the entry records (the verifier's own evaluation, with the collateral of the day); the
verdict is the recorded one, and "re-verify" (:func:`attest_ledger.explain.reverify`) runs
the scheme again on the stored quote and collateral.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attest_ledger.explain_snp import ChainRow, StoredEndorsement, ValueRow, stored_evidence
from attest_ledger.policy_store import SCHEMES, SGX, TDX, PolicyConfig
from verifier import REPORT_DATA_BYTES, CertificateInfo, DcapClaims, ResultHash
from verifier.binding import REPORT_DATA_NONCE_BYTES
from verifier.tdx import DcapVerifier
from verifier.tdx.quote import EnclaveReport, TdReport
from verifier.x509 import CERTIFICATE_PARSE_ERRORS, certificate_info

__all__ = [
    "CollateralRow",
    "DcapView",
    "FieldRow",
    "TcbSummary",
    "explain_dcap",
    "mimetype_of",
]

#: The collateral roles the verifier records (claims.collateral), as shown.
_ROLES = {
    "tcb_info": "TCB info",
    "qe_identity": "QE identity",
    "pck_crl": "PCK CA CRL",
    "root_ca_crl": "Root CA CRL",
    "tcb_signing_certificate": "TCB Signing certificate",
}
_MIMETYPES = {
    "tcb-info": "application/json",
    "qe-identity": "application/json",
    "crl": "application/pkix-crl",
    "certificate": "application/pkix-cert",
}
#: The SGX image fields compared one by one (hex values; the ISV numbers are below).
_SGX_VALUES = ("mr_enclave", "mr_signer")
_DER = Encoding.DER


def mimetype_of(kind: str) -> str:
    """The content type of an endorsement of ``kind``: JSON for Intel's signed documents,
    DER (certificate or CRL) otherwise."""
    return _MIMETYPES.get(kind, "application/pkix-cert")


def suffix_of(kind: str) -> str:
    """The file suffix of an endorsement of ``kind`` in the portal's download URL."""
    return "json" if mimetype_of(kind) == "application/json" else "der"


@dataclass(frozen=True)
class FieldRow:
    """One field of the quote's body or header, as shown."""

    name: str
    value: str
    note: str | None = None
    #: "refused" (the recorded settings do not allow it), "allowed", or None
    judgement: str | None = None


@dataclass(frozen=True)
class TcbSummary:
    """The TCB evaluation the entry records (None members: not recorded)."""

    status: str | None
    advisory_ids: tuple[str, ...]
    platform_status: str | None
    tcb_date: str | None
    tcb_evaluation_data_number: int | None
    sgx_components: tuple[int, ...]
    pce_svn: int | None
    tdx_components: tuple[int, ...] | None
    tcb_info_id: str | None
    tcb_info_issue_date: str | None
    tcb_info_next_update: str | None
    qe_identity: Mapping[str, Any]
    tdx_module: Mapping[str, Any] | None


@dataclass(frozen=True)
class CollateralRow:
    """An endorsement the entry names, with what the verifier used it as."""

    stored: StoredEndorsement
    role: str | None  # "TCB info", "PCK CA CRL", ...; None: not named by the verdict's claims
    suffix: str  # "json" or "der": the download URL's

    @property
    def mimetype(self) -> str:
        return mimetype_of(self.stored.kind)


@dataclass
class DcapView:
    claims: DcapClaims
    moment: datetime | None
    tdx: bool
    images: list[str] = field(default_factory=list)
    values: list[ValueRow] = field(default_factory=list)
    header: list[FieldRow] = field(default_factory=list)
    body: list[FieldRow] = field(default_factory=list)
    pck: list[FieldRow] = field(default_factory=list)
    tcb: TcbSummary | None = None
    chain: list[ChainRow] = field(default_factory=list)
    collateral: list[CollateralRow] = field(default_factory=list)
    binding_expected: bytes | None = None
    binding_state: str | None = None  # "holds", "differs", "missing"

    @property
    def title(self) -> str:
        return "TDX quote" if self.tdx else "SGX quote"

    @property
    def report_data(self) -> bytes:
        return self.claims.quote.report_data

    @property
    def report_data_nonce(self) -> bytes:
        return self.report_data[:REPORT_DATA_NONCE_BYTES]

    @property
    def report_data_binding(self) -> bytes:
        return self.report_data[REPORT_DATA_NONCE_BYTES:REPORT_DATA_BYTES]


def explain_dcap(
    record: Mapping[str, Any],
    evidence: bytes,
    endorsements: Sequence[StoredEndorsement],
    *,
    kind: str,
    policy: PolicyConfig | None,
    scheme: DcapVerifier,
    moment: datetime | None,
) -> DcapView:
    """What the quote says, laid out; raises :class:`VerifierError` (malformed) when even the
    quote does not parse."""
    claims = scheme.describe(stored_evidence(kind, evidence, endorsements))
    tdx = claims.quote.is_tdx
    view = DcapView(claims=claims, moment=moment, tdx=tdx)
    scheme_kind = TDX if tdx else SGX
    settings: dict[str, Any] = dict(SCHEMES[scheme_kind].defaults)
    worker = record.get("worker")
    if policy is not None:
        settings.update(policy.schemes.get(scheme_kind, {}))
        allowed = policy.workers.get(worker, frozenset()) if isinstance(worker, str) else ()
        view.images = sorted(n for n in allowed if policy.kind_of(n) == scheme_kind)
    view.values = _value_rows(claims, policy, view.images, tdx)
    view.header = _header_rows(claims)
    body = claims.quote.body
    judged = settings if policy is not None else None
    if isinstance(body, TdReport):
        view.body = _td_rows(body, judged)
    elif isinstance(body, EnclaveReport):
        view.body = _enclave_rows(body, judged)
    view.pck = _pck_rows(claims)
    recorded = record.get("claims")
    view.tcb = _tcb_summary(recorded) if isinstance(recorded, Mapping) else None
    view.chain = _chain_rows(claims, moment)
    digests = recorded.get("collateral") if isinstance(recorded, Mapping) else None
    view.collateral = _collateral_rows(endorsements, digests)
    result_hash = record.get("result_hash")
    if isinstance(result_hash, str):
        try:
            view.binding_expected = ResultHash.parse(result_hash).report_data_half()
        except ValueError:
            view.binding_expected = None
    if view.binding_expected is not None:
        found = view.report_data_binding
        view.binding_state = (
            "holds"
            if found == view.binding_expected
            else "missing"
            if not any(found)
            else "differs"
        )
    return view


def _value_rows(
    claims: DcapClaims, policy: PolicyConfig | None, images: list[str], tdx: bool
) -> list[ValueRow]:
    body = claims.quote.body
    names: tuple[str, ...]
    if tdx:
        assert isinstance(body, TdReport)  # noqa: S101 - a TDX quote's body is a TD report
        names = SCHEMES[TDX].image_fields
        found = {
            "mr_td": body.mr_td, "rtmr0": body.rtmrs[0], "rtmr1": body.rtmrs[1],
            "rtmr2": body.rtmrs[2], "rtmr3": body.rtmrs[3], "mr_config_id": body.mr_config_id,
            "mr_owner": body.mr_owner, "mr_owner_config": body.mr_owner_config,
        }  # fmt: skip
    else:
        assert isinstance(body, EnclaveReport)  # noqa: S101 - an SGX quote's is an enclave's
        names = _SGX_VALUES
        found = {"mr_enclave": body.mr_enclave, "mr_signer": body.mr_signer}
    rows = []
    for name in names:
        value = found[name].hex()
        matched, expected = [], []
        for image in images:
            reference = policy.references[image][1] if policy is not None else {}
            listed = reference.get(name)
            if not isinstance(listed, str):
                continue
            if listed.lower() == value:
                matched.append(image)
            else:
                expected.append((image, listed.lower()))
        rows.append(ValueRow(name, value, tuple(matched), tuple(expected)))
    if not tdx:
        assert isinstance(body, EnclaveReport)  # noqa: S101 - as above
        rows.extend(_sgx_numbers(body, policy, images))
    return rows


def _sgx_numbers(
    body: EnclaveReport, policy: PolicyConfig | None, images: list[str]
) -> list[ValueRow]:
    """ISV product id (equal) and ISV SVN (at least the image's minimum)."""
    rows = []
    for name, value, listed_as, at_least in (
        ("isv_prod_id", body.isv_prod_id, "isv_prod_id", False),
        ("isv_svn", body.isv_svn, "min_isv_svn", True),
    ):
        matched, expected = [], []
        for image in images:
            reference = policy.references[image][1] if policy is not None else {}
            listed = reference.get(listed_as)
            if not isinstance(listed, int) or isinstance(listed, bool):
                continue
            if value >= listed if at_least else value == listed:
                matched.append(image)
            else:
                expected.append((image, f"at least {listed}" if at_least else str(listed)))
        rows.append(ValueRow(name, str(value), tuple(matched), tuple(expected)))
    return rows


def _header_rows(claims: DcapClaims) -> list[FieldRow]:
    header = claims.quote.header
    return [
        FieldRow("Quote version", str(header.version)),
        FieldRow("TEE type", f"0x{int(header.tee_type):08x} ({header.tee_type.name})"),
        FieldRow("Attestation key type", str(header.att_key_type), "2: ECDSA P-256"),
        FieldRow("QE SVN", str(header.qe_svn)),
        FieldRow("PCE SVN", str(header.pce_svn)),
        FieldRow("QE vendor ID", header.qe_vendor_id.hex()),
        FieldRow("Trailing padding", f"{claims.quote.padding} bytes", "not signed; ignored"),
    ]


def _debug_judgement(debug: bool, settings: Mapping[str, Any] | None) -> str | None:
    if settings is None or not debug:
        return None
    return "allowed" if settings.get("allow_debug") else "refused"


def _td_rows(body: TdReport, settings: Mapping[str, Any] | None) -> list[FieldRow]:
    flags = body.to_dict()["td_attributes_flags"]
    assert isinstance(flags, dict)  # noqa: S101 - to_dict's shape
    named = [name for name, on in flags.items() if on]
    debug_note = "DEBUG (bit 0) set: the host can read and change the TD's state"
    rows = [
        FieldRow("TDX version", "1.5" if body.tee_tcb_svn2 is not None else "1.0"),
        FieldRow("TEE_TCB_SVN", body.tee_tcb_svn.hex()),
        FieldRow("MRSEAM", body.mr_seam.hex(), "the TDX module's measurement"),
        FieldRow("MRSIGNERSEAM", body.mr_signer_seam.hex()),
        FieldRow("SEAM attributes", body.seam_attributes.hex()),
        FieldRow(
            "TD attributes",
            f"{body.td_attributes.hex()} ({', '.join(named) or 'no flag set'})",
            debug_note if body.debug else "debug (bit 0) not set",
            _debug_judgement(body.debug, settings),
        ),
        FieldRow(
            "Debug", "yes" if body.debug else "no", None, _debug_judgement(body.debug, settings)
        ),
        FieldRow("XFAM", body.xfam.hex(), f"0x{body.xfam_value:016x}"),
        FieldRow("MRTD", body.mr_td.hex()),
        FieldRow("MRCONFIGID", body.mr_config_id.hex()),
        FieldRow("MROWNER", body.mr_owner.hex()),
        FieldRow("MROWNERCONFIG", body.mr_owner_config.hex()),
        *(FieldRow(f"RTMR{n}", value.hex()) for n, value in enumerate(body.rtmrs)),
    ]
    if body.tee_tcb_svn2 is not None:
        rows.append(FieldRow("TEE_TCB_SVN2", body.tee_tcb_svn2.hex()))
    if body.mr_service_td is not None:
        rows.append(FieldRow("MRSERVICETD", body.mr_service_td.hex()))
    return rows


def _enclave_rows(body: EnclaveReport, settings: Mapping[str, Any] | None) -> list[FieldRow]:
    flags = body.to_dict()["attributes_flags"]
    assert isinstance(flags, dict)  # noqa: S101 - to_dict's shape
    named = [name for name, on in flags.items() if on]
    return [
        FieldRow("MRENCLAVE", body.mr_enclave.hex()),
        FieldRow("MRSIGNER", body.mr_signer.hex()),
        FieldRow("ISV product ID", str(body.isv_prod_id)),
        FieldRow("ISV SVN", str(body.isv_svn)),
        FieldRow(
            "Attributes",
            f"{body.attributes.hex()} ({', '.join(named) or 'no flag set'})",
            "DEBUG (bit 1) set: a debugger can read the enclave's memory"
            if body.debug
            else "debug (bit 1) not set",
            _debug_judgement(body.debug, settings),
        ),
        FieldRow(
            "Debug", "yes" if body.debug else "no", None, _debug_judgement(body.debug, settings)
        ),
        FieldRow("CPUSVN", body.cpu_svn.hex()),
        FieldRow("MISCSELECT", f"0x{body.misc_select:08x}"),
        FieldRow("CONFIGID", body.config_id.hex()),
        FieldRow("CONFIGSVN", str(body.config_svn)),
        FieldRow("ISV extended product ID", body.isv_ext_prod_id.hex()),
        FieldRow("ISV family ID", body.isv_family_id.hex()),
    ]


def _pck_rows(claims: DcapClaims) -> list[FieldRow]:
    pck = claims.pck
    if pck is None:
        return []
    return [
        FieldRow("FMSPC", pck.fmspc.hex().upper(), "the platform family Intel's TCB info is for"),
        FieldRow("PCE ID", pck.pce_id.hex().upper()),
        FieldRow("PCESVN", str(pck.pce_svn)),
        FieldRow("CPUSVN", pck.cpu_svn.hex()),
        FieldRow("TCB components", " ".join(str(c) for c in pck.tcb_components)),
        FieldRow("SGX type", str(pck.to_dict()["sgx_type"])),
    ]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _numbers(value: Any) -> tuple[int, ...]:
    return tuple(v for v in value if _number(v) is not None) if isinstance(value, list) else ()


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _tcb_summary(claims: Mapping[str, Any]) -> TcbSummary | None:
    """The recorded evaluation (``claims.tcb``); None when none is recorded (the quote was
    refused before its TCB was evaluated). A proven entry may still hold anything: every
    member is read for its type."""
    tcb = claims.get("tcb")
    if not isinstance(tcb, Mapping):
        return None
    platform = _mapping(tcb.get("platform"))
    info = _mapping(tcb.get("tcb_info"))
    module = tcb.get("tdx_module")
    advisories = tcb.get("advisory_ids")
    return TcbSummary(
        status=_text(tcb.get("status")),
        advisory_ids=tuple(a for a in advisories if isinstance(a, str))
        if isinstance(advisories, list)
        else (),
        platform_status=_text(platform.get("tcb_status")),
        tcb_date=_text(platform.get("tcb_date")),
        tcb_evaluation_data_number=_number(platform.get("tcb_evaluation_data_number")),
        sgx_components=_numbers(platform.get("sgx_components")),
        pce_svn=_number(platform.get("pce_svn")),
        tdx_components=_numbers(platform.get("tdx_components"))
        if isinstance(platform.get("tdx_components"), list)
        else None,
        tcb_info_id=_text(info.get("id")),
        tcb_info_issue_date=_text(info.get("issue_date")),
        tcb_info_next_update=_text(info.get("next_update")),
        qe_identity=_mapping(tcb.get("qe_identity")),
        tdx_module=module if isinstance(module, Mapping) else None,
    )


def _chain_rows(claims: DcapClaims, moment: datetime | None) -> list[ChainRow]:
    """The PCK chain the quote carries (certification data type 6), root first."""
    try:
        certificates = x509.load_pem_x509_certificates(claims.quote.signature_data.pck_chain_pem)
    except (*CERTIFICATE_PARSE_ERRORS, IndexError) as exc:
        return [ChainRow("PCK chain", "the quote", None, f"does not read ({str(exc)[:100]})")]
    rows = []
    positions = ("PCK", "PCK CA", "Root CA")
    roles = ("leaf", "intermediate", "root")
    for n, certificate in reversed(list(enumerate(certificates))):
        position = positions[n] if n < len(positions) else f"certificate {n}"
        role = roles[n] if n < len(roles) else "intermediate"
        der = certificate.public_bytes(_DER)
        try:
            info = certificate_info(certificate, der, position=position, role=role, issuer=None)
        except CERTIFICATE_PARSE_ERRORS as exc:
            rows.append(ChainRow(position, "the quote", None, f"not read ({str(exc)[:100]})"))
            continue
        rows.append(_windowed(position, info, moment))
    return rows


def _windowed(position: str, info: CertificateInfo, moment: datetime | None) -> ChainRow:
    origin = "came in the quote"
    if moment is None:
        return ChainRow(position, origin, info, None)
    start, end = info.not_before, info.not_after
    where = "before" if moment < start else "after" if moment > end else "within"
    low, high = min(start, moment), max(end, moment)
    span = (high - low).total_seconds() or 1.0

    def position_of(t: datetime) -> float:
        return 5 + 90 * (t - low).total_seconds() / span

    return ChainRow(
        position, origin, info, None, where, (position_of(start), position_of(end)),
        position_of(moment),
    )  # fmt: skip


def _collateral_rows(
    endorsements: Sequence[StoredEndorsement], digests: Any
) -> list[CollateralRow]:
    roles: dict[str, str] = {}
    if isinstance(digests, Mapping):
        for role, digest in digests.items():
            if isinstance(digest, str) and role in _ROLES:
                roles.setdefault(digest, _ROLES[role])
    return [CollateralRow(e, roles.get(e.sha256), suffix_of(e.kind)) for e in endorsements]
