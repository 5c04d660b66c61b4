"""The pinned Intel SGX Root CA (package data ``roots/intel_sgx_root_ca.pem``), checked by the
SHA-256 of its DER when loaded: a package whose root was swapped fails loudly.

Every PCK chain, the Intel SGX TCB Signing certificate and both CRLs chain to it. A caller may
replace it (``DcapVerifier(trust_anchors=[...])``), for example by the simulated Intel PKI's
root, which is trusted only when configured explicitly.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from cryptography.hazmat.primitives.asymmetric import ec

from verifier.x509 import TrustAnchor

__all__ = ["INTEL_SGX_ROOT_CA_SHA256", "check_intel_anchor", "intel_sgx_root_ca"]

#: SHA-256 of the DER of CN=Intel SGX Root CA (tests/fixtures/tdx/README.md, research §5).
INTEL_SGX_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"


@cache
def intel_sgx_root_ca() -> TrustAnchor:
    pem = (resources.files("verifier.tdx") / "roots" / "intel_sgx_root_ca.pem").read_bytes()
    anchor = TrustAnchor.from_pem(pem, name="Intel SGX Root CA")
    found = hashlib.sha256(anchor.der).hexdigest()
    if found != INTEL_SGX_ROOT_CA_SHA256:
        raise RuntimeError(
            f"the packaged Intel SGX Root CA has SHA-256 {found}, expected "
            f"{INTEL_SGX_ROOT_CA_SHA256}: the installation has been modified"
        )
    check_intel_anchor(anchor)
    return anchor


def check_intel_anchor(anchor: TrustAnchor) -> None:
    """An Intel DCAP root has a P-256 key; raises ``ValueError`` otherwise."""
    key = anchor.public_key
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError(f"trust anchor {anchor.name!r}: an Intel SGX root has a P-256 key")
