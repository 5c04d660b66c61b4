"""The SEV-SNP report layout, checked against real reports (tests/fixtures/snp/README.md
states what each holds), and the simulated platform's reports: the same layout, signatures
that verify with plain ``cryptography``, and the report_data binding."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enclave_worker import simulated_snp_measurement
from enclave_worker.binding import ResultDigest, report_data
from enclave_worker.simulated_amd import AMD_OID
from enclave_worker.snp_report import (
    LAYOUT,
    POLICY_DEBUG,
    PRODUCTS,
    REPORT_SIZE,
    SIGNED_SIZE,
    SnpReport,
    Tcb,
    parse_report,
)
from tests.enclave_worker.snp_support import (
    fixture,
    fixture_certificate,
    load_certificate,
    snp_chip,
    snp_platform,
)

REAL = {
    # report, the key that signed it, its product
    "virtee_snp_report_milan.bin": ("virtee_snp_vcek_milan.der", "Milan"),
    "trustee_snp_test-vlek-report.bin": ("trustee_snp_test-vlek.der", "Milan"),
    "snp_oak_genoa_v5_report.bin": ("snp_oak_genoa_vcek.der", "Genoa"),
}


def verify_report(report: bytes, vek: x509.Certificate) -> None:
    """ECDSA P-384 / SHA-384 over bytes 0..0x29F, R and S little-endian at 0x2A0 and 0x2E8:
    written from the fixture README, with plain cryptography."""
    r = int.from_bytes(report[0x2A0 : 0x2A0 + 72], "little")
    s = int.from_bytes(report[0x2E8 : 0x2E8 + 72], "little")
    key = vek.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(encode_dss_signature(r, s), report[:0x2A0], ec.ECDSA(hashes.SHA384()))


def reserved_bytes(report: bytes) -> bytes:
    """Every byte the layout does not name: reserved, zero in real reports."""
    named = bytearray(REPORT_SIZE)
    for _name, offset, shape, _since in LAYOUT:
        size = shape if isinstance(shape, int) else {"<I": 4, "<Q": 8, "B": 1}[shape]
        named[offset : offset + size] = b"\x01" * size
    named[0x2A0 : 0x2A0 + 48] = named[0x2E8 : 0x2E8 + 48] = b"\x01" * 48  # R and S
    return bytes(b for b, used in zip(report, named, strict=True) if not used)


def test_the_layout_names_every_field_once_in_order() -> None:
    assert [name for name, *_ in LAYOUT] == [f.name for f in dataclasses.fields(SnpReport)]
    ends = [0]
    for _name, offset, shape, _since in LAYOUT:
        size = shape if isinstance(shape, int) else {"<I": 4, "<Q": 8, "B": 1}[shape]
        assert offset >= ends[-1]
        ends.append(offset + size)
    assert ends[-1] <= SIGNED_SIZE


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_reports_read_with_our_offsets_verify(name) -> None:
    report = fixture(name)
    fields, r, s = parse_report(report)
    assert fields.signature_algo == 1
    assert not any(reserved_bytes(report))
    assert (r.bit_length() <= 384, s.bit_length() <= 384) == (True, True)
    verify_report(report, fixture_certificate(REAL[name][0]))
    with pytest.raises(InvalidSignature):
        verify_report(
            report[:0x90] + bytes([report[0x90] ^ 1]) + report[0x91:],
            fixture_certificate(REAL[name][0]),
        )


def test_the_milan_v2_report_holds_what_its_readme_says() -> None:
    fields, _, _ = parse_report(fixture("virtee_snp_report_milan.bin"))
    milan = PRODUCTS["Milan"]
    assert fields.version == 2
    assert (fields.cpuid_family, fields.cpuid_model, fields.cpuid_stepping) == (0, 0, 0)
    assert (fields.flags, fields.signing_key, fields.vmpl) == (0, 0, 0)
    assert fields.policy == 0x30000
    assert not fields.policy & POLICY_DEBUG
    tcb = Tcb(bootloader=3, tee=0, snp=8, microcode=115)
    for raw in (fields.reported_tcb, fields.current_tcb, fields.committed_tcb, fields.launch_tcb):
        assert Tcb.from_bytes(raw, milan) == tcb
        assert raw == tcb.to_bytes(milan)
    assert (fields.current_major, fields.current_minor, fields.current_build) == (1, 52, 4)
    assert fields.report_data.hex().startswith("d447b55d")
    assert fields.report_data.hex().endswith("6a93ebfd")
    for zero in (fields.host_data, fields.id_key_digest, fields.family_id, fields.image_id):
        assert not any(zero)
    vcek = fixture_certificate("virtee_snp_vcek_milan.der")
    hwid = vcek.extensions.get_extension_for_oid(x509.ObjectIdentifier(f"{AMD_OID}.4"))
    assert fields.chip_id == hwid.value.value  # type: ignore[attr-defined]


def test_the_vlek_v3_report_holds_what_its_readme_says() -> None:
    fields, _, _ = parse_report(fixture("trustee_snp_test-vlek-report.bin"))
    milan = PRODUCTS["Milan"]
    assert fields.version == 3
    assert (fields.cpuid_family, fields.cpuid_model, fields.cpuid_stepping) == (0x19, 0x01, 1)
    assert (fields.flags, fields.signing_key, fields.vmpl) == (0x4, 1, 1)
    assert fields.chip_id == bytes(64)
    assert Tcb.from_bytes(fields.reported_tcb, milan) == Tcb(4, 0, 24, 217)
    assert Tcb.from_bytes(fields.current_tcb, milan).microcode == 220
    assert Tcb.from_bytes(fields.committed_tcb, milan).microcode == 219
    assert Tcb.from_bytes(fields.launch_tcb, milan).microcode == 219
    assert (fields.current_major, fields.current_minor, fields.current_build) == (1, 55, 29)
    assert fields.report_data.hex().startswith("819770b7")
    assert fields.report_data.hex().endswith("a7bc27ca")


def test_the_genoa_v5_report_holds_what_its_readme_says() -> None:
    fields, _, _ = parse_report(fixture("snp_oak_genoa_v5_report.bin"))
    genoa = PRODUCTS["Genoa"]
    assert fields.version == 5
    assert (fields.cpuid_family, fields.cpuid_model, fields.cpuid_stepping) == genoa.cpuid
    assert (fields.signing_key, fields.vmpl, fields.policy) == (0, 0, 0x30000)
    for raw in (fields.reported_tcb, fields.current_tcb, fields.committed_tcb, fields.launch_tcb):
        assert Tcb.from_bytes(raw, genoa) == Tcb(10, 0, 25, 84)
    assert (fields.current_major, fields.current_minor, fields.current_build) == (1, 55, 43)
    assert (fields.launch_mit_vector, fields.current_mit_vector) == (1, 1)
    assert fields.report_data[:4].hex() == "8100555a"
    assert fields.report_data[28:32].hex() == "1ed057ce"
    assert fields.report_data[32:] == bytes(32)


# --- the simulated platform -------------------------------------------------------------


@pytest.mark.parametrize("product", sorted(PRODUCTS))
@pytest.mark.parametrize("version", [2, 3, 5])
def test_simulated_reports_have_the_layout_and_verify(product, version) -> None:
    platform = snp_platform(product, version=version)
    data = bytes(range(64))
    report = platform.report(data)
    assert len(report) == REPORT_SIZE
    fields, r, s = parse_report(report)
    assert fields == platform.fields(data)
    assert not any(reserved_bytes(report))
    assert r.bit_length() <= 384
    assert s.bit_length() <= 384
    vcek = load_certificate(platform.chip.vcek)
    verify_report(report, vcek)
    chip = snp_chip(product)
    spec = PRODUCTS[product]
    assert fields.version == version
    assert fields.report_data == data
    assert fields.signature_algo == 1
    assert (fields.flags, fields.signing_key, fields.vmpl) == (0, 0, 0)
    assert fields.policy == 0x30000
    assert fields.chip_id == chip.chip_id
    assert fields.report_id_ma == b"\xff" * 32
    assert fields.measurement == simulated_snp_measurement("demo-inference")
    cpuid = (fields.cpuid_family, fields.cpuid_model, fields.cpuid_stepping)
    assert cpuid == (spec.cpuid if version >= 3 else (0, 0, 0))
    assert (fields.launch_mit_vector, fields.current_mit_vector) == (0, 0)
    for raw in (fields.reported_tcb, fields.current_tcb, fields.committed_tcb, fields.launch_tcb):
        assert Tcb.from_bytes(raw, spec) == chip.tcb
    # The VCEK is this report's: its SPL extensions are the reported TCB, its hwID the chip.
    extensions = {e.oid.dotted_string: e.value.value for e in vcek.extensions}  # type: ignore[attr-defined]
    spl = {arc: int.from_bytes(extensions[f"{AMD_OID}.{arc}"][2:], "big") for arc in
           ("3.1", "3.2", "3.3", "3.8")}  # fmt: skip
    assert spl == {"3.1": chip.tcb.bootloader, "3.2": chip.tcb.tee, "3.3": chip.tcb.snp,
                   "3.8": chip.tcb.microcode}  # fmt: skip
    assert fields.chip_id.startswith(extensions[f"{AMD_OID}.4"])


def test_turin_tcbs_put_the_fmc_first() -> None:
    turin = PRODUCTS["Turin"]
    tcb = Tcb(bootloader=2, tee=3, snp=4, microcode=5, fmc=1)
    assert tcb.to_bytes(turin) == bytes([1, 2, 3, 4, 0, 0, 0, 5])
    assert Tcb(2, 3, 4, 5).to_bytes(PRODUCTS["Genoa"]) == bytes([2, 3, 0, 0, 0, 0, 4, 5])
    with pytest.raises(ValueError, match="FMC"):
        Tcb(2, 3, 4, 5).to_bytes(turin)


def test_guest_choices_show_in_the_report() -> None:
    platform = snp_platform(
        vmpl=2,
        host_data=b"h" * 32,
        id_key_digest=b"i" * 48,
        author_key_digest=b"a" * 48,
        family_id=b"f" * 16,
        image_id=b"g" * 16,
        guest_svn=7,
    )
    fields, _, _ = parse_report(platform.report(bytes(64)))
    assert (fields.vmpl, fields.guest_svn) == (2, 7)
    assert (fields.host_data, fields.family_id, fields.image_id) == (
        b"h" * 32,
        b"f" * 16,
        b"g" * 16,
    )
    assert (fields.id_key_digest, fields.author_key_digest) == (b"i" * 48, b"a" * 48)
    assert fields.flags == 1  # author_key_en, VCEK


def test_a_debug_guest_sets_policy_bit_19_and_nothing_else() -> None:
    platform = snp_platform()
    normal, _, _ = parse_report(platform.report(bytes(64)))
    debug, _, _ = parse_report(platform.variant(debug=True).report(bytes(64)))
    assert debug.policy == normal.policy | (1 << 19)
    # Another launch, so another report_id; everything else is the same.
    assert debug.report_id != normal.report_id
    assert dataclasses.replace(debug, policy=normal.policy, report_id=normal.report_id) == normal


def test_another_image_is_another_measurement_on_the_same_chip() -> None:
    platform = snp_platform(image="inference-v1")
    other = platform.variant(image="inference-v1-unapproved")
    assert other.measurement == simulated_snp_measurement("inference-v1-unapproved")
    assert other.measurement != platform.measurement
    assert other.chip is platform.chip
    verify_report(other.report(bytes(64)), load_certificate(platform.chip.vcek))


def test_the_simulated_measurement_is_stable() -> None:
    """The demo puts it in the policy before any worker runs: it must not depend on a run."""
    assert simulated_snp_measurement("demo-inference").hex() == (
        hashlib.sha384(b"simulated SEV-SNP image demo-inference launch measurement").hexdigest()
    )
    assert len(simulated_snp_measurement("x")) == 48


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 4}, "version"),
        ({"host_data": b"short"}, "host_data"),
        ({"measurement": b"m" * 32}, "measurement"),
        ({"family_id": b"f" * 17}, "family_id"),
    ],
)
def test_a_platform_with_impossible_fields_is_refused_when_made(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        snp_platform(**changes)


def test_a_v2_report_cannot_carry_v3_fields() -> None:
    fields = snp_platform(version=2).fields(bytes(64))
    with pytest.raises(ValueError, match="version 2 report has no cpuid_family"):
        dataclasses.replace(fields, cpuid_family=0x19).body()
    with pytest.raises(ValueError, match="version 3 report has no launch_mit_vector"):
        dataclasses.replace(fields, version=3, launch_mit_vector=1).body()


# --- the binding ---------------------------------------------------------------------------


def test_report_data_is_the_nonce_and_the_sha256_of_the_nitro_user_data() -> None:
    """A known answer, worked out by hand from the README's definition: report_data =
    nonce || SHA-256("attestation-ledger:result:v1:sha256:" || SHA-256(result))."""
    nonce = bytes(range(32))
    result = ResultDigest.of(b"label=cat score=0.123")
    assert report_data(nonce, result).hex() == (
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "e4da5336e182b5223fdcbc8c885164db51f36ea5209eab224a59222d3ed0aeb9"
    )


def test_report_data_agrees_with_the_verifiers_nitro_binding() -> None:
    """The second half hashes exactly the bytes Nitro puts in user_data (ResultHash, written
    separately in verifier/)."""
    from verifier import ResultHash

    nonce = bytes(32)
    for algorithm, digest in (("sha256", b"\x01" * 32), ("sha384", b"\x02" * 48),
                              ("sha512", b"\x03" * 64)):  # fmt: skip
        ours = ResultDigest(algorithm, digest)
        theirs = ResultHash.parse(ours.text())
        assert ours.user_data() == theirs.user_data()
        assert report_data(nonce, ours)[32:] == hashlib.sha256(theirs.user_data()).digest()


def test_the_binding_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(ValueError, match="32 bytes, not 16"):
        report_data(bytes(16), ResultDigest.of(b"r"))
    with pytest.raises(ValueError, match="48 bytes, not 32"):
        ResultDigest("sha384", bytes(32))
    with pytest.raises(ValueError, match="unknown result hash algorithm"):
        ResultDigest("md5", bytes(16))


def test_an_attested_report_carries_the_nonce_and_binds_the_result() -> None:
    platform = snp_platform()
    nonce, result = b"n" * 32, ResultDigest.of(b"the result")
    evidence = platform.attest(nonce=nonce, result=result)
    assert evidence.kind == "amd-sev-snp"
    fields, _, _ = parse_report(evidence.data)
    assert fields.report_data[:32] == nonce
    assert fields.report_data[32:] == hashlib.sha256(result.user_data()).digest()
    assert [e.kind for e in evidence.endorsements] == ["vcek", "ask", "ark"]
    assert evidence.endorsements[0].data == platform.chip.vcek
    assert evidence.endorsements[2].data == platform.chip.pki.ark.der
    verify_report(evidence.data, load_certificate(evidence.endorsements[0].data))
