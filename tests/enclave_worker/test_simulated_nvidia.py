"""The simulated NVIDIA GPUs sign SPDM reports with NVIDIA's layout under a device chain with
NVIDIA's shapes. The tests read reports and chains with their own code (nvidia_support),
which reads NVIDIA's real samples the same way; signatures are checked with plain
``cryptography``; the GPU nonce against the contract's formula written out here."""

from __future__ import annotations

import hashlib
import stat
import warnings
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave_worker import (
    SimulatedGpu,
    SimulatedNvidiaPki,
    SimulatedNvidiaWarning,
    simulated_gpu_measurements,
)
from enclave_worker.binding import ResultDigest, gpu_nonce
from enclave_worker.simulated_nvidia import DRIVER_INDICES, VBIOS_INDICES
from tests.enclave_worker.nvidia_support import (
    NVIDIA,
    der_of,
    gpu,
    leaf_fwid,
    nvidia_pki,
    parse_report,
    real_evidence,
    vbios_text,
    verify_chain,
    verify_report_signature,
)
from tests.support import SIM_AT

ARCHS = ("HOPPER", "BLACKWELL", "LS10")
NONCE = bytes(range(32))


def test_the_fixtures_are_the_shared_ones() -> None:
    lines = (NVIDIA / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 10
    for line in lines:
        digest, name = line.split()
        assert hashlib.sha256((NVIDIA / name).read_bytes()).hexdigest() == digest, name


def chain_of(device: SimulatedGpu) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_der_x509_certificate(der) for der in device.chain())


# --- the tests' reader on the real samples -----------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_the_reader_reads_the_real_reports(arch: str) -> None:
    """The tests' own SPDM reader, chain check and FWID reader agree with NVIDIA's samples
    (so what they say about the simulated reports means something)."""
    data, chain, nonce = real_evidence(arch)
    report = parse_report(data)
    assert report.request == bytes.fromhex("11e001ff")
    assert report.nonce == nonce
    assert report.trailing == b""
    verify_report_signature(report, chain[0])
    verify_chain(chain)
    assert len(chain) == 5
    assert der_of(chain[-1]) == x509.load_pem_x509_certificate(
        (NVIDIA / "nvidia_device_root.pem").read_bytes()
    ).public_bytes(serialization.Encoding.DER)
    if arch != "LS10":
        assert report.field(20) == leaf_fwid(chain[0])
    else:
        assert report.field(20) is None
        assert report.field(6) == b"96.10.55.00.01"


def test_the_reader_reads_the_real_vbios_version() -> None:
    data, _chain, _nonce = real_evidence("HOPPER")
    report = parse_report(data)
    vbios = report.field(6)
    assert vbios is not None
    assert vbios_text(vbios) == "96.00.a5.00.01"
    assert report.field(3) == b"590.12\0"


# --- reports ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_a_report_has_nvidias_layout_and_verifies_with_the_leaf(arch: str) -> None:
    device = gpu(arch)
    responder_nonce = bytes([7]) * 32
    data = device.report(NONCE, responder_nonce=responder_nonce)
    report = parse_report(data)
    blocks = 31 if arch == "LS10" else 64
    assert report.request == bytes.fromhex("11e001ff")
    assert report.nonce == NONCE
    assert report.slot == 0
    assert report.response_header == bytes.fromhex("11600000")
    assert [b.index for b in report.blocks] == list(range(1, blocks + 1))
    assert {(b.specification, b.value_type, len(b.value)) for b in report.blocks} == {(1, 1, 48)}
    assert tuple(b.value for b in report.blocks) == device.measurements
    assert report.responder_nonce == responder_nonce
    assert report.trailing == b""
    assert len(data) == 37 + 8 + 55 * blocks + 32 + 2 + len(device.opaque_data()) + 96
    verify_report_signature(report, chain_of(device)[0])


@pytest.mark.parametrize("arch", ["HOPPER", "BLACKWELL"])
def test_a_gpu_reports_its_versions_fwid_chip_and_mode(arch: str) -> None:
    device = gpu(arch, driver="575.51.03", vbios="96.00.9f.00.04", feature_flag="PPCIE")
    report = parse_report(device.report(NONCE))
    assert [kind for kind, _ in report.opaque] == [6, 3, 20, 35, 36]
    vbios = report.field(6)
    assert vbios is not None
    assert len(vbios) == 8  # binary, as NVIDIA's GPUs report it
    assert vbios_text(vbios) == "96.00.9f.00.04"
    assert report.field(3) == b"575.51.03\0"
    assert report.field(35) == {"HOPPER": b"GH100\0", "BLACKWELL": b"GB100\0"}[arch]
    assert report.field(36) == (2).to_bytes(2, "little")
    assert report.field(20) == device.fwid


@pytest.mark.parametrize(("flag", "value"), [("SPT", 0), ("MPT", 1), ("PPCIE", 2)])
def test_the_feature_flag_field(flag: str, value: int) -> None:
    report = parse_report(gpu(feature_flag=flag).report(NONCE))
    assert report.field(36) == value.to_bytes(2, "little")


def test_a_switch_reports_as_nvidias_does() -> None:
    """LS10: 31 blocks, the switch BIOS version in ASCII, no driver, FWID, chip or mode
    field (as the real switch report)."""
    report = parse_report(gpu("LS10").report(NONCE))
    assert len(report.blocks) == 31
    assert report.opaque == ((6, b"96.10.55.00.01"),)
    with_flag = parse_report(gpu("LS10", feature_flag="PPCIE").report(NONCE))
    assert with_flag.field(36) == (2).to_bytes(2, "little")


@pytest.mark.parametrize("arch", ARCHS)
def test_the_fwid_extension_equals_the_opaque_fwid(arch: str) -> None:
    device = gpu(arch)
    leaf = chain_of(device)[0]
    assert leaf_fwid(leaf) == device.fwid
    report = parse_report(device.report(NONCE))
    if arch == "LS10":
        assert report.field(20) is None
    else:
        assert report.field(20) == leaf_fwid(leaf)


def test_the_hopper_fwid_extension_carries_the_broms_key() -> None:
    """As NVIDIA's GH100 leaf: SEQUENCE {1, the BROM's SubjectPublicKeyInfo, SEQUENCE {sha384,
    the FWID}}."""
    device = gpu("HOPPER")
    leaf, brom = chain_of(device)[:2]
    value = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier("2.23.133.5.4.1")).value
    assert isinstance(value, x509.UnrecognizedExtension)
    spki = brom.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert value.value[:5] == bytes.fromhex("3081ba0201")
    assert spki in value.value


def test_reports_over_other_nonces_differ_only_where_they_should() -> None:
    device = gpu()
    one = parse_report(device.report(NONCE))
    two = parse_report(device.report(bytes(32)))
    assert one.nonce != two.nonce
    assert one.blocks == two.blocks
    assert one.opaque == two.opaque
    assert one.responder_nonce != two.responder_nonce  # random by default


@settings(max_examples=25, deadline=None)
@given(nonce=st.binary(min_size=32, max_size=32), responder=st.binary(min_size=32, max_size=32))
def test_any_nonce_is_carried_and_signed(nonce: bytes, responder: bytes) -> None:
    device = gpu()
    report = parse_report(device.report(nonce, responder_nonce=responder))
    assert (report.nonce, report.responder_nonce) == (nonce, responder)
    verify_report_signature(report, chain_of(device)[0])


def test_a_report_signs_everything_before_the_signature() -> None:
    device = gpu()
    data = bytearray(device.report(NONCE))
    leaf = chain_of(device)[0]
    for position in (5, 37 + 8 + 10, len(data) - 97):
        changed = bytearray(data)
        changed[position] ^= 1
        with pytest.raises(InvalidSignature):
            verify_report_signature(parse_report(bytes(changed)), leaf)


@pytest.mark.parametrize("nonce", [b"", bytes(31), bytes(33)])
def test_a_report_needs_a_32_byte_nonce(nonce: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        gpu().report(nonce)


# --- measurements ------------------------------------------------------------------------------


def test_measurements_follow_arch_driver_vbios_and_image() -> None:
    base = simulated_gpu_measurements("HOPPER", driver="590.12", vbios="96.00.a5.00.01")
    assert base == simulated_gpu_measurements("HOPPER", driver="590.12", vbios="96.00.A5.00.01")
    assert len(base) == 64
    assert len(set(base)) == 64
    other_driver = simulated_gpu_measurements("HOPPER", driver="595.00", vbios="96.00.a5.00.01")
    other_vbios = simulated_gpu_measurements("HOPPER", driver="590.12", vbios="96.00.a5.00.02")
    other_image = simulated_gpu_measurements(
        "HOPPER", driver="590.12", vbios="96.00.a5.00.01", image="other"
    )
    changed = {i for i in range(64) if base[i] != other_driver[i]}
    assert changed == set(DRIVER_INDICES["HOPPER"])
    changed = {i for i in range(64) if base[i] != other_vbios[i]}
    assert changed == set(VBIOS_INDICES["HOPPER"])
    assert all(base[i] != other_image[i] for i in range(64))
    blackwell = simulated_gpu_measurements("BLACKWELL", driver="590.12", vbios="96.00.a5.00.01")
    assert not set(base) & set(blackwell)


def test_the_rims_cover_what_nvidias_gh100_rims_cover() -> None:
    """NVIDIA's GH100 VBIOS RIM: 0-6 and 8-12 active; its driver RIM: 7 and 21-40."""
    assert VBIOS_INDICES["HOPPER"] == (0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12)
    assert DRIVER_INDICES["HOPPER"] == (7, *range(21, 41))
    for arch in ARCHS:
        assert not set(VBIOS_INDICES[arch]) & set(DRIVER_INDICES[arch])


# --- the device chain ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_the_chain_verifies_link_by_link_and_says_simulated(arch: str) -> None:
    device = gpu(arch)
    chain = chain_of(device)
    assert len(chain) == 5
    verify_chain(chain)
    assert der_of(chain[-1]) == nvidia_pki().device_root.der
    for certificate in chain:
        assert certificate.signature_hash_algorithm is not None
        assert certificate.signature_hash_algorithm.name == "sha384"
        key = certificate.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp384r1"
        assert certificate.not_valid_before_utc <= SIM_AT <= certificate.not_valid_after_utc
        (common_name,) = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        assert str(common_name.value).endswith(" (simulated)")


def shape(certificate: x509.Certificate) -> dict[str, object]:
    """What must be NVIDIA's: name attribute types and CNs (without " (simulated)"), the
    extensions and their criticality, key usage and basic constraints, validity end."""
    out: dict[str, object] = {
        "subject": [
            (a.oid.dotted_string, a._type, str(a.value).removesuffix(" (simulated)"))
            for a in certificate.subject
            if a.oid != x509.NameOID.SERIAL_NUMBER
        ],
        "serial_attribute": [
            a._type for a in certificate.subject if a.oid == x509.NameOID.SERIAL_NUMBER
        ],
        "extensions": [(e.oid.dotted_string, e.critical) for e in certificate.extensions],
        "end": certificate.not_valid_after_utc,
        "signature": certificate.signature_algorithm_oid,
    }
    for extension in certificate.extensions:
        if isinstance(extension.value, x509.KeyUsage | x509.BasicConstraints):
            out[extension.oid.dotted_string] = extension.value
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_the_chain_has_nvidias_shapes(arch: str) -> None:
    _data, real, _nonce = real_evidence(arch)
    simulated = chain_of(gpu(arch))
    for mine, theirs in zip(simulated, real, strict=True):
        assert shape(mine) == shape(theirs)


def test_the_device_serial_numbers_are_shaped_as_nvidias() -> None:
    """The BROM's serial is 0x41 then the 8-byte device id; each device certificate's
    subject serialNumber is its serial in hex capitals."""
    device = gpu()
    leaf, brom = chain_of(device)[:2]
    assert brom.serial_number == int.from_bytes(b"\x41" + device.device_id, "big")
    for certificate in (leaf, brom):
        (serial,) = certificate.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)
        assert serial.value == f"{certificate.serial_number:X}"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    (other,) = san.get_values_for_type(x509.OtherName)
    assert other.type_id.dotted_string == "1.3.6.1.4.1.412.274.1"
    assert other.value[2:] == f"NVIDIA:GH100:{device.device_id.hex().upper()}".encode()


# --- variants -----------------------------------------------------------------------------------


def test_a_variant_is_the_same_device_with_other_firmware() -> None:
    device = gpu()
    same = device.variant(driver="595.00")
    assert same.chain() == device.chain()  # the leaf depends on the FMC (VBIOS), not the driver
    report = parse_report(same.report(NONCE))
    assert report.field(3) == b"595.00\0"
    verify_report_signature(report, chain_of(same)[0])
    other_vbios = device.variant(vbios="96.00.a5.00.02")
    assert other_vbios.brom == device.brom
    assert other_vbios.leaf != device.leaf
    assert other_vbios.fwid != device.fwid
    verify_chain(chain_of(other_vbios))


def test_a_changed_block() -> None:
    device = gpu()
    changed = device.variant(blocks={10: bytes(48)})
    report = parse_report(changed.report(NONCE))
    differing = [
        b.index
        for b, value in zip(report.blocks, device.measurements, strict=True)
        if b.value != value
    ]
    assert differing == [10]
    verify_report_signature(report, chain_of(changed)[0])  # signed as reported


def test_a_foreign_key_signs_what_the_chain_does_not_certify() -> None:
    device = gpu().variant(foreign_key=True)
    report = parse_report(device.report(NONCE))
    with pytest.raises(InvalidSignature):
        verify_report_signature(report, chain_of(device)[0])


def test_an_opaque_fwid_other_than_the_leafs() -> None:
    device = gpu().variant(opaque_fwid=bytes(48))
    report = parse_report(device.report(NONCE))
    assert report.field(20) == bytes(48)
    assert leaf_fwid(chain_of(device)[0]) != bytes(48)
    verify_report_signature(report, chain_of(device)[0])


def test_devices_are_distinct_unless_given_the_same_secret() -> None:
    one, two = gpu(), gpu()
    assert one.brom != two.brom
    assert one.device_id != two.device_id
    assert gpu(secret=b"s" * 32).chain() == gpu(secret=b"s" * 32).chain()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"arch": "AMPERE"}, "unknown NVIDIA architecture"),
        ({"vbios": "96.00.a5.00"}, "five hex bytes"),
        ({"vbios": "96.00.a5.00.zz"}, "five hex bytes"),
        ({"driver": "590.12\0"}, "not a driver version"),
        ({"driver": '590"12'}, "not a driver version"),
        ({"feature_flag": "CC"}, "unknown feature flag"),
        ({"opaque_fwid": bytes(47)}, "48 bytes"),
        ({"blocks": {65: bytes(48)}}, "blocks 1 to 64"),
        ({"blocks": {0: bytes(48)}}, "blocks 1 to 64"),
        ({"blocks": {1: bytes(32)}}, "48 bytes"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gpu(**options)  # type: ignore[arg-type]


def test_creating_a_gpu_or_a_pki_warns() -> None:
    with pytest.warns(SimulatedNvidiaWarning):
        SimulatedGpu(nvidia_pki())
    with pytest.warns(SimulatedNvidiaWarning):
        SimulatedNvidiaPki.generate(at=SIM_AT)


def test_a_pki_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimulatedNvidiaPki.generate(at=SIM_AT.replace(tzinfo=None))


# --- persistence ---------------------------------------------------------------------------------


def members(pki: SimulatedNvidiaPki) -> dict[str, tuple[bytes, int]]:
    """Each member's certificate and private scalar (key objects do not compare)."""
    return {
        name: (ca.der, ca.private_key.private_numbers().private_value)
        for name, ca in vars(pki).items()
    }


def test_load_or_create_persists_the_pki(tmp_path) -> None:
    with pytest.warns(SimulatedNvidiaWarning):
        created = SimulatedNvidiaPki.load_or_create(tmp_path, at=SIM_AT)
    for key_file in tmp_path.glob("*.key"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(list(tmp_path.glob("*.key"))) == 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = SimulatedNvidiaPki.load_or_create(tmp_path, at=SIM_AT + timedelta(days=30))
    assert members(loaded) == members(created)
    assert (tmp_path / "device-root.pem").read_bytes() == created.root_pem()
    assert (tmp_path / "rim-root.pem").read_bytes() == created.rim_root_pem()


def test_load_or_create_renews_an_expired_rim_signer(tmp_path) -> None:
    with pytest.warns(SimulatedNvidiaWarning):
        created = SimulatedNvidiaPki.load_or_create(tmp_path, at=SIM_AT)
    later = SIM_AT + timedelta(days=2 * 365 + 30)  # the 2-year signer has expired
    assert created.rim_signer.certificate.not_valid_after_utc < later
    renewed = SimulatedNvidiaPki.load_or_create(tmp_path, at=later)
    signer = renewed.rim_signer.certificate
    assert signer.not_valid_before_utc <= later <= signer.not_valid_after_utc
    assert renewed.rim_signer.private_key.private_numbers() == (
        created.rim_signer.private_key.private_numbers()
    )
    unchanged = members(created)
    unchanged["rim_signer"] = members(renewed)["rim_signer"]
    assert members(renewed) == unchanged
    signer.verify_directly_issued_by(renewed.rim_l3.certificate)
    assert members(SimulatedNvidiaPki.load_or_create(tmp_path, at=later)) == members(renewed)


def test_load_or_create_refuses_a_foreign_root(tmp_path) -> None:
    with pytest.warns(SimulatedNvidiaWarning):
        SimulatedNvidiaPki.load_or_create(tmp_path, at=SIM_AT)
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "NVIDIA Device Identity CA")])
    foreign = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(SIM_AT - timedelta(days=1))
        .not_valid_after(SIM_AT + timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    (tmp_path / "device-root.pem").write_bytes(foreign.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ValueError, match="not a simulated NVIDIA root"):
        SimulatedNvidiaPki.load_or_create(tmp_path, at=SIM_AT)


# --- the GPU nonce -------------------------------------------------------------------------------


def test_gpu_nonce_is_the_contracts_formula() -> None:
    challenge = bytes(range(100, 132))
    result = ResultDigest.of(b"the job's result")
    user_data = (
        b"attestation-ledger:result:v1:sha256:" + hashlib.sha256(b"the job's result").digest()
    )
    assert result.user_data() == user_data
    expected = hashlib.sha256(
        b"attestation-ledger:gpu-nonce:v1:"
        + challenge
        + hashlib.sha256(user_data).digest()
        + b"\x02"
    ).digest()
    assert gpu_nonce(challenge, result, 2) == expected
    assert len(expected) == 32


def test_gpu_nonce_binds_challenge_result_and_index() -> None:
    challenge, result = bytes(32), ResultDigest.of(b"r")
    nonces = {
        gpu_nonce(challenge, result, 0),
        gpu_nonce(challenge, result, 1),
        gpu_nonce(challenge, result, 255),
        gpu_nonce(bytes([1]) + bytes(31), result, 0),
        gpu_nonce(challenge, ResultDigest.of(b"s"), 0),
    }
    assert len(nonces) == 5


@pytest.mark.parametrize(
    ("challenge", "index", "message"),
    [(bytes(31), 0, "32 bytes"), (bytes(33), 0, "32 bytes"), (bytes(32), 256, "one byte"),
     (bytes(32), -1, "one byte")],
)  # fmt: skip
def test_gpu_nonce_refuses_bad_input(challenge: bytes, index: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gpu_nonce(challenge, ResultDigest.of(b"r"), index)


def test_a_gpu_reports_the_gpu_nonce() -> None:
    nonce = gpu_nonce(bytes(32), ResultDigest.of(b"r"), 0)
    evidence = gpu().evidence(nonce)
    assert evidence.kind == "nvidia-gpu"
    assert parse_report(evidence.data).nonce == nonce
    assert [e.kind for e in evidence.endorsements] == ["device-certificate"] * 5
