"""Intel DCAP ECDSA quotes (SGX v3, TDX v4 and v5), parsed strictly by their length fields into
frozen, typed objects.

Layout (Intel SGX/TDX DCAP Quote Generation Library and Quote Verification Library API,
"Quote Format"), little-endian integers::

    header (48)    version u16 (3 SGX, 4 TDX, 5 TDX with a body descriptor)
                   att_key_type u16 (2: ECDSA-256 with P-256)   tee_type u32 (0 SGX, 0x81 TDX)
                   qe_svn u16, pce_svn u16 (v3; reserved in v4 and v5)
                   qe_vendor_id[16] (Intel's 939a7233f79c4ca9940a0db3957f0607)   user_data[20]
    v5 only        body_type u16 (2 TDX 1.0, 3 TDX 1.5) + body_size u32 (584 or 648)
    body           SGX enclave report (384) | TD report 1.0 (584) | TD report 1.5 (648)
    sig_data_len u32, then exactly that many bytes of signature data:
      quote signature (64, r||s big-endian)   attestation key (64, X||Y)
      v4/v5: certification data type u16 = 6 + size u32 wrapping all that follows
      QE report (384)   QE report signature (64)   QE auth data (u16 size + bytes)
      certification data type u16 = 5 + size u32: the PCK chain, concatenated PEM, NUL-ended

The quote signature covers every byte before ``sig_data_len``. Bytes after the signature data
are not signed: zeros there (a quote delivered in a zero-padded buffer) are allowed and
ignored, anything else is refused. Reserved bytes of the enclave reports must be zero.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from verifier.errors import EvidenceTooLarge, MalformedEvidence, UnsupportedEvidence

__all__ = [
    "ATT_KEY_ECDSA_P256",
    "INTEL_QE_VENDOR_ID",
    "MAX_QUOTE_BYTES",
    "EnclaveReport",
    "Quote",
    "QuoteHeader",
    "SignatureData",
    "TdReport",
    "TeeType",
    "parse_quote",
]

#: A quote is some 5 KB (the PCK chain is most of it); GCP pads to 8000 bytes.
MAX_QUOTE_BYTES = 64 * 1024
ATT_KEY_ECDSA_P256 = 2
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
HEADER_BYTES = 48
ENCLAVE_REPORT_BYTES = 384
TD_REPORT_10_BYTES = 584
TD_REPORT_15_BYTES = 648
_BODY_SIZES = {2: TD_REPORT_10_BYTES, 3: TD_REPORT_15_BYTES}
_CERT_DATA_QE_REPORT = 6
_CERT_DATA_PCK_CHAIN = 5
_HEADER = struct.Struct("<HHIHH16s20s")
#: Reserved ranges of an SGX REPORTBODY that must be zero.
_ENCLAVE_RESERVED = ((20, 32), (96, 128), (160, 192), (262, 304))


class TeeType(enum.IntEnum):
    SGX = 0x00000000
    TDX = 0x00000081


@dataclass(frozen=True, slots=True)
class QuoteHeader:
    version: int
    att_key_type: int
    tee_type: TeeType
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "att_key_type": self.att_key_type,
            "tee_type": f"0x{int(self.tee_type):08x}",
            "qe_svn": self.qe_svn,
            "pce_svn": self.pce_svn,
            "qe_vendor_id": self.qe_vendor_id.hex(),
            "user_data": self.user_data.hex(),
        }


@dataclass(frozen=True, slots=True)
class EnclaveReport:
    """An SGX REPORTBODY (384 bytes): the SGX quote's body, and every quote's QE report. The
    fields are read from ``raw`` (checked once, by :meth:`from_bytes`) when asked for."""

    raw: bytes

    @classmethod
    def from_bytes(cls, data: bytes, what: str) -> EnclaveReport:
        if len(data) != ENCLAVE_REPORT_BYTES:
            raise MalformedEvidence(f"{what}: expected {ENCLAVE_REPORT_BYTES} bytes")
        for start, end in _ENCLAVE_RESERVED:
            if any(data[start:end]):
                raise MalformedEvidence(f"{what}: reserved bytes {start}..{end - 1} are not zero")
        return cls(data)

    @property
    def cpu_svn(self) -> bytes:
        return self.raw[0:16]

    @property
    def misc_select(self) -> int:
        return int.from_bytes(self.raw[16:20], "little")

    @property
    def isv_ext_prod_id(self) -> bytes:
        return self.raw[32:48]

    @property
    def attributes(self) -> bytes:
        return self.raw[48:64]

    @property
    def mr_enclave(self) -> bytes:
        return self.raw[64:96]

    @property
    def mr_signer(self) -> bytes:
        return self.raw[128:160]

    @property
    def config_id(self) -> bytes:
        return self.raw[192:256]

    @property
    def isv_prod_id(self) -> int:
        return int.from_bytes(self.raw[256:258], "little")

    @property
    def isv_svn(self) -> int:
        return int.from_bytes(self.raw[258:260], "little")

    @property
    def config_svn(self) -> int:
        return int.from_bytes(self.raw[260:262], "little")

    @property
    def isv_family_id(self) -> bytes:
        return self.raw[304:320]

    @property
    def report_data(self) -> bytes:
        return self.raw[320:384]

    @property
    def flags(self) -> int:
        return int.from_bytes(self.raw[48:56], "little")

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.DEBUG (bit 1): the enclave's memory can be read by a debugger."""
        return bool(self.flags & 0x2)

    def to_dict(self) -> dict[str, object]:
        flags = self.flags
        return {
            "cpu_svn": self.cpu_svn.hex(),
            "misc_select": f"0x{self.misc_select:08x}",
            "isv_ext_prod_id": self.isv_ext_prod_id.hex(),
            "attributes": self.attributes.hex(),
            "attributes_flags": {
                "init": bool(flags & 0x1),
                "debug": self.debug,
                "mode64bit": bool(flags & 0x4),
                "provision_key": bool(flags & 0x10),
                "einittoken_key": bool(flags & 0x20),
                "kss": bool(flags & 0x80),
            },
            "mr_enclave": self.mr_enclave.hex(),
            "mr_signer": self.mr_signer.hex(),
            "config_id": self.config_id.hex(),
            "isv_prod_id": self.isv_prod_id,
            "isv_svn": self.isv_svn,
            "config_svn": self.config_svn,
            "isv_family_id": self.isv_family_id.hex(),
            "report_data": self.report_data.hex(),
        }


@dataclass(frozen=True, slots=True)
class TdReport:
    """A TD report body: TDX 1.0 (584 bytes) or 1.5 (648, adds TEE_TCB_SVN2 and MRSERVICETD).
    The fields are read from ``raw`` when asked for."""

    raw: bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> TdReport:
        if len(data) not in (TD_REPORT_10_BYTES, TD_REPORT_15_BYTES):
            raise MalformedEvidence("td report: expected 584 or 648 bytes")
        return cls(data)

    @property
    def tee_tcb_svn(self) -> bytes:
        return self.raw[0:16]

    @property
    def mr_seam(self) -> bytes:
        return self.raw[16:64]

    @property
    def mr_signer_seam(self) -> bytes:
        return self.raw[64:112]

    @property
    def seam_attributes(self) -> bytes:
        return self.raw[112:120]

    @property
    def td_attributes(self) -> bytes:
        return self.raw[120:128]

    @property
    def xfam(self) -> bytes:
        return self.raw[128:136]

    @property
    def mr_td(self) -> bytes:
        return self.raw[136:184]

    @property
    def mr_config_id(self) -> bytes:
        return self.raw[184:232]

    @property
    def mr_owner(self) -> bytes:
        return self.raw[232:280]

    @property
    def mr_owner_config(self) -> bytes:
        return self.raw[280:328]

    @property
    def rtmrs(self) -> tuple[bytes, bytes, bytes, bytes]:
        raw = self.raw
        return (raw[328:376], raw[376:424], raw[424:472], raw[472:520])

    @property
    def report_data(self) -> bytes:
        return self.raw[520:584]

    @property
    def tee_tcb_svn2(self) -> bytes | None:
        return self.raw[584:600] if len(self.raw) == TD_REPORT_15_BYTES else None

    @property
    def mr_service_td(self) -> bytes | None:
        return self.raw[600:648] if len(self.raw) == TD_REPORT_15_BYTES else None

    @property
    def td_attributes_value(self) -> int:
        return int.from_bytes(self.raw[120:128], "little")

    @property
    def debug(self) -> bool:
        """TDATTRIBUTES.DEBUG (bit 0): the host VMM can read and write the TD's state."""
        return bool(self.raw[120] & 0x1)

    @property
    def xfam_value(self) -> int:
        return int.from_bytes(self.xfam, "little")

    def to_dict(self) -> dict[str, object]:
        attributes = self.td_attributes_value
        return {
            "tdx_version": "1.5" if self.tee_tcb_svn2 is not None else "1.0",
            "tee_tcb_svn": self.tee_tcb_svn.hex(),
            "mr_seam": self.mr_seam.hex(),
            "mr_signer_seam": self.mr_signer_seam.hex(),
            "seam_attributes": self.seam_attributes.hex(),
            "td_attributes": self.td_attributes.hex(),
            "td_attributes_flags": {
                "debug": self.debug,
                "sept_ve_disable": bool(attributes >> 28 & 1),
                "pks": bool(attributes >> 30 & 1),
                "kl": bool(attributes >> 31 & 1),
                "perfmon": bool(attributes >> 63 & 1),
            },
            "xfam": self.xfam.hex(),
            "mr_td": self.mr_td.hex(),
            "mr_config_id": self.mr_config_id.hex(),
            "mr_owner": self.mr_owner.hex(),
            "mr_owner_config": self.mr_owner_config.hex(),
            "rtmr0": self.rtmrs[0].hex(),
            "rtmr1": self.rtmrs[1].hex(),
            "rtmr2": self.rtmrs[2].hex(),
            "rtmr3": self.rtmrs[3].hex(),
            "report_data": self.report_data.hex(),
            "tee_tcb_svn2": None if self.tee_tcb_svn2 is None else self.tee_tcb_svn2.hex(),
            "mr_service_td": None if self.mr_service_td is None else self.mr_service_td.hex(),
        }


@dataclass(frozen=True, slots=True)
class SignatureData:
    signature: bytes
    attestation_key: bytes
    qe_report: EnclaveReport
    qe_report_signature: bytes
    qe_auth_data: bytes
    #: The PCK chain as it came (concatenated PEM), without its NUL terminator.
    pck_chain_pem: bytes


@dataclass(frozen=True, slots=True)
class Quote:
    """A parsed DCAP quote. ``raw`` is the quote itself, without any trailing padding."""

    raw: bytes
    header: QuoteHeader
    body_type: int | None
    body: EnclaveReport | TdReport
    signed_bytes: bytes
    signature_data: SignatureData
    padding: int

    @property
    def is_tdx(self) -> bool:
        return self.header.tee_type is TeeType.TDX

    @property
    def report_data(self) -> bytes:
        return self.body.report_data


def parse_quote(data: bytes) -> Quote:
    """Parse ``data`` (a quote, possibly followed by zero padding). Raises MalformedEvidence,
    EvidenceTooLarge or UnsupportedEvidence."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedEvidence("quote: expected bytes")
    data = bytes(data)
    if len(data) > MAX_QUOTE_BYTES:
        raise EvidenceTooLarge(f"quote: at most {MAX_QUOTE_BYTES} bytes, found {len(data)}")
    if len(data) < HEADER_BYTES:
        raise MalformedEvidence(f"quote: {len(data)} bytes, shorter than its 48-byte header")
    version, key_type, tee, qe_svn, pce_svn, vendor, user_data = _HEADER.unpack_from(data)
    if version not in (3, 4, 5):
        raise UnsupportedEvidence(f"quote: version {version}; expected 3 (SGX), 4 or 5 (TDX)")
    if key_type != ATT_KEY_ECDSA_P256:
        raise UnsupportedEvidence(
            f"quote: attestation key type {key_type}; only 2 (ECDSA-256 with P-256) is supported"
        )
    try:
        tee_type = TeeType(tee)
    except ValueError:
        raise UnsupportedEvidence(
            f"quote: TEE type 0x{tee:08x}; expected 0 (SGX) or 0x81 (TDX)"
        ) from None
    if (tee_type is TeeType.SGX) != (version == 3):
        raise UnsupportedEvidence(
            f"quote: a version {version} quote with TEE type {tee_type.name}: SGX quotes are "
            "version 3, TDX quotes version 4 or 5"
        )
    if vendor != INTEL_QE_VENDOR_ID:
        raise UnsupportedEvidence(
            f"quote: QE vendor id {vendor.hex()}; only Intel's quoting enclave "
            f"({INTEL_QE_VENDOR_ID.hex()}) is supported"
        )
    header = QuoteHeader(version, key_type, tee_type, qe_svn, pce_svn, vendor, user_data)
    offset = HEADER_BYTES
    body_type: int | None = None
    if version == 5:
        _need(data, offset, 6, "body descriptor")
        body_type, body_size = struct.unpack_from("<HI", data, offset)
        expected = _BODY_SIZES.get(body_type)
        if expected is None:
            raise UnsupportedEvidence(
                f"quote: body type {body_type}; expected 2 (TDX 1.0) or 3 (TDX 1.5)"
            )
        if body_size != expected:
            raise MalformedEvidence(
                f"quote: body type {body_type} is {expected} bytes, the descriptor says {body_size}"
            )
        offset += 6
    else:
        body_size = ENCLAVE_REPORT_BYTES if version == 3 else TD_REPORT_10_BYTES
    _need(data, offset, body_size, "body")
    raw_body = data[offset : offset + body_size]
    body: EnclaveReport | TdReport = (
        EnclaveReport.from_bytes(raw_body, "enclave report")
        if version == 3
        else TdReport.from_bytes(raw_body)
    )
    offset += body_size
    signed_end = offset
    _need(data, offset, 4, "signature data length")
    (sig_len,) = struct.unpack_from("<I", data, offset)
    offset += 4
    _need(data, offset, sig_len, "signature data")
    signature_data = _signature_data(data[offset : offset + sig_len], wrapped=version != 3)
    end = offset + sig_len
    trailing = data[end:]
    if any(trailing):
        raise MalformedEvidence(
            f"quote: {len(trailing)} bytes follow the quote and are not all zero"
        )
    return Quote(
        raw=data[:end],
        header=header,
        body_type=body_type,
        body=body,
        signed_bytes=data[:signed_end],
        signature_data=signature_data,
        padding=len(trailing),
    )


def _need(data: bytes, offset: int, size: int, what: str) -> None:
    if offset + size > len(data):
        raise MalformedEvidence(
            f"quote: truncated in the {what} (needs {size} bytes at {offset}, "
            f"{max(len(data) - offset, 0)} left)"
        )


def _signature_data(data: bytes, *, wrapped: bool) -> SignatureData:
    # Fixed-size fields at fixed offsets; the two variable parts (QE auth data, PCK chain) by
    # their sizes. Every size must add up to exactly the bytes given.
    size = len(data)
    offset = 128
    if wrapped:
        _check(size, offset + 6, "certification data header")
        kind, inner = struct.unpack_from("<HI", data, offset)
        if kind != _CERT_DATA_QE_REPORT:
            raise UnsupportedEvidence(
                f"quote: certification data type {kind}; expected 6 (QE report certification data)"
            )
        offset += 6
        _check(size, offset + inner, "certification data")
        if offset + inner != size:
            raise MalformedEvidence(
                f"quote: {size - offset - inner} bytes left over at the end of the signature data"
            )
    _check(size, offset + ENCLAVE_REPORT_BYTES + 64 + 2, "QE report")
    qe_report = EnclaveReport.from_bytes(data[offset : offset + ENCLAVE_REPORT_BYTES], "QE report")
    offset += ENCLAVE_REPORT_BYTES
    qe_signature = data[offset : offset + 64]
    offset += 64
    (auth_size,) = struct.unpack_from("<H", data, offset)
    offset += 2
    _check(size, offset + auth_size + 6, "QE auth data")
    auth_data = data[offset : offset + auth_size]
    offset += auth_size
    kind, chain_size = struct.unpack_from("<HI", data, offset)
    if kind != _CERT_DATA_PCK_CHAIN:
        raise UnsupportedEvidence(
            f"quote: PCK certification data type {kind}; only 5 (PCK chain, PEM) is supported"
        )
    offset += 6
    _check(size, offset + chain_size, "PCK chain")
    chain = data[offset : offset + chain_size]
    if offset + chain_size != size:
        raise MalformedEvidence(
            f"quote: {size - offset - chain_size} bytes left over at the end of the "
            "certification data"
        )
    if chain.endswith(b"\x00"):
        chain = chain[:-1]
    return SignatureData(data[0:64], data[64:128], qe_report, qe_signature, auth_data, chain)


def _check(size: int, needed: int, field: str) -> None:
    if needed > size:
        raise MalformedEvidence(
            f"quote: the signature data is truncated in the {field} (needs {needed} bytes, "
            f"has {size})"
        )
