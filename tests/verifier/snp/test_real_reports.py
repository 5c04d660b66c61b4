"""Real AMD-signed reports: each verifies inside its key's validity window, fails outside it,
and every cross-pairing of the samples fails with its own code."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.verifier.snp.support import (
    AFTER_VLEK,
    GENOA,
    INVALID_VCEKS,
    REAL_REPORTS,
    SNP,
    SNP_AT,
    VIRTEE,
    VLEK,
    RealReport,
    accept_any,
    pem_der,
)
from verifier import (
    AMD_ARK_SHA256,
    CertificateExpired,
    CertificateNotYetValid,
    ChainInvalid,
    Endorsement,
    EndorsementKind,
    EndorsementMismatch,
    EndorsementMissing,
    Evidence,
    EvidenceKind,
    SnpVerifier,
    Status,
    UntrustedRoot,
    parse_report,
)
from verifier.snp import roots
from verifier.snp.vek import parse_vek

IDS = [r.report.removesuffix(".bin") for r in REAL_REPORTS]


@pytest.fixture(scope="module")
def snp() -> SnpVerifier:
    return SnpVerifier()


def test_fixtures_are_the_catalogued_bytes() -> None:
    listed = {}
    for line in (SNP / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        listed[name] = digest
    present = {p.name for p in SNP.iterdir() if p.name not in {"README.md", "SHA256SUMS"}}
    assert present == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((SNP / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("sample", REAL_REPORTS, ids=IDS)
def test_verifies_at_the_common_instant(snp: SnpVerifier, sample: RealReport) -> None:
    result = snp.verify(sample.evidence(), at=SNP_AT, policy=sample.policy())
    assert result.status is Status.AFFIRMING
    assert result.evidence_kind is EvidenceKind.AMD_SEV_SNP
    assert result.matched_reference == "own" == result.matched_image
    assert result.claims.to_dict()["product"] == sample.product
    assert result.claims.to_dict()["version"] == sample.version
    assert [c.position for c in result.certificates] == [
        "ark",
        "ask" if sample.kind is EndorsementKind.VCEK else "asvk",
        str(sample.kind),
    ]
    assert result.trust_anchor_sha256 == AMD_ARK_SHA256[result.claims.product]
    assert [e.kind for e in result.endorsements] == [c.position for c in result.certificates]
    assert [e.origin for e in result.endorsements] == ["pinned", "pinned", "evidence"]
    assert result.endorsements[2].sha256 == hashlib.sha256(sample.key_der()).hexdigest()
    assert result.evidence_sha256 == hashlib.sha256(sample.bytes()).hexdigest()
    assert result.pcr_appraisals == ()


@pytest.mark.parametrize("sample", REAL_REPORTS, ids=IDS)
def test_verifies_at_both_ends_of_its_keys_window_and_not_beyond(
    snp: SnpVerifier, sample: RealReport
) -> None:
    policy = sample.policy(clock_skew=timedelta(0))
    for at in (sample.not_before, sample.not_after):
        assert snp.verify(sample.evidence(), at=at, policy=policy).status is Status.AFFIRMING
    with pytest.raises(CertificateNotYetValid, match=str(sample.kind)):
        snp.verify(sample.evidence(), at=sample.not_before - timedelta(seconds=1), policy=policy)
    with pytest.raises(CertificateExpired, match=str(sample.kind)):
        snp.verify(sample.evidence(), at=sample.not_after + timedelta(seconds=1), policy=policy)


def test_clock_skew_applies_to_not_yet_valid_only(snp: SnpVerifier) -> None:
    policy = VIRTEE.policy(clock_skew=timedelta(seconds=60))
    early = VIRTEE.not_before - timedelta(seconds=59)
    assert snp.verify(VIRTEE.evidence(), at=early, policy=policy).status is Status.AFFIRMING
    with pytest.raises(CertificateExpired):
        snp.verify(VIRTEE.evidence(), at=VIRTEE.not_after + timedelta(seconds=1), policy=policy)


def test_the_vlek_sample_fails_after_it_expired(snp: SnpVerifier) -> None:
    with pytest.raises(
        CertificateExpired, match=r"vlek .*expired at 2025-12-10T22:14:21Z"
    ) as caught:
        snp.verify(VLEK.evidence(), at=AFTER_VLEK, policy=VLEK.policy())
    assert caught.value.code == "expired"
    # What the report says travels with the error, unproven, for display.
    assert caught.value.claims is not None
    assert caught.value.claims.to_dict()["csp_id"] == "CN=cc-us-east-2.amazonaws.com"


def test_what_the_samples_say(snp: SnpVerifier) -> None:
    virtee = snp.verify(VIRTEE.evidence(), at=SNP_AT, policy=VIRTEE.policy()).claims.to_dict()
    assert virtee["reported_tcb"] == {
        "raw": "0300000000000873",
        "bootloader": 3,
        "tee": 0,
        "snp": 8,
        "microcode": 115,
    }
    assert virtee["cpuid"] is None
    assert virtee["signing_key"] == "vcek"
    assert virtee["policy"]["raw"] == "0x30000"
    assert virtee["policy"]["debug"] is False
    assert virtee["policy"]["smt_allowed"] is True
    assert virtee["firmware"] == {"current": "1.52.4", "committed": "1.52.4"}
    assert virtee["report_data"].startswith("d447b55d")
    assert virtee["vek"]["product_name"] == "Milan-B0"
    assert virtee["vek"]["hwid"] == virtee["chip_id"]

    vlek = snp.verify(VLEK.evidence(), at=SNP_AT, policy=VLEK.policy())
    claims = vlek.claims.to_dict()
    assert claims["signing_key"] == "vlek"
    assert claims["vmpl"] == 1
    assert claims["csp_id"] == "CN=cc-us-east-2.amazonaws.com"
    assert claims["chip_id"] == "00" * 64
    # The VLEK certifies reported_tcb (microcode 217), not current_tcb (220).
    assert claims["reported_tcb"]["microcode"] == 217
    assert claims["current_tcb"]["microcode"] == 220
    assert claims["cpuid"] == {"family": "0x19", "model": "0x01", "stepping": 1}
    assert any("VLEK of CN=cc-us-east-2.amazonaws.com" in note for note in vlek.notes)

    genoa = snp.verify(GENOA.evidence(), at=SNP_AT, policy=GENOA.policy()).claims.to_dict()
    assert genoa["launch_mit_vector"] == genoa["current_mit_vector"] == "0x1"
    assert genoa["reported_tcb"]["snp"] == 25
    assert genoa["report_data"].endswith("00" * 32)
    json.dumps(genoa)  # the claims summary is JSON as it is


def _no_floats(value: object) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(_no_floats(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_floats(v) for v in value)
    return True


@pytest.mark.parametrize("sample", REAL_REPORTS, ids=IDS)
def test_claims_are_canonical_json(snp: SnpVerifier, sample: RealReport) -> None:
    """The ledger's canonical JSON has no floating-point numbers."""
    claims = snp.verify(sample.evidence(), at=SNP_AT, policy=sample.policy()).claims.to_dict()
    assert _no_floats(claims)
    assert json.loads(json.dumps(claims)) == claims


@pytest.mark.parametrize("sample", REAL_REPORTS, ids=IDS)
def test_ear_has_one_submod_named_after_the_kind(snp: SnpVerifier, sample: RealReport) -> None:
    ear = snp.verify(sample.evidence(), at=SNP_AT, policy=sample.policy()).to_ear()
    assert list(ear["submods"]) == ["amd-sev-snp"]
    submod = ear["submods"]["amd-sev-snp"]
    assert submod["ear.status"] == "affirming"
    assert submod["ear.trustworthiness-vector"] == {
        "hardware": 2,
        "instance-identity": 2,
        "configuration": 2,
        "executables": 2,
        "sourced-data": 0,
        "runtime-opaque": 0,
    }
    assert [e["kind"] for e in submod["attestation-ledger.endorsements"]][-1] == str(sample.kind)
    assert len(submod["attestation-ledger.claims"]["certificates"]) == 3
    assert submod["attestation-ledger.time-basis"] == "given"
    json.dumps(ear)


def test_endorsements_may_bring_the_intermediate_and_root(snp: SnpVerifier) -> None:
    """AMD's ASK and ARK, given with the evidence (as a host's certificate table gives
    them), are used: the ASK because it chains to the pinned ARK, the ARK because it is
    byte for byte the pinned one."""
    evidence = VIRTEE.evidence(
        Endorsement(EndorsementKind.ASK, pem_der("virtee_snp_cert_chain_milan.pem", 0)),
        Endorsement(EndorsementKind.ARK, pem_der("virtee_snp_cert_chain_milan.pem", 1)),
    )
    result = snp.verify(evidence, at=SNP_AT, policy=VIRTEE.policy())
    assert [e.origin for e in result.endorsements] == ["pinned", "evidence", "evidence"]
    vlek = VLEK.evidence(
        Endorsement(EndorsementKind.ASVK, pem_der("amd_milan_ask_ark_asvk.pem", 2))
    )
    assert snp.verify(vlek, at=SNP_AT, policy=VLEK.policy()).endorsements[1].kind == "asvk"


# --- the packaged roots ----------------------------------------------------------------------


@pytest.mark.parametrize("product", ["milan", "genoa", "turin"])
def test_packaged_roots_are_the_fixture_roots(product: str) -> None:
    store = roots.amd_trust_store()
    by_name = {str(p).lower(): p for p in store.anchors}
    line = by_name[product]
    ark = pem_der(f"amd_{product}_ark.pem")
    assert store.anchors[line][0].anchor.der == ark
    assert hashlib.sha256(ark).hexdigest() == AMD_ARK_SHA256[line]
    assert store.intermediates[(line, EndorsementKind.ASK)].der == pem_der(f"amd_{product}_ask.pem")
    assert store.intermediates[(line, EndorsementKind.ASVK)].der == pem_der(
        f"amd_{product}_ask_ark_asvk.pem", 2
    )


def test_a_modified_packaged_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pins are checked at load: a package whose ARK was swapped fails loudly."""
    roots.amd_trust_store.cache_clear()
    monkeypatch.setitem(roots.AMD_ARK_SHA256, roots.ProductLine.GENOA, "00" * 32)
    try:
        with pytest.raises(RuntimeError, match=r"ARK-Genoa .*the installation has been modified"):
            roots.amd_trust_store()
    finally:
        roots.amd_trust_store.cache_clear()


def test_a_packaged_ask_not_signed_by_its_ark_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with its hash pinned, each ASK/ASVK must be signed by its own product's ARK."""
    genoa_ask = (roots.resources.files("verifier.snp") / "roots" / "ask_genoa.pem").read_bytes()
    original = roots._resource

    def swapped(name: str) -> bytes:
        return genoa_ask if name == "ask_milan.pem" else original(name)

    roots.amd_trust_store.cache_clear()
    monkeypatch.setattr(roots, "_resource", swapped)
    genoa_der = x509.load_pem_x509_certificate(genoa_ask).public_bytes(Encoding.DER)
    monkeypatch.setitem(
        roots.AMD_INTERMEDIATE_SHA256,
        (roots.ProductLine.MILAN, EndorsementKind.ASK),
        hashlib.sha256(genoa_der).hexdigest(),
    )
    try:
        with pytest.raises(RuntimeError, match=r"ASK-Milan is not signed by AMD ARK-Milan"):
            roots.amd_trust_store()
    finally:
        roots.amd_trust_store.cache_clear()


# --- the invalid VCEKs -----------------------------------------------------------------------


@pytest.mark.parametrize("name", INVALID_VCEKS)
def test_invalid_vceks_parse(name: str) -> None:
    """Both hwID encodings are read (raw, and wrapped in a DER OCTET STRING), serial 0 loads
    without a warning escaping (pytest turns warnings into errors here)."""
    vek = parse_vek((SNP / name).read_bytes(), EndorsementKind.VCEK)
    assert vek.hwid == bytes(range(64))
    assert vek.hwid_encoding == ("raw" if "legacy" in name else "octet-string")
    assert vek.product_name == "Milan-B0"
    assert vek.info.serial_number == "0"


@pytest.mark.parametrize("name", INVALID_VCEKS)
def test_invalid_vceks_are_refused_as_broken_links(snp: SnpVerifier, name: str) -> None:
    """Their signatures do not verify under SEV-Milan: chain_invalid, before anything else
    about them is compared with the report."""
    evidence = Evidence(
        EvidenceKind.AMD_SEV_SNP,
        VIRTEE.bytes(),
        (Endorsement(EndorsementKind.VCEK, (SNP / name).read_bytes()),),
    )
    with pytest.raises(
        ChainInvalid, match=r"vcek: signature does not verify under the ASK"
    ) as caught:
        snp.verify(evidence, at=SNP_AT, policy=accept_any())
    assert caught.value.code == "chain_invalid"


# --- cross-pairings (fixture README) --------------------------------------------------------


def _paired(report: RealReport, key: RealReport, kind: EndorsementKind | None = None) -> Evidence:
    return Evidence(
        EvidenceKind.AMD_SEV_SNP,
        report.bytes(),
        (Endorsement(kind or key.kind, key.key_der()),),
    )


def test_virtee_report_with_the_genoa_vcek(snp: SnpVerifier) -> None:
    """A v2 report takes its product line from the key: the Genoa VCEK chains to ARK-Genoa,
    but certifies another TCB than the report's."""
    with pytest.raises(EndorsementMismatch, match=r"reported_tcb .*bootloader 10 != 3"):
        snp.verify(_paired(VIRTEE, GENOA), at=SNP_AT, policy=accept_any())


def test_genoa_report_with_the_milan_vcek(snp: SnpVerifier) -> None:
    """A VCEK of another product line: CPUID says Genoa, the key says Milan-B0."""
    with pytest.raises(EndorsementMismatch, match=r"Milan key .*report comes from a Genoa"):
        snp.verify(_paired(GENOA, VIRTEE), at=SNP_AT, policy=accept_any())


def test_vlek_report_with_the_milan_vcek(snp: SnpVerifier) -> None:
    with pytest.raises(EndorsementMismatch, match=r"signed by its VLEK .*hold a VCEK and no VLEK"):
        snp.verify(_paired(VLEK, VIRTEE), at=SNP_AT, policy=accept_any())


def test_a_vlek_offered_as_a_vcek(snp: SnpVerifier) -> None:
    with pytest.raises(EndorsementMismatch, match=r"given as a VCEK is a VLEK"):
        snp.verify(_paired(VIRTEE, VLEK, EndorsementKind.VCEK), at=SNP_AT, policy=accept_any())
    with pytest.raises(EndorsementMismatch, match=r"given as a VLEK is a VCEK"):
        snp.verify(_paired(VLEK, VIRTEE, EndorsementKind.VLEK), at=SNP_AT, policy=accept_any())


def test_milan_vcek_under_sev_genoa(snp: SnpVerifier) -> None:
    """A substituted ASK: SEV-Genoa is AMD's, but the root of another product line."""
    evidence = VIRTEE.evidence(Endorsement(EndorsementKind.ASK, pem_der("amd_genoa_ask.pem")))
    with pytest.raises(
        ChainInvalid, match=r"ask: issued by .*ARK-Genoa.*the root of Genoa"
    ) as caught:
        snp.verify(evidence, at=SNP_AT, policy=accept_any())
    assert caught.value.code == "chain_invalid"


@pytest.mark.parametrize("other", ["genoa", "turin"])
def test_sev_milan_under_another_ark(snp: SnpVerifier, other: str) -> None:
    """The Milan ASK offered with ARK-Genoa or ARK-Turin: a root trusted for another line."""
    evidence = VIRTEE.evidence(Endorsement(EndorsementKind.ARK, pem_der(f"amd_{other}_ark.pem")))
    with pytest.raises(
        UntrustedRoot, match=rf"trusted for {other.capitalize()}, not for this Milan"
    ):
        snp.verify(evidence, at=SNP_AT, policy=accept_any())


def test_the_vlek_does_not_verify_under_the_ask(snp: SnpVerifier) -> None:
    """VLEKs chain through the ASVK: offered the ASK as their signer, they fail."""
    evidence = VLEK.evidence(Endorsement(EndorsementKind.ASVK, pem_der("amd_milan_ask.pem")))
    with pytest.raises(ChainInvalid, match=r"vlek: issuer .*SEV-VLEK-Milan.* is not the subject"):
        snp.verify(evidence, at=SNP_AT, policy=accept_any())


def test_a_report_without_its_key(snp: SnpVerifier) -> None:
    evidence = Evidence(EvidenceKind.AMD_SEV_SNP, VIRTEE.bytes())
    with pytest.raises(EndorsementMissing, match=r"signed by its VCEK") as caught:
        snp.verify(evidence, at=SNP_AT, policy=accept_any())
    assert caught.value.code == "endorsement_missing"


def test_two_keys_of_the_signing_kind_are_refused(snp: SnpVerifier) -> None:
    evidence = VIRTEE.evidence(Endorsement(EndorsementKind.VCEK, GENOA.key_der()))
    with pytest.raises(EndorsementMismatch, match=r"2 VCEK certificates given"):
        snp.verify(evidence, at=SNP_AT, policy=accept_any())


def test_describe_reads_without_verifying(snp: SnpVerifier) -> None:
    claims = snp.describe(_paired(VIRTEE, GENOA))
    assert claims.report.version == 2
    # A v2 report described with a (wrong) Genoa key: the key's line is what can be told.
    assert str(claims.product) == "Genoa"
    assert snp.describe(Evidence(EvidenceKind.AMD_SEV_SNP, VIRTEE.bytes())).product is None
    assert parse_report(VIRTEE.bytes()).signing_key.name == "VCEK"
