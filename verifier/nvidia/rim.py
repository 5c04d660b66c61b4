"""NVIDIA reference integrity manifests (RIMs): TCG SWID XML documents that list, per
measurement index, the values a driver or VBIOS may produce, with an enveloped XML
signature.

::

    <SoftwareIdentity tagId=... name="GH100" ...>
      <Meta colloquialVersion="96.00.5E.00.01" product="GH100" .../>
      <Payload>
        <Resource type="Measurement" index="0" active="True" alternatives="1"
                  ns2:Hash0="<96 hex>" size="48" name=.../>   (ns2 = ...xmlenc#sha384)
        ...
      </Payload>
      <ds:Signature> C14N 1.1 (inclusive), ecdsa-sha384 (raw r||s), one Reference URI="",
        enveloped; X509Data: the signer (L4), L3, the chip's Reference Value CA, the root
      </ds:Signature>
    </SoftwareIdentity>

Verification, in order:

1. Parse with a hardened parser: at most 64 KiB, no DTD, no entities, no network, no huge
   trees.
2. Verify the signer's path (X509Data, leaf first) to the pinned NVIDIA CoRIM signing Root
   CA at the verification time (:mod:`verifier.nvidia.chain`; ``rim_chain_invalid``,
   ``expired``, ``not_yet_valid``).
3. Verify the XML signature with signxml (5.x) against that leaf: the reference digest
   (SHA-384 of the inclusive C14N 1.1 of the document without its Signature) and the
   ECDSA P-384 signature over the canonical SignedInfo (``rim_signature_invalid``). Only
   ecdsa-sha384 and sha384 are accepted; exactly one reference; the Signature a child of
   the root.
4. Read the measurements from what signxml returns as signed (never from the input tree),
   so that nothing outside the signature can add or change a value.

Whether a RIM is the driver's or the VBIOS's is told from its Meta ``colloquialVersion``:
five two-digit hex groups (``96.00.5E.00.01``) are a VBIOS version, dotted decimals
(``535.86.09``) a driver version.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidInput, SignXMLException
from signxml.exceptions import InvalidSignature as XmlInvalidSignature
from signxml.verifier import SignatureConfiguration, XMLVerifier

from verifier.errors import (
    EvidenceTooLarge,
    MalformedEvidence,
    RimChainInvalid,
    RimSignatureInvalid,
)
from verifier.nvidia.chain import VerifiedPath, rim_profile, verify_path
from verifier.x509 import LinkCache, TrustAnchor

__all__ = ["MAX_RIM_BYTES", "Rim", "RimKind", "RimMeasurement", "parse_rim", "verify_rim"]

#: A RIM is about 20 KB; anything far larger is refused before parsing.
MAX_RIM_BYTES = 64 * 1024
#: A GPU has 64 measurement blocks; a RIM lists at most that many resources (with room).
MAX_RESOURCES = 256
MAX_ALTERNATIVES = 16
_SWID = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
_DSIG = "http://www.w3.org/2000/09/xmldsig#"
_SHA384_NS = "http://www.w3.org/2001/04/xmlenc#sha384"
_VBIOS_VERSION = re.compile(r"[0-9a-fA-F]{2}(\.[0-9a-fA-F]{2}){4}")
_DRIVER_VERSION = re.compile(r"[0-9]{1,4}(\.[0-9]{1,4}){1,3}")
_CONFIG = SignatureConfiguration(
    location="./",
    expect_references=1,
    signature_methods=frozenset({SignatureMethod.ECDSA_SHA384}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA384}),
)


class RimKind(enum.StrEnum):
    DRIVER = "driver"
    VBIOS = "vbios"


@dataclass(frozen=True, slots=True)
class RimMeasurement:
    """An active Resource: measurement block ``index + 1`` must equal one alternative."""

    index: int
    name: str
    size: int
    alternatives: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Rim:
    raw: bytes
    kind: RimKind
    tag_id: str
    #: Meta colloquialVersion, lowercased (as the report's versions are printed).
    version: str
    product: str
    #: Active measurements only, by index.
    measurements: tuple[RimMeasurement, ...]
    #: X509Data, in order (the signer first), DER.
    certificates: tuple[bytes, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@dataclass(frozen=True, slots=True, eq=False)
class VerifiedRim:
    rim: Rim
    path: VerifiedPath


def _parser() -> Any:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_blank_text=False,
    )


def _root(data: bytes) -> Any:
    if not isinstance(data, bytes):
        raise MalformedEvidence("rim: expected bytes")
    if len(data) > MAX_RIM_BYTES:
        raise EvidenceTooLarge(f"rim: {len(data)} bytes, at most {MAX_RIM_BYTES}")
    try:
        root = etree.fromstring(data, parser=_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise MalformedEvidence(f"rim: not well-formed XML ({str(exc)[:80]})") from None
    docinfo = etree.ElementTree(root).docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise MalformedEvidence("rim: a DTD is not allowed")
    if any(True for _ in root.iter(etree.Entity)):
        raise MalformedEvidence("rim: entities are not allowed")
    return root


def parse_rim(data: bytes) -> Rim:
    """Parse without verifying (for display, and to find the signer chain)."""
    root = _root(data)
    return _read(data, root, _certificates(root))


def verify_rim(
    data: bytes,
    anchors: Sequence[TrustAnchor],
    *,
    at: datetime,
    clock_skew: timedelta,
    links: LinkCache[tuple[bytes, bytes], bool],
) -> VerifiedRim:
    """Verify a RIM's signer path and XML signature at ``at``; its measurements are read
    from the signed content only."""
    root = _root(data)
    unverified = _read(data, root, _certificates(root))
    path = verify_path(
        unverified.certificates,
        anchors,
        rim_profile(f"{unverified.kind} RIM {unverified.version}"),
        at=at,
        clock_skew=clock_skew,
        links=links,
    )
    leaf = path.leaf
    # The path is valid at `at` (notBefore with clock skew): let signxml judge the leaf at
    # the nearest instant inside its window, so that the skew means the same to both.
    when = min(max(at, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    config = SignatureConfiguration(
        location=_CONFIG.location,
        expect_references=_CONFIG.expect_references,
        signature_methods=_CONFIG.signature_methods,
        digest_algorithms=_CONFIG.digest_algorithms,
        verification_time=when,
    )
    what = f"rim {unverified.kind} {unverified.version}"
    try:
        result = XMLVerifier().verify(data, x509_cert=leaf, parser=_parser(), expect_config=config)
    except InvalidCertificate as exc:
        raise RimChainInvalid(f"{what}: the signer certificate: {str(exc)[:120]}") from None
    except XmlInvalidSignature as exc:
        raise RimSignatureInvalid(
            f"{what}: the XML signature does not verify ({type(exc).__name__}: {str(exc)[:80]})"
        ) from None
    except (InvalidInput, SignXMLException, etree.LxmlError, ValueError) as exc:
        raise MalformedEvidence(f"{what}: unusable XML signature ({str(exc)[:100]})") from None
    if isinstance(result, list):  # pragma: no cover - expect_references=1 gives one result
        raise MalformedEvidence(f"{what}: expected one signed reference")
    signed = result.signed_xml
    if signed is None or signed.tag != root.tag:
        raise RimSignatureInvalid(f"{what}: the signature does not cover the whole document")
    return VerifiedRim(_read(data, signed, unverified.certificates), path)


def _certificates(root: Any) -> tuple[bytes, ...]:
    signatures = root.findall(f"{{{_DSIG}}}Signature")
    if len(signatures) != 1:
        raise MalformedEvidence(f"rim: expected one ds:Signature, found {len(signatures)}")
    out = []
    for element in signatures[0].iter(f"{{{_DSIG}}}X509Certificate"):
        text = "".join((element.text or "").split())
        try:
            out.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise MalformedEvidence("rim: an X509Certificate is not base64") from None
    if not out:
        raise MalformedEvidence("rim: the signature carries no X509Certificate")
    return tuple(out)


def _read(data: bytes, root: Any, certificates: tuple[bytes, ...]) -> Rim:
    if root.tag != f"{{{_SWID}}}SoftwareIdentity":
        raise MalformedEvidence(f"rim: the root is {str(root.tag)[:60]}, not SoftwareIdentity")
    metas = root.findall(f"{{{_SWID}}}Meta")
    if len(metas) != 1:
        raise MalformedEvidence(f"rim: expected one Meta, found {len(metas)}")
    version = metas[0].get("colloquialVersion")
    if not isinstance(version, str) or not version:
        raise MalformedEvidence("rim: Meta has no colloquialVersion")
    if _VBIOS_VERSION.fullmatch(version):
        kind = RimKind.VBIOS
    elif _DRIVER_VERSION.fullmatch(version):
        kind = RimKind.DRIVER
    else:
        raise MalformedEvidence(
            f"rim: colloquialVersion {version[:30]!r} is neither a VBIOS nor a driver version"
        )
    payloads = root.findall(f"{{{_SWID}}}Payload")
    if len(payloads) != 1:
        raise MalformedEvidence(f"rim: expected one Payload, found {len(payloads)}")
    resources = payloads[0].findall(f"{{{_SWID}}}Resource")
    if len(resources) > MAX_RESOURCES:
        raise MalformedEvidence(f"rim: {len(resources)} resources, at most {MAX_RESOURCES}")
    measurements: list[RimMeasurement] = []
    seen: set[int] = set()
    for resource in resources:
        if resource.get("type") != "Measurement":
            continue
        index = _integer(resource, "index", 0, 255)
        if index in seen:
            raise MalformedEvidence(f"rim: Resource index {index} appears twice")
        seen.add(index)
        active = resource.get("active")
        if active not in ("True", "False"):
            raise MalformedEvidence(f"rim: Resource {index}: active must be True or False")
        if active == "False":
            continue
        size = _integer(resource, "size", 1, 64)
        count = _integer(resource, "alternatives", 1, MAX_ALTERNATIVES)
        alternatives = []
        for n in range(count):
            text = resource.get(f"{{{_SHA384_NS}}}Hash{n}")
            if text is None:
                raise MalformedEvidence(f"rim: Resource {index} has no Hash{n}")
            try:
                value = bytes.fromhex(text)
            except ValueError:
                raise MalformedEvidence(f"rim: Resource {index} Hash{n} is not hex") from None
            if len(value) != size:
                raise MalformedEvidence(
                    f"rim: Resource {index} Hash{n} is {len(value)} bytes, size says {size}"
                )
            alternatives.append(value)
        measurements.append(
            RimMeasurement(index, str(resource.get("name", ""))[:80], size, tuple(alternatives))
        )
    return Rim(
        raw=data,
        kind=kind,
        tag_id=str(root.get("tagId", ""))[:200],
        version=version.lower(),
        product=str(metas[0].get("product", root.get("name", "")))[:80],
        measurements=tuple(sorted(measurements, key=lambda m: m.index)),
        certificates=certificates,
    )


def _integer(element: Any, name: str, low: int, high: int) -> int:
    text = element.get(name)
    # ASCII digits only: str.isdigit() also takes "²", which int() then refuses
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()) or len(text) > 4:
        raise MalformedEvidence(f"rim: Resource {name} must be a decimal integer")
    value = int(text)
    if not low <= value <= high:
        raise MalformedEvidence(f"rim: Resource {name} {value} is outside {low}..{high}")
    return value
