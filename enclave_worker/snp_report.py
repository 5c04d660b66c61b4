"""The AMD SEV-SNP ``ATTESTATION_REPORT`` layout, written here from AMD's specification (SEV-SNP
ABI, document 56860, table "ATTESTATION_REPORT Structure") and checked against real reports
(tests/fixtures/snp), independently of the verifier's parser.

1184 bytes, little-endian. The firmware signs bytes 0x000..0x29F with ECDSA P-384 / SHA-384;
the signature area at 0x2A0 holds R and S as 72-byte little-endian integers (0x2A0, 0x2E8),
of which P-384 uses the low 48 bytes, then reserved zero bytes to 0x49F. Version 2 reports
have no CPUID bytes (0x188..0x18A zero); version 3 adds them; version 5 adds the launch and
current mitigation vectors (0x1F8, 0x200).

:class:`SnpReport` is the signed body as typed fields; :meth:`SnpReport.sign` writes the
whole report, :func:`parse_report` reads one back (for tests and display: it checks the
length, nothing else).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = [
    "FLAG_AUTHOR_KEY_EN",
    "FLAG_MASK_CHIP_KEY",
    "LAYOUT",
    "POLICY_DEBUG",
    "POLICY_DEFAULT",
    "POLICY_MIGRATE_MA",
    "POLICY_SINGLE_SOCKET",
    "POLICY_SMT",
    "PRODUCTS",
    "REPORT_SIZE",
    "SIGNATURE_ALGO_ECDSA_P384_SHA384",
    "SIGNATURE_OFFSET",
    "SIGNED_SIZE",
    "SIGNING_KEY_NONE",
    "SIGNING_KEY_VCEK",
    "SIGNING_KEY_VLEK",
    "VERSIONS",
    "Product",
    "SnpReport",
    "Tcb",
    "parse_report",
]

REPORT_SIZE: Final = 0x4A0
SIGNED_SIZE: Final = 0x2A0
SIGNATURE_OFFSET: Final = 0x2A0
_R_OFFSET, _S_OFFSET, _COMPONENT_SIZE = 0x2A0, 0x2E8, 72
VERSIONS: Final = (2, 3, 5)
SIGNATURE_ALGO_ECDSA_P384_SHA384: Final = 1

# Guest policy (u64 at 0x08).
POLICY_SMT: Final = 1 << 16
_POLICY_RESERVED_ONE: Final = 1 << 17  # must be one
POLICY_MIGRATE_MA: Final = 1 << 18
POLICY_DEBUG: Final = 1 << 19
POLICY_SINGLE_SOCKET: Final = 1 << 20
#: What real guests run with (every real report in tests/fixtures/snp): SMT allowed, ABI 0.0.
POLICY_DEFAULT: Final = POLICY_SMT | _POLICY_RESERVED_ONE

# Flags (u32 at 0x48): bit 0 author key enabled, bit 1 chip key masked, bits 2-4 signing key.
FLAG_AUTHOR_KEY_EN: Final = 1 << 0
FLAG_MASK_CHIP_KEY: Final = 1 << 1
_SIGNING_KEY_SHIFT: Final = 2
SIGNING_KEY_VCEK: Final = 0
SIGNING_KEY_VLEK: Final = 1
SIGNING_KEY_NONE: Final = 7


@dataclass(frozen=True)
class Product:
    """An AMD EPYC product line as SEV-SNP evidence shows it."""

    name: str
    #: CPUID family, model, stepping written at 0x188 by version 3+ firmware.
    cpuid: tuple[int, int, int]
    #: Serial numbers of AMD's ARK and ASK for this product (tests/fixtures/snp).
    ark_serial: int
    ask_serial: int
    #: Turin VCEKs carry an 8-byte hwID (chip_id[0:8]); earlier products the whole 64.
    hwid_size: int
    #: Turin's TCB_VERSION puts the FMC SPL first and moves the others.
    fmc: bool


PRODUCTS: Final = {
    "Milan": Product("Milan", (0x19, 0x01, 0x01), 0x10000, 0x10001, 64, fmc=False),
    "Genoa": Product("Genoa", (0x19, 0x11, 0x01), 0x20000, 0x20002, 64, fmc=False),
    "Turin": Product("Turin", (0x1A, 0x02, 0x01), 0x30000, 0x30001, 8, fmc=True),
}


@dataclass(frozen=True)
class Tcb:
    """A TCB_VERSION: the security patch level of each firmware component."""

    bootloader: int = 0
    tee: int = 0
    snp: int = 0
    microcode: int = 0
    #: Turin only.
    fmc: int | None = None

    def __post_init__(self) -> None:
        for name in ("bootloader", "tee", "snp", "microcode", "fmc"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 0xFF:
                raise ValueError(f"TCB {name} SPL must be 0..255, not {value}")

    def to_bytes(self, product: Product) -> bytes:
        """Milan/Genoa: [0] bootloader, [1] TEE, [6] SNP, [7] microcode; Turin: [0] FMC,
        [1] bootloader, [2] TEE, [3] SNP, [7] microcode; the other bytes reserved zero."""
        raw = bytearray(8)
        if product.fmc:
            if self.fmc is None:
                raise ValueError(f"a {product.name} TCB has an FMC SPL")
            raw[0], raw[1], raw[2], raw[3] = self.fmc, self.bootloader, self.tee, self.snp
        else:
            if self.fmc is not None:
                raise ValueError(f"a {product.name} TCB has no FMC SPL")
            raw[0], raw[1], raw[6] = self.bootloader, self.tee, self.snp
        raw[7] = self.microcode
        return bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes, product: Product) -> Tcb:
        if len(raw) != 8:
            raise ValueError(f"a TCB_VERSION is 8 bytes, not {len(raw)}")
        if product.fmc:
            return cls(bootloader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7], fmc=raw[0])
        return cls(bootloader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7])


#: (field, offset, struct format or byte count, first version that has it). Offsets not
#: listed in 0x000..0x29F are reserved and zero.
LAYOUT: Final[tuple[tuple[str, int, str | int, int], ...]] = (
    ("version", 0x000, "<I", 2),
    ("guest_svn", 0x004, "<I", 2),
    ("policy", 0x008, "<Q", 2),
    ("family_id", 0x010, 16, 2),
    ("image_id", 0x020, 16, 2),
    ("vmpl", 0x030, "<I", 2),
    ("signature_algo", 0x034, "<I", 2),
    ("current_tcb", 0x038, 8, 2),
    ("platform_info", 0x040, "<Q", 2),
    ("flags", 0x048, "<I", 2),
    ("report_data", 0x050, 64, 2),
    ("measurement", 0x090, 48, 2),
    ("host_data", 0x0C0, 32, 2),
    ("id_key_digest", 0x0E0, 48, 2),
    ("author_key_digest", 0x110, 48, 2),
    ("report_id", 0x140, 32, 2),
    ("report_id_ma", 0x160, 32, 2),
    ("reported_tcb", 0x180, 8, 2),
    ("cpuid_family", 0x188, "B", 3),
    ("cpuid_model", 0x189, "B", 3),
    ("cpuid_stepping", 0x18A, "B", 3),
    ("chip_id", 0x1A0, 64, 2),
    ("committed_tcb", 0x1E0, 8, 2),
    ("current_build", 0x1E8, "B", 2),
    ("current_minor", 0x1E9, "B", 2),
    ("current_major", 0x1EA, "B", 2),
    ("committed_build", 0x1EC, "B", 2),
    ("committed_minor", 0x1ED, "B", 2),
    ("committed_major", 0x1EE, "B", 2),
    ("launch_tcb", 0x1F0, 8, 2),
    ("launch_mit_vector", 0x1F8, "<Q", 5),
    ("current_mit_vector", 0x200, "<Q", 5),
)


@dataclass(frozen=True)
class SnpReport:
    """The signed body of an attestation report, field by field (names as AMD's)."""

    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: int
    flags: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid_family: int
    cpuid_model: int
    cpuid_stepping: int
    chip_id: bytes
    committed_tcb: bytes
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: bytes
    launch_mit_vector: int
    current_mit_vector: int

    @property
    def signing_key(self) -> int:
        """0 VCEK, 1 VLEK, 7 none."""
        return (self.flags >> _SIGNING_KEY_SHIFT) & 0b111

    def body(self) -> bytes:
        """Bytes 0x000..0x29F, the part the firmware signs."""
        if self.version not in VERSIONS:
            raise ValueError(f"report version must be one of {VERSIONS}, not {self.version}")
        raw = bytearray(SIGNED_SIZE)
        for name, offset, shape, since in LAYOUT:
            value = getattr(self, name)
            if self.version < since:
                if value:
                    raise ValueError(f"a version {self.version} report has no {name}")
                continue
            if isinstance(shape, int):
                if not isinstance(value, bytes) or len(value) != shape:
                    raise ValueError(f"{name} must be {shape} bytes")
                raw[offset : offset + shape] = value
            else:
                struct.pack_into(shape, raw, offset, value)
        return bytes(raw)

    def sign(self, key: ec.EllipticCurvePrivateKey) -> bytes:
        """The whole 1184-byte report, signed by ``key`` (the VCEK) as the firmware does."""
        body = self.body()
        r, s = decode_dss_signature(key.sign(body, ec.ECDSA(hashes.SHA384())))
        signature = r.to_bytes(_COMPONENT_SIZE, "little") + s.to_bytes(_COMPONENT_SIZE, "little")
        return body + signature + bytes(REPORT_SIZE - SIGNED_SIZE - len(signature))


def parse_report(report: bytes) -> tuple[SnpReport, int, int]:
    """The fields and the signature's (R, S) of a report, read with :data:`LAYOUT`."""
    if len(report) != REPORT_SIZE:
        raise ValueError(f"an SNP report is {REPORT_SIZE} bytes, not {len(report)}")
    values: dict[str, object] = {}
    for name, offset, shape, _since in LAYOUT:
        if isinstance(shape, int):
            values[name] = report[offset : offset + shape]
        else:
            values[name] = struct.unpack_from(shape, report, offset)[0]
    r = int.from_bytes(report[_R_OFFSET : _R_OFFSET + _COMPONENT_SIZE], "little")
    s = int.from_bytes(report[_S_OFFSET : _S_OFFSET + _COMPONENT_SIZE], "little")
    return SnpReport(**values), r, s  # type: ignore[arg-type]  # typed by LAYOUT's shapes
