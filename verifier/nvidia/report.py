"""An NVIDIA attestation report: SPDM 1.1 GET_MEASUREMENTS request || MEASUREMENTS response,
parsed strictly, field by field, with the lengths the message gives.

::

    request  (37 bytes)  11 E0 Param1 Param2 | requester nonce (32) | slot id (1)
    response             11 60 Param1 Param2 | NumberOfBlocks (1) | RecordLength (3, LE)
                         | measurement record | responder nonce (32) | OpaqueLength (2, LE)
                         | opaque data (TLVs) | signature (96: raw ECDSA P-384 r || s)
                         | trailing bytes (unsigned: reported, never trusted)

The signature is located by parsing, not as "the last 96 bytes": real reports may carry bytes
after it. The signed bytes are request || response up to the signature; the signature is
over their SHA-384.

A measurement block is ``index (1) | MeasurementSpecification (1, DMTF = 1) | size (2, LE)
| DMTF value type (1) | value size (2, LE) | value``; the blocks must fill the record exactly
and their number must be NumberOfBlocks. The opaque data is a sequence of ``type (2, LE) |
length (2, LE) | value`` that must fill OpaqueLength exactly; each type at most once. The
fields read here: 3 driver version (ASCII), 6 VBIOS version (8 binary bytes on GPUs, printed
as bytes 3.2.1.0.4; ASCII on NVSwitches), 11 NVDEC0 status, 20 FWID (48 bytes), 35 chip
info (ASCII), 36 feature flag (0 SPT, 1 MPT, 2 PPCIE). Every other field is kept, uninterpreted;
15 chip SKU, 17 project and 18 project SKU (NUL-terminated ASCII, which name a GPU's VBIOS RIM
``NV_GPU_VBIOS_<project>_<project SKU>_<chip SKU>_<version>``) have lenient accessors that
the verifier never relies on.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from verifier.errors import EvidenceTooLarge, MalformedEvidence, UnsupportedEvidence

__all__ = [
    "MAX_REPORT_BYTES",
    "REQUEST_BYTES",
    "SIGNATURE_BYTES",
    "FeatureFlag",
    "MeasurementBlock",
    "NvdecStatus",
    "OpaqueField",
    "SpdmReport",
]

SPDM_VERSION_1_1 = 0x11
GET_MEASUREMENTS = 0xE0
MEASUREMENTS = 0x60
REQUEST_BYTES = 37
NONCE_BYTES = 32
SIGNATURE_BYTES = 96
FWID_BYTES = 48
#: A GPU's report is about 4 KB (64 blocks of 55 bytes and some 600 bytes of opaque data).
MAX_REPORT_BYTES = 16 * 1024
_DMTF_SPECIFICATION = 0x01
_ALL_BLOCKS = 0xFF
_SIGNATURE_REQUESTED = 0x01


class OpaqueField(enum.IntEnum):
    """The opaque data types this verifier reads (NVIDIA's OPAQUE_FIELD_ID_*)."""

    DRIVER_VERSION = 3
    VBIOS_VERSION = 6
    NVDEC0_STATUS = 11
    CHIP_SKU = 15
    CHIP_SKU_MOD = 16
    PROJECT = 17
    PROJECT_SKU = 18
    PROJECT_SKU_MOD = 19
    FWID = 20
    PROTECTED_PCIE_STATUS = 21
    OPAQUE_DATA_VERSION = 34
    CHIP_INFO = 35
    FEATURE_FLAG = 36


class FeatureFlag(enum.StrEnum):
    """The confidential-computing mode the GPU reports (opaque field 36): single-GPU
    passthrough, multi-GPU passthrough, or protected PCIe."""

    SPT = "SPT"
    MPT = "MPT"
    PPCIE = "PPCIE"


_FEATURE_FLAGS = {0: FeatureFlag.SPT, 1: FeatureFlag.MPT, 2: FeatureFlag.PPCIE}


class NvdecStatus(enum.Enum):
    ENABLED = 0xAA
    DISABLED = 0x55


@dataclass(frozen=True, slots=True)
class MeasurementBlock:
    """One DMTF measurement block. ``index`` is the block's own (1-based on NVIDIA devices:
    RIM index i is block i + 1)."""

    index: int
    value_type: int
    value: bytes


@dataclass(frozen=True, slots=True, eq=False)
class SpdmReport:
    """A parsed report; nothing in it is verified yet."""

    raw: bytes
    request_param1: int
    request_param2: int
    requester_nonce: bytes
    slot_id: int
    response_param1: int
    response_param2: int
    blocks: tuple[MeasurementBlock, ...]
    #: The measurement record as it is in the report (for its digest in the claims).
    record: bytes
    responder_nonce: bytes
    #: type -> value, in the report's order.
    opaque: Mapping[int, bytes]
    signature: bytes
    #: Where the signature starts: the signed bytes are ``raw[:signature_offset]``.
    signature_offset: int
    trailing: bytes
    driver_version: str | None
    vbios_version: str | None
    fwid: bytes | None
    chip_info: str | None
    feature_flag: FeatureFlag | None
    nvdec0_status: NvdecStatus | None

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[: self.signature_offset]

    @property
    def signature_r(self) -> int:
        return int.from_bytes(self.signature[:48], "big")

    @property
    def signature_s(self) -> int:
        return int.from_bytes(self.signature[48:], "big")

    def block(self, index: int) -> MeasurementBlock | None:
        for block in self.blocks:
            if block.index == index:
                return block
        return None  # (64 blocks at most: a scan is cheaper than building a map per report)

    def opaque_text(self, field: int) -> str | None:
        """An opaque field as NUL-terminated printable ASCII, stripped; None when the report
        has no such field or it is not readable text (lenient: for naming, never judging)."""
        value = self.opaque.get(field)
        if value is None:
            return None
        text = value.split(b"\x00", 1)[0].strip()
        if not text or not text.isascii() or not text.decode("ascii").isprintable():
            return None
        return text.decode("ascii")

    @property
    def project(self) -> str | None:
        """Opaque field 17 (NVIDIA's OPAQUE_FIELD_ID_PROJECT, e.g. ``1010``)."""
        return self.opaque_text(OpaqueField.PROJECT)

    @property
    def project_sku(self) -> str | None:
        """Opaque field 18 (OPAQUE_FIELD_ID_PROJECT_SKU, e.g. ``0200``)."""
        return self.opaque_text(OpaqueField.PROJECT_SKU)

    @property
    def chip_sku(self) -> str | None:
        """Opaque field 15 (OPAQUE_FIELD_ID_CHIP_SKU, e.g. ``882``)."""
        return self.opaque_text(OpaqueField.CHIP_SKU)

    @property
    def sha256_of_blocks(self) -> str:
        return hashlib.sha256(self.record).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> SpdmReport:
        """Parse; raises MalformedEvidence, EvidenceTooLarge or UnsupportedEvidence."""
        if not isinstance(data, bytes):
            raise MalformedEvidence("nvidia report: expected bytes")
        if len(data) > MAX_REPORT_BYTES:
            raise EvidenceTooLarge(f"nvidia report: {len(data)} bytes, at most {MAX_REPORT_BYTES}")
        reader = _Reader(data)
        _header(reader, GET_MEASUREMENTS, "request")
        request_param1, request_param2 = reader.u8("request Param1"), reader.u8("request Param2")
        if not request_param1 & _SIGNATURE_REQUESTED:
            raise UnsupportedEvidence(
                "nvidia report: the request did not ask for a signature (Param1 bit 0 is 0): "
                "an unsigned report proves nothing"
            )
        if request_param2 != _ALL_BLOCKS:
            raise UnsupportedEvidence(
                f"nvidia report: the request asked for block 0x{request_param2:02x}; only "
                "reports of all blocks (0xFF) are supported"
            )
        requester_nonce = reader.take(NONCE_BYTES, "requester nonce")
        slot_id = reader.u8("slot id")
        if slot_id & 0xF0:
            raise MalformedEvidence(f"nvidia report: slot id 0x{slot_id:02x} is not 0..15")
        _header(reader, MEASUREMENTS, "response")
        response_param1, response_param2 = (
            reader.u8("response Param1"),
            reader.u8("response Param2"),
        )
        count = reader.u8("NumberOfBlocks")
        record_length = int.from_bytes(reader.take(3, "MeasurementRecordLength"), "little")
        record = reader.take(record_length, "measurement record")
        blocks = _blocks(record, count)
        responder_nonce = reader.take(NONCE_BYTES, "responder nonce")
        opaque_length = reader.u16("OpaqueLength")
        opaque = _opaque(reader.take(opaque_length, "opaque data"))
        signature_offset = reader.offset
        signature = reader.take(SIGNATURE_BYTES, "signature")
        trailing = data[reader.offset :]
        return cls(
            raw=data,
            request_param1=request_param1,
            request_param2=request_param2,
            requester_nonce=requester_nonce,
            slot_id=slot_id,
            response_param1=response_param1,
            response_param2=response_param2,
            blocks=blocks,
            record=record,
            responder_nonce=responder_nonce,
            opaque=MappingProxyType(opaque),
            signature=signature,
            signature_offset=signature_offset,
            trailing=trailing,
            driver_version=_text(opaque.get(OpaqueField.DRIVER_VERSION), "driver version"),
            vbios_version=_vbios_version(opaque.get(OpaqueField.VBIOS_VERSION)),
            fwid=_fwid(opaque.get(OpaqueField.FWID)),
            chip_info=_text(opaque.get(OpaqueField.CHIP_INFO), "chip info"),
            feature_flag=_feature_flag(opaque.get(OpaqueField.FEATURE_FLAG)),
            nvdec0_status=_nvdec(opaque.get(OpaqueField.NVDEC0_STATUS)),
        )


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise MalformedEvidence(
                f"nvidia report: {what} needs {size} bytes at offset {self.offset}, "
                f"{len(self.data) - self.offset} remain"
            )
        out = self.data[self.offset : end]
        self.offset = end
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")


def _header(reader: _Reader, code: int, what: str) -> None:
    version, found = reader.u8(f"{what} SPDMVersion"), reader.u8(f"{what} code")
    if found != code:
        raise MalformedEvidence(f"nvidia report: {what} code 0x{found:02x}, expected 0x{code:02x}")
    if version != SPDM_VERSION_1_1:
        raise UnsupportedEvidence(
            f"nvidia report: {what} SPDM version 0x{version:02x}; only 1.1 (0x11) is supported"
        )


def _blocks(record: bytes, count: int) -> tuple[MeasurementBlock, ...]:
    """The DMTF blocks filling ``record`` exactly (read by slicing: this is the hot loop)."""
    blocks: list[MeasurementBlock] = []
    seen: set[int] = set()
    offset, length = 0, len(record)
    while offset < length:
        if offset + 4 > length:
            raise MalformedEvidence(f"nvidia report: block header truncated at offset {offset}")
        index, specification = record[offset], record[offset + 1]
        size = int.from_bytes(record[offset + 2 : offset + 4], "little")
        end = offset + 4 + size
        if end > length:
            raise MalformedEvidence(
                f"nvidia report: block {index} needs {size} bytes, {length - offset - 4} remain"
            )
        if specification != _DMTF_SPECIFICATION:
            raise UnsupportedEvidence(
                f"nvidia report: block {index} has MeasurementSpecification "
                f"0x{specification:02x}; only DMTF (0x01) is supported"
            )
        if size < 3:
            raise MalformedEvidence(f"nvidia report: block {index} is too short for DMTF")
        value_type = record[offset + 4]
        value_size = int.from_bytes(record[offset + 5 : offset + 7], "little")
        if value_size + 3 != size:
            raise MalformedEvidence(
                f"nvidia report: block {index} is {size} bytes, its DMTF value says "
                f"{value_size} + 3"
            )
        if index in seen or index == 0:
            raise MalformedEvidence(f"nvidia report: block index {index} is 0 or repeated")
        seen.add(index)
        blocks.append(MeasurementBlock(index, value_type, record[offset + 7 : end]))
        offset = end
    if len(blocks) != count:
        raise MalformedEvidence(
            f"nvidia report: NumberOfBlocks is {count}, the record holds {len(blocks)}"
        )
    return tuple(blocks)


def _opaque(data: bytes) -> dict[int, bytes]:
    reader = _Reader(data)
    out: dict[int, bytes] = {}
    while reader.offset < len(data):
        kind = reader.u16("opaque field type")
        length = reader.u16(f"opaque field {kind} length")
        value = reader.take(length, f"opaque field {kind}")
        if kind in out:
            raise MalformedEvidence(f"nvidia report: opaque field {kind} appears twice")
        out[kind] = value
    return out


def _text(value: bytes | None, what: str) -> str | None:
    if value is None:
        return None
    text = value.split(b"\x00", 1)[0]
    try:
        decoded = text.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedEvidence(f"nvidia report: the {what} is not ASCII") from None
    if not decoded.isprintable():
        raise MalformedEvidence(f"nvidia report: the {what} has unprintable characters")
    return decoded


def _vbios_version(value: bytes | None) -> str | None:
    """8 binary bytes on GPUs (bytes 3.2.1.0.4 in lowercase hex, as NVIDIA prints them);
    ASCII on NVSwitches (lowercased, to compare with policies and RIMs alike)."""
    if value is None:
        return None
    if len(value) == 8:
        return ".".join(f"{value[i]:02x}" for i in (3, 2, 1, 0, 4))
    text = _text(value, "VBIOS version")
    return None if text is None else text.lower()


def _fwid(value: bytes | None) -> bytes | None:
    if value is None:
        return None
    if len(value) != FWID_BYTES:
        raise MalformedEvidence(
            f"nvidia report: FWID field is {len(value)} bytes, expected {FWID_BYTES}"
        )
    return value


def _feature_flag(value: bytes | None) -> FeatureFlag | None:
    if value is None:
        return None
    if not 1 <= len(value) <= 4:
        raise MalformedEvidence(f"nvidia report: feature flag field is {len(value)} bytes")
    number = int.from_bytes(value, "little")
    flag = _FEATURE_FLAGS.get(number)
    if flag is None:
        raise UnsupportedEvidence(
            f"nvidia report: feature flag {number} is none of SPT (0), MPT (1), PPCIE (2)"
        )
    return flag


def _nvdec(value: bytes | None) -> NvdecStatus | None:
    if value is None:
        return None
    if len(value) != 1 or value[0] not in (0xAA, 0x55):
        raise MalformedEvidence(
            f"nvidia report: NVDEC0 status {value.hex()[:8]}, expected aa or 55"
        )
    return NvdecStatus(value[0])
