"""Helpers for the simulated NVIDIA tests: the real samples, one simulated PKI per session, and
the tests' own readers of SPDM reports and RIMs (written from NVIDIA's format, not from the
code under test, and run on the real samples too, so that both sides are checked)."""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import warnings
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from enclave_worker import SimulatedGpu, SimulatedNvidiaPki, SimulatedNvidiaWarning
from tests.support import FIXTURES, SIM_AT

NVIDIA = FIXTURES / "nvidia"
#: The real JSON samples by arch.
REAL_EVIDENCE = {
    "HOPPER": "nv_sdk_hopper_evidence.json",
    "BLACKWELL": "nv_veraison_blackwell-evidence.json",
    "LS10": "nv_sdk_switch_evidence_ls10.json",
}
DS = "http://www.w3.org/2000/09/xmldsig#"
SWID = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
HASHES = "http://www.w3.org/2001/04/xmlenc#sha384"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"


@functools.cache
def nvidia_pki() -> SimulatedNvidiaPki:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return SimulatedNvidiaPki.generate(at=SIM_AT)


def gpu(arch: str = "HOPPER", **options: Any) -> SimulatedGpu:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return SimulatedGpu(nvidia_pki(), arch=arch, **options)


def real_evidence(arch: str) -> tuple[bytes, tuple[x509.Certificate, ...], bytes]:
    """A real sample: report, chain (leaf first), nonce."""
    (entry,) = json.loads((NVIDIA / REAL_EVIDENCE[arch]).read_bytes())
    assert entry["arch"] == arch
    chain = tuple(x509.load_pem_x509_certificates(base64.b64decode(entry["certificate"])))
    return base64.b64decode(entry["evidence"]), chain, bytes.fromhex(entry["nonce"])


# --- SPDM -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    index: int
    specification: int
    value_type: int
    value: bytes


@dataclass(frozen=True)
class Report:
    request: bytes
    nonce: bytes
    slot: int
    response_header: bytes
    blocks: tuple[Block, ...]
    responder_nonce: bytes
    opaque: tuple[tuple[int, bytes], ...]
    #: request || response up to the signature.
    signed: bytes
    signature: bytes
    trailing: bytes

    def field(self, kind: int) -> bytes | None:
        found = [value for t, value in self.opaque if t == kind]
        assert len(found) <= 1
        return found[0] if found else None


def u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")


def parse_report(data: bytes) -> Report:
    """GET_MEASUREMENTS (37 bytes) || MEASUREMENTS, located by its length fields."""
    request = data[:37]
    response = data[37:]
    count = response[4]
    record_length = int.from_bytes(response[5:8], "little")
    record = response[8 : 8 + record_length]
    assert len(record) == record_length
    blocks, offset = [], 0
    while offset < len(record):
        index, specification, size = record[offset], record[offset + 1], u16(record, offset + 2)
        body = record[offset + 4 : offset + 4 + size]
        assert len(body) == size
        value_type, value_size = body[0], u16(body, 1)
        assert value_size == size - 3
        blocks.append(Block(index, specification, value_type, body[3:]))
        offset += 4 + size
    assert len(blocks) == count
    at = 8 + record_length
    responder_nonce = response[at : at + 32]
    opaque_length = u16(response, at + 32)
    opaque_bytes = response[at + 34 : at + 34 + opaque_length]
    assert len(opaque_bytes) == opaque_length
    fields, offset = [], 0
    while offset < opaque_length:
        kind, length = u16(opaque_bytes, offset), u16(opaque_bytes, offset + 2)
        fields.append((kind, opaque_bytes[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    assert offset == opaque_length
    end = 37 + at + 34 + opaque_length
    signature = data[end : end + 96]
    assert len(signature) == 96
    return Report(
        request=request[:4],
        nonce=request[4:36],
        slot=request[36],
        response_header=response[:4],
        blocks=tuple(blocks),
        responder_nonce=responder_nonce,
        opaque=tuple(fields),
        signed=data[:end],
        signature=signature,
        trailing=data[end + 96 :],
    )


def verify_report_signature(report: Report, leaf: x509.Certificate) -> None:
    """Raises InvalidSignature unless the leaf's key signed the report (raw r||s, SHA-384)."""
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    r = int.from_bytes(report.signature[:48], "big")
    s = int.from_bytes(report.signature[48:], "big")
    key.verify(encode_dss_signature(r, s), report.signed, ec.ECDSA(hashes.SHA384()))


def vbios_text(value: bytes) -> str:
    """Opaque field 6 of a GPU as NVIDIA prints it: bytes 3.2.1.0.4 in hex."""
    return ".".join(f"{value[i]:02x}" for i in (3, 2, 1, 0, 4))


# --- DER, just enough for the FWID extensions -------------------------------------------------


def der_items(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, content) of each element in ``data``."""
    items, offset = [], 0
    while offset < len(data):
        tag, first = data[offset], data[offset + 1]
        if first < 0x80:
            length, header = first, 2
        else:
            count = first & 0x7F
            length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
            header = 2 + count
        items.append((tag, data[offset + header : offset + header + length]))
        offset += header + length
    return items


def leaf_fwid(leaf: x509.Certificate) -> bytes:
    """Hopper/LS10: extension 2.23.133.5.4.1, its last 48 bytes; Blackwell: DICE TcbInfo
    2.23.133.5.4.1.1, ``fwids[0]``'s digest."""
    for extension in leaf.extensions:
        value = extension.value
        if extension.oid.dotted_string == "2.23.133.5.4.1":
            assert isinstance(value, x509.UnrecognizedExtension)
            return value.value[-48:]
        if extension.oid.dotted_string == "2.23.133.5.4.1.1":
            assert isinstance(value, x509.UnrecognizedExtension)
            ((tag, tcb_info),) = der_items(value.value)
            assert tag == 0x30
            fwids = dict(der_items(tcb_info))[0xA6]
            first_fwid = der_items(fwids)[0][1]
            (_oid_tag, _oid), (digest_tag, digest) = der_items(first_fwid)
            assert digest_tag == 0x04
            return digest
    raise AssertionError("the leaf has no FWID extension")


def verify_chain(chain: tuple[x509.Certificate, ...]) -> None:
    """Each certificate signed by the next, the last by itself (raises otherwise)."""
    for certificate, issuer in itertools.pairwise(chain):
        certificate.verify_directly_issued_by(issuer)
    chain[-1].verify_directly_issued_by(chain[-1])


# --- RIMs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    index: int
    active: bool
    hashes: tuple[bytes, ...]
    size: int
    name: str


@dataclass(frozen=True)
class Rim:
    version: str
    resources: tuple[Resource, ...]
    chain: tuple[x509.Certificate, ...]

    def active(self) -> dict[int, tuple[bytes, ...]]:
        return {r.index: r.hashes for r in self.resources if r.active}


def parse_xml(data: bytes) -> Any:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def verify_rim(data: bytes) -> Rim:
    """Check a RIM's enveloped XML-DSig (inclusive C14N, SHA-384 digest, ecdsa-sha384 raw r||s
    by the first X509Certificate, each certificate signed by the next) and read it."""
    root = parse_xml(data)
    signature = root.find(f"{{{DS}}}Signature")
    assert signature is not None
    assert root[-1] is signature  # enveloped: the root's last child
    signed_info = signature.find(f"{{{DS}}}SignedInfo")
    algorithms = [e.get("Algorithm") for e in signed_info.iter() if e.get("Algorithm")]
    assert algorithms == [
        C14N11,
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        C14N11,
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
    ]
    assert signed_info.find(f"{{{DS}}}Reference").get("URI") == ""
    digest_value = base64.b64decode(signed_info.findtext(f".//{{{DS}}}DigestValue"))
    signature_value = base64.b64decode(signature.findtext(f"{{{DS}}}SignatureValue"))
    assert len(signature_value) == 96
    chain = tuple(
        x509.load_der_x509_certificate(base64.b64decode(text.text))
        for text in signature.iter(f"{{{DS}}}X509Certificate")
    )
    canonical_signed_info = etree.tostring(signed_info, method="c14n")
    unsigned = parse_xml(data)
    unsigned.remove(unsigned.find(f"{{{DS}}}Signature"))
    digest = hashlib.sha384(etree.tostring(unsigned, method="c14n")).digest()
    assert digest == digest_value, "the RIM's digest does not match its content"
    key = chain[0].public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    r, s = signature_value[:48], signature_value[48:]
    key.verify(
        encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big")),
        canonical_signed_info,
        ec.ECDSA(hashes.SHA384()),
    )
    verify_chain(chain)
    resources = []
    for element in root.iter(f"{{{SWID}}}Resource"):
        count = int(element.get("alternatives"))
        resources.append(
            Resource(
                index=int(element.get("index")),
                active=element.get("active") == "True",
                hashes=tuple(
                    bytes.fromhex(element.get(f"{{{HASHES}}}Hash{n}")) for n in range(count)
                ),
                size=int(element.get("size")),
                name=element.get("name"),
            )
        )
    meta = root.find(f"{{{SWID}}}Meta")
    return Rim(meta.get("colloquialVersion"), tuple(resources), chain)


def der_of(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)
