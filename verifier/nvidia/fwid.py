"""The firmware ID (FWID) an NVIDIA device's leaf certificate certifies, read with a small
strict DER reader (cryptography does not decode these extensions).

* Hopper and NVSwitch LS10: extension 2.23.133.5.4.1, ::

      SEQUENCE { version INTEGER, SubjectPublicKeyInfo,
                 FWID SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING } }

  (NVIDIA's verifier takes "the last 48 bytes" of the value: that is this digest.)
* Blackwell: extension 2.23.133.5.4.1.1, a TCG DICE TcbInfo: a SEQUENCE of IMPLICIT
  context fields [0] vendor, [1] model, [2] version, [3] svn, [4] layer, [5] index,
  [6] fwids (SEQUENCE OF FWID), [7] flags, [8] vendorInfo, [9] type, [10] flagsMask, each
  optional, at most once, in order. The FWID is ``fwids[0].digest``.

Both digests must be SHA-384 (48 bytes) to compare with the report's opaque field 20.

The reader: one-byte tags, definite minimal lengths of at most three length bytes, every
element within its parent, nothing after the outermost one. Any violation is
:class:`~verifier.errors.MalformedEvidence`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from verifier.errors import MalformedEvidence

__all__ = [
    "BLACKWELL_TCB_INFO_OID",
    "HOPPER_FWID_OID",
    "DerElement",
    "fwid_of",
    "parse_der",
]

HOPPER_FWID_OID = x509.ObjectIdentifier("2.23.133.5.4.1")
BLACKWELL_TCB_INFO_OID = x509.ObjectIdentifier("2.23.133.5.4.1.1")
#: DER of the OBJECT IDENTIFIER 2.16.840.1.101.3.4.2.2 (SHA-384), content bytes only.
_SHA384_OID = bytes.fromhex("608648016503040202")
_SEQUENCE, _INTEGER, _OCTET_STRING, _OID = 0x30, 0x02, 0x04, 0x06
_FWIDS_TAG = 0xA6  # [6] IMPLICIT SEQUENCE OF FWID (constructed)
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class DerElement:
    tag: int
    content: bytes
    #: The children, when the tag is constructed (bit 6 set); empty otherwise.
    children: tuple[DerElement, ...]


def parse_der(data: bytes, what: str) -> DerElement:
    """One DER element filling ``data`` exactly; constructed elements are read into their
    children. Raises MalformedEvidence."""
    element, end = _element(data, 0, what, 0)
    if end != len(data):
        raise MalformedEvidence(f"{what}: {len(data) - end} bytes after the DER element")
    return element


def _element(data: bytes, offset: int, what: str, depth: int) -> tuple[DerElement, int]:
    if depth > _MAX_DEPTH:
        raise MalformedEvidence(f"{what}: DER nested deeper than {_MAX_DEPTH}")
    if offset + 2 > len(data):
        raise MalformedEvidence(f"{what}: truncated DER header at offset {offset}")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise MalformedEvidence(f"{what}: multi-byte DER tags are not used here")
    first = data[offset + 1]
    start = offset + 2
    if first == 0x80:
        raise MalformedEvidence(f"{what}: indefinite length is not DER")
    if first & 0x80:
        count = first & 0x7F
        if count > 3 or start + count > len(data):
            raise MalformedEvidence(f"{what}: bad DER length at offset {offset}")
        raw = data[start : start + count]
        length = int.from_bytes(raw, "big")
        if raw[0] == 0 or length < 0x80:
            raise MalformedEvidence(f"{what}: DER length not minimally encoded")
        start += count
    else:
        length = first
    end = start + length
    if end > len(data):
        raise MalformedEvidence(f"{what}: DER element runs past its container")
    content = data[start:end]
    children: list[DerElement] = []
    if tag & 0x20:
        position = 0
        while position < len(content):
            child, position = _element(content, position, what, depth + 1)
            children.append(child)
    return DerElement(tag, content, tuple(children)), end


def fwid_of(certificate: x509.Certificate) -> tuple[bytes | None, str | None]:
    """(FWID, extension name) of a leaf certificate, or (None, None) if it has neither
    extension. Raises MalformedEvidence for an extension that does not parse."""
    values = {}
    for extension in certificate.extensions:
        if extension.oid in (HOPPER_FWID_OID, BLACKWELL_TCB_INFO_OID):
            value = extension.value
            assert isinstance(value, x509.UnrecognizedExtension)  # noqa: S101 - by OID
            values[extension.oid] = value.value
    if BLACKWELL_TCB_INFO_OID in values:
        return _tcb_info_fwid(values[BLACKWELL_TCB_INFO_OID]), "DICE TcbInfo 2.23.133.5.4.1.1"
    if HOPPER_FWID_OID in values:
        return _hopper_fwid(values[HOPPER_FWID_OID]), "2.23.133.5.4.1"
    return None, None


def _hopper_fwid(value: bytes) -> bytes:
    what = "device certificate: extension 2.23.133.5.4.1"
    top = parse_der(value, what)
    if top.tag != _SEQUENCE or len(top.children) != 3:
        raise MalformedEvidence(f"{what}: expected a SEQUENCE of three elements")
    version, key, fwid = top.children
    if version.tag != _INTEGER or key.tag != _SEQUENCE:
        raise MalformedEvidence(f"{what}: expected version INTEGER and a SubjectPublicKeyInfo")
    return _fwid(fwid, what)


def _tcb_info_fwid(value: bytes) -> bytes:
    what = "device certificate: DICE TcbInfo 2.23.133.5.4.1.1"
    top = parse_der(value, what)
    if top.tag != _SEQUENCE:
        raise MalformedEvidence(f"{what}: expected a SEQUENCE")
    last = -1
    fwids: DerElement | None = None
    for field in top.children:
        if field.tag & 0xC0 != 0x80:
            raise MalformedEvidence(f"{what}: field tag 0x{field.tag:02x} is not context-specific")
        number = field.tag & 0x1F
        if number > 10 or number <= last:
            raise MalformedEvidence(f"{what}: field [{number}] unknown, repeated or out of order")
        last = number
        if number == 6:
            if field.tag != _FWIDS_TAG:
                raise MalformedEvidence(f"{what}: fwids [6] must be constructed")
            fwids = field
    if fwids is None or not fwids.children:
        raise MalformedEvidence(f"{what}: no fwids")
    return _fwid(fwids.children[0], what)


def _fwid(element: DerElement, what: str) -> bytes:
    if element.tag != _SEQUENCE or len(element.children) != 2:
        raise MalformedEvidence(f"{what}: FWID must be SEQUENCE {{hashAlg, digest}}")
    algorithm, digest = element.children
    if algorithm.tag != _OID or digest.tag != _OCTET_STRING:
        raise MalformedEvidence(f"{what}: FWID must be SEQUENCE {{OID, OCTET STRING}}")
    if algorithm.content != _SHA384_OID:
        raise MalformedEvidence(f"{what}: FWID hash algorithm is not SHA-384")
    if len(digest.content) != 48:
        raise MalformedEvidence(f"{what}: FWID digest is {len(digest.content)} bytes, expected 48")
    return digest.content
