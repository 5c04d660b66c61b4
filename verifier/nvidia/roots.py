"""NVIDIA's two roots, shipped as package data in ``roots/`` and checked by the SHA-256 of
their DER when loaded (a package whose roots were swapped fails loudly):

* ``nvidia_device_root.pem``: CN=NVIDIA Device Identity CA, O=NVIDIA (P-384, 2021 to
  9999): the root of every GPU's and NVSwitch's device certificate chain;
* ``nvidia_rim_root.pem``: CN=NVIDIA CoRIM signing Root CA, O=NVIDIA, C=US (P-384, 2023 to
  2053): the root of the certificates that sign reference integrity manifests (RIMs).

Provenance: tests/fixtures/nvidia/README.md (NVIDIA/nvtrust, local_gpu_verifier's certs/).
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.x509 import TrustAnchor

__all__ = [
    "NVIDIA_DEVICE_ROOT_SHA256",
    "NVIDIA_RIM_ROOT_SHA256",
    "nvidia_device_root",
    "nvidia_rim_root",
]

NVIDIA_DEVICE_ROOT_SHA256 = "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48"
NVIDIA_RIM_ROOT_SHA256 = "12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1"


def _anchor(file: str, expected: str, name: str) -> TrustAnchor:
    pem = (resources.files("verifier.nvidia") / "roots" / file).read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    found = hashlib.sha256(der).hexdigest()
    if found != expected:
        raise RuntimeError(
            f"the packaged NVIDIA root {file} has SHA-256 {found}, expected {expected}: "
            "the installation has been modified"
        )
    return TrustAnchor.from_der(der, name=name)


@cache
def nvidia_device_root() -> TrustAnchor:
    """CN=NVIDIA Device Identity CA: the pinned root of device certificate chains."""
    return _anchor("nvidia_device_root.pem", NVIDIA_DEVICE_ROOT_SHA256, "NVIDIA Device Identity CA")


@cache
def nvidia_rim_root() -> TrustAnchor:
    """CN=NVIDIA CoRIM signing Root CA: the pinned root of RIM signer chains."""
    return _anchor("nvidia_rim_root.pem", NVIDIA_RIM_ROOT_SHA256, "NVIDIA CoRIM signing Root CA")
