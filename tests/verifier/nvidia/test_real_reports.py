"""The real NVIDIA samples, each with its known outcome at 2024-06-01T00:00:00Z
(tests/fixtures/nvidia/README.md)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.verifier.nvidia.support import (
    AT,
    JSON_FILES,
    MISMATCH_RIM,
    NOW,
    NV,
    PROD_RIM,
    accept_any,
    evidence,
    hex_policy,
    hex_report,
    hopper_chain,
    json_device,
    rim,
)
from verifier import (
    CertificateExpired,
    ChainInvalid,
    Endorsement,
    EndorsementKind,
    EndorsementMissing,
    FwidMismatch,
    MalformedEvidence,
    NvidiaImage,
    NvidiaPolicy,
    NvidiaVerifier,
    PolicyViolation,
    SignatureInvalid,
    Status,
    UntrustedRoot,
    VerifierError,
    detect_kind,
    kinds,
    scheme_for,
)
from verifier.nvidia import (
    NVIDIA_DEVICE_ROOT_SHA256,
    NVIDIA_RIM_ROOT_SHA256,
    nvidia_device_root,
    nvidia_rim_root,
    parse_report,
)
from verifier.nvidia.chain import DEVICE_PROFILE, verify_path
from verifier.nvidia.verify import check_fwid
from verifier.scheme import EvidenceKind
from verifier.x509 import LinkCache

VERIFIER = NvidiaVerifier()
EXPECTED = {
    "nv_sdk_hopper_evidence.json": ("HOPPER", "590.12", "96.00.a5.00.01", "PPCIE", True, 64),
    "nv_veraison_blackwell-evidence.json": (
        "BLACKWELL",
        "590.48.01",
        "97.00.e4.00.11",
        "MPT",
        True,
        64,
    ),
    "nv_sdk_switch_evidence_ls10.json": ("LS10", None, "96.10.55.00.01", None, False, 31),
}


def test_fixtures_are_byte_for_byte_the_shared_ones() -> None:
    for line in (NV / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((NV / name).read_bytes()).hexdigest() == digest, name


def test_pinned_roots_are_the_fixture_roots() -> None:
    for anchor, name, digest in (
        (nvidia_device_root(), "nvidia_device_root.pem", NVIDIA_DEVICE_ROOT_SHA256),
        (nvidia_rim_root(), "nvidia_rim_root.pem", NVIDIA_RIM_ROOT_SHA256),
    ):
        pem = x509.load_pem_x509_certificate((NV / name).read_bytes())
        assert anchor.der == pem.public_bytes(Encoding.DER)
        assert anchor.fingerprint == digest


@pytest.mark.parametrize("name", JSON_FILES)
def test_json_evidence_verifies_with_its_nonce(name: str) -> None:
    report, chain, arch, nonce = json_device(name)
    expected_arch, driver, vbios, flag, fwid_checked, count = EXPECTED[name]
    assert arch == expected_arch
    image = NvidiaImage("own", expected_arch, (driver,) if driver else (), (vbios,))
    policy = NvidiaPolicy(name="own", images=(image,), require_rims=())
    result = VERIFIER.verify(evidence(report, *chain), at=AT, policy=policy, nonce=nonce)
    assert result.status is Status.WARNING  # no RIM given: measurements not compared
    claims = result.claims.to_dict()
    assert claims["arch"] == expected_arch
    assert claims["driver_version"] == driver
    assert claims["vbios_version"] == vbios
    assert claims["feature_flag"] == flag
    assert claims["fwid_checked"] is fwid_checked
    assert claims["measurements"]["count"] == count  # type: ignore[index]
    assert claims["nonce"] == nonce.hex()
    assert result.nonce_checked
    assert result.trust_anchor_sha256 == NVIDIA_DEVICE_ROOT_SHA256
    assert [c.role for c in result.certificates] == ["root"] + ["intermediate"] * 3 + ["leaf"]
    assert result.matched_reference == "own"


@pytest.mark.parametrize("name", JSON_FILES)
def test_json_evidence_under_another_nonce_is_a_nonce_mismatch(name: str) -> None:
    report, chain, _, nonce = json_device(name)
    with pytest.raises(PolicyViolation) as info:
        VERIFIER.verify(evidence(report, *chain), at=AT, policy=accept_any(), nonce=bytes(32))
    assert [v.code for v in info.value.violations] == ["nonce_mismatch"]
    assert nonce.hex() in info.value.violations[0].message


def test_hex_report_matches_all_twelve_vbios_measurements_of_its_rim() -> None:
    nonce = parse_report(hex_report()).requester_nonce
    result = VERIFIER.verify(
        evidence(hex_report(), *hopper_chain(), rim(PROD_RIM)),
        at=AT,
        policy=hex_policy(),
        nonce=nonce,
    )
    assert result.status is Status.AFFIRMING
    (compared,) = result.claims.to_dict()["rims"]  # type: ignore[misc]
    assert compared["kind"] == "vbios"
    assert compared["version"] == "96.00.5e.00.01"
    assert compared["matched"] == 12
    assert compared["mismatched"] == []
    assert compared["sha256"] == hashlib.sha256((NV / PROD_RIM).read_bytes()).hexdigest()
    assert result.claims.to_dict()["fwid_checked"] is False  # no opaque field 20
    assert any("FWID not checked" in note for note in result.notes)
    kinds_used = [e.kind for e in result.endorsements]
    assert kinds_used.count("device-certificate") == 5
    assert "rim" in kinds_used


def test_mismatch_rim_fails_at_index_9_and_nowhere_else() -> None:
    with pytest.raises(PolicyViolation) as info:
        VERIFIER.verify(
            evidence(hex_report(), *hopper_chain(), rim(MISMATCH_RIM)), at=AT, policy=hex_policy()
        )
    assert [(v.code, v.measurement_index) for v in info.value.violations] == [
        ("measurement_mismatch", 9)
    ]
    assert "block 10" in info.value.violations[0].message
    (compared,) = info.value.result.claims.to_dict()["rims"]  # type: ignore[misc]
    assert compared["matched"] == 11
    assert compared["mismatched"] == [9]


def test_policy_requiring_the_driver_rim_names_it_missing() -> None:
    with pytest.raises(PolicyViolation) as info:
        VERIFIER.verify(
            evidence(hex_report(), *hopper_chain(), rim(PROD_RIM)),
            at=AT,
            policy=hex_policy(require_rims=("driver", "vbios")),
        )
    assert [v.code for v in info.value.violations] == ["rim_missing"]


@pytest.mark.parametrize("name", [PROD_RIM, MISMATCH_RIM])
def test_rims_fail_now_as_expired(name: str) -> None:
    with pytest.raises(CertificateExpired, match=r"RIM 96\.00\.5e\.00\.01 signer"):
        VERIFIER.verify(
            evidence(hex_report(), *hopper_chain(), rim(name)), at=NOW, policy=hex_policy()
        )


def test_device_chain_alone_still_verifies_now() -> None:
    result = VERIFIER.verify(evidence(hex_report(), *hopper_chain()), at=NOW, policy=accept_any())
    assert result.status is Status.WARNING


def test_invalid_signature_report_fails_on_the_signature_and_on_the_fwid() -> None:
    data = hex_report("nv_sdk_hopperAttestationReportInvalidSignature_NEGATIVE.txt")
    with pytest.raises(SignatureInvalid) as info:
        VERIFIER.verify(evidence(data, *hopper_chain()), at=AT, policy=accept_any())
    assert info.value.code == "signature_invalid"
    assert info.value.claims is not None  # described for display, unproven
    path = verify_path(
        [e.data for e in hopper_chain()],
        [nvidia_device_root()],
        DEVICE_PROFILE,
        at=AT,
        clock_skew=hex_policy().clock_skew,
        links=LinkCache(),
    )
    with pytest.raises(FwidMismatch) as fwid:
        check_fwid(parse_report(data), path)
    assert fwid.value.code == "fwid_mismatch"
    assert "87a82912" in fwid.value.message


def test_a_trailing_byte_after_the_signature_is_reported_not_fatal() -> None:
    data = hex_report() + b"\x00"
    result = VERIFIER.verify(evidence(data, *hopper_chain()), at=AT, policy=accept_any())
    assert result.claims.to_dict()["trailing_bytes"] == 1
    assert any("1 byte(s) after the signature" in note for note in result.notes)


def test_a_report_one_byte_short_does_not_parse() -> None:
    with pytest.raises(MalformedEvidence, match="signature needs 96 bytes"):
        VERIFIER.verify(evidence(hex_report()[:-1], *hopper_chain()), at=AT, policy=accept_any())


@pytest.mark.parametrize("dropped", [0, 1, 2, 3])
def test_dropping_any_certificate_below_the_root_fails(dropped: int) -> None:
    chain = list(hopper_chain())
    del chain[dropped]
    with pytest.raises(ChainInvalid):
        VERIFIER.verify(evidence(hex_report(), *chain), at=AT, policy=accept_any())


def test_the_root_may_be_left_out_the_pinned_one_closes_the_path() -> None:
    result = VERIFIER.verify(
        evidence(hex_report(), *hopper_chain()[:4]), at=AT, policy=accept_any()
    )
    origins = {e.kind: e.origin for e in result.endorsements}
    assert origins["device-root"] == "pinned"


def test_swapping_hopper_and_blackwell_intermediates_fails() -> None:
    hopper = list(json_device(JSON_FILES[0])[1])
    blackwell = json_device(JSON_FILES[1])[1]
    hopper[2] = blackwell[2]
    report = json_device(JSON_FILES[0])[0]
    with pytest.raises(ChainInvalid) as info:
        VERIFIER.verify(evidence(report, *hopper), at=AT, policy=accept_any())
    assert info.value.code == "chain_invalid"


def test_a_substituted_self_signed_root_is_untrusted() -> None:
    from tests.verifier.nvidia.support import make_pki

    chain = list(hopper_chain())
    chain[4] = Endorsement(EndorsementKind.DEVICE_CERTIFICATE, make_pki().certificates[-1])
    with pytest.raises(UntrustedRoot):
        VERIFIER.verify(evidence(hex_report(), *chain), at=AT, policy=accept_any())


def test_no_device_chain_is_endorsement_missing() -> None:
    with pytest.raises(EndorsementMissing):
        VERIFIER.verify(evidence(hex_report(), rim(PROD_RIM)), at=AT, policy=accept_any())


def test_leaf_and_chain_of_another_device_fail_the_signature() -> None:
    _, blackwell_chain, _, _ = json_device(JSON_FILES[1])
    with pytest.raises(SignatureInvalid):
        VERIFIER.verify(evidence(hex_report(), *blackwell_chain), at=AT, policy=accept_any())


def test_registry_builds_the_scheme_of_a_device_kind() -> None:
    assert isinstance(scheme_for("nvidia-gpu"), NvidiaVerifier)
    assert EvidenceKind.NVIDIA_GPU not in kinds()
    assert detect_kind(hex_report()) is None


def test_a_cached_rim_is_judged_again_at_every_time() -> None:
    verifier = NvidiaVerifier()
    item = evidence(hex_report(), *hopper_chain(), rim(PROD_RIM))
    assert verifier.verify(item, at=AT, policy=hex_policy()).status is Status.AFFIRMING
    with pytest.raises(CertificateExpired):
        verifier.verify(item, at=NOW, policy=hex_policy())
    assert verifier.verify(item, at=AT, policy=hex_policy()).status is Status.AFFIRMING


def test_a_rim_alone_is_checked_as_verify_checks_it() -> None:
    """check_rim: what a RIM store asks before sharing a RIM between devices."""
    data = (NV / PROD_RIM).read_bytes()
    verifier = NvidiaVerifier()
    assert verifier.check_rim(data, at=AT).version == "96.00.5e.00.01"
    with pytest.raises(CertificateExpired):  # the same RIM, judged again later (cached path)
        verifier.check_rim(data, at=datetime(2031, 1, 1, tzinfo=UTC))
    with pytest.raises(VerifierError):  # trusting another RIM root
        NvidiaVerifier(rim_anchors=[nvidia_device_root()]).check_rim(data, at=AT)
    with pytest.raises(VerifierError):
        verifier.check_rim(data.replace(b"96.00.5E.00.01", b"96.00.5E.00.02", 1), at=AT)
    with pytest.raises(ValueError, match="timezone-aware"):
        verifier.check_rim(data, at=datetime(2024, 6, 1))
