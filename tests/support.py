"""Helpers shared by the tests: the catalogue of real documents and the simulated PKI."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from enclave_worker import SimulatedNitroPki, SimulatedNitroWarning, SimulatedNsm
from verifier import Policy, ReferenceImage, TrustAnchor

FIXTURES = Path(__file__).parent / "fixtures"
NITRO = FIXTURES / "nitro"


@dataclass(frozen=True)
class RealDocument:
    """A real AWS-signed document and what is known about it (tests/fixtures/nitro/README.md)."""

    file: str
    kind: str
    timestamp_ms: int
    debug: bool = False

    def read(self) -> bytes:
        return (NITRO / self.file).read_bytes()

    @property
    def timestamp(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=self.timestamp_ms)


REAL_DOCUMENTS = (
    RealDocument(
        "anjuna_attestdoc_sample_prod_doc_with_publickey.cbor", "aws-nitro-enclave", 1616602241734
    ),
    RealDocument("base_nitro_validator_2024.cbor", "aws-nitro-enclave", 1732983768387),
    RealDocument("blocky_nitro_attestation.cbor", "aws-nitro-enclave", 1725719859545),
    RealDocument(
        "brave_nitro_empty_public_key.cbor", "aws-nitro-enclave", 1658860752566, debug=True
    ),
    RealDocument("evervault_beta_debug.cbor", "aws-nitro-enclave", 1665582606081, debug=True),
    RealDocument("evervault_beta_valid.cbor", "aws-nitro-enclave", 1665651482136),
    RealDocument("vaportpm_nitrotpm_2026.cbor", "aws-nitro-tpm", 1770113522437),
    RealDocument("yawn_nitro_attest.cbor", "aws-nitro-enclave", 1736179625472),
)
ENCLAVE_DOCUMENTS = tuple(
    d for d in REAL_DOCUMENTS if d.kind == "aws-nitro-enclave" and not d.debug
)
FORGED_DOCUMENT = "blocky_selfsigned_attestation.cbor"
#: A fixed "now" for tests that need one: long after every real chain expired.
LATE = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
#: The instant simulated chains are built around.
SIM_AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def simulated_pki(at: datetime = SIM_AT) -> SimulatedNitroPki:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        return SimulatedNitroPki.generate(at=at)


def simulated_nsm(
    pki: SimulatedNitroPki, *, image: str = "inference-v1", debug: bool = False
) -> SimulatedNsm:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        return SimulatedNsm(pki, image=image, debug=debug)


def anchor_for(pki: SimulatedNitroPki) -> TrustAnchor:
    return TrustAnchor.from_pem(pki.root_pem(), name="simulated test root")


def policy_for_pcrs(
    pcrs: Mapping[int, bytes],
    *,
    name: str = "test",
    indices: tuple[int, ...] = (0, 1, 2),
    allow_debug: bool = False,
    max_age: timedelta | None = timedelta(minutes=5),
) -> Policy:
    """A policy whose one image expects exactly these PCR values at ``indices``."""
    image = ReferenceImage(f"{name}-image", {i: pcrs[i] for i in indices})
    return Policy(name=name, images=(image,), allow_debug=allow_debug, max_age=max_age)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
