"""Mutations of real AMD-signed reports, each with the code it must be refused with.

A bit flipped in each region of the report (signed fields, reserved bytes, the signature),
wrong versions and signature algorithms, truncated and oversize reports. Every mutation is
made on a real report, verified with its real VCEK at a time inside its window.
"""

from __future__ import annotations

import struct

import pytest

from tests.verifier.snp.support import GENOA, SNP_AT, VIRTEE, VLEK, RealReport, accept_any
from verifier import (
    AttestationReport,
    EndorsementMismatch,
    EvidenceTooLarge,
    MalformedEvidence,
    SignatureInvalid,
    SnpVerifier,
    UnsupportedEvidence,
    VerifierError,
)


@pytest.fixture(scope="module")
def snp() -> SnpVerifier:
    return SnpVerifier()


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def code_of(snp: SnpVerifier, sample: RealReport, data: bytes) -> str:
    with pytest.raises(VerifierError) as caught:
        snp.verify(sample.evidence(data=data), at=SNP_AT, policy=accept_any())
    return caught.value.code


# (offset, bit, what, expected code) for the virtee report: version 2, VCEK, Milan.
REGIONS = [
    (0x004, 0, "guest_svn", "signature_invalid"),
    (0x008, 0, "policy: ABI minor", "signature_invalid"),
    (0x00A, 3, "policy: debug (bit 19)", "signature_invalid"),
    (0x00A, 1, "policy: reserved bit 17 cleared", "malformed"),
    (0x00B, 2, "policy: reserved bit 26", "malformed"),
    (0x010, 0, "family_id", "signature_invalid"),
    (0x020, 0, "image_id", "signature_invalid"),
    (0x030, 0, "vmpl 0 -> 1", "signature_invalid"),
    (0x030, 2, "vmpl 0 -> 4", "malformed"),
    (0x034, 0, "signature_algo 1 -> 0", "unsupported"),
    (0x038, 0, "current_tcb bootloader", "signature_invalid"),
    (0x03A, 0, "current_tcb reserved byte", "malformed"),
    (0x040, 1, "platform_info", "signature_invalid"),
    (0x048, 0, "flags: author_key_en", "signature_invalid"),
    (0x048, 1, "flags: mask_chip_key with a VCEK", "malformed"),
    (0x048, 2, "flags: signing key VCEK -> VLEK", "endorsement_mismatch"),
    (0x048, 5, "flags: reserved bit 5", "malformed"),
    (0x04C, 0, "reserved at 0x4C", "malformed"),
    (0x050, 0, "report_data", "signature_invalid"),
    (0x08F, 7, "report_data, last byte", "signature_invalid"),
    (0x090, 0, "measurement", "signature_invalid"),
    (0x0C0, 0, "host_data", "signature_invalid"),
    (0x0E0, 0, "id_key_digest", "signature_invalid"),
    (0x110, 0, "author_key_digest", "signature_invalid"),
    (0x140, 0, "report_id", "signature_invalid"),
    (0x160, 0, "report_id_ma", "signature_invalid"),
    (0x180, 0, "reported_tcb bootloader", "endorsement_mismatch"),
    (0x187, 0, "reported_tcb microcode", "endorsement_mismatch"),
    (0x183, 0, "reported_tcb reserved byte", "malformed"),
    (0x188, 0, "CPUID bytes in a version 2 report", "malformed"),
    (0x19F, 0, "reserved before chip_id", "malformed"),
    (0x1A0, 0, "chip_id", "endorsement_mismatch"),
    (0x1DF, 7, "chip_id, last byte", "endorsement_mismatch"),
    (0x1E0, 0, "committed_tcb", "signature_invalid"),
    (0x1E8, 0, "current build", "signature_invalid"),
    (0x1EB, 0, "reserved after the current version", "malformed"),
    (0x1EC, 0, "committed build", "signature_invalid"),
    (0x1EF, 0, "reserved after the committed version", "malformed"),
    (0x1F0, 0, "launch_tcb", "signature_invalid"),
    (0x1F8, 0, "mitigation vector in a version 2 report", "malformed"),
    (0x29F, 7, "reserved, last signed byte", "malformed"),
    (0x2A0, 0, "signature R, low byte", "signature_invalid"),
    (0x2CF, 0, "signature R, highest used byte", "signature_invalid"),
    (0x2D0, 0, "signature R, unused high bytes", "malformed"),
    (0x2E8, 0, "signature S, low byte", "signature_invalid"),
    (0x318, 0, "signature S, unused high bytes", "malformed"),
    (0x330, 0, "reserved after the signature (unsigned)", "malformed"),
    (0x49F, 7, "reserved, last byte (unsigned)", "malformed"),
]


@pytest.mark.parametrize(
    ("offset", "bit", "expected"),
    [(o, b, c) for o, b, _, c in REGIONS],
    ids=[f"0x{o:03x}.{b} {what}" for o, b, what, _ in REGIONS],
)
def test_a_bit_flip_in_each_region(snp: SnpVerifier, offset: int, bit: int, expected: str) -> None:
    assert code_of(snp, VIRTEE, flip(VIRTEE.bytes(), offset, bit)) == expected


def test_the_regions_cover_the_report() -> None:
    """Every field of the layout has a row above (so a region cannot be forgotten)."""
    starts = {0x004, 0x008, 0x010, 0x020, 0x030, 0x034, 0x038, 0x040, 0x048, 0x04C, 0x050}
    starts |= {0x090, 0x0C0, 0x0E0, 0x110, 0x140, 0x160, 0x180, 0x188, 0x1A0, 0x1E0, 0x1E8}
    starts |= {0x1EC, 0x1F0, 0x1F8, 0x2A0, 0x2E8, 0x330}
    assert starts <= {offset for offset, _, _, _ in REGIONS}


@pytest.mark.parametrize("sample", [VIRTEE, VLEK, GENOA], ids=["virtee", "vlek", "genoa"])
def test_no_single_byte_flip_verifies(snp: SnpVerifier, sample: RealReport) -> None:
    """One bit flipped in every byte of the report, in turn: none verifies, and each is
    refused with one of our own codes."""
    raw = sample.bytes()
    codes = set()
    for offset in range(len(raw)):
        codes.add(code_of(snp, sample, flip(raw, offset, offset % 8)))
    assert codes <= {
        "signature_invalid",
        "malformed",
        "unsupported",
        "endorsement_mismatch",
    }


def test_the_version_5_mitigation_vectors_are_signed(snp: SnpVerifier) -> None:
    assert code_of(snp, GENOA, flip(GENOA.bytes(), 0x1F8)) == "signature_invalid"
    assert code_of(snp, GENOA, flip(GENOA.bytes(), 0x200)) == "signature_invalid"
    assert code_of(snp, GENOA, flip(GENOA.bytes(), 0x208)) == "malformed"


def test_cpuid_of_a_version_3_report_is_signed_and_names_the_line(snp: SnpVerifier) -> None:
    # Model 0x01 -> 0x11: a Genoa CPUID, which the Milan VLEK does not belong to.
    assert code_of(snp, VLEK, flip(VLEK.bytes(), 0x189, 4)) == "endorsement_mismatch"
    # Family 0x19 -> 0x18: no product line this verifier knows.
    assert code_of(snp, VLEK, flip(VLEK.bytes(), 0x188, 0)) == "unsupported"
    # Stepping: signed, not used to choose the line.
    assert code_of(snp, VLEK, flip(VLEK.bytes(), 0x18A, 1)) == "signature_invalid"
    assert code_of(snp, VLEK, flip(VLEK.bytes(), 0x18B, 0)) == "malformed"


def test_the_unsigned_reserved_bytes_would_not_break_the_signature() -> None:
    """Why the parser refuses them: bytes 0x330.. are outside the signed range, so only a
    strict parser notices a change there."""
    mutated = flip(VIRTEE.bytes(), 0x400)
    assert mutated[:0x2A0] == VIRTEE.bytes()[:0x2A0]
    with pytest.raises(MalformedEvidence, match=r"0x400 is reserved"):
        AttestationReport.from_bytes(mutated)


@pytest.mark.parametrize("version", [0, 1, 4, 6, 0xFFFFFFFF])
def test_wrong_versions_are_unsupported(snp: SnpVerifier, version: int) -> None:
    data = struct.pack("<I", version) + VIRTEE.bytes()[4:]
    with pytest.raises(UnsupportedEvidence, match=rf"version {version} is not one"):
        snp.verify(VIRTEE.evidence(data=data), at=SNP_AT, policy=accept_any())


@pytest.mark.parametrize("algorithm", [0, 2, 0xFFFFFFFF])
def test_wrong_signature_algorithms_are_unsupported(snp: SnpVerifier, algorithm: int) -> None:
    raw = VIRTEE.bytes()
    data = raw[:0x34] + struct.pack("<I", algorithm) + raw[0x38:]
    with pytest.raises(UnsupportedEvidence, match=rf"signature_algo {algorithm}") as caught:
        snp.verify(VIRTEE.evidence(data=data), at=SNP_AT, policy=accept_any())
    assert caught.value.code == "unsupported"


@pytest.mark.parametrize("size", [0, 1, 0x2A0, 1183])
def test_truncated_reports(snp: SnpVerifier, size: int) -> None:
    with pytest.raises(MalformedEvidence, match=rf"exactly 1184 bytes, found {size}") as caught:
        snp.verify(VIRTEE.evidence(data=VIRTEE.bytes()[:size]), at=SNP_AT, policy=accept_any())
    assert caught.value.code == "malformed"


@pytest.mark.parametrize("extra", [b"\x00", b"\x00" * 1184, b"trailing"])
def test_oversize_reports(snp: SnpVerifier, extra: bytes) -> None:
    with pytest.raises(EvidenceTooLarge) as caught:
        snp.verify(VIRTEE.evidence(data=VIRTEE.bytes() + extra), at=SNP_AT, policy=accept_any())
    assert caught.value.code == "oversize"


def test_signing_key_none_and_reserved(snp: SnpVerifier) -> None:
    raw = VIRTEE.bytes()
    unsigned = raw[:0x48] + struct.pack("<I", 7 << 2) + raw[0x4C:]
    with pytest.raises(SignatureInvalid, match=r"unsigned"):
        snp.verify(VIRTEE.evidence(data=unsigned), at=SNP_AT, policy=accept_any())
    reserved = raw[:0x48] + struct.pack("<I", 3 << 2) + raw[0x4C:]
    with pytest.raises(MalformedEvidence, match=r"signing key 3 is reserved"):
        snp.verify(VIRTEE.evidence(data=reserved), at=SNP_AT, policy=accept_any())


def test_a_reported_tcb_flip_is_caught_before_the_signature(snp: SnpVerifier) -> None:
    """Binding comes before the signature, so a wrong key is named as such."""
    with pytest.raises(EndorsementMismatch, match=r"microcode 115 != 114"):
        snp.verify(
            VIRTEE.evidence(data=flip(VIRTEE.bytes(), 0x187, 0)), at=SNP_AT, policy=accept_any()
        )
