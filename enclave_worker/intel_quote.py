"""Intel DCAP ECDSA quotes (SGX v3, TDX v4 and v5), written here from Intel's layout (Intel
SGX ECDSA Quote Library API, appendix A; TDX DCAP Quoting Library API, A.3 and A.4) and
checked against the real quotes of ../shared/fixtures/tdx, independently of the verifier.

Little-endian integers throughout; signatures are raw P-256 ``r || s`` (32 bytes each,
big-endian) and the attestation key raw ``X || Y``.

* Header, 48 bytes: version u16, attestation key type u16 (2 = ECDSA-256 with P-256), TEE
  type u32 (0x00 SGX, 0x81 TDX), QE SVN u16 and PCE SVN u16 (v3; reserved zero in v4 and
  v5), QE vendor id 16, user data 20.
* v5 only: body type u16 (2 = TD report 1.0, 3 = TD report 1.5) and body size u32.
* Body: the SGX report body (384 bytes, :class:`SgxReportBody`) or a TD report
  (:class:`TdReport`, 584 bytes, 648 for TDX 1.5).
* Signature data length u32, then signature data: quote signature 64 (over every byte before
  the length), attestation key 64; for v4 and v5 certification data type 6 (u16) and size
  (u32) wrapping the rest; the QE report (an SGX report body, 384), its signature by the PCK
  key 64, QE authentication data (u16 size and bytes), certification data type 5 (u16), size
  (u32) and the PCK chain as concatenated PEM (leaf, CA, root) ended by one NUL byte.

:func:`parse_quote` reads one back (for tests and display; it checks lengths, nothing else).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = [
    "ATT_KEY_TYPE_ECDSA_P256",
    "BODY_TYPE_TD_REPORT_10",
    "BODY_TYPE_TD_REPORT_15",
    "CERT_DATA_PCK_CHAIN",
    "CERT_DATA_QE_REPORT",
    "HEADER_SIZE",
    "QE_VENDOR_ID",
    "SGX_ATTRIBUTE_DEBUG",
    "SGX_REPORT_BODY_SIZE",
    "TD_ATTRIBUTE_DEBUG",
    "TD_REPORT_10_SIZE",
    "TD_REPORT_15_SIZE",
    "TEE_TYPE_SGX",
    "TEE_TYPE_TDX",
    "ParsedQuote",
    "QuoteHeader",
    "SgxReportBody",
    "TdReport",
    "assemble_quote",
    "parse_quote",
    "raw_public_key",
    "raw_signature",
]

HEADER_SIZE: Final = 48
SGX_REPORT_BODY_SIZE: Final = 384
TD_REPORT_10_SIZE: Final = 584
TD_REPORT_15_SIZE: Final = 648
ATT_KEY_TYPE_ECDSA_P256: Final = 2
TEE_TYPE_SGX: Final = 0x00
TEE_TYPE_TDX: Final = 0x81
BODY_TYPE_TD_REPORT_10: Final = 2
BODY_TYPE_TD_REPORT_15: Final = 3
CERT_DATA_PCK_CHAIN: Final = 5
CERT_DATA_QE_REPORT: Final = 6
#: Intel's quoting enclaves' vendor id (the same in every real quote).
QE_VENDOR_ID: Final = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
#: SGX ATTRIBUTES.FLAGS bit 1; TD attributes bit 0 (TUD.DEBUG).
SGX_ATTRIBUTE_DEBUG: Final = 1 << 1
TD_ATTRIBUTE_DEBUG: Final = 1 << 0
_QUOTE_VERSIONS: Final = {3: TEE_TYPE_SGX, 4: TEE_TYPE_TDX, 5: TEE_TYPE_TDX}


def _sized(name: str, value: bytes, size: int) -> bytes:
    if len(value) != size:
        raise ValueError(f"{name} is {size} bytes, not {len(value)}")
    return value


@dataclass(frozen=True)
class QuoteHeader:
    version: int
    tee_type: int
    qe_svn: int = 0
    pce_svn: int = 0
    user_data: bytes = bytes(20)
    att_key_type: int = ATT_KEY_TYPE_ECDSA_P256
    qe_vendor_id: bytes = QE_VENDOR_ID

    def to_bytes(self) -> bytes:
        return struct.pack(
            "<HHIHH16s20s",
            self.version,
            self.att_key_type,
            self.tee_type,
            self.qe_svn,
            self.pce_svn,
            _sized("qe_vendor_id", self.qe_vendor_id, 16),
            _sized("user_data", self.user_data, 20),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> QuoteHeader:
        version, key_type, tee_type, qe_svn, pce_svn, vendor, user_data = struct.unpack(
            "<HHIHH16s20s", _sized("header", data, HEADER_SIZE)
        )
        return cls(version, tee_type, qe_svn, pce_svn, user_data, key_type, vendor)


#: The SGX report body: (field, offset, size); the gaps are reserved (zero).
SGX_REPORT_LAYOUT: Final = (
    ("cpu_svn", 0, 16),
    ("misc_select", 16, 4),
    ("isv_ext_prod_id", 32, 16),
    ("attributes", 48, 16),
    ("mr_enclave", 64, 32),
    ("mr_signer", 128, 32),
    ("config_id", 192, 64),
    ("isv_prod_id", 256, 2),
    ("isv_svn", 258, 2),
    ("config_svn", 260, 2),
    ("isv_family_id", 304, 16),
    ("report_data", 320, 64),
)


@dataclass(frozen=True)
class SgxReportBody:
    """An enclave's report body: the SGX quote's body and every quote's QE report."""

    mr_enclave: bytes
    mr_signer: bytes
    report_data: bytes
    #: flags (u64) then xfrm (u64), little-endian.
    attributes: bytes = bytes.fromhex("0500000000000000e700000000000000")
    cpu_svn: bytes = bytes(16)
    misc_select: int = 0
    isv_prod_id: int = 0
    isv_svn: int = 0
    config_svn: int = 0
    isv_ext_prod_id: bytes = bytes(16)
    config_id: bytes = bytes(64)
    isv_family_id: bytes = bytes(16)

    def to_bytes(self) -> bytes:
        body = bytearray(SGX_REPORT_BODY_SIZE)
        values = {
            "cpu_svn": _sized("cpu_svn", self.cpu_svn, 16),
            "misc_select": struct.pack("<I", self.misc_select),
            "isv_ext_prod_id": _sized("isv_ext_prod_id", self.isv_ext_prod_id, 16),
            "attributes": _sized("attributes", self.attributes, 16),
            "mr_enclave": _sized("mr_enclave", self.mr_enclave, 32),
            "mr_signer": _sized("mr_signer", self.mr_signer, 32),
            "config_id": _sized("config_id", self.config_id, 64),
            "isv_prod_id": struct.pack("<H", self.isv_prod_id),
            "isv_svn": struct.pack("<H", self.isv_svn),
            "config_svn": struct.pack("<H", self.config_svn),
            "isv_family_id": _sized("isv_family_id", self.isv_family_id, 16),
            "report_data": _sized("report_data", self.report_data, 64),
        }
        for name, offset, size in SGX_REPORT_LAYOUT:
            body[offset : offset + size] = values[name]
        return bytes(body)

    @classmethod
    def from_bytes(cls, data: bytes) -> SgxReportBody:
        _sized("SGX report body", data, SGX_REPORT_BODY_SIZE)
        raw = {name: data[offset : offset + size] for name, offset, size in SGX_REPORT_LAYOUT}
        return cls(
            mr_enclave=raw["mr_enclave"],
            mr_signer=raw["mr_signer"],
            report_data=raw["report_data"],
            attributes=raw["attributes"],
            cpu_svn=raw["cpu_svn"],
            misc_select=int.from_bytes(raw["misc_select"], "little"),
            isv_prod_id=int.from_bytes(raw["isv_prod_id"], "little"),
            isv_svn=int.from_bytes(raw["isv_svn"], "little"),
            config_svn=int.from_bytes(raw["config_svn"], "little"),
            isv_ext_prod_id=raw["isv_ext_prod_id"],
            config_id=raw["config_id"],
            isv_family_id=raw["isv_family_id"],
        )

    @property
    def debug(self) -> bool:
        return bool(int.from_bytes(self.attributes[:8], "little") & SGX_ATTRIBUTE_DEBUG)


#: The TD report (TDX 1.0, then the two fields TDX 1.5 adds): (field, offset, size).
TD_REPORT_LAYOUT: Final = (
    ("tee_tcb_svn", 0, 16),
    ("mr_seam", 16, 48),
    ("mr_signer_seam", 64, 48),
    ("seam_attributes", 112, 8),
    ("td_attributes", 120, 8),
    ("xfam", 128, 8),
    ("mr_td", 136, 48),
    ("mr_config_id", 184, 48),
    ("mr_owner", 232, 48),
    ("mr_owner_config", 280, 48),
    ("rtmr0", 328, 48),
    ("rtmr1", 376, 48),
    ("rtmr2", 424, 48),
    ("rtmr3", 472, 48),
    ("report_data", 520, 64),
    ("tee_tcb_svn2", 584, 16),
    ("mr_service_td", 600, 48),
)


@dataclass(frozen=True)
class TdReport:
    """A TD's report body; ``tdx15`` adds TEE_TCB_SVN2 and MRSERVICETD (648 bytes)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_td: bytes
    report_data: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes] = (bytes(48), bytes(48), bytes(48), bytes(48))
    td_attributes: int = 0
    xfam: int = 0
    mr_signer_seam: bytes = bytes(48)
    seam_attributes: int = 0
    mr_config_id: bytes = bytes(48)
    mr_owner: bytes = bytes(48)
    mr_owner_config: bytes = bytes(48)
    tdx15: bool = False
    tee_tcb_svn2: bytes = bytes(16)
    mr_service_td: bytes = bytes(48)

    @property
    def size(self) -> int:
        return TD_REPORT_15_SIZE if self.tdx15 else TD_REPORT_10_SIZE

    @property
    def debug(self) -> bool:
        return bool(self.td_attributes & TD_ATTRIBUTE_DEBUG)

    def to_bytes(self) -> bytes:
        if len(self.rtmrs) != 4:
            raise ValueError(f"a TD has 4 RTMRs, not {len(self.rtmrs)}")
        values = {
            "tee_tcb_svn": _sized("tee_tcb_svn", self.tee_tcb_svn, 16),
            "mr_seam": _sized("mr_seam", self.mr_seam, 48),
            "mr_signer_seam": _sized("mr_signer_seam", self.mr_signer_seam, 48),
            "seam_attributes": struct.pack("<Q", self.seam_attributes),
            "td_attributes": struct.pack("<Q", self.td_attributes),
            "xfam": struct.pack("<Q", self.xfam),
            "mr_td": _sized("mr_td", self.mr_td, 48),
            "mr_config_id": _sized("mr_config_id", self.mr_config_id, 48),
            "mr_owner": _sized("mr_owner", self.mr_owner, 48),
            "mr_owner_config": _sized("mr_owner_config", self.mr_owner_config, 48),
            **{f"rtmr{n}": _sized(f"rtmr{n}", rtmr, 48) for n, rtmr in enumerate(self.rtmrs)},
            "report_data": _sized("report_data", self.report_data, 64),
            "tee_tcb_svn2": _sized("tee_tcb_svn2", self.tee_tcb_svn2, 16),
            "mr_service_td": _sized("mr_service_td", self.mr_service_td, 48),
        }
        body = bytearray(self.size)
        for name, offset, size in TD_REPORT_LAYOUT:
            if offset + size <= self.size:
                body[offset : offset + size] = values[name]
        return bytes(body)

    @classmethod
    def from_bytes(cls, data: bytes) -> TdReport:
        if len(data) not in (TD_REPORT_10_SIZE, TD_REPORT_15_SIZE):
            raise ValueError(f"a TD report is 584 or 648 bytes, not {len(data)}")
        raw = {
            name: data[offset : offset + size]
            for name, offset, size in TD_REPORT_LAYOUT
            if offset + size <= len(data)
        }

        def number(name: str) -> int:
            return int.from_bytes(raw[name], "little")

        tdx15 = len(data) == TD_REPORT_15_SIZE
        return cls(
            tee_tcb_svn=raw["tee_tcb_svn"],
            mr_seam=raw["mr_seam"],
            mr_td=raw["mr_td"],
            report_data=raw["report_data"],
            rtmrs=(raw["rtmr0"], raw["rtmr1"], raw["rtmr2"], raw["rtmr3"]),
            td_attributes=number("td_attributes"),
            xfam=number("xfam"),
            mr_signer_seam=raw["mr_signer_seam"],
            seam_attributes=number("seam_attributes"),
            mr_config_id=raw["mr_config_id"],
            mr_owner=raw["mr_owner"],
            mr_owner_config=raw["mr_owner_config"],
            tdx15=tdx15,
            tee_tcb_svn2=raw["tee_tcb_svn2"] if tdx15 else bytes(16),
            mr_service_td=raw["mr_service_td"] if tdx15 else bytes(48),
        )


def raw_signature(signature: bytes) -> bytes:
    """A DER ECDSA P-256 signature as Intel writes it: ``r || s``, 32 bytes each."""
    r, s = decode_dss_signature(signature)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def raw_public_key(key: ec.EllipticCurvePublicKey) -> bytes:
    """A P-256 public key as Intel writes it: ``X || Y``, 32 bytes each."""
    numbers = key.public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256 with SHA-256, deterministic (RFC 6979): the same key over the same bytes
    gives the same signature, so simulated quotes are reproducible."""
    return raw_signature(key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)))


def assemble_quote(
    header: QuoteHeader,
    body: SgxReportBody | TdReport,
    *,
    attestation_key: ec.EllipticCurvePrivateKey,
    qe_report: bytes,
    qe_report_signature: bytes,
    qe_auth_data: bytes,
    pck_chain_pem: bytes,
    body_descriptor: bool | None = None,
) -> bytes:
    """The whole quote, signed by ``attestation_key``.

    ``qe_report`` (384 bytes) and its ``qe_report_signature`` (64 bytes, ``r || s`` by the
    PCK key) come from the quoting enclave; ``pck_chain_pem`` is the concatenated PEM chain
    (the NUL terminator is added here). ``body_descriptor``: write v5's body type and size
    (by default when ``header.version`` is 5).
    """
    expected_tee = _QUOTE_VERSIONS.get(header.version)
    if expected_tee is None:
        raise ValueError(f"quote version {header.version} is not 3, 4 or 5")
    if header.tee_type != expected_tee:
        raise ValueError(f"a version {header.version} quote has TEE type {expected_tee:#x}")
    if isinstance(body, TdReport) != (header.tee_type == TEE_TYPE_TDX):
        raise ValueError("a TDX quote carries a TD report, an SGX quote an SGX report body")
    if isinstance(body, TdReport) and body.tdx15 and header.version != 5:
        raise ValueError("a TD report 1.5 travels in a version 5 quote")
    _sized("qe_report", qe_report, SGX_REPORT_BODY_SIZE)
    _sized("qe_report_signature", qe_report_signature, 64)
    if len(qe_auth_data) > 0xFFFF:
        raise ValueError("QE authentication data is at most 65535 bytes")
    if b"\0" in pck_chain_pem:
        raise ValueError("the PEM chain must not contain NUL (its terminator is added here)")
    descriptor = header.version == 5 if body_descriptor is None else body_descriptor
    body_bytes = body.to_bytes()
    signed = header.to_bytes()
    if descriptor:
        body_type = (
            BODY_TYPE_TD_REPORT_15
            if isinstance(body, TdReport) and body.tdx15
            else BODY_TYPE_TD_REPORT_10
        )
        signed += struct.pack("<HI", body_type, len(body_bytes))
    signed += body_bytes
    chain = pck_chain_pem + b"\0"
    qe_part = (
        qe_report
        + qe_report_signature
        + struct.pack("<H", len(qe_auth_data))
        + qe_auth_data
        + struct.pack("<HI", CERT_DATA_PCK_CHAIN, len(chain))
        + chain
    )
    if header.version >= 4:
        qe_part = struct.pack("<HI", CERT_DATA_QE_REPORT, len(qe_part)) + qe_part
    signature_data = (
        _sign(attestation_key, signed) + raw_public_key(attestation_key.public_key()) + qe_part
    )
    return signed + struct.pack("<I", len(signature_data)) + signature_data


@dataclass(frozen=True)
class ParsedQuote:
    """A quote taken apart (by its length fields: trailing bytes are ignored)."""

    header: QuoteHeader
    #: v5's (body type, body size), else None.
    body_descriptor: tuple[int, int] | None
    body: SgxReportBody | TdReport
    #: Every byte the quote signature covers.
    signed: bytes
    signature: bytes
    attestation_key: bytes
    qe_report: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    #: The PEM chain without its NUL terminator.
    pck_chain_pem: bytes
    #: Where the quote ends (the length of the quote without padding).
    size: int


def parse_quote(data: bytes) -> ParsedQuote:
    """Take a quote apart by its length fields (for tests and display; nothing is verified)."""
    header = QuoteHeader.from_bytes(data[:HEADER_SIZE])
    offset = HEADER_SIZE
    descriptor: tuple[int, int] | None = None
    if header.version == 5:
        descriptor = struct.unpack_from("<HI", data, offset)
        offset += 6
        body_size = descriptor[1]
    elif header.tee_type == TEE_TYPE_TDX:
        body_size = TD_REPORT_10_SIZE
    else:
        body_size = SGX_REPORT_BODY_SIZE
    raw_body = data[offset : offset + body_size]
    body: SgxReportBody | TdReport = (
        TdReport.from_bytes(raw_body)
        if header.tee_type == TEE_TYPE_TDX
        else SgxReportBody.from_bytes(raw_body)
    )
    offset += body_size
    signed = data[:offset]
    (length,) = struct.unpack_from("<I", data, offset)
    offset += 4
    signature_data = data[offset : offset + length]
    if len(signature_data) != length:
        raise ValueError(f"the signature data is {length} bytes but {len(signature_data)} follow")
    end = offset + length
    cursor = 128
    if header.version >= 4:
        kind, size = struct.unpack_from("<HI", signature_data, cursor)
        if kind != CERT_DATA_QE_REPORT or cursor + 6 + size != length:
            raise ValueError(f"certification data type {kind} of {size} bytes, not type 6")
        cursor += 6
    qe_report = signature_data[cursor : cursor + SGX_REPORT_BODY_SIZE]
    qe_signature = signature_data[cursor + 384 : cursor + 448]
    cursor += 448
    (auth_size,) = struct.unpack_from("<H", signature_data, cursor)
    qe_auth = signature_data[cursor + 2 : cursor + 2 + auth_size]
    cursor += 2 + auth_size
    kind, size = struct.unpack_from("<HI", signature_data, cursor)
    cursor += 6
    if kind != CERT_DATA_PCK_CHAIN or cursor + size != length:
        raise ValueError(f"certification data type {kind} of {size} bytes, not type 5")
    chain = signature_data[cursor:]
    if not chain.endswith(b"\0"):
        raise ValueError("the PEM chain is not NUL-terminated")
    return ParsedQuote(
        header=header,
        body_descriptor=descriptor,
        body=body,
        signed=signed,
        signature=signature_data[:64],
        attestation_key=signature_data[64:128],
        qe_report=qe_report,
        qe_report_signature=qe_signature,
        qe_auth_data=qe_auth,
        pck_chain_pem=chain[:-1],
        size=end,
    )
