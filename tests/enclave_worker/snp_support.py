"""Helpers for the SEV-SNP attester tests: the real samples and one simulated AMD PKI per run.

Generating RSA-4096 keys takes seconds, so :func:`amd_keys` makes the ARK's and the ASK's
once per test session and every simulated product reuses them.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning

from enclave_worker import (
    SimulatedAmdPki,
    SimulatedAmdWarning,
    SimulatedSnpChip,
    SimulatedSnpPlatform,
)
from tests.support import FIXTURES, SIM_AT

SNP = FIXTURES / "snp"


@functools.cache
def amd_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """The ARK's and ASK's RSA-4096 keys, made once per session."""
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=4096),
        rsa.generate_private_key(public_exponent=65537, key_size=4096),
    )


def amd_pki(product: str = "Genoa") -> SimulatedAmdPki:
    """One simulated AMD PKI per product and session (``amd_pki()`` and ``amd_pki("Genoa")``
    are the same one: functools.cache alone would tell the two calls apart)."""
    return _amd_pki(product)


@functools.cache
def _amd_pki(product: str) -> SimulatedAmdPki:
    ark_key, ask_key = amd_keys()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        return SimulatedAmdPki.generate(
            at=SIM_AT, product=product, ark_key=ark_key, ask_key=ask_key
        )


def snp_chip(product: str = "Genoa") -> SimulatedSnpChip:
    return _snp_chip(product)


@functools.cache
def _snp_chip(product: str) -> SimulatedSnpChip:
    return SimulatedSnpChip.generate(amd_pki(product), at=SIM_AT)


def snp_platform(product: str = "Genoa", **guest: object) -> SimulatedSnpPlatform:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        return SimulatedSnpPlatform(snp_chip(product), **guest)


def load_certificate(data: bytes) -> x509.Certificate:
    """A DER or PEM certificate. VCEKs and VLEKs have serial number 0, which cryptography
    48-50 loads with a deprecation warning (tests turn warnings into errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        if data.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)


def fixture_certificate(name: str) -> x509.Certificate:
    return load_certificate((SNP / name).read_bytes())


def fixture(name: str) -> bytes:
    return (SNP / name).read_bytes()


def fixture_path(name: str) -> Path:
    return SNP / name
