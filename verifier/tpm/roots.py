"""Google's vTPM AK/EK certificate authorities, shipped as package data in ``roots/`` and
checked by the SHA-256 of their DER when loaded (a package whose roots were swapped fails
loudly):

* ``gcp_ekak_root.pem``: CN=EK/AK CA Root, OU=Google Cloud (RSA-4096, 2022-2122): the root
  of today's GCE Shielded/Confidential VM AK certificates;
* ``tpm_gcp_tpm_ek_root_1.pem``: Google's 2018 vTPM EK/AK root (RSA-4096, 2018-2118), and
  ``tpm_gcp_tpm_ek_intermediate_2.pem``, the intermediate under it (2020-2120), which
  go-tpm-tools attestations do not carry, so a verifier must have it.

Provenance: tests/fixtures/tpm/README.md (lockboot/vaportpm, google/go-tpm-tools). The 2018
certificates' common names are longer than RFC 5280 allows; they are loaded with that one
rule relaxed (:func:`verifier.x509.names_tolerated`) and their names compared as DER bytes.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.x509 import TrustAnchor, names_tolerated

__all__ = [
    "GCP_EKAK_ROOT_SHA256",
    "GCP_VTPM_INTERMEDIATE_2020_SHA256",
    "GCP_VTPM_ROOT_2018_SHA256",
    "gcp_ekak_root",
    "gcp_vtpm_intermediate_2020",
    "gcp_vtpm_root_2018",
    "google_roots",
]

GCP_EKAK_ROOT_SHA256 = "594759594b9b61524f6c8ef668f7177f7b9066bc0674f2f49fe9e052be78beb2"
GCP_VTPM_ROOT_2018_SHA256 = "9bd5285f8fb18502a7947e621ffd470266f49fcd3b73e19a190f690ad32a7caf"
GCP_VTPM_INTERMEDIATE_2020_SHA256 = (
    "5d8dbcf8c8053dd8ffad711b6219355032b7122c34cac0f90ccb49def69ec504"
)


def _der(name: str, expected: str) -> bytes:
    pem = (resources.files("verifier.tpm") / "roots" / name).read_bytes()
    with names_tolerated():
        der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    found = hashlib.sha256(der).hexdigest()
    if found != expected:
        raise RuntimeError(
            f"the packaged Google certificate {name} has SHA-256 {found}, expected {expected}: "
            "the installation has been modified"
        )
    return der


def anchor_from_der(der: bytes, *, name: str) -> TrustAnchor:
    """:meth:`TrustAnchor.from_der` with over-long name attributes tolerated (see above)."""
    with names_tolerated():
        return TrustAnchor.from_der(der, name=name)


@cache
def gcp_ekak_root() -> TrustAnchor:
    """CN=EK/AK CA Root, OU=Google Cloud: the root of current GCE AK certificates."""
    return anchor_from_der(
        _der("gcp_ekak_root.pem", GCP_EKAK_ROOT_SHA256), name="Google EK/AK CA Root"
    )


@cache
def gcp_vtpm_root_2018() -> TrustAnchor:
    """Google's 2018 vTPM EK/AK root (tpm_ek_v1_cloud_host_root)."""
    return anchor_from_der(
        _der("tpm_gcp_tpm_ek_root_1.pem", GCP_VTPM_ROOT_2018_SHA256),
        name="Google vTPM EK/AK root 2018",
    )


@cache
def gcp_vtpm_intermediate_2020() -> bytes:
    """The DER of the 2020 intermediate under :func:`gcp_vtpm_root_2018`."""
    return _der("tpm_gcp_tpm_ek_intermediate_2.pem", GCP_VTPM_INTERMEDIATE_2020_SHA256)


def google_roots() -> tuple[TrustAnchor, ...]:
    """The pinned Google AK CA roots, newest first."""
    return (gcp_ekak_root(), gcp_vtpm_root_2018())
