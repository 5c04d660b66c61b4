"""One fault at a time, each refused with its own stable code: a bit flipped in every region
of a real quote, a substituted root, a broken QE binding, collateral of another platform or
TEE, expired collateral, a revoked PCK, truncation and trailing bytes."""

from __future__ import annotations

import json
import struct
import warnings
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.verifier.tdx import pki
from tests.verifier.tdx.support import (
    GTG_V5,
    OUTDATED,
    PHALA_SGX,
    PHALA_TDX,
    REAL_QUOTES,
    RealQuote,
)
from verifier import (
    DcapVerifier,
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    UnsafeAcceptAnySgxPolicy,
    UnsafeAcceptAnyTdxPolicy,
    UnsafePolicyWarning,
    VerifierError,
    parse_quote,
)
from verifier.policy import SchemePolicy

VERIFIER = DcapVerifier()
SIMULATED = DcapVerifier(trust_anchors=[pki.anchor()])


def _regions(data: bytes) -> dict[str, int]:
    """The offset of one byte inside each region of a real quote."""
    quote = parse_quote(data)
    sd = len(quote.signed_bytes) + 4
    qe = sd + 128 + (6 if quote.header.version != 3 else 0)
    auth = qe + 384 + 64 + 2
    chain = auth + len(quote.signature_data.qe_auth_data) + 6
    return {
        "header": 30,  # user_data
        "body": (54 if quote.header.version == 5 else 48) + 140,  # MRTD or MRSIGNER
        "attestation_key": sd + 64 + 10,
        "qe_report": qe + 64,  # MRENCLAVE
        "qe_report_signature": qe + 384 + 10,
        "qe_auth_data": auth + 5,
        "chain": chain,
    }


def _with_chain(data: bytes, chain: bytes) -> bytes:
    """The quote with its PCK chain replaced and every length field fixed."""
    quote = parse_quote(data)
    sig = quote.signature_data
    body = chain + b"\x00"
    certification = (
        sig.qe_report.raw
        + sig.qe_report_signature
        + struct.pack("<H", len(sig.qe_auth_data))
        + sig.qe_auth_data
        + struct.pack("<HI", 5, len(body))
        + body
    )
    signature_data = sig.signature + sig.attestation_key
    if quote.header.version != 3:
        signature_data += struct.pack("<HI", 6, len(certification))
    signature_data += certification
    return quote.signed_bytes + struct.pack("<I", len(signature_data)) + signature_data


def _flip(data: bytes, offset: int, bit: int = 0x01) -> bytes:
    out = bytearray(data)
    out[offset] ^= bit
    return bytes(out)


def _verify(sample: RealQuote, data: bytes | None = None, **kwargs: object) -> None:
    evidence = kwargs.pop("evidence", None) or sample.evidence(data)
    at = kwargs.pop("at", sample.at)
    VERIFIER.verify(evidence, at=at, policy=sample.accept_any())  # type: ignore[arg-type]


REGION_CODES = {
    "header": "signature_invalid",
    "body": "signature_invalid",
    "attestation_key": "qe_binding_invalid",
    "qe_report": "qe_report_signature_invalid",
    "qe_report_signature": "qe_report_signature_invalid",
    "qe_auth_data": "qe_binding_invalid",
}


@pytest.mark.parametrize("sample", [PHALA_TDX, PHALA_SGX, GTG_V5], ids=lambda s: s.quote)
@pytest.mark.parametrize("region", sorted(REGION_CODES))
def test_a_bit_flip_in_each_region(sample: RealQuote, region: str) -> None:
    data = sample.bytes()
    with pytest.raises(VerifierError) as caught:
        _verify(sample, _flip(data, _regions(data)[region]))
    assert caught.value.code == REGION_CODES[region], caught.value.message


@pytest.mark.parametrize("sample", [PHALA_TDX, PHALA_SGX], ids=lambda s: s.quote)
def test_a_bit_flip_in_the_pck_leaf(sample: RealQuote) -> None:
    data = sample.bytes()
    quote = parse_quote(data)
    leaf, *rest = x509.load_pem_x509_certificates(quote.signature_data.pck_chain_pem)
    der = bytearray(leaf.public_bytes(Encoding.DER))
    der[-10] ^= 0x01  # inside the signature value: the certificate still parses
    chain = b"".join(
        c.public_bytes(Encoding.PEM) for c in (x509.load_der_x509_certificate(bytes(der)), *rest)
    )
    with pytest.raises(VerifierError) as caught:
        _verify(sample, _with_chain(data, chain))
    assert caught.value.code == "chain_invalid"
    assert "pck certificate: signature does not verify" in caught.value.message


def test_the_rebuilt_quote_is_still_accepted() -> None:
    # The helper above changes nothing by itself: the same chain gives a verifying quote.
    data = PHALA_TDX.bytes()
    same = _with_chain(data, parse_quote(data).signature_data.pck_chain_pem)
    _verify(PHALA_TDX, same)


def test_a_substituted_root_is_untrusted() -> None:
    data = PHALA_TDX.bytes()
    leaf, ca, _ = x509.load_pem_x509_certificates(parse_quote(data).signature_data.pck_chain_pem)
    chain = (
        leaf.public_bytes(Encoding.PEM) + ca.public_bytes(Encoding.PEM) + pki.pem(pki.root_der())
    )
    with pytest.raises(VerifierError) as caught:
        _verify(PHALA_TDX, _with_chain(data, chain))
    assert caught.value.code == "untrusted_root"


def test_a_simulated_root_is_not_trusted_unless_configured() -> None:
    evidence = pki.Platform().evidence()
    with pytest.raises(VerifierError) as caught:
        VERIFIER.verify(evidence, at=pki.AT, policy=_accept_any(True))
    assert caught.value.code == "untrusted_root"
    SIMULATED.verify(evidence, at=pki.AT, policy=_accept_any(True))


def test_a_broken_qe_binding() -> None:
    class Unbound(pki.Platform):
        def qe_report(self, attestation_key: bytes, auth_data: bytes) -> bytes:
            return super().qe_report(bytes(64), auth_data)  # binds another key

    with pytest.raises(VerifierError) as caught:
        SIMULATED.verify(Unbound().evidence(), at=pki.AT, policy=_accept_any(True))
    assert caught.value.code == "qe_binding_invalid"


def test_collateral_of_another_fmspc() -> None:
    # The Phala TDX quote (FMSPC B0C06F000000) with FMSPC 90C06F000000's collateral.
    evidence = Evidence(EvidenceKind.INTEL_TDX, PHALA_TDX.bytes(), OUTDATED.evidence().endorsements)
    with pytest.raises(VerifierError) as caught:
        _verify(PHALA_TDX, evidence=evidence, at=OUTDATED.at)
    assert caught.value.code == "fmspc_mismatch"


def test_a_tdx_quote_with_sgx_collateral() -> None:
    evidence = Evidence(
        EvidenceKind.INTEL_TDX, PHALA_TDX.bytes(), PHALA_SGX.evidence().endorsements
    )
    with pytest.raises(VerifierError) as caught:
        _verify(PHALA_TDX, evidence=evidence, at=PHALA_SGX.at)
    assert caught.value.code == "tcb_type_mismatch"


def test_an_sgx_quote_with_tdx_collateral() -> None:
    evidence = Evidence(
        EvidenceKind.INTEL_SGX, PHALA_SGX.bytes(), PHALA_TDX.evidence().endorsements
    )
    with pytest.raises(VerifierError) as caught:
        _verify(PHALA_SGX, evidence=evidence, at=PHALA_TDX.at)
    assert caught.value.code == "tcb_type_mismatch"


@pytest.mark.parametrize("sample", REAL_QUOTES, ids=lambda s: s.quote)
def test_expired_collateral(sample: RealQuote) -> None:
    with pytest.raises(VerifierError) as caught:
        _verify(sample, at=sample.earliest_next_update + timedelta(days=1))
    assert caught.value.code == "expired"


def test_a_revoked_pck_certificate() -> None:
    platform = pki.Platform(revoked_pck=(0x1234,))
    with pytest.raises(VerifierError) as caught:
        SIMULATED.verify(platform.evidence(), at=pki.AT, policy=_accept_any(True))
    assert caught.value.code == "revoked"
    assert "serial 1234" in caught.value.message
    # Another serial on the CRL revokes nothing of this path.
    other = pki.Platform(revoked_pck=(0x9999,))
    SIMULATED.verify(other.evidence(), at=pki.AT, policy=_accept_any(True))


@pytest.mark.parametrize("sample", REAL_QUOTES, ids=lambda s: s.quote)
def test_truncated(sample: RealQuote) -> None:
    quote = parse_quote(sample.bytes())
    for size in (0, 47, 48, 100, len(quote.signed_bytes) + 3, len(quote.raw) - 1):
        with pytest.raises(VerifierError) as caught:
            _verify(sample, quote.raw[:size])
        assert caught.value.code == "malformed", size


@pytest.mark.parametrize("sample", REAL_QUOTES, ids=lambda s: s.quote)
def test_trailing_bytes(sample: RealQuote) -> None:
    raw = parse_quote(sample.bytes()).raw
    with pytest.raises(VerifierError) as caught:
        _verify(sample, raw + bytes(30) + b"\x01")
    assert caught.value.code == "malformed"
    if sample.status is not None:  # zero padding is allowed, and unsigned
        _verify(sample, raw + bytes(8000 - len(raw)))


def test_forged_collateral_text() -> None:
    evidence = PHALA_TDX.evidence()
    forged = []
    for endorsement in evidence.endorsements:
        data = endorsement.data
        if endorsement.kind is EndorsementKind.TCB_INFO:
            data = data.replace(b'"tcbEvaluationDataNumber":17', b'"tcbEvaluationDataNumber":18')
            assert data != endorsement.data
        forged.append(Endorsement(endorsement.kind, data))
    with pytest.raises(VerifierError) as caught:
        _verify(PHALA_TDX, evidence=Evidence(evidence.kind, evidence.data, tuple(forged)))
    assert caught.value.code == "collateral_signature_invalid"


def test_re_serialised_collateral_does_not_verify() -> None:
    # The signature covers the text as issued; the same JSON written another way is refused.
    evidence = PHALA_SGX.evidence()
    changed = []
    for endorsement in evidence.endorsements:
        data = endorsement.data
        if endorsement.kind is EndorsementKind.QE_IDENTITY:
            body = json.loads(data)
            data = json.dumps(body, indent=1).encode()
        changed.append(Endorsement(endorsement.kind, data))
    with pytest.raises(VerifierError) as caught:
        _verify(PHALA_SGX, evidence=Evidence(evidence.kind, evidence.data, tuple(changed)))
    assert caught.value.code == "collateral_signature_invalid"


@pytest.mark.parametrize(
    "kind",
    [
        EndorsementKind.TCB_INFO,
        EndorsementKind.QE_IDENTITY,
        EndorsementKind.CERTIFICATE,
        "pck_crl",
        "root_crl",
    ],
)
def test_missing_collateral(kind: object) -> None:
    evidence = PHALA_TDX.evidence()
    crls = [e for e in evidence.endorsements if e.kind is EndorsementKind.CRL]
    drop = {"pck_crl": crls[0], "root_crl": crls[1]}.get(str(kind))
    kept = tuple(
        e
        for e in evidence.endorsements
        if e is not drop and (drop is not None or e.kind is not kind)
    )
    with pytest.raises(VerifierError) as caught:
        _verify(PHALA_TDX, evidence=Evidence(evidence.kind, evidence.data, kept))
    assert caught.value.code == "endorsement_missing"


def test_a_quote_labelled_as_the_other_kind() -> None:
    evidence = Evidence(
        EvidenceKind.INTEL_SGX, PHALA_TDX.bytes(), PHALA_TDX.evidence().endorsements
    )
    with pytest.raises(VerifierError) as caught:
        VERIFIER.verify(evidence, at=PHALA_TDX.at, policy=PHALA_SGX.accept_any())
    assert caught.value.code == "malformed"


def test_a_policy_of_the_other_kind_is_refused() -> None:
    with pytest.raises(VerifierError) as caught:
        VERIFIER.verify(PHALA_TDX.evidence(), at=PHALA_TDX.at, policy=PHALA_SGX.accept_any())
    assert caught.value.code == "policy_invalid"


def test_the_qe_is_not_intels() -> None:
    platform = pki.Platform(qe_mrsigner=bytes(32))
    with pytest.raises(VerifierError) as caught:
        SIMULATED.verify(platform.evidence(), at=pki.AT, policy=_accept_any(True))
    assert caught.value.code == "qe_identity_mismatch"


def test_a_qe_below_every_qe_identity_level() -> None:
    platform = pki.Platform(qe_isv_svn=3)
    with pytest.raises(VerifierError) as caught:
        SIMULATED.verify(platform.evidence(), at=pki.AT, policy=_accept_any(True))
    assert caught.value.code == "no_matching_tcb_level"


def test_a_tdx_module_the_collateral_does_not_list() -> None:
    platform = pki.Platform(modules=[pki.module_identity(major=3)])
    with pytest.raises(VerifierError) as caught:
        SIMULATED.verify(platform.evidence(), at=pki.AT, policy=_accept_any(True))
    assert caught.value.code == "no_matching_tcb_level"
    assert "TDX_01" in caught.value.message


def test_an_expired_pck_certificate() -> None:
    platform = pki.Platform(leaf_not_after=pki.AT - timedelta(seconds=1))
    with pytest.raises(VerifierError) as caught:
        SIMULATED.verify(platform.evidence(), at=pki.AT, policy=_accept_any(True))
    assert caught.value.code == "expired"


def _accept_any(tdx: bool, **overrides: object) -> SchemePolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        if tdx:
            return UnsafeAcceptAnyTdxPolicy(**overrides)  # type: ignore[arg-type]
        return UnsafeAcceptAnySgxPolicy(**overrides)  # type: ignore[arg-type]
