"""A simulated AMD SEV-SNP platform: a chip with its VCEK, and a guest whose reports it signs.

* :class:`SimulatedSnpChip`: one chip of a product at one TCB. Like AMD's, its VCEK is derived
  from a chip secret and the TCB (here HMAC-SHA-384 of the secret and the TCB_VERSION, taken
  as a P-384 scalar), so the same chip at the same TCB always has the same key, and another
  TCB another key. Its certificate comes from a :class:`SimulatedAmdPki`.
* :class:`SimulatedSnpPlatform`: a guest launched on that chip from an image, the attester.
  Its reports have the real layout (:mod:`enclave_worker.snp_report`): version 3 unless told,
  AMD's default guest policy (SMT allowed) with bit 19 set for a debug guest, the CPUID bytes
  of the product, the chip's TCB as reported, current, committed and launch TCB, report_id
  fixed for the guest's life, report_id_ma all ones (no migration agent), signature
  algorithm 1, signed by the VCEK. It says "simulated" and warns when created.

The launch measurement of a simulated image is :func:`simulated_snp_measurement`, a stand-in
for the SHA-384 the AMD secure processor computes over the guest's initial memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from enclave_worker.attester import AMD_SEV_SNP, Endorsement, Evidence
from enclave_worker.binding import REPORT_DATA_SIZE, ResultDigest, report_data
from enclave_worker.simulated_amd import SimulatedAmdPki, SimulatedAmdWarning
from enclave_worker.snp_report import (
    FLAG_AUTHOR_KEY_EN,
    POLICY_DEBUG,
    POLICY_DEFAULT,
    SIGNATURE_ALGO_ECDSA_P384_SHA384,
    SIGNING_KEY_VCEK,
    Product,
    SnpReport,
    Tcb,
)

__all__ = [
    "DEFAULT_TCB",
    "SimulatedSnpChip",
    "SimulatedSnpPlatform",
    "SnpGuest",
    "simulated_snp_measurement",
]

#: A plausible current TCB per product (Milan's and Genoa's are those of the real reports in
#: tests/fixtures/snp; Turin's is made up).
DEFAULT_TCB = {
    "Milan": Tcb(bootloader=4, tee=0, snp=24, microcode=219),
    "Genoa": Tcb(bootloader=10, tee=0, snp=25, microcode=84),
    "Turin": Tcb(bootloader=1, tee=1, snp=3, microcode=72, fmc=1),
}
#: SEV firmware 1.55.43 (major, minor, build), as in the real Genoa report.
_FIRMWARE = (1, 55, 43)
#: SMT enabled, ECC memory, alias check complete (the real Genoa report's platform_info).
_PLATFORM_INFO = 0x25
_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


def simulated_snp_measurement(image: str) -> bytes:
    """The 48-byte launch measurement a simulated guest of ``image`` reports."""
    return hashlib.sha384(f"simulated SEV-SNP image {image} launch measurement".encode()).digest()


@dataclass(frozen=True)
class SimulatedSnpChip:
    """One simulated chip at one TCB, with its VCEK key and certificate."""

    pki: SimulatedAmdPki
    chip_id: bytes
    tcb: Tcb
    vcek_key: ec.EllipticCurvePrivateKey
    #: DER.
    vcek: bytes

    @classmethod
    def generate(
        cls,
        pki: SimulatedAmdPki,
        *,
        at: datetime,
        tcb: Tcb | None = None,
        chip_id: bytes | None = None,
        secret: bytes | None = None,
    ) -> SimulatedSnpChip:
        """A chip (random unless ``chip_id`` and ``secret`` are given) whose VCEK is valid
        at ``at``. Turin chip ids are 8 bytes and 56 zero bytes, as Turin reports show."""
        product = pki.product
        tcb = tcb or DEFAULT_TCB[product.name]
        tcb_bytes = tcb.to_bytes(product)  # also checks the TCB suits the product
        if chip_id is None:
            chip_id = secrets.token_bytes(product.hwid_size).ljust(64, b"\0")
        secret = secret or secrets.token_bytes(32)
        vcek_key = _derive_vcek(secret, tcb_bytes)
        vcek = pki.issue_vcek(vcek_key.public_key(), chip_id=chip_id, tcb=tcb, at=at)
        return cls(pki=pki, chip_id=chip_id, tcb=tcb, vcek_key=vcek_key, vcek=vcek)

    @property
    def product(self) -> Product:
        return self.pki.product

    def endorsements(self) -> tuple[Endorsement, ...]:
        """What an extended report's certificate table carries: VCEK, ASK, ARK."""
        return (
            Endorsement("vcek", self.vcek),
            Endorsement("ask", self.pki.ask.der),
            Endorsement("ark", self.pki.ark.der),
        )


def _derive_vcek(secret: bytes, tcb: bytes) -> ec.EllipticCurvePrivateKey:
    seed = hmac.digest(secret, b"simulated VCEK " + tcb, "sha384")
    scalar = int.from_bytes(seed, "big") % (_P384_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP384R1())


@dataclass(frozen=True)
class SnpGuest:
    """What a guest owner chooses at launch, and so what its reports say about it."""

    image: str = "demo-inference"
    #: None: :func:`simulated_snp_measurement` of the image.
    measurement: bytes | None = None
    #: Sets guest policy bit 19.
    debug: bool = False
    version: int = 3
    policy: int = POLICY_DEFAULT
    vmpl: int = 0
    guest_svn: int = 0
    host_data: bytes = bytes(32)
    id_key_digest: bytes = bytes(48)
    author_key_digest: bytes = bytes(48)
    family_id: bytes = bytes(16)
    image_id: bytes = bytes(16)

    @property
    def launch_measurement(self) -> bytes:
        return self.measurement or simulated_snp_measurement(self.image)

    @property
    def guest_policy(self) -> int:
        return (self.policy | POLICY_DEBUG) if self.debug else self.policy


class SimulatedSnpPlatform:
    """A simulated SEV-SNP guest on a simulated chip: the attester. Warns when created; its
    reports prove nothing about hardware."""

    kind = AMD_SEV_SNP

    def __init__(
        self,
        chip: SimulatedSnpChip,
        *,
        report_id: bytes | None = None,
        endorsement_kinds: Sequence[str] = ("vcek", "ask", "ark"),
        **guest: Any,
    ) -> None:
        """``guest``: the fields of :class:`SnpGuest` (``image``, ``debug``, ``version``...)."""
        warnings.warn(
            "SimulatedSnpPlatform signs with a simulated AMD PKI, not AMD hardware",
            SimulatedAmdWarning,
            stacklevel=2,
        )
        self.chip = chip
        self.guest = SnpGuest(**guest)
        self.report_id = report_id or secrets.token_bytes(32)
        unknown = set(endorsement_kinds) - {"vcek", "ask", "ark"}
        if unknown:
            raise ValueError(f"unknown endorsement kinds {sorted(unknown)}")
        self.endorsement_kinds = tuple(endorsement_kinds)
        self.fields(bytes(REPORT_DATA_SIZE)).body()  # every field checked now, not per report

    @property
    def measurement(self) -> bytes:
        return self.guest.launch_measurement

    def fields(self, report_data: bytes) -> SnpReport:
        """The report's signed fields, for callers that want to change some before signing."""
        if len(report_data) != REPORT_DATA_SIZE:
            raise ValueError(f"report_data is {REPORT_DATA_SIZE} bytes, not {len(report_data)}")
        chip, guest = self.chip, self.guest
        tcb = chip.tcb.to_bytes(chip.product)
        family, model, stepping = chip.product.cpuid if guest.version >= 3 else (0, 0, 0)
        major, minor, build = _FIRMWARE
        return SnpReport(
            version=guest.version,
            guest_svn=guest.guest_svn,
            policy=guest.guest_policy,
            family_id=guest.family_id,
            image_id=guest.image_id,
            vmpl=guest.vmpl,
            signature_algo=SIGNATURE_ALGO_ECDSA_P384_SHA384,
            current_tcb=tcb,
            platform_info=_PLATFORM_INFO,
            flags=(SIGNING_KEY_VCEK << 2)
            | (FLAG_AUTHOR_KEY_EN if any(guest.author_key_digest) else 0),
            report_data=report_data,
            measurement=guest.launch_measurement,
            host_data=guest.host_data,
            id_key_digest=guest.id_key_digest,
            author_key_digest=guest.author_key_digest,
            report_id=self.report_id,
            report_id_ma=b"\xff" * 32,
            reported_tcb=tcb,
            cpuid_family=family,
            cpuid_model=model,
            cpuid_stepping=stepping,
            chip_id=chip.chip_id,
            committed_tcb=tcb,
            current_build=build,
            current_minor=minor,
            current_major=major,
            committed_build=build,
            committed_minor=minor,
            committed_major=major,
            launch_tcb=tcb,
            launch_mit_vector=0,
            current_mit_vector=0,
        )

    def report(self, report_data: bytes) -> bytes:
        """A signed 1184-byte report carrying ``report_data``."""
        return self.sign(self.fields(report_data))

    def sign(self, fields: SnpReport) -> bytes:
        """Sign (possibly altered) fields with the chip's VCEK."""
        return fields.sign(self.chip.vcek_key)

    def attest(self, *, nonce: bytes, result: ResultDigest) -> Evidence:
        endorsements = tuple(
            e for e in self.chip.endorsements() if e.kind in self.endorsement_kinds
        )
        return Evidence(self.kind, self.report(report_data(nonce, result)), endorsements)

    def variant(self, **changes: Any) -> SimulatedSnpPlatform:
        """Another guest on the same chip: ``variant(image="other")``, ``variant(debug=True)``.
        Changing the image recomputes the measurement unless one is given."""
        if "image" in changes and "measurement" not in changes:
            changes["measurement"] = None
        guest = dataclasses.replace(self.guest, **changes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedAmdWarning)
            return SimulatedSnpPlatform(
                self.chip,
                endorsement_kinds=self.endorsement_kinds,
                **dataclasses.asdict(guest),
            )
