"""Trust anchors: the root certificate a chain must end in.

The AWS Nitro Enclaves Root-G1 ships as package data and is pinned by the SHA-256 of its DER
encoding; loading it checks that hash, so a modified package fails loudly instead of
trusting a substituted root. (AWS's published hash 8cf60e2b... is of the ZIP that carries the
PEM, not of the certificate.)

Any other anchor, such as the simulated PKI used in tests and demos, must be handed to the
verifier explicitly; nothing else is ever trusted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["AWS_NITRO_ROOT_G1_SHA256", "TrustAnchor", "aws_nitro_root_g1"]

AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
_AWS_ROOT_RESOURCE = "aws_nitro_enclaves_root_g1.pem"


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """A root certificate that cabundle[0] must equal byte for byte."""

    name: str
    der: bytes
    certificate: x509.Certificate = field(repr=False, compare=False)
    public_key: ec.EllipticCurvePublicKey = field(repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        """Lowercase hex SHA-256 of the DER encoding."""
        return hashlib.sha256(self.der).hexdigest()

    @classmethod
    def from_der(cls, der: bytes, *, name: str) -> TrustAnchor:
        """Build an anchor from a DER certificate; it must be a self-signed P-384 CA with
        basicConstraints cA=true and keyUsage keyCertSign.

        Raises ``ValueError`` if the bytes are not such a certificate: a bad anchor is a
        configuration mistake, not a property of the evidence.
        """
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise ValueError(f"trust anchor {name!r} is not a DER X.509 certificate") from exc
        key = certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise ValueError(f"trust anchor {name!r}: expected a P-384 key")
        try:
            basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
        except (x509.ExtensionNotFound, ValueError) as exc:
            raise ValueError(f"trust anchor {name!r} lacks CA extensions") from exc
        if not basic.value.ca or not usage.value.key_cert_sign:
            raise ValueError(f"trust anchor {name!r} is not a CA certificate")
        if certificate.issuer != certificate.subject:
            raise ValueError(f"trust anchor {name!r} is not self-issued")
        try:
            certificate.verify_directly_issued_by(certificate)
        except Exception as exc:  # InvalidSignature, ValueError, TypeError: all mean "not a root"
            raise ValueError(f"trust anchor {name!r} is not self-signed") from exc
        return cls(name=name, der=der, certificate=certificate, public_key=key)

    @classmethod
    def from_pem(cls, pem: bytes, *, name: str) -> TrustAnchor:
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise ValueError(f"trust anchor {name!r} is not a PEM X.509 certificate") from exc
        return cls.from_der(certificate.public_bytes(Encoding.DER), name=name)


@cache
def aws_nitro_root_g1() -> TrustAnchor:
    """The pinned AWS Nitro Enclaves Root-G1 (commercial partitions), checked at load."""
    pem = (resources.files("verifier") / "roots" / _AWS_ROOT_RESOURCE).read_bytes()
    anchor = TrustAnchor.from_pem(pem, name="AWS Nitro Enclaves Root-G1")
    if anchor.fingerprint != AWS_NITRO_ROOT_G1_SHA256:
        raise RuntimeError(
            f"the packaged AWS root has SHA-256 {anchor.fingerprint}, "
            f"expected {AWS_NITRO_ROOT_G1_SHA256}: the installation has been modified"
        )
    return anchor
