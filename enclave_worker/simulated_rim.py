"""Simulated NVIDIA reference integrity manifests (RIMs): the driver and VBIOS RIMs of a
:class:`~enclave_worker.simulated_nvidia.SimulatedGpu`, signed under its simulated PKI's RIM
chain. NOT NVIDIA's: the signer chain ends in "NVIDIA CoRIM signing Root CA (simulated)".

The shape is that of NVIDIA's RIMs in tests/fixtures/nvidia, byte for byte where it can be:

* TCG SWID XML: ``SoftwareIdentity`` (default namespace and ``ns0`` the SWID schema, ``ns2``
  xmlenc#sha384) with ``ns0:Entity``, ``ns0:Meta`` (``colloquialVersion`` the driver or VBIOS
  version, TCG RIM attributes under ``ns1``) and ``ns0:Payload`` with one ``ns0:Resource``
  per measurement index (``index``, ``active``, ``alternatives``, ``ns2:Hash0``...,
  ``name``, ``size``), indented by four spaces as NVIDIA's are. Active indices are those the
  kind of RIM covers (:data:`~enclave_worker.simulated_nvidia.VBIOS_INDICES`,
  :data:`~enclave_worker.simulated_nvidia.DRIVER_INDICES`), with the device's measurement
  (report block ``index + 1``); one VBIOS index lists another value first and the real one
  second, two driver indices the real one and zeros, as NVIDIA's do.
* An enveloped XML-DSig signature as the root's last child, one line, ``ds:`` prefix:
  ``CanonicalizationMethod`` and the reference's transforms inclusive C14N 1.1
  (``http://www.w3.org/2006/12/xml-c14n11``) after enveloped-signature, ``DigestMethod``
  SHA-384 over the document without the signature, ``SignatureMethod`` ecdsa-sha384 with a
  raw r||s ``SignatureValue`` (96 bytes, base64) over the canonical ``SignedInfo`` (which, being
  inclusive, carries the root's namespace declarations), and ``X509Data`` with the signer
  chain (L4 signer, L3, CA, root; base64 DER in 64-character lines).

lxml's inclusive C14N (``method="c14n"``: 1.0, the same bytes as 1.1 on documents without
``xml:`` attributes) canonicalises; the XML text is written here, so its bytes are exactly
NVIDIA's layout. Written independently of ``verifier/`` (it imports nothing from it).
"""

from __future__ import annotations

import base64
import hashlib
import textwrap
from collections.abc import Mapping
from typing import Final, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from enclave_worker.attester import Endorsement
from enclave_worker.simulated_nvidia import (
    DRIVER_INDICES,
    VBIOS_INDICES,
    SimulatedGpu,
    SimulatedNvidiaPki,
)

__all__ = [
    "C14N11",
    "DS_NS",
    "ECDSA_SHA384",
    "SHA384_DIGEST",
    "SWID_NS",
    "RimKind",
    "SimulatedRim",
]

RimKind = Literal["driver", "vbios"]
SWID_NS: Final = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
HASH_NS: Final = "http://www.w3.org/2001/04/xmlenc#sha384"
TCG_RIM_NS: Final = "https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/"
DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
C14N11: Final = "http://www.w3.org/2006/12/xml-c14n11"
ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ECDSA_SHA384: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
SHA384_DIGEST: Final = "http://www.w3.org/2001/04/xmldsig-more#sha384"
_NVIDIA_PEN: Final = "5703"
_PLACEHOLDER: Final = "SIGNATURE-VALUE"


class SimulatedRim:
    """The driver and VBIOS RIMs that describe a simulated GPU's measurements.

    ``pki`` signs them (the GPU's own PKI unless given: another one gives RIMs whose chain
    ends in a root the verifier does not pin).
    """

    def __init__(self, gpu: SimulatedGpu, *, pki: SimulatedNvidiaPki | None = None) -> None:
        self.gpu = gpu
        self.pki = pki or gpu.pki

    def version(self, kind: RimKind) -> str:
        """The RIM's ``colloquialVersion``: the driver version, or the VBIOS version in capitals
        (NVIDIA writes ``96.00.5E.00.01``)."""
        if kind == "driver":
            return self.gpu.driver
        return self.gpu.vbios.upper() if self.gpu.arch != "LS10" else self.gpu.vbios

    def tag_id(self, kind: RimKind) -> str:
        """A SHA-384-sized hex tag id, as NVIDIA's are."""
        gpu = self.gpu
        label = f"simulated NVIDIA {gpu.arch} {kind} RIM {self.version(kind)} image {gpu.image}"
        return hashlib.sha384(label.encode()).hexdigest()

    def driver(self) -> bytes:
        """The signed driver RIM (GPUs only: an NVSwitch reports no driver)."""
        return self.document("driver")

    def vbios(self) -> bytes:
        """The signed VBIOS RIM."""
        return self.document("vbios")

    def endorsements(self) -> tuple[Endorsement, ...]:
        """The RIMs as ``rim`` endorsements: driver then VBIOS (VBIOS only on LS10)."""
        kinds: tuple[RimKind, ...] = ("vbios",) if self.gpu.arch == "LS10" else ("driver", "vbios")
        return tuple(Endorsement("rim", self.document(kind)) for kind in kinds)

    def document(
        self,
        kind: RimKind,
        *,
        values: Mapping[int, bytes] | None = None,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> bytes:
        """The signed RIM of ``kind``, exactly as its bytes travel.

        Bad modes, for negative tests: ``values`` replaces reference values (by RIM index,
        0-based: report block ``index + 1``; an index the RIM does not cover becomes
        active), ``signing_key`` signs with another key than the chain's signer.
        """
        return self.sign(self.unsigned(kind, values=values), signing_key=signing_key)

    def unsigned(self, kind: RimKind, *, values: Mapping[int, bytes] | None = None) -> str:
        """The RIM's XML without its signature, as :meth:`sign` takes it."""
        gpu = self.gpu
        covered = {"driver": DRIVER_INDICES, "vbios": VBIOS_INDICES}[kind][gpu.arch]
        if not covered:
            raise ValueError(f"an {gpu.arch} device has no {kind} RIM")
        values = dict(values or {})
        for index, value in values.items():
            if not 0 <= index < len(gpu.measurements):
                raise ValueError(f"a {gpu.arch} RIM has indices 0 to {len(gpu.measurements) - 1}")
            if len(value) != 48:
                raise ValueError(f"a reference value is 48 bytes, not {len(value)}")
        # Where NVIDIA's RIMs list alternatives: the last VBIOS index (another value first),
        # the fourth and fifth driver indices (zeros second).
        other_first = {covered[-1]} if kind == "vbios" else set()
        zeros_second = set(covered[3:5]) if kind == "driver" else set()
        chip = gpu.chip.replace("_", "")
        edition = "NVSwitch" if gpu.arch == "LS10" else "GPU"
        lines = [
            f'<SoftwareIdentity xmlns="{SWID_NS}" xmlns:ns0="{SWID_NS}" xmlns:ns2="{HASH_NS}" '
            f'corpus="false" name="{chip}" patch="false" supplemental="false" '
            f'tagId="{self.tag_id(kind)}" version="1.0" tagVersion="0">',
            '    <ns0:Entity name="NVIDIA Corporation" role="softwareCreator tagCreator"/>',
            f'    <ns0:Meta xmlns:ns1="{TCG_RIM_NS}" colloquialVersion="{self.version(kind)}" '
            f'edition="{edition}" product="{chip}" revision="r1" PayloadType="direct" '
            f'ns1:BindingSpec="RIMIM" ns1:BindingSpecVersion="1.01" '
            f'ns1:PlatformManufacturerId="{_NVIDIA_PEN}" '
            f'ns1:PlatformManufacturerStr="NVIDIA Corporation" ns1:PlatformModel="{chip}" '
            f'ns1:FirmwareManufacturer="NVIDIA Corporation" '
            f'ns1:FirmwareManufacturerId="{_NVIDIA_PEN}"/>',
            f'    <ns0:Payload xmlns:SHA384="{HASH_NS}">',
        ]
        for index, measurement in enumerate(gpu.measurements):
            active = index in covered or index in values
            value = values.get(index, measurement)
            if not active:
                hashes_, name = [bytes(48)], f"Measurement_{index}"
            else:
                name = (
                    f"HashedMeasurement_{index}_FSP"
                    if kind == "vbios"
                    else f"MixedMeasurement_{index}"
                )
                if index in other_first:
                    other = hashlib.sha384(f"simulated other value {index}".encode()).digest()
                    hashes_ = [other, value]
                elif index in zeros_second:
                    hashes_ = [value, bytes(48)]
                else:
                    hashes_ = [value]
            alternatives = " ".join(f'ns2:Hash{n}="{h.hex()}"' for n, h in enumerate(hashes_))
            lines.append(
                f'        <ns0:Resource type="Measurement" index="{index}" '
                f'active="{active}" alternatives="{len(hashes_)}" {alternatives} '
                f'name="{name}" size="48"/>'
            )
        lines += ["    </ns0:Payload>", "</SoftwareIdentity>"]
        return "\n".join(lines)

    def sign(
        self, unsigned: str, *, signing_key: ec.EllipticCurvePrivateKey | None = None
    ) -> bytes:
        """``unsigned`` (XML text whose root element closes last) with an enveloped XML-DSig
        signature by the PKI's RIM signer, the whole chain in ``X509Data``."""
        root = etree.fromstring(unsigned.encode(), _parser())
        digest = hashlib.sha384(etree.tostring(root, method="c14n")).digest()
        signed_info = (
            "<ds:SignedInfo>"
            f'<ds:CanonicalizationMethod Algorithm="{C14N11}"/>'
            f'<ds:SignatureMethod Algorithm="{ECDSA_SHA384}"/>'
            '<ds:Reference URI="">'
            "<ds:Transforms>"
            f'<ds:Transform Algorithm="{ENVELOPED}"/>'
            f'<ds:Transform Algorithm="{C14N11}"/>'
            "</ds:Transforms>"
            f'<ds:DigestMethod Algorithm="{SHA384_DIGEST}"/>'
            f"<ds:DigestValue>{base64.b64encode(digest).decode()}</ds:DigestValue>"
            "</ds:Reference>"
            "</ds:SignedInfo>"
        )
        certificates = "".join(
            f"<ds:X509Certificate>{_base64_lines(der)}</ds:X509Certificate>"
            for der in self.pki.rim_chain()
        )
        signature = (
            f'<ds:Signature xmlns:ds="{DS_NS}">{signed_info}'
            f"<ds:SignatureValue>{_PLACEHOLDER}</ds:SignatureValue>"
            f"<ds:KeyInfo><ds:X509Data>{certificates}</ds:X509Data></ds:KeyInfo>"
            "</ds:Signature>"
        )
        head, closing, tail = unsigned.rpartition("</")
        if not closing or tail.strip() != "SoftwareIdentity>":
            raise ValueError("the unsigned RIM must end with its root's closing tag")
        text = head + signature + closing + tail + "\n"
        # SignedInfo canonicalised in its place in the document (inclusive C14N carries the
        # namespace declarations in scope there).
        placed = etree.fromstring(text.encode(), _parser())
        canonical = etree.tostring(
            placed.find(f"{{{DS_NS}}}Signature/{{{DS_NS}}}SignedInfo"), method="c14n"
        )
        key = signing_key or self.pki.rim_signer.private_key
        r, s = decode_dss_signature(
            key.sign(canonical, ec.ECDSA(hashes.SHA384(), deterministic_signing=True))
        )
        value = base64.b64encode(r.to_bytes(48, "big") + s.to_bytes(48, "big")).decode()
        return text.replace(_PLACEHOLDER, value, 1).encode()


def _parser() -> etree.XMLParser:
    """A parser that resolves no entities and reads nothing from the network."""
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _base64_lines(der: bytes) -> str:
    """Base64 in lines of 64 characters, each ending in a newline (NVIDIA's X509Certificate)."""
    return "".join(line + "\n" for line in textwrap.wrap(base64.b64encode(der).decode(), 64))
