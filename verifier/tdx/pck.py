"""The Intel SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1): PPID, the TCB
(components 1..16, PCESVN, CPUSVN), PCE-ID, FMSPC and SGX type.

cryptography leaves the extension opaque (``UnrecognizedExtension``); its value is DER::

    SGXExtensions ::= SEQUENCE OF SEQUENCE { sgxExtensionId OBJECT IDENTIFIER, value ANY }
      .1 PPID OCTET STRING (16)      .2 TCB SEQUENCE OF SEQUENCE { .2.1-.2.16 INTEGER,
      .2.17 PCESVN INTEGER, .2.18 CPUSVN OCTET STRING (16) }      .3 PCE-ID OCTET STRING (2)
      .4 FMSPC OCTET STRING (6)      .5 SGX Type ENUMERATED      (.6, .7 platform CA only)

A small strict DER reader is enough here (definite lengths, minimal length encodings): the
values are integers, octet strings and OIDs, and a wrong shape is a ChainInvalid of the PCK
certificate, never an exception of another type.
"""

from __future__ import annotations

from dataclasses import dataclass

from verifier.errors import ChainInvalid

__all__ = ["SGX_EXTENSIONS_OID", "PckExtension", "parse_pck_extension"]

SGX_EXTENSIONS_OID = "1.2.840.113741.1.13.1"
_TAG_INTEGER = 0x02
_TAG_OCTET_STRING = 0x04
_TAG_OID = 0x06
_TAG_ENUMERATED = 0x0A
_TAG_SEQUENCE = 0x30


@dataclass(frozen=True, slots=True)
class PckExtension:
    ppid: bytes
    #: SGX TCB components 1..16 (CPUSVN components as the PCK certificate certifies them).
    tcb_components: tuple[int, ...]
    pce_svn: int
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int

    def to_dict(self) -> dict[str, object]:
        return {
            "fmspc": self.fmspc.hex().upper(),
            "pce_id": self.pce_id.hex().upper(),
            "pce_svn": self.pce_svn,
            "cpu_svn": self.cpu_svn.hex(),
            "tcb_components": list(self.tcb_components),
            "sgx_type": {0: "Standard", 1: "Scalable", 2: "ScalableWithIntegrity"}.get(
                self.sgx_type, str(self.sgx_type)
            ),
        }


def parse_pck_extension(value: bytes) -> PckExtension:
    """Parse the DER value of the SGX extension; raises ChainInvalid."""
    entries = _entries(value, "sgx extensions")
    ppid = _octets(_one(entries, "1"), 16, "PPID")
    tcb = _entries(_sequence_body(_one(entries, "2"), "TCB"), "TCB", body=True)
    components = tuple(
        _integer(_one(tcb, f"2.{n}"), f"TCB component {n}", 255) for n in range(1, 17)
    )
    pce_svn = _integer(_one(tcb, "2.17"), "PCESVN", 0xFFFF)
    cpu_svn = _octets(_one(tcb, "2.18"), 16, "CPUSVN")
    pce_id = _octets(_one(entries, "3"), 2, "PCE-ID")
    fmspc = _octets(_one(entries, "4"), 6, "FMSPC")
    sgx_type = _enumerated(_one(entries, "5"), "SGX type")
    return PckExtension(ppid, components, pce_svn, cpu_svn, pce_id, fmspc, sgx_type)


def _fail(what: str) -> ChainInvalid:
    return ChainInvalid(f"pck certificate: SGX extension: {what}")


def _tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, value, next offset) of the TLV at ``offset``."""
    if offset + 2 > len(data):
        raise _fail("truncated")
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 3 or offset + count > len(data):
            raise _fail("bad length")
        length = int.from_bytes(data[offset : offset + count], "big")
        if length < 0x80 or data[offset] == 0:
            raise _fail("length not minimally encoded")
        offset += count
    if offset + length > len(data):
        raise _fail("truncated")
    return tag, data[offset : offset + length], offset + length


def _sequence_body(tlv: tuple[int, bytes], what: str) -> bytes:
    tag, value = tlv
    if tag != _TAG_SEQUENCE:
        raise _fail(f"{what}: expected a SEQUENCE")
    return value


def _entries(data: bytes, what: str, *, body: bool = False) -> dict[str, tuple[int, bytes]]:
    """The (relative OID -> (tag, value)) entries of a SEQUENCE OF SEQUENCE { OID, value }."""
    if not body:
        tag, content, end = _tlv(data, 0)
        if tag != _TAG_SEQUENCE or end != len(data):
            raise _fail(f"{what}: expected one SEQUENCE")
        data = content
    out: dict[str, tuple[int, bytes]] = {}
    offset = 0
    while offset < len(data):
        tag, entry, offset = _tlv(data, offset)
        if tag != _TAG_SEQUENCE:
            raise _fail(f"{what}: expected SEQUENCE entries")
        oid_tag, oid, inner = _tlv(entry, 0)
        if oid_tag != _TAG_OID:
            raise _fail(f"{what}: an entry does not start with an OID")
        value_tag, value, inner = _tlv(entry, inner)
        if inner != len(entry):
            raise _fail(f"{what}: an entry has extra content")
        name = _oid(oid)
        prefix = SGX_EXTENSIONS_OID + "."
        if not name.startswith(prefix):
            raise _fail(f"{what}: unexpected OID {name}")
        key = name[len(prefix) :]
        if key in out:
            raise _fail(f"{what}: OID {name} repeated")
        out[key] = (value_tag, value)
    return out


def _oid(data: bytes) -> str:
    if not data or data[-1] & 0x80:
        raise _fail("bad OID")
    parts: list[int] = []
    value = 0
    for byte in data:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    first = parts[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(p) for p in head + parts[1:])


def _one(entries: dict[str, tuple[int, bytes]], key: str) -> tuple[int, bytes]:
    entry = entries.get(key)
    if entry is None:
        raise _fail(f"{SGX_EXTENSIONS_OID}.{key} is missing")
    return entry


def _octets(entry: tuple[int, bytes], size: int, what: str) -> bytes:
    tag, value = entry
    if tag != _TAG_OCTET_STRING or len(value) != size:
        raise _fail(f"{what}: expected an OCTET STRING of {size} bytes")
    return value


def _integer(entry: tuple[int, bytes], what: str, maximum: int) -> int:
    tag, value = entry
    if tag != _TAG_INTEGER or not value or len(value) > 3:
        raise _fail(f"{what}: expected a small INTEGER")
    number = int.from_bytes(value, "big", signed=True)
    if not 0 <= number <= maximum:
        raise _fail(f"{what}: {number} is outside 0..{maximum}")
    return number


def _enumerated(entry: tuple[int, bytes], what: str) -> int:
    tag, value = entry
    if tag != _TAG_ENUMERATED or not value or len(value) > 2:
        raise _fail(f"{what}: expected an ENUMERATED")
    return int.from_bytes(value, "big")
