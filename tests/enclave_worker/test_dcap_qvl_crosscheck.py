"""The independent proof that the simulated quotes and collateral are real-shaped: Phala's
dcap-qvl 0.7.0 (PyPI; a Rust DCAP verifier, tested against Intel's own samples) accepts them
under the simulated root, with the TCB status the simulation meant, and refuses what it must.

The endorsements convert to dcap-qvl's QuoteCollateralV3 JSON: the text inside each PCS body
verbatim with its signature, the CRLs as hex DER, the issuer chains as PEM (TCB Signing
certificate or PCK CA, then the root). First the conversion is checked on a real sample."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dcap_qvl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enclave_worker import TcbStanding
from enclave_worker.attester import Evidence
from enclave_worker.binding import ResultDigest
from tests.enclave_worker.intel_support import (
    endorsement,
    fixture,
    intel_pki,
    pcs_member,
    sgx_enclave,
    tdx_platform,
)
from tests.support import SIM_AT

NONCE, RESULT = bytes(range(32)), ResultDigest.of(b"result")
LATER = SIM_AT + timedelta(hours=1)


def pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


def collateral_v3(evidence: Evidence, pck_ca_der: bytes) -> object:
    pki = intel_pki()
    tcb_text, tcb_signature = pcs_member(endorsement(evidence, "tcb-info")[0], "tcbInfo")
    qe_text, qe_signature = pcs_member(endorsement(evidence, "qe-identity")[0], "enclaveIdentity")
    pck_crl, root_crl = endorsement(evidence, "crl")
    (signing,) = endorsement(evidence, "certificate")
    signing_chain = pem(signing) + pem(pki.root.der)
    document = {
        "pck_crl_issuer_chain": pem(pck_ca_der) + pem(pki.root.der),
        "root_ca_crl": root_crl.hex(),
        "pck_crl": pck_crl.hex(),
        "tcb_info_issuer_chain": signing_chain,
        "tcb_info": tcb_text.decode(),
        "tcb_info_signature": tcb_signature.hex(),
        "qe_identity_issuer_chain": signing_chain,
        "qe_identity": qe_text.decode(),
        "qe_identity_signature": qe_signature.hex(),
    }
    return dcap_qvl.QuoteCollateralV3.from_json(json.dumps(document))


def verify(evidence: Evidence, ca: str, at: datetime = LATER) -> object:
    pck_ca = intel_pki().pck_ca(ca).der  # type: ignore[arg-type]
    return dcap_qvl.verify_with_root_ca(
        evidence.data, collateral_v3(evidence, pck_ca), intel_pki().root.der, int(at.timestamp())
    )


def test_dcap_qvl_here_agrees_with_the_fixture_readme() -> None:
    """The tool is the one whose outcomes tests/fixtures/tdx/README.md records."""
    root = x509.load_pem_x509_certificate(fixture("intel_sgx_root_ca.pem"))
    report = dcap_qvl.verify_with_root_ca(
        fixture("phala_dcapqvl_sgx_quote.bin"),
        dcap_qvl.QuoteCollateralV3.from_json(
            fixture("phala_dcapqvl_sgx_quote_collateral.json").decode()
        ),
        root.public_bytes(serialization.Encoding.DER),
        int(datetime(2025, 6, 19, 11, 56, 11, tzinfo=UTC).timestamp()),
    )
    assert report.status == "ConfigurationAndSWHardeningNeeded"
    assert sorted(report.advisory_ids) == ["INTEL-SA-00289", "INTEL-SA-00615"]


@pytest.mark.parametrize(
    ("make", "ca"),
    [
        (tdx_platform, "platform"),
        (lambda **o: tdx_platform(version=5, **o), "platform"),
        (lambda **o: tdx_platform(version=5, tdx15=False, **o), "platform"),
        (sgx_enclave, "processor"),
    ],
    ids=["tdx-v4", "tdx-v5-td15", "tdx-v5-td10", "sgx-v3"],
)
def test_dcap_qvl_accepts_the_simulation_up_to_date(make, ca) -> None:
    platform = make()
    evidence = platform.attest(nonce=NONCE, result=RESULT)
    report = verify(evidence, ca)
    assert report.status == "UpToDate"  # type: ignore[attr-defined]
    assert report.advisory_ids == []  # type: ignore[attr-defined]
    body = dcap_qvl.parse_quote(evidence.data).report  # type: ignore[attr-defined]
    assert bytes(body.report_data) == NONCE + hashlib.sha256(RESULT.user_data()).digest()


@pytest.mark.parametrize(
    ("status", "advisories"),
    [
        ("SWHardeningNeeded", ("INTEL-SA-00615",)),
        ("ConfigurationAndSWHardeningNeeded", ("INTEL-SA-00289", "INTEL-SA-00615")),
        ("OutOfDate", ("INTEL-SA-00828",)),
    ],
)
def test_dcap_qvl_reads_the_status_the_simulation_meant(status, advisories) -> None:
    for platform, ca in (
        (tdx_platform(standing=TcbStanding(status, advisories)), "platform"),
        (sgx_enclave(standing=TcbStanding(status, advisories)), "processor"),
    ):
        report = verify(platform.attest(nonce=NONCE, result=RESULT), ca)
        assert report.status == status  # type: ignore[attr-defined]
        assert sorted(report.advisory_ids) == sorted(advisories)  # type: ignore[attr-defined]


def test_dcap_qvl_refuses_what_it_must() -> None:
    platform = tdx_platform()
    unmatched = platform.variant(standing=TcbStanding(matching=False))
    with pytest.raises(Exception, match="No matching TCB level"):
        verify(unmatched.attest(nonce=NONCE, result=RESULT), "platform")
    evidence = platform.attest(nonce=NONCE, result=RESULT)
    with pytest.raises(Exception, match="expired"):
        verify(evidence, "platform", at=SIM_AT + timedelta(days=31))
    with pytest.raises(Exception, match="future"):
        verify(evidence, "platform", at=SIM_AT - timedelta(seconds=1))
    tampered = bytearray(evidence.data)
    tampered[48 + 136] ^= 1
    with pytest.raises(Exception, match=r"(?i)signature"):
        verify(Evidence(evidence.kind, bytes(tampered), evidence.endorsements), "platform")
    serial = x509.load_pem_x509_certificates(platform.quoting_enclave.pck_chain_pem)[
        0
    ].serial_number
    revoked = Evidence(evidence.kind, evidence.data, platform.collateral(revoked_pcks=[serial]))
    with pytest.raises(Exception, match=r"(?i)revoked"):
        verify(revoked, "platform")
