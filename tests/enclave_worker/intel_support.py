"""Helpers for the Intel TDX/SGX attester tests: one simulated Intel PKI per session, the
real samples of tests/fixtures/tdx, and a small DER reader (written here, not the one the
simulation encodes with) to look inside Intel's SGX extension."""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enclave_worker import (
    SimulatedIntelPki,
    SimulatedIntelWarning,
    SimulatedSgxEnclave,
    SimulatedTdxPlatform,
)
from enclave_worker.attester import Evidence
from tests.support import FIXTURES, SIM_AT

TDX = FIXTURES / "tdx"
SEED = b"intel attester tests seed"
SGX_OID = "1.2.840.113741.1.13.1"


@functools.cache
def intel_pki() -> SimulatedIntelPki:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        return SimulatedIntelPki.generate(at=SIM_AT)


def tdx_platform(**options: Any) -> SimulatedTdxPlatform:
    options.setdefault("at", SIM_AT)
    options.setdefault("seed", SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        return SimulatedTdxPlatform(intel_pki(), **options)


def sgx_enclave(**options: Any) -> SimulatedSgxEnclave:
    options.setdefault("at", SIM_AT)
    options.setdefault("seed", SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        return SimulatedSgxEnclave(intel_pki(), **options)


def fixture(name: str) -> bytes:
    return (TDX / name).read_bytes()


def fixture_path(name: str) -> Path:
    return TDX / name


def verify_raw(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
    """Verify Intel's raw ``r || s`` P-256 signature (raises InvalidSignature)."""
    assert len(signature) == 64
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))


def raw_key(xy: bytes) -> ec.EllipticCurvePublicKey:
    assert len(xy) == 64
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + xy)


def pem_chain(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def common_name(certificate: x509.Certificate) -> str:
    (attribute,) = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attribute.value)


def endorsement(evidence: Evidence, kind: str) -> list[bytes]:
    return [e.data for e in evidence.endorsements if e.kind == kind]


def pcs_member(body: bytes, member: str) -> tuple[bytes, bytes]:
    """The exact text of ``member`` in a PCS body and the signature, found by position (the
    body's JSON parsed only to check it is one)."""
    prefix = b'{"' + member.encode() + b'":'
    assert body.startswith(prefix)
    end = body.rindex(b',"signature":"')
    parsed = json.loads(body)
    assert set(parsed) == {member, "signature"}
    return body[len(prefix) : end], bytes.fromhex(parsed["signature"])


# --- a small DER reader -----------------------------------------------------------------


def der_read(data: bytes) -> tuple[int, bytes, bytes]:
    """(tag, content, rest) of the first element."""
    tag, first = data[0], data[1]
    if first < 0x80:
        start, size = 2, first
    else:
        count = first & 0x7F
        start, size = 2 + count, int.from_bytes(data[2 : 2 + count], "big")
    return tag, data[start : start + size], data[start + size :]


def der_children(content: bytes) -> list[tuple[int, bytes]]:
    children = []
    while content:
        tag, value, content = der_read(content)
        children.append((tag, value))
    return children


def oid_text(content: bytes) -> str:
    arcs, value = [], 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def sgx_extension_tree(certificate: x509.Certificate) -> dict[str, tuple[int, bytes]]:
    """Intel's SGX extension flattened: dotted OID -> (tag, content) of every leaf value."""
    value = certificate.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_OID)).value
    assert isinstance(value, x509.UnrecognizedExtension)
    found: dict[str, tuple[int, bytes]] = {}

    def walk(sequence: bytes) -> None:
        for tag, entry in der_children(sequence):
            assert tag == 0x30
            (oid_tag, oid), (value_tag, inner) = der_children(entry)
            assert oid_tag == 0x06
            if value_tag == 0x30:
                found[oid_text(oid)] = (value_tag, b"")
                walk(inner)
            else:
                found[oid_text(oid)] = (value_tag, inner)

    tag, content, rest = der_read(value.value)
    assert tag == 0x30
    assert rest == b""
    walk(content)
    return found
