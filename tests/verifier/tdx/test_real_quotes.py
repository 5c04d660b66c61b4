"""The real Intel quotes verified with their real collateral, at times inside and at the edges
of each window, with the outcomes tests/fixtures/tdx/README.md records."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.verifier.tdx.support import (
    GTG_V5,
    NO_SKEW,
    OUTDATED,
    PHALA_SGX,
    PHALA_TDX,
    POSITIVE,
    REAL_QUOTES,
    TDX,
    RealQuote,
    utc,
)
from verifier import (
    INTEL_SGX_ROOT_CA_SHA256,
    CertificateExpired,
    CertificateNotYetValid,
    DcapClaims,
    DcapVerifier,
    EndorsementKind,
    NoMatchingTcbLevel,
    Status,
    detect_kind,
    parse_quote,
)
from verifier.tdx import TdReport, intel_sgx_root_ca

VERIFIER = DcapVerifier()


def test_fixtures_are_the_recorded_files() -> None:
    for line in (TDX / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((TDX / name).read_bytes()).hexdigest() == digest, name


def test_the_pinned_root_is_the_fixture_root() -> None:
    root = intel_sgx_root_ca()
    assert root.fingerprint == INTEL_SGX_ROOT_CA_SHA256
    fixture = x509.load_pem_x509_certificate((TDX / "intel_sgx_root_ca.pem").read_bytes())
    assert fixture.public_bytes(Encoding.DER) == root.der
    packaged = Path(__file__).resolve().parents[3] / "verifier/tdx/roots/intel_sgx_root_ca.pem"
    assert packaged.read_bytes() == (TDX / "intel_sgx_root_ca.pem").read_bytes()


@pytest.mark.parametrize("sample", POSITIVE, ids=lambda s: s.quote)
def test_each_sample_evaluates_to_its_recorded_status(sample: RealQuote) -> None:
    result = VERIFIER.verify(sample.evidence(), at=sample.at, policy=sample.policy())
    claims = result.claims
    assert isinstance(claims, DcapClaims)
    assert claims.tcb_status == sample.status
    assert claims.advisory_ids == sample.advisories
    assert result.matched_reference == "own"
    expected = Status.AFFIRMING if sample.status == "UpToDate" else Status.WARNING
    assert result.status is expected
    assert result.evidence_kind is sample.kind
    assert result.trust_anchor_sha256 == INTEL_SGX_ROOT_CA_SHA256
    ear = result.to_ear()["submods"][str(sample.kind)]  # type: ignore[index]
    assert ear["attestation-ledger.tcb-status"] == sample.status
    assert ear["attestation-ledger.advisory-ids"] == list(sample.advisories)


def test_the_sgx_sample_warns_with_its_advisories_only_when_allowed() -> None:
    result = VERIFIER.verify(PHALA_SGX.evidence(), at=PHALA_SGX.at, policy=PHALA_SGX.policy())
    assert result.status is Status.WARNING
    assert any("ConfigurationAndSWHardeningNeeded" in note for note in result.notes)
    assert result.trustworthiness["hardware"] == "warning"


def test_the_outdated_sample_is_a_named_refusal_never_a_pass() -> None:
    with pytest.raises(NoMatchingTcbLevel, match="below every one of the 3 levels") as caught:
        VERIFIER.verify(OUTDATED.evidence(), at=OUTDATED.at, policy=OUTDATED.accept_any())
    assert caught.value.code == "no_matching_tcb_level"
    # A policy that lets OutOfDate through as a warning changes nothing: no level matched.
    lenient = OUTDATED.accept_any(tcb_status={"OutOfDate": "warning"})
    with pytest.raises(NoMatchingTcbLevel):
        VERIFIER.verify(OUTDATED.evidence(), at=OUTDATED.at, policy=lenient)
    # The unproven claims come with the error, for display.
    assert isinstance(caught.value.claims, DcapClaims)
    assert caught.value.claims.pck is not None
    assert caught.value.claims.pck.tcb_components[7] == 3


@pytest.mark.parametrize("sample", REAL_QUOTES, ids=lambda s: s.quote)
def test_one_second_before_the_latest_issue_date_is_refused(sample: RealQuote) -> None:
    policy = sample.accept_any(clock_skew=NO_SKEW)
    with pytest.raises(CertificateNotYetValid):
        VERIFIER.verify(
            sample.evidence(), at=sample.latest_issue - timedelta(seconds=1), policy=policy
        )


@pytest.mark.parametrize("sample", POSITIVE, ids=lambda s: s.quote)
def test_the_window_edges(sample: RealQuote) -> None:
    policy = sample.accept_any(clock_skew=NO_SKEW)
    evidence = sample.evidence()
    first = VERIFIER.verify(evidence, at=sample.latest_issue, policy=policy)
    last = VERIFIER.verify(
        evidence, at=sample.earliest_next_update - timedelta(seconds=1), policy=policy
    )
    assert first.claims.to_dict()["tcb_status"] == last.claims.to_dict()["tcb_status"]
    with pytest.raises(CertificateExpired):
        VERIFIER.verify(evidence, at=sample.earliest_next_update, policy=policy)
    # The default clock skew (60 s) tolerates collateral issued just after the verification time.
    tolerant = sample.accept_any()
    VERIFIER.verify(evidence, at=sample.latest_issue - timedelta(seconds=1), policy=tolerant)


@pytest.mark.parametrize("sample", REAL_QUOTES, ids=lambda s: s.quote)
def test_every_pairing_is_expired_now(sample: RealQuote) -> None:
    with pytest.raises(CertificateExpired):
        VERIFIER.verify(
            sample.evidence(), at=utc("2026-11-30T00:00:00"), policy=sample.accept_any()
        )


def test_the_padded_quote_parses_by_its_lengths() -> None:
    data = PHALA_TDX.bytes()
    quote = parse_quote(data)
    assert len(data) == 5006
    assert len(quote.raw) == 4936
    assert quote.padding == 70
    result = VERIFIER.verify(PHALA_TDX.evidence(), at=PHALA_TDX.at, policy=PHALA_TDX.policy())
    assert result.evidence_sha256 == hashlib.sha256(data).hexdigest()  # as received
    assert result.claims.to_dict()["padding_bytes"] == 70


def test_claims_of_the_tdx_v4_sample() -> None:
    result = VERIFIER.verify(PHALA_TDX.evidence(), at=PHALA_TDX.at, policy=PHALA_TDX.policy())
    claims = result.claims.to_dict()
    td = claims["td_report"]
    assert isinstance(td, dict)
    assert td["tdx_version"] == "1.0"
    assert str(td["mr_td"]).startswith("91eb2b44")
    assert str(td["mr_td"]).endswith("873118b7")
    assert td["rtmr3"] == "00" * 48
    assert str(td["report_data"]).startswith("9a9d48e7")
    assert td["tee_tcb_svn"] == "0601030000" + "00" * 11
    assert td["td_attributes_flags"] == {
        "debug": False,
        "sept_ve_disable": True,
        "pks": False,
        "kl": False,
        "perfmon": False,
    }
    assert claims["fmspc"] == "B0C06F000000"
    assert claims["header"] == {
        "version": 4,
        "att_key_type": 2,
        "tee_type": "0x00000081",
        "qe_svn": 0,
        "pce_svn": 0,
        "qe_vendor_id": "939a7233f79c4ca9940a0db3957f0607",
        "user_data": parse_quote(PHALA_TDX.bytes()).header.user_data.hex(),
    }
    tcb = claims["tcb"]
    assert isinstance(tcb, dict)
    assert tcb["platform"]["tcb_date"] == "2024-03-13T00:00:00Z"  # type: ignore[index]
    assert tcb["platform"]["tcb_evaluation_data_number"] == 17  # type: ignore[index]
    assert tcb["qe_identity"]["tcb_status"] == "UpToDate"  # type: ignore[index]
    assert tcb["tdx_module"]["id"] == "TDX_01"  # type: ignore[index]
    assert tcb["tcb_info"]["issue_date"] == "2025-06-19T10:16:03Z"  # type: ignore[index]


def test_claims_of_the_sgx_sample() -> None:
    result = VERIFIER.verify(PHALA_SGX.evidence(), at=PHALA_SGX.at, policy=PHALA_SGX.policy())
    claims = result.claims.to_dict()
    report = claims["enclave_report"]
    assert isinstance(report, dict)
    assert str(report["mr_enclave"]).startswith("33d8736d")
    assert str(report["mr_signer"]).startswith("815f42f1")
    assert report["isv_prod_id"] == 0
    assert report["isv_svn"] == 0
    assert report["attributes_flags"]["debug"] is False  # type: ignore[index]
    assert bytes.fromhex(str(report["report_data"])).rstrip(b"\0") == b"Hello, world!"
    assert claims["header"]["qe_svn"] == 10  # type: ignore[index]
    assert claims["header"]["pce_svn"] == 15  # type: ignore[index]
    assert claims["fmspc"] == "00A067110000"
    assert [c.subject.split(",")[-1] for c in result.certificates] == [
        "CN=Intel SGX Root CA",
        "CN=Intel SGX PCK Processor CA",
        "CN=Intel SGX PCK Certificate",
        "CN=Intel SGX TCB Signing",
    ]


def test_the_v5_sample_has_a_td_1_5_body() -> None:
    quote = parse_quote(GTG_V5.bytes())
    assert quote.header.version == 5
    assert quote.body_type == 3
    assert isinstance(quote.body, TdReport)
    assert quote.body.tee_tcb_svn2 is not None
    assert quote.body.mr_service_td == bytes(48)
    assert str(quote.body.report_data.hex()).startswith("945eaacf")


@pytest.mark.parametrize("sample", POSITIVE, ids=lambda s: s.quote)
def test_every_collateral_document_used_is_named_by_digest(sample: RealQuote) -> None:
    evidence = sample.evidence()
    result = VERIFIER.verify(evidence, at=sample.at, policy=sample.accept_any())
    given = {e.sha256: e.kind for e in evidence.endorsements}
    used = {e.sha256: e for e in result.endorsements}
    for kind in (EndorsementKind.TCB_INFO, EndorsementKind.QE_IDENTITY):
        (document,) = evidence.of_kind(kind)
        assert used[document.sha256].kind == str(kind)
    assert sum(1 for e in result.endorsements if e.kind == "crl") == 2
    assert all(
        given[e.sha256] is EndorsementKind.CRL for e in result.endorsements if e.kind == "crl"
    )
    signer = [e for e in result.endorsements if e.kind == "certificate"]
    assert len(signer) == 1
    assert "Intel SGX TCB Signing" in signer[0].subject
    assert signer[0].sha256 in given
    root = [e for e in result.endorsements if e.kind == "root"]
    assert root[0].sha256 == INTEL_SGX_ROOT_CA_SHA256
    assert root[0].origin == "pinned"
    collateral = result.claims.to_dict()["collateral"]
    assert isinstance(collateral, dict)
    assert set(collateral.values()) <= set(given)
    assert set(collateral) == {
        "tcb_info",
        "qe_identity",
        "pck_crl",
        "root_ca_crl",
        "tcb_signing_certificate",
    }


def test_collateral_is_per_fmspc_not_per_quote() -> None:
    # The go-tdx-guest v5 quote with the other FMSPC 90C06F000000 quote's collateral.
    result = VERIFIER.verify(GTG_V5.evidence(), at=GTG_V5.at, policy=GTG_V5.accept_any())
    assert result.claims.to_dict()["tcb_status"] == "UpToDate"


@pytest.mark.parametrize("sample", REAL_QUOTES, ids=lambda s: s.quote)
def test_detect_kind_recognises_a_dcap_quote(sample: RealQuote) -> None:
    assert detect_kind(sample.bytes()) is sample.kind


def test_describe_parses_without_verifying() -> None:
    claims = VERIFIER.describe(OUTDATED.evidence())
    assert claims.tcb is None
    assert claims.pck is not None
    assert claims.to_dict()["fmspc"] == "90C06F000000"
