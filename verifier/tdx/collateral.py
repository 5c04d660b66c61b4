"""Intel DCAP collateral: TCB info and QE identity as Intel PCS issues them, parsed from the
exact bytes that were signed, and the conversion of dcap-qvl's ``QuoteCollateralV3`` JSON into
the endorsements a verifier is handed.

A PCS response body is ``{"tcbInfo":{...},"signature":"<hex r||s>"}`` (QE identity:
``{"enclaveIdentity":{...},...}``). The signature covers the exact text of the ``tcbInfo``
member as issued, so the member's text is located in the body (not re-serialised) and
verified as is; only then is it parsed into the frozen objects below.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.errors import MalformedEvidence, UnsupportedEvidence
from verifier.scheme import Endorsement, EndorsementKind

__all__ = [
    "TCB_STATUSES",
    "QeIdentity",
    "QeTcbLevel",
    "SignedDocument",
    "TcbInfo",
    "TcbLevel",
    "TdxModuleIdentity",
    "endorsements_from_dcap_qvl_json",
    "parse_qe_identity",
    "parse_tcb_info",
    "split_signed_body",
]

TCB_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
_QE_STATUSES = ("UpToDate", "OutOfDate", "Revoked")
_MAX_LEVELS = 256


@dataclass(frozen=True, slots=True)
class SignedDocument:
    """A PCS body split into the signed text and its 64-byte r||s signature."""

    member: str
    signed: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class TcbLevel:
    sgx_components: tuple[int, ...]
    pce_svn: int
    tdx_components: tuple[int, ...] | None
    tcb_date: str
    tcb_status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QeTcbLevel:
    isv_svn: int
    tcb_date: str
    tcb_status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TdxModuleIdentity:
    id: str
    mr_signer: bytes
    attributes: bytes
    attributes_mask: bytes
    tcb_levels: tuple[QeTcbLevel, ...]


@dataclass(frozen=True, slots=True)
class TcbInfo:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    #: TDX module (version 0 modules) and TDX module identities (TCB info v3 for TDX).
    tdx_module: TdxModuleIdentity | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    tcb_levels: tuple[TcbLevel, ...]


@dataclass(frozen=True, slots=True)
class QeIdentity:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    misc_select: bytes
    misc_select_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mr_signer: bytes
    isv_prod_id: int
    tcb_levels: tuple[QeTcbLevel, ...]


def split_signed_body(data: bytes, member: str, what: str) -> SignedDocument:
    """Locate ``member``'s exact text in a PCS body ``{"<member>":{...},"signature":"hex"}``.

    Raises MalformedEvidence for anything else (other members, duplicates, bad JSON)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvidence(f"{what}: not UTF-8 JSON") from None
    decoder = json.JSONDecoder()
    members: dict[str, tuple[int, int, object]] = {}
    try:
        index = _skip(text, 0)
        if text[index : index + 1] != "{":
            raise MalformedEvidence(f"{what}: expected a JSON object")
        index = _skip(text, index + 1)
        while True:
            key, index = decoder.raw_decode(text, index)
            if not isinstance(key, str) or key in members:
                raise MalformedEvidence(f"{what}: bad or repeated member name")
            index = _skip(text, index)
            if text[index : index + 1] != ":":
                raise MalformedEvidence(f"{what}: expected ':'")
            start = _skip(text, index + 1)
            value, end = decoder.raw_decode(text, start)
            members[key] = (start, end, value)
            index = _skip(text, end)
            if text[index : index + 1] == ",":
                index = _skip(text, index + 1)
                continue
            if text[index : index + 1] == "}":
                index = _skip(text, index + 1)
                break
            raise MalformedEvidence(f"{what}: expected ',' or '}}'")
    except (ValueError, RecursionError):
        raise MalformedEvidence(f"{what}: not valid JSON") from None
    if index != len(text):
        raise MalformedEvidence(f"{what}: content after the JSON object")
    if set(members) != {member, "signature"}:
        raise MalformedEvidence(
            f"{what}: expected exactly the members {member!r} and 'signature', found "
            f"{', '.join(sorted(members))[:80]}"
        )
    start, end, value = members[member]
    if not isinstance(value, dict):
        raise MalformedEvidence(f"{what}: {member!r} must be an object")
    signature = members["signature"][2]
    raw = _hex(signature, 64, f"{what}: signature")
    return SignedDocument(member, text[start:end].encode("utf-8"), raw)


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def parse_tcb_info(signed: bytes) -> TcbInfo:
    """Parse the (already verified) text of a ``tcbInfo`` member. Raises MalformedEvidence or
    UnsupportedEvidence."""
    what = "tcb-info"
    data = _object(_loads(signed, what), what)
    version = _int(data, "version", what)
    if version != 3:
        raise UnsupportedEvidence(f"{what}: version {version}; only version 3 is supported")
    identifier = _str(data, "id", what)
    if identifier not in ("SGX", "TDX"):
        raise UnsupportedEvidence(f"{what}: id {identifier!r}; expected 'SGX' or 'TDX'")
    tdx = identifier == "TDX"
    levels_raw = _list(data, "tcbLevels", what)
    if not levels_raw or len(levels_raw) > _MAX_LEVELS:
        raise MalformedEvidence(f"{what}: 1..{_MAX_LEVELS} tcbLevels expected")
    levels = tuple(_tcb_level(item, tdx) for item in levels_raw)
    module = None
    identities: tuple[TdxModuleIdentity, ...] = ()
    if tdx:
        if "tdxModule" in data:
            module = _module(_object(data["tdxModule"], what), "tdxModule", levels=False)
        if "tdxModuleIdentities" in data:
            identities = tuple(
                _module(_object(item, what), "tdxModuleIdentities", levels=True)
                for item in _list(data, "tdxModuleIdentities", what)
            )
    return TcbInfo(
        id=identifier,
        version=version,
        issue_date=_date(data, "issueDate", what),
        next_update=_date(data, "nextUpdate", what),
        fmspc=_hex(data.get("fmspc"), 6, f"{what}: fmspc"),
        pce_id=_hex(data.get("pceId"), 2, f"{what}: pceId"),
        tcb_type=_int(data, "tcbType", what),
        tcb_evaluation_data_number=_int(data, "tcbEvaluationDataNumber", what),
        tdx_module=module,
        tdx_module_identities=identities,
        tcb_levels=levels,
    )


def parse_qe_identity(signed: bytes) -> QeIdentity:
    what = "qe-identity"
    data = _object(_loads(signed, what), what)
    version = _int(data, "version", what)
    if version != 2:
        raise UnsupportedEvidence(f"{what}: version {version}; only version 2 is supported")
    identifier = _str(data, "id", what)
    if identifier not in ("QE", "TD_QE"):
        raise UnsupportedEvidence(f"{what}: id {identifier!r}; expected 'QE' or 'TD_QE'")
    levels = tuple(_qe_level(item, what, _QE_STATUSES) for item in _list(data, "tcbLevels", what))
    if not levels or len(levels) > _MAX_LEVELS:
        raise MalformedEvidence(f"{what}: 1..{_MAX_LEVELS} tcbLevels expected")
    return QeIdentity(
        id=identifier,
        version=version,
        issue_date=_date(data, "issueDate", what),
        next_update=_date(data, "nextUpdate", what),
        tcb_evaluation_data_number=_int(data, "tcbEvaluationDataNumber", what),
        misc_select=_hex(data.get("miscselect"), 4, f"{what}: miscselect"),
        misc_select_mask=_hex(data.get("miscselectMask"), 4, f"{what}: miscselectMask"),
        attributes=_hex(data.get("attributes"), 16, f"{what}: attributes"),
        attributes_mask=_hex(data.get("attributesMask"), 16, f"{what}: attributesMask"),
        mr_signer=_hex(data.get("mrsigner"), 32, f"{what}: mrsigner"),
        isv_prod_id=_int(data, "isvprodid", what),
        tcb_levels=levels,
    )


def _tcb_level(item: Any, tdx: bool) -> TcbLevel:
    what = "tcb-info: tcbLevels"
    level = _object(item, what)
    tcb = _object(level.get("tcb"), f"{what}: tcb")
    sgx = _components(tcb, "sgxtcbcomponents", what)
    tdx_components = _components(tcb, "tdxtcbcomponents", what) if tdx else None
    status = _str(level, "tcbStatus", what)
    if status not in TCB_STATUSES:
        raise MalformedEvidence(f"{what}: unknown tcbStatus {status[:40]!r}")
    return TcbLevel(
        sgx_components=sgx,
        pce_svn=_int(tcb, "pcesvn", what),
        tdx_components=tdx_components,
        tcb_date=_str(level, "tcbDate", what),
        tcb_status=status,
        advisory_ids=_advisories(level, what),
    )


def _components(tcb: dict[str, Any], key: str, what: str) -> tuple[int, ...]:
    items = _list(tcb, key, what)
    if len(items) != 16:
        raise MalformedEvidence(f"{what}: {key} must list 16 components")
    out = []
    for item in items:
        svn = _int(_object(item, what), "svn", what)
        if svn > 255:
            raise MalformedEvidence(f"{what}: {key} svn {svn} is above 255")
        out.append(svn)
    return tuple(out)


def _qe_level(item: Any, what: str, statuses: tuple[str, ...]) -> QeTcbLevel:
    level = _object(item, what)
    tcb = _object(level.get("tcb"), f"{what}: tcb")
    status = _str(level, "tcbStatus", what)
    if status not in statuses:
        raise MalformedEvidence(f"{what}: unknown tcbStatus {status[:40]!r}")
    return QeTcbLevel(
        isv_svn=_int(tcb, "isvsvn", what),
        tcb_date=_str(level, "tcbDate", what),
        tcb_status=status,
        advisory_ids=_advisories(level, what),
    )


def _module(data: dict[str, Any], what: str, *, levels: bool) -> TdxModuleIdentity:
    return TdxModuleIdentity(
        id=_str(data, "id", what) if levels else "TDX_00",
        mr_signer=_hex(data.get("mrsigner"), 48, f"{what}: mrsigner"),
        attributes=_hex(data.get("attributes"), 8, f"{what}: attributes"),
        attributes_mask=_hex(data.get("attributesMask"), 8, f"{what}: attributesMask"),
        tcb_levels=tuple(
            _qe_level(item, f"tcb-info: {what}", _QE_STATUSES)
            for item in _list(data, "tcbLevels", what)
        )
        if levels
        else (),
    )


def _advisories(level: dict[str, Any], what: str) -> tuple[str, ...]:
    if "advisoryIDs" not in level:
        return ()
    items = _list(level, "advisoryIDs", what)
    if not all(isinstance(item, str) and 0 < len(item) <= 64 for item in items):
        raise MalformedEvidence(f"{what}: advisoryIDs must be short strings")
    return tuple(items)


def _loads(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise MalformedEvidence(f"{what}: not valid JSON") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedEvidence(f"{what}: expected a JSON object")
    return value


def _list(data: dict[str, Any], key: str, what: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise MalformedEvidence(f"{what}: {key!r} must be a list")
    return value


def _str(data: dict[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise MalformedEvidence(f"{what}: {key!r} must be a string")
    return value


def _int(data: dict[str, Any], key: str, what: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFFFFFF:
        raise MalformedEvidence(f"{what}: {key!r} must be a non-negative integer")
    return value


def _date(data: dict[str, Any], key: str, what: str) -> datetime:
    text = _str(data, key, what)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEvidence(f"{what}: {key!r} is not an ISO 8601 date") from None
    if moment.tzinfo is None:
        raise MalformedEvidence(f"{what}: {key!r} has no time zone")
    return moment


_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]*")


def _hex(value: Any, size: int, what: str) -> bytes:
    # exactly hex digits: bytes.fromhex skips whitespace, and "FF FF FF" of the right length
    # became 3 bytes that broke a mask comparison later (issue #12)
    if not isinstance(value, str) or not _HEX_DIGITS.fullmatch(value) or len(value) != 2 * size:
        raise MalformedEvidence(f"{what}: expected {2 * size} hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise MalformedEvidence(f"{what}: not hexadecimal") from None


# --- dcap-qvl's QuoteCollateralV3 JSON -------------------------------------------------------


def endorsements_from_dcap_qvl_json(data: bytes) -> tuple[Endorsement, ...]:
    """The endorsements of a dcap-qvl ``QuoteCollateralV3`` JSON: one ``tcb-info`` and one
    ``qe-identity`` PCS body (the signed text verbatim), the PCK CRL and the Root CA CRL
    (``crl``, DER), and the issuer chains' certificates that are not self-signed
    (``certificate``, DER, deduplicated). Roots are never endorsements: they are pinned or
    configured. Raises MalformedEvidence."""
    what = "dcap-qvl collateral"
    collateral = _object(_loads(data, what), what)
    out: list[Endorsement] = []
    for member, body_member in (("tcb_info", "tcbInfo"), ("qe_identity", "enclaveIdentity")):
        signed = _str(collateral, member, what)
        signature = _hex(collateral.get(f"{member}_signature"), 64, f"{what}: {member}_signature")
        body = (
            '{"' + body_member + '":' + signed + ',"signature":"' + signature.hex() + '"}'
        ).encode("utf-8")
        kind = EndorsementKind.TCB_INFO if member == "tcb_info" else EndorsementKind.QE_IDENTITY
        out.append(Endorsement(kind, body))
    for member in ("pck_crl", "root_ca_crl"):
        value = collateral.get(member)
        if isinstance(value, list) and all(isinstance(b, int) for b in value):
            try:
                der = bytes(value)
            except ValueError:
                raise MalformedEvidence(f"{what}: {member} is not bytes") from None
        elif isinstance(value, str):
            try:
                der = bytes.fromhex(value)
            except ValueError:
                raise MalformedEvidence(f"{what}: {member} is not hexadecimal") from None
        else:
            raise MalformedEvidence(f"{what}: {member} must be hex DER")
        out.append(Endorsement(EndorsementKind.CRL, der))
    seen: set[bytes] = set()
    for member in ("tcb_info_issuer_chain", "qe_identity_issuer_chain", "pck_crl_issuer_chain"):
        pem = _str(collateral, member, what)
        try:
            certificates = x509.load_pem_x509_certificates(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise MalformedEvidence(f"{what}: {member} is not a PEM chain") from None
        for certificate in certificates:
            der = certificate.public_bytes(Encoding.DER)
            if certificate.issuer == certificate.subject or der in seen:
                continue
            seen.add(der)
            out.append(Endorsement(EndorsementKind.CERTIFICATE, der))
    return tuple(out)
