"""The simulated RIMs have the shape of NVIDIA's and verify as NVIDIA's do: the tests' own
XML-DSig check (nvidia_support.verify_rim: lxml inclusive C14N, SHA-384, ecdsa-sha384 raw
r||s, the chain link by link) passes on NVIDIA's real RIMs and on the simulated ones, and
their reference values match the simulated GPU's report."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from enclave_worker import SimulatedNvidiaPki, SimulatedNvidiaWarning, SimulatedRim
from enclave_worker.simulated_nvidia import DRIVER_INDICES, VBIOS_INDICES
from tests.enclave_worker.nvidia_support import (
    DS,
    NVIDIA,
    SWID,
    der_of,
    gpu,
    nvidia_pki,
    parse_report,
    parse_xml,
    vbios_text,
    verify_rim,
)
from tests.support import SIM_AT

REAL_RIM = "nv_rim_vbios_1010_0200_882_96005E0001_PROD.swidtag"
MISMATCH_RIM = "nv_rim_vbios_96005E0001_measurement_mismatch_NEGATIVE.xml"
NONCE = bytes(32)


def real(name: str) -> bytes:
    return (NVIDIA / name).read_bytes()


def pinned_rim_root() -> bytes:
    return der_of(x509.load_pem_x509_certificate(real("nvidia_rim_root.pem")))


# --- the tests' reader on NVIDIA's RIMs -------------------------------------------------------


@pytest.mark.parametrize("name", [REAL_RIM, MISMATCH_RIM])
def test_the_reader_verifies_nvidias_rims(name: str) -> None:
    rim = verify_rim(real(name))
    assert rim.version == "96.00.5E.00.01"
    assert len(rim.resources) == 64
    assert sorted(rim.active()) == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    assert len(rim.active()[12]) == 4
    assert der_of(rim.chain[-1]) == pinned_rim_root()
    assert len(rim.chain) == 4


def test_the_reader_matches_nvidias_rim_with_nvidias_report() -> None:
    """12 of 12 VBIOS measurements match the real report; the mismatch RIM fails at index 9
    (block 10) only: the two readers agree with NVIDIA's published outcome."""
    report = parse_report(bytes.fromhex(real("nv_sdk_hopperAttestationReport.txt").decode()))
    blocks = {b.index: b.value for b in report.blocks}
    for name, mismatched in ((REAL_RIM, []), (MISMATCH_RIM, [9])):
        active = verify_rim(real(name)).active()
        assert [i for i, hashes in active.items() if blocks[i + 1] not in hashes] == mismatched


def test_nvidias_rim_digest_needs_inclusive_c14n() -> None:
    """Exclusive C14N does not reproduce NVIDIA's digest (so the reader's inclusive one is a
    real check), and the same holds of the simulated RIMs."""
    for data in (real(REAL_RIM), SimulatedRim(gpu()).vbios()):
        root = parse_xml(data)
        digest = base64.b64decode(root.findtext(f".//{{{DS}}}DigestValue"))
        root.remove(root.find(f"{{{DS}}}Signature"))
        inclusive = etree.tostring(root, method="c14n")
        exclusive = etree.tostring(root, method="c14n", exclusive=True)
        assert hashlib.sha384(inclusive).digest() == digest
        assert hashlib.sha384(exclusive).digest() != digest


# --- shape ----------------------------------------------------------------------------------


def skeleton(data: bytes) -> list[Any]:
    """Every element's tag and attribute names (Resource elements once per distinct shape),
    the root's namespace map, the text layout between elements."""
    root = parse_xml(data)
    out: list[Any] = [sorted(root.nsmap.items(), key=lambda item: item[0] or "")]
    seen = set()
    for element in root.iter():
        attributes = tuple(element.attrib)
        if element.tag == f"{{{SWID}}}Resource":
            attributes = tuple(a for a in attributes if "Hash" not in a)
            if attributes in seen:
                continue
            seen.add(attributes)
        out.append((element.tag, attributes, (element.tail or "").replace("    ", "\t")))
    return out


def test_a_simulated_rim_has_nvidias_shape() -> None:
    mine = skeleton(SimulatedRim(gpu()).vbios())
    theirs = skeleton(real(REAL_RIM))
    assert mine == theirs


def test_a_simulated_rim_has_nvidias_text_layout() -> None:
    """Same first bytes, the same indentation, the signature on one line after the payload,
    a final newline."""
    mine = SimulatedRim(gpu()).vbios().decode()
    theirs = real(REAL_RIM).decode()
    assert mine[:200] == theirs[:200]
    for text in (mine, theirs):
        lines = text.split("\n")
        assert lines[1].startswith('    <ns0:Entity name="NVIDIA Corporation"')
        assert lines[3].startswith("    <ns0:Payload ")
        assert lines[4].startswith('        <ns0:Resource type="Measurement" index="0" ')
        assert "    </ns0:Payload>" in lines
        assert lines[lines.index("    </ns0:Payload>") + 1].startswith('<ds:Signature xmlns:ds="')
        assert text.endswith("</ds:Signature></SoftwareIdentity>\n")


# --- the simulated RIMs verify and describe the GPU ----------------------------------------------


RIMS = [
    ("HOPPER", "driver"),
    ("HOPPER", "vbios"),
    ("BLACKWELL", "driver"),
    ("BLACKWELL", "vbios"),
    ("LS10", "vbios"),
]


@pytest.mark.parametrize(("arch", "kind"), RIMS)
def test_a_simulated_rim_verifies_and_matches_the_report(arch: str, kind: str) -> None:
    device = gpu(arch)
    data = SimulatedRim(device).document(kind)  # type: ignore[arg-type]
    rim = verify_rim(data)
    assert der_of(rim.chain[-1]) == nvidia_pki().rim_root.der
    assert [der_of(c) for c in rim.chain] == list(nvidia_pki().rim_chain())
    covered = {"driver": DRIVER_INDICES, "vbios": VBIOS_INDICES}[kind][arch]
    assert sorted(rim.active()) == sorted(covered)
    assert len(rim.resources) == len(device.measurements)
    assert all(r.size == 48 for r in rim.resources)
    assert all(r.hashes == (bytes(48),) for r in rim.resources if not r.active)
    report = parse_report(device.report(NONCE))
    blocks = {b.index: b.value for b in report.blocks}
    assert all(blocks[i + 1] in hashes for i, hashes in rim.active().items())
    vbios = report.field(6)
    assert vbios is not None
    if kind == "driver":
        assert report.field(3) == rim.version.encode() + b"\0"
    elif arch == "LS10":
        assert vbios == rim.version.encode()
    else:
        assert vbios_text(vbios) == rim.version.lower()


def test_alternatives_as_nvidias() -> None:
    """The last VBIOS index lists another value first and the device's second; two driver
    indices list the device's and zeros (any alternative matches)."""
    device = gpu()
    vbios = verify_rim(SimulatedRim(device).vbios()).active()
    assert vbios[12][1] == device.measurements[12]
    assert vbios[12][0] != device.measurements[12]
    driver = verify_rim(SimulatedRim(device).driver()).active()
    assert driver[23] == (device.measurements[23], bytes(48))
    assert driver[24] == (device.measurements[24], bytes(48))
    assert [i for i, hashes in driver.items() if len(hashes) > 1] == [23, 24]


def test_rims_follow_the_versions() -> None:
    device = gpu(driver="575.51.03", vbios="96.00.9f.00.04")
    rims = SimulatedRim(device)
    assert verify_rim(rims.driver()).version == "575.51.03"
    assert verify_rim(rims.vbios()).version == "96.00.9F.00.04"
    assert rims.tag_id("driver") != rims.tag_id("vbios")
    assert len(rims.tag_id("driver")) == 96
    other = SimulatedRim(device.variant(driver="580.00"))
    assert other.tag_id("driver") != rims.tag_id("driver")
    assert other.vbios() == rims.vbios()  # deterministic: same firmware, same bytes


def test_a_rim_of_another_driver_does_not_match() -> None:
    device = gpu()
    report = parse_report(device.report(NONCE))
    blocks = {b.index: b.value for b in report.blocks}
    stale = verify_rim(SimulatedRim(device.variant(driver="580.00")).driver()).active()
    mismatched = {i for i, hashes in stale.items() if blocks[i + 1] not in hashes}
    assert mismatched == set(DRIVER_INDICES["HOPPER"])


def test_endorsements() -> None:
    rims = SimulatedRim(gpu())
    assert [(e.kind, e.data) for e in rims.endorsements()] == [
        ("rim", rims.driver()),
        ("rim", rims.vbios()),
    ]
    switch = SimulatedRim(gpu("LS10"))
    assert [(e.kind, e.data) for e in switch.endorsements()] == [("rim", switch.vbios())]
    with pytest.raises(ValueError, match="no driver RIM"):
        switch.driver()


# --- bad modes -----------------------------------------------------------------------------------


def test_a_changed_reference_value_is_validly_signed_and_mismatches() -> None:
    device = gpu()
    data = SimulatedRim(device).document("vbios", values={9: bytes([9]) * 48})
    rim = verify_rim(data)  # valid as a RIM...
    report = parse_report(device.report(NONCE))
    blocks = {b.index: b.value for b in report.blocks}
    # ...and wrong about index 9 (block 10) only, as NVIDIA's negative sample
    assert [i for i, hashes in rim.active().items() if blocks[i + 1] not in hashes] == [9]


def test_a_value_for_an_uncovered_index_makes_it_active() -> None:
    rim = verify_rim(SimulatedRim(gpu()).document("vbios", values={50: bytes(48)}))
    assert rim.active()[50] == (bytes(48),)


def test_a_rim_changed_after_signing_fails_its_digest() -> None:
    data = SimulatedRim(gpu()).vbios()
    position = data.index(b'ns2:Hash0="', data.index(b'index="3"')) + 11
    changed = data[:position] + (b"0" if data[position : position + 1] != b"0" else b"1")
    changed += data[position + 1 :]
    with pytest.raises(AssertionError, match="digest"):
        verify_rim(changed)


def test_a_rim_signed_by_another_key_fails_its_signature() -> None:
    data = SimulatedRim(gpu()).document(
        "vbios", signing_key=ec.generate_private_key(ec.SECP384R1())
    )
    with pytest.raises(InvalidSignature):
        verify_rim(data)


def test_a_rim_under_another_pki_chains_to_another_root() -> None:
    with pytest.warns(SimulatedNvidiaWarning):
        other = SimulatedNvidiaPki.generate(at=SIM_AT)
    rim = verify_rim(SimulatedRim(gpu(), pki=other).vbios())
    assert der_of(rim.chain[-1]) == other.rim_root.der != nvidia_pki().rim_root.der


def test_the_rim_signer_is_short_lived_as_nvidias() -> None:
    signer = nvidia_pki().rim_signer.certificate
    assert signer.not_valid_before_utc <= SIM_AT <= signer.not_valid_after_utc
    lifetime = signer.not_valid_after_utc - signer.not_valid_before_utc
    assert 729 <= lifetime.days <= 731
    real_signer = verify_rim(real(REAL_RIM)).chain[0]
    assert (real_signer.not_valid_after_utc - real_signer.not_valid_before_utc).days in (730, 731)


@pytest.mark.parametrize(
    ("values", "message"),
    [({64: bytes(48)}, "indices 0 to 63"), ({-1: bytes(48)}, "indices 0 to 63"),
     ({3: bytes(47)}, "48 bytes")],
)  # fmt: skip
def test_bad_values_are_refused(values: dict[int, bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatedRim(gpu()).document("vbios", values=values)
