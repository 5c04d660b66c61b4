"""The few DER encodings the simulated PKIs write by hand (cryptography builds certificates
but not the contents of vendor extensions: AMD's VCEK values, Intel's SGX extension).

Definite-length, minimal encodings only (X.690 DER); single-byte tags.
"""

from __future__ import annotations

__all__ = [
    "der",
    "der_boolean",
    "der_enumerated",
    "der_integer",
    "der_octet_string",
    "der_oid",
    "der_sequence",
]


def der(tag: int, content: bytes) -> bytes:
    """One element: ``tag``, the definite length of ``content``, ``content``."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def der_integer(value: int) -> bytes:
    """A non-negative DER INTEGER, minimal (217 is ``02 02 00 d9``, 0 is ``02 01 00``)."""
    if value < 0:
        raise ValueError("only non-negative integers")
    return der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def der_enumerated(value: int) -> bytes:
    """A non-negative ENUMERATED (encoded as an INTEGER is, tag 0x0a)."""
    return b"\x0a" + der_integer(value)[1:]


def der_boolean(value: bool) -> bytes:
    return der(0x01, b"\xff" if value else b"\x00")


def der_octet_string(value: bytes) -> bytes:
    return der(0x04, value)


def der_sequence(*elements: bytes) -> bytes:
    return der(0x30, b"".join(elements))


def der_oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted form (``1.2.840.113741.1.13.1``)."""
    arcs = [int(arc) for arc in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"not an object identifier: {dotted!r}")
    content = b""
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk, rest = [arc & 0x7F], arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        content += bytes(reversed(chunk))
    return der(0x06, content)
