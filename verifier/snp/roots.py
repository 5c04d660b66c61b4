"""AMD's root keys (ARKs) pinned for every product line, and the signing keys (ASK for VCEKs,
ASVK for VLEKs) they issued, shipped as package data in ``roots/``.

When loaded, every file is checked against the SHA-256 of its DER encoding pinned below, and
each ASK and ASVK must be signed by its product's ARK (RSASSA-PSS, SHA-384, salt 48): a
package whose roots were swapped fails loudly instead of trusting a substituted key. The
files come from AMD's Key Distribution Service as published by virtee/sev
(``src/certs/snp/builtin/<product>/``, ARK and ASK) and confidential-containers/trustee
(``deps/verifier/src/snp/<product>_ask_ark_asvk.pem``, ASVK); see
``tests/fixtures/snp/README.md`` for their provenance.

A chain may also bring its ASK or ASVK (and ARK) with the evidence; only what chains to a
pinned ARK, or to an ARK the caller configured explicitly, is ever trusted. A configured ARK
must follow AMD's profile, subject ``CN=ARK-<product line>``, which names its product line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from verifier.scheme import EndorsementKind
from verifier.snp.product import ProductLine
from verifier.x509 import TrustAnchor

__all__ = [
    "AMD_ARK_SHA256",
    "AMD_INTERMEDIATE_SHA256",
    "SnpAnchor",
    "SnpTrustStore",
    "amd_trust_store",
    "anchor_product",
    "verify_amd_signature",
]

#: SHA-256 of each ARK's DER encoding (tests/fixtures/snp/README.md, research §5).
AMD_ARK_SHA256 = {
    ProductLine.MILAN: "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    ProductLine.GENOA: "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    ProductLine.TURIN: "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
}
#: SHA-256 of each packaged ASK (SEV-<product>) and ASVK (SEV-VLEK-<product>).
AMD_INTERMEDIATE_SHA256 = {
    (ProductLine.MILAN, EndorsementKind.ASK): (
        "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b"
    ),
    (ProductLine.MILAN, EndorsementKind.ASVK): (
        "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5"
    ),
    (ProductLine.GENOA, EndorsementKind.ASK): (
        "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521"
    ),
    (ProductLine.GENOA, EndorsementKind.ASVK): (
        "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372"
    ),
    (ProductLine.TURIN, EndorsementKind.ASK): (
        "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185"
    ),
    (ProductLine.TURIN, EndorsementKind.ASVK): (
        "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c"
    ),
}
#: AMD's names; a simulated platform's ARK adds " (simulated)" (enclave_worker), as it must
_ARK_NAME = re.compile(r"ARK-(Milan|Genoa|Turin)(?: \(simulated\))?")
_AMD_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


@dataclass(frozen=True, slots=True)
class SnpAnchor:
    """An ARK trusted for one product line, and where the trust comes from."""

    product: ProductLine
    anchor: TrustAnchor
    #: "pinned" (package data) or "configured" (given explicitly by the caller)
    origin: str


@dataclass(frozen=True, slots=True)
class PinnedIntermediate:
    """A packaged ASK or ASVK, already checked against its ARK at load."""

    product: ProductLine
    kind: EndorsementKind
    der: bytes
    certificate: x509.Certificate


@dataclass(frozen=True, slots=True)
class SnpTrustStore:
    """The ARKs trusted per product line, and the packaged ASK/ASVK of the pinned ones."""

    anchors: Mapping[ProductLine, tuple[SnpAnchor, ...]]
    intermediates: Mapping[tuple[ProductLine, EndorsementKind], PinnedIntermediate]

    def anchors_for(self, product: ProductLine) -> tuple[SnpAnchor, ...]:
        return self.anchors.get(product, ())

    def all_anchors(self) -> tuple[SnpAnchor, ...]:
        return tuple(a for anchors in self.anchors.values() for a in anchors)

    @classmethod
    def configured(cls, anchors: Sequence[TrustAnchor]) -> SnpTrustStore:
        """Trust exactly ``anchors`` (each an ARK named ``CN=ARK-<product line>``). The
        packaged ASK/ASVK are offered only for anchors that are AMD's pinned ARKs; any other
        ARK's ASK or ASVK must come with the evidence. Raises ``ValueError``."""
        pinned = amd_trust_store()
        pinned_der = {a.anchor.der for a in pinned.all_anchors()}
        by_product: dict[ProductLine, list[SnpAnchor]] = {}
        for anchor in anchors:
            key = anchor.public_key
            if not isinstance(key, rsa.RSAPublicKey):
                raise ValueError(f"trust anchor {anchor.name!r}: an AMD ARK has an RSA key")
            origin = "pinned" if anchor.der in pinned_der else "configured"
            product = anchor_product(anchor)
            by_product.setdefault(product, []).append(SnpAnchor(product, anchor, origin))
        intermediates = {
            key: value
            for key, value in pinned.intermediates.items()
            if any(a.origin == "pinned" for a in by_product.get(key[0], []))
        }
        return cls(
            anchors=MappingProxyType({p: tuple(a) for p, a in by_product.items()}),
            intermediates=MappingProxyType(intermediates),
        )


def anchor_product(anchor: TrustAnchor) -> ProductLine:
    """The product line an ARK names in its subject's common name (``ARK-Milan``)."""
    names = anchor.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if len(names) == 1 else ""
    match = _ARK_NAME.fullmatch(common_name)
    if match is None:
        raise ValueError(
            f"trust anchor {anchor.name!r}: an SEV-SNP root must be named as AMD names them, "
            f"CN=ARK-Milan, ARK-Genoa or ARK-Turin; found CN={common_name!r}"
        )
    return ProductLine(match.group(1))


@cache
def amd_trust_store() -> SnpTrustStore:
    """The pinned AMD ARKs and their packaged ASK and ASVK, every one checked at load."""
    anchors: dict[ProductLine, tuple[SnpAnchor, ...]] = {}
    intermediates: dict[tuple[ProductLine, EndorsementKind], PinnedIntermediate] = {}
    for product, expected in AMD_ARK_SHA256.items():
        pem = _resource(f"ark_{product.value.lower()}.pem")
        anchor = TrustAnchor.from_pem(pem, name=f"AMD ARK-{product}")
        _check_pin(anchor.der, expected, f"ARK-{product}")
        if anchor_product(anchor) is not product:
            raise RuntimeError(f"the packaged ARK-{product} names another product line")
        anchors[product] = (SnpAnchor(product, anchor, "pinned"),)
        for kind in (EndorsementKind.ASK, EndorsementKind.ASVK):
            certificate = x509.load_pem_x509_certificate(
                _resource(f"{kind.value}_{product.value.lower()}.pem")
            )
            der = certificate.public_bytes(Encoding.DER)
            _check_pin(der, AMD_INTERMEDIATE_SHA256[(product, kind)], f"{kind.name}-{product}")
            _check_issued_by_ark(certificate, anchor, f"{kind.name}-{product}")
            intermediates[(product, kind)] = PinnedIntermediate(product, kind, der, certificate)
    return SnpTrustStore(
        anchors=MappingProxyType(anchors), intermediates=MappingProxyType(intermediates)
    )


def _resource(name: str) -> bytes:
    return (resources.files("verifier.snp") / "roots" / name).read_bytes()


def _check_pin(der: bytes, expected: str, what: str) -> None:
    found = hashlib.sha256(der).hexdigest()
    if found != expected:
        raise RuntimeError(
            f"the packaged AMD {what} has SHA-256 {found}, expected {expected}: "
            "the installation has been modified"
        )


def verify_amd_signature(signature: bytes, data: bytes, key: object) -> None:
    """Verify an AMD CA signature: RSASSA-PSS, SHA-384, MGF1-SHA-384, salt length exactly 48
    (AMD's profile for every ARK, ASK, ASVK, VCEK, VLEK and CRL signature). Raises
    ``InvalidSignature``, also for a key that is not RSA."""
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidSignature("an AMD CA key is RSA")
    key.verify(signature, data, _AMD_PSS, hashes.SHA384())


def _check_issued_by_ark(certificate: x509.Certificate, anchor: TrustAnchor, what: str) -> None:
    try:
        if certificate.issuer != anchor.certificate.subject:
            raise InvalidSignature("another issuer")
        verify_amd_signature(
            certificate.signature, certificate.tbs_certificate_bytes, anchor.public_key
        )
    except InvalidSignature:
        raise RuntimeError(
            f"the packaged AMD {what} is not signed by {anchor.name}: "
            "the installation has been modified"
        ) from None
