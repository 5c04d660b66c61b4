"""The SEV-SNP ATTESTATION_REPORT, parsed strictly by its layout into a frozen, typed object.

Layout (AMD SEV-SNP firmware ABI specification, publication 56860, table "ATTESTATION_REPORT
structure"), 1184 bytes, little-endian::

    0x000 version u32            (2, 3 or 5; 3 adds CPUID bytes, 5 the mitigation vectors)
    0x004 guest_svn u32          0x008 policy u64 (guest policy bits, below)
    0x010 family_id[16]          0x020 image_id[16]
    0x030 vmpl u32               (0..3; 0xFFFFFFFF for a report the host requested)
    0x034 signature_algo u32     (1: ECDSA P-384 with SHA-384)
    0x038 current_tcb u64        0x040 platform_info u64
    0x048 flags u32              (bit 0 author_key_en, bit 1 mask_chip_key,
                                  bits 2..4 signing key: 0 VCEK, 1 VLEK, 7 none; rest reserved)
    0x04C reserved u32
    0x050 report_data[64]        0x090 measurement[48]       0x0C0 host_data[32]
    0x0E0 id_key_digest[48]      0x110 author_key_digest[48]
    0x140 report_id[32]          0x160 report_id_ma[32]      0x180 reported_tcb u64
    0x188 cpuid family, model, stepping (v3+; reserved in v2)   0x18B..0x19F reserved
    0x1A0 chip_id[64]            0x1E0 committed_tcb u64
    0x1E8 current build, minor, major, reserved     0x1EC committed build, minor, major, reserved
    0x1F0 launch_tcb u64
    0x1F8 launch_mit_vector u64, 0x200 current_mit_vector u64 (v5; reserved before)
    0x208..0x29F reserved
    0x2A0 signature: R (72 bytes, little-endian), S at 0x2E8 (72 bytes); only the low 48
          bytes of each are used by P-384; 0x330..0x49F reserved

The signature covers bytes 0x000..0x29F. Every reserved byte and bit must be zero (those after
the signature are not even signed), and so must the unused high bytes of R and S: a strict
parser refuses anything the format does not define, as the Nitro parser refuses unknown
fields. Guest policy: bits 0..7 ABI minor, 8..15 ABI major, 16 SMT allowed, 17 reserved and
always one, 18 migration agent allowed, 19 debug allowed, 20 single socket, 21 CXL allowed,
22 AES-256-XTS required, 23 RAPL disabled, 24 ciphertext hiding, 25 page swap disabled,
26..63 reserved (zero).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from verifier.errors import EvidenceTooLarge, MalformedEvidence, UnsupportedEvidence

__all__ = [
    "REPORT_BYTES",
    "SIGNED_BYTES",
    "SUPPORTED_VERSIONS",
    "AttestationReport",
    "GuestPolicy",
    "PlatformInfo",
    "SigningKey",
]

REPORT_BYTES = 0x4A0
SIGNED_BYTES = 0x2A0
SUPPORTED_VERSIONS = (2, 3, 5)
SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1
#: The VMPL field of a report the hypervisor requested (SNP_HV_REPORT_REQ).
VMPL_HOST = 0xFFFFFFFF
_MAX_GUEST_VMPL = 3
_R_OFFSET = 0x2A0
_S_OFFSET = 0x2E8
_COMPONENT_BYTES = 72
_P384_BYTES = 48
_KNOWN_POLICY_BITS = 26  # bits 0..25 are defined; 26..63 are reserved
_FLAGS_KNOWN = 0b11111

# Everything before the signature in one unpack: the fixed-size fields, in order.
_HEAD = struct.Struct("<IIQ16s16sIIQQII64s48s32s48s48s32s32sQ3s21s64sQ4s4sQQQ152s")
assert _HEAD.size == SIGNED_BYTES  # noqa: S101 - a layout typo must fail at import


class SigningKey(enum.IntEnum):
    """Which key signed the report (flags bits 2..4)."""

    VCEK = 0
    VLEK = 1
    NONE = 7


@dataclass(frozen=True, slots=True)
class GuestPolicy:
    """The guest policy the owner set at launch (signed; cannot change for the guest's life)."""

    raw: int

    @property
    def abi_minor(self) -> int:
        return self.raw & 0xFF

    @property
    def abi_major(self) -> int:
        return (self.raw >> 8) & 0xFF

    def _bit(self, index: int) -> bool:
        return bool(self.raw >> index & 1)

    @property
    def smt_allowed(self) -> bool:
        return self._bit(16)

    @property
    def migrate_ma(self) -> bool:
        """A migration agent may be associated with the guest."""
        return self._bit(18)

    @property
    def debug(self) -> bool:
        return self._bit(19)

    @property
    def single_socket(self) -> bool:
        return self._bit(20)

    def to_dict(self) -> dict[str, object]:
        return {
            "raw": f"0x{self.raw:x}",
            "abi_major": self.abi_major,
            "abi_minor": self.abi_minor,
            "smt_allowed": self.smt_allowed,
            "migrate_ma": self.migrate_ma,
            "debug": self.debug,
            "single_socket": self.single_socket,
            "cxl_allowed": self._bit(21),
            "mem_aes_256_xts": self._bit(22),
            "rapl_disabled": self._bit(23),
            "ciphertext_hiding": self._bit(24),
            "page_swap_disabled": self._bit(25),
        }


@dataclass(frozen=True, slots=True)
class PlatformInfo:
    """What the platform reported about itself (informative; new bits appear with new
    firmware, so unknown bits are kept, not refused)."""

    raw: int

    @property
    def smt_enabled(self) -> bool:
        return bool(self.raw & 1)

    def to_dict(self) -> dict[str, object]:
        names = (
            "smt_enabled",
            "tsme_enabled",
            "ecc_enabled",
            "rapl_disabled",
            "ciphertext_hiding_enabled",
            "alias_check_complete",
        )
        return {"raw": f"0x{self.raw:x}"} | {
            name: bool(self.raw >> bit & 1) for bit, name in enumerate(names)
        }


@dataclass(frozen=True, slots=True, eq=False)
class AttestationReport:
    """A syntactically valid report. Nothing about it is verified yet."""

    raw: bytes
    version: int
    guest_svn: int
    policy: GuestPolicy
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: PlatformInfo
    author_key_en: bool
    mask_chip_key: bool
    signing_key: SigningKey
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    #: (family, model, stepping); None in a version 2 report.
    cpuid: tuple[int, int, int] | None
    chip_id: bytes
    committed_tcb: bytes
    #: Firmware versions as (major, minor, build).
    current_version: tuple[int, int, int]
    committed_version: tuple[int, int, int]
    launch_tcb: bytes
    #: Version 5 and later; None before.
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: int
    signature_s: int

    @property
    def signed_bytes(self) -> bytes:
        """What the signature covers: bytes 0x000..0x29F."""
        return self.raw[:SIGNED_BYTES]

    @property
    def host_requested(self) -> bool:
        return self.vmpl == VMPL_HOST

    @classmethod
    def from_bytes(cls, data: bytes) -> AttestationReport:
        """Parse and check the layout, or raise :class:`MalformedEvidence` (truncated,
        reserved bytes set, undefined flags), :class:`EvidenceTooLarge` (longer than 1184
        bytes) or :class:`UnsupportedEvidence` (a version or signature algorithm we do not
        know)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedEvidence("report: expected bytes")
        data = bytes(data)
        if len(data) > REPORT_BYTES:
            raise EvidenceTooLarge(
                f"report: an SEV-SNP report is exactly {REPORT_BYTES} bytes, found {len(data)}"
            )
        if len(data) < REPORT_BYTES:
            raise MalformedEvidence(
                f"report: an SEV-SNP report is exactly {REPORT_BYTES} bytes, found "
                f"{len(data)} (truncated)"
            )
        (
            version,
            guest_svn,
            policy,
            family_id,
            image_id,
            vmpl,
            signature_algo,
            current_tcb,
            platform_info,
            flags,
            reserved_04c,
            report_data,
            measurement,
            host_data,
            id_key_digest,
            author_key_digest,
            report_id,
            report_id_ma,
            reported_tcb,
            cpuid,
            reserved_18b,
            chip_id,
            committed_tcb,
            current_version,
            committed_version,
            launch_tcb,
            launch_mit_vector,
            current_mit_vector,
            reserved_208,
        ) = _HEAD.unpack_from(data)

        if version not in SUPPORTED_VERSIONS:
            raise UnsupportedEvidence(
                f"report: version {version} is not one this verifier knows "
                f"(expected {', '.join(map(str, SUPPORTED_VERSIONS))})"
            )
        if signature_algo != SIGNATURE_ALGO_ECDSA_P384_SHA384:
            raise UnsupportedEvidence(
                f"report: signature_algo {signature_algo} is not one this verifier knows "
                "(expected 1, ECDSA P-384 with SHA-384)"
            )
        if flags & ~_FLAGS_KNOWN:
            raise MalformedEvidence(
                f"report: flags 0x{flags:08x} set reserved bits 5..31 (they must be zero)"
            )
        key_select = (flags >> 2) & 0b111
        if key_select not in SigningKey._value2member_map_:
            raise MalformedEvidence(
                f"report: signing key {key_select} is reserved (expected 0 VCEK, 1 VLEK or 7 none)"
            )
        signing_key = SigningKey(key_select)
        mask_chip_key = bool(flags & 0b10)
        if mask_chip_key and signing_key is SigningKey.VCEK:
            raise MalformedEvidence(
                "report: mask_chip_key is set, so the VCEK cannot have signed, but the "
                "signing key says VCEK"
            )
        if not (vmpl <= _MAX_GUEST_VMPL or vmpl == VMPL_HOST):
            raise MalformedEvidence(f"report: vmpl {vmpl} is outside 0..3 (or 0xFFFFFFFF)")
        if not policy >> 17 & 1:
            raise MalformedEvidence(
                f"report: guest policy 0x{policy:x} has bit 17 clear; it is reserved and always one"
            )
        if policy >> _KNOWN_POLICY_BITS:
            raise MalformedEvidence(
                f"report: guest policy 0x{policy:x} sets reserved bits 26..63 (they must be zero)"
            )
        _zero(reserved_04c.to_bytes(4, "little"), 0x04C, "reserved")
        if version >= 3:
            _zero(reserved_18b, 0x18B, "reserved")
            family, model, stepping = cpuid
            cpuid_value: tuple[int, int, int] | None = (family, model, stepping)
        else:
            _zero(cpuid + reserved_18b, 0x188, "reserved (CPUID comes with version 3)")
            cpuid_value = None
        _zero(current_version[3:], 0x1EB, "reserved")
        _zero(committed_version[3:], 0x1EF, "reserved")
        if version >= 5:
            mitigations: tuple[int | None, int | None] = (launch_mit_vector, current_mit_vector)
        else:
            _zero(
                launch_mit_vector.to_bytes(8, "little") + current_mit_vector.to_bytes(8, "little"),
                0x1F8,
                "reserved before version 5",
            )
            mitigations = (None, None)
        _zero(reserved_208, 0x208, "reserved")

        r_field = data[_R_OFFSET : _R_OFFSET + _COMPONENT_BYTES]
        s_field = data[_S_OFFSET : _S_OFFSET + _COMPONENT_BYTES]
        _zero(r_field[_P384_BYTES:], _R_OFFSET + _P384_BYTES, "signature R (unused high bytes)")
        _zero(s_field[_P384_BYTES:], _S_OFFSET + _P384_BYTES, "signature S (unused high bytes)")
        _zero(data[_S_OFFSET + _COMPONENT_BYTES :], 0x330, "reserved (after the signature)")

        return cls(
            raw=data,
            version=version,
            guest_svn=guest_svn,
            policy=GuestPolicy(policy),
            family_id=family_id,
            image_id=image_id,
            vmpl=vmpl,
            signature_algo=signature_algo,
            current_tcb=current_tcb.to_bytes(8, "little"),
            platform_info=PlatformInfo(platform_info),
            author_key_en=bool(flags & 1),
            mask_chip_key=mask_chip_key,
            signing_key=signing_key,
            report_data=report_data,
            measurement=measurement,
            host_data=host_data,
            id_key_digest=id_key_digest,
            author_key_digest=author_key_digest,
            report_id=report_id,
            report_id_ma=report_id_ma,
            reported_tcb=reported_tcb.to_bytes(8, "little"),
            cpuid=cpuid_value,
            chip_id=chip_id,
            committed_tcb=committed_tcb.to_bytes(8, "little"),
            current_version=(current_version[2], current_version[1], current_version[0]),
            committed_version=(committed_version[2], committed_version[1], committed_version[0]),
            launch_tcb=launch_tcb.to_bytes(8, "little"),
            launch_mit_vector=mitigations[0],
            current_mit_vector=mitigations[1],
            signature_r=int.from_bytes(r_field, "little"),
            signature_s=int.from_bytes(s_field, "little"),
        )


def _zero(field: bytes, offset: int, what: str) -> None:
    if any(field):
        first = next(i for i, value in enumerate(field) if value)
        raise MalformedEvidence(
            f"report: byte 0x{offset + first:03X} is {what} and must be zero, "
            f"found 0x{field[first]:02x}"
        )
