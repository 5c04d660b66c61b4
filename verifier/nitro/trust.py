"""The Nitro trust anchor: the AWS Nitro Enclaves Root-G1 that ``cabundle[0]`` must equal.

It ships as package data and is pinned by the SHA-256 of its DER encoding; loading it checks
that hash, so a modified package fails loudly instead of trusting a substituted root. (AWS's
published hash 8cf60e2b... is of the ZIP that carries the PEM, not of the certificate.)

Any other anchor, such as the simulated PKI used in tests and demos, must be handed to the
verifier explicitly; nothing else is ever trusted.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from cryptography.hazmat.primitives.asymmetric import ec

from verifier.x509 import TrustAnchor

__all__ = ["AWS_NITRO_ROOT_G1_SHA256", "TrustAnchor", "aws_nitro_root_g1", "require_p384"]

AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
_AWS_ROOT_RESOURCE = "aws_nitro_enclaves_root_g1.pem"


@cache
def aws_nitro_root_g1() -> TrustAnchor:
    """The pinned AWS Nitro Enclaves Root-G1 (commercial partitions), checked at load."""
    pem = (resources.files("verifier.nitro") / "roots" / _AWS_ROOT_RESOURCE).read_bytes()
    anchor = TrustAnchor.from_pem(pem, name="AWS Nitro Enclaves Root-G1")
    if anchor.fingerprint != AWS_NITRO_ROOT_G1_SHA256:
        raise RuntimeError(
            f"the packaged AWS root has SHA-256 {anchor.fingerprint}, "
            f"expected {AWS_NITRO_ROOT_G1_SHA256}: the installation has been modified"
        )
    return anchor


def require_p384(anchor: TrustAnchor) -> ec.EllipticCurvePublicKey:
    """A Nitro anchor has a P-384 key (AWS's profile); raises ``ValueError`` otherwise."""
    key = anchor.public_key
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise ValueError(f"trust anchor {anchor.name!r}: a Nitro root needs a P-384 key")
    return key
