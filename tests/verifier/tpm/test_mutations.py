"""Quotes made here (tests/verifier/tpm/support.py) and mutated, each with its code: every
TPMS_ATTEST field, signature schemes and keys, the binding, enrolment, and the policy."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from tests.verifier.tpm.support import AT, Quote, accept_any, container
from verifier import Evidence, EvidenceKind, PolicyViolation, ResultHash, VerifierError, report_data
from verifier.tpm import (
    Enrolment,
    ExpectedEvent,
    StaticEnrolments,
    TpmPolicy,
    TpmReferenceImage,
    TpmVerifier,
)

NONCE = b"\x11" * 32


def _enrolled(quote: Quote, **kwargs: object) -> TpmVerifier:
    enrolment = Enrolment(
        name="rack-7",
        ak_sha256=hashlib.sha256(quote.ak).hexdigest(),
        enrolled_at=kwargs.get("enrolled_at", AT - timedelta(days=1)),  # type: ignore[arg-type]
        revoked_at=kwargs.get("revoked_at"),  # type: ignore[arg-type]
        entry_index=3,
        ek_certificate_sha256=None,
    )
    return TpmVerifier(enrolments=StaticEnrolments([enrolment]))


def _code(verifier: TpmVerifier, evidence: Evidence, **kwargs: object) -> str:
    arguments: dict[str, object] = {"at": AT, "policy": accept_any(), **kwargs}
    with pytest.raises(VerifierError) as info:
        verifier.verify(evidence, **arguments)  # type: ignore[arg-type]
    return info.value.code


@pytest.mark.parametrize(
    ("key", "scheme", "sig_hash", "name_alg"),
    [
        ("p256", "ecdsa", "sha256", "sha256"),
        ("p384", "ecdsa", "sha384", "sha384"),
        ("rsa2048", "rsassa", "sha256", "sha256"),
        ("rsa2048", "rsapss", "sha256", "sha1"),
        ("p256", "ecdsa", "sha512", "sha256"),
    ],
)
def test_each_key_and_signature_scheme_verifies(
    key: str, scheme: str, sig_hash: str, name_alg: str
) -> None:
    quote = Quote(key=key, scheme=scheme, sig_hash=sig_hash, name_alg=name_alg)
    result = _enrolled(quote).verify(quote.evidence(), at=AT, policy=accept_any(), nonce=NONCE)
    claims = result.claims.to_dict()
    assert claims["quote"]["signature"] == f"{scheme}-{sig_hash}"  # type: ignore[index]
    assert claims["ak"]["path"] == "enrolled"  # type: ignore[index]
    assert claims["ak"]["enrolment"] == "rack-7"  # type: ignore[index]
    assert claims["ak"]["name_alg"] == name_alg  # type: ignore[index]


# Offsets in the TPMS_ATTEST Quote() makes (name of 34 bytes, extraData of 32, 1 bank).
_FIELDS = {
    "magic": 0,
    "type": 4,
    "qualifiedSigner": 9,
    "extraData": 44,
    "clock": 76,
    "resetCount": 84,
    "restartCount": 88,
    "firmwareVersion": 95,
    "pcrSelect.count": 103,
    "safe": 92,
    "pcrSelections.hash": 106,
    "sizeofSelect": 107,
    "pcrSelect bitmap": 108,
    "pcrDigest": 115,
}


@pytest.mark.parametrize(("field", "offset"), sorted(_FIELDS.items()))
def test_a_flipped_bit_in_each_attest_field_fails(field: str, offset: int) -> None:
    quote = Quote()
    fields = quote.fields()
    attest = bytearray(fields["attest"])  # type: ignore[arg-type]
    assert len(attest) == 145
    attest[offset] ^= 0x01
    fields["attest"] = bytes(attest)
    code = _code(_enrolled(quote), Evidence(EvidenceKind.TPM2_QUOTE, container(fields)))
    assert code in {"tpm_signature_invalid", "malformed", "unsupported"}, field


def test_a_trailing_byte_and_a_handle_name_are_malformed() -> None:
    quote = Quote()
    fields = quote.fields()
    attest: bytes = fields["attest"]  # type: ignore[assignment]
    for bad in (
        attest + b"\x00",
        attest[:6] + b"\x00\x04\x81\x01\x00\x01" + attest[42:],  # a handle, not a name
        attest[:4] + b"\x80\x17" + attest[6:],  # ATTEST_CERTIFY
    ):
        fields["attest"] = bad
        fields["signature"] = quote.sign(bad)
        assert _code(_enrolled(quote), Evidence(EvidenceKind.TPM2_QUOTE, container(fields))) == (
            "malformed"
        )


def test_wrong_nonce_binding_and_result_hash() -> None:
    quote = Quote()
    verifier = _enrolled(quote)
    with pytest.raises(PolicyViolation) as info:
        verifier.verify(quote.evidence(), at=AT, policy=accept_any(), nonce=b"\x22" * 32)
    assert [v.code for v in info.value.violations] == ["nonce_mismatch"]
    result_hash = ResultHash.of(b"result")
    with pytest.raises(PolicyViolation) as info:
        verifier.verify(quote.evidence(), at=AT, policy=accept_any(), result_hash=result_hash)
    assert [v.code for v in info.value.violations] == ["result_binding_missing"]
    bound = Quote(private_key=quote.private_key, extra_data=report_data(NONCE, result_hash))
    result = verifier.verify(
        bound.evidence(), at=AT, policy=accept_any(), nonce=NONCE, result_hash=result_hash
    )
    assert result.result_binding_checked
    with pytest.raises(PolicyViolation) as info:
        verifier.verify(
            bound.evidence(), at=AT, policy=accept_any(), result_hash=ResultHash.of(b"other")
        )
    assert [v.code for v in info.value.violations] == ["result_binding_mismatch"]
    odd = Quote(private_key=quote.private_key, extra_data=b"\x11" * 20)
    with pytest.raises(PolicyViolation) as info:
        verifier.verify(odd.evidence(), at=AT, policy=accept_any(), nonce=NONCE)
    assert [v.code for v in info.value.violations] == ["nonce_mismatch"]
    zeros = Quote(private_key=quote.private_key, extra_data=bytes(32))
    with pytest.raises(PolicyViolation) as info:
        verifier.verify(zeros.evidence(), at=AT, policy=accept_any(), nonce=NONCE)
    assert [v.code for v in info.value.violations] == ["nonce_missing"]


def test_enrolment_at_its_time() -> None:
    quote = Quote()
    evidence = quote.evidence()
    assert _code(TpmVerifier(), evidence) == "ak_unendorsed"
    # the book knows nothing of the AK: nothing vouches for it (not "enrolled later")
    assert _code(TpmVerifier(enrolments=StaticEnrolments([])), evidence) == "ak_unendorsed"
    # enrolled only later: nothing vouched for it at AT either (the answer the service gave
    # before the enrolment, and the one a bundle judging it again with the enrolment gives)
    later = _enrolled(quote, enrolled_at=AT + timedelta(seconds=1))
    assert _code(later, evidence) == "ak_unendorsed"
    revoked = _enrolled(quote, revoked_at=AT)
    assert _code(revoked, evidence) == "ak_enrolment_revoked"
    assert revoked.verify(evidence, at=AT - timedelta(seconds=1), policy=accept_any())
    other = _enrolled(Quote())
    assert _code(other, evidence) == "ak_unendorsed"


def test_a_foreign_ak_fails_the_signature() -> None:
    quote = Quote()
    fields = quote.fields(ak=Quote().ak)
    assert _code(TpmVerifier(), Evidence(EvidenceKind.TPM2_QUOTE, container(fields))) == (
        "tpm_signature_invalid"
    )
    rsa = Quote(key="rsa2048")
    fields = quote.fields(ak=rsa.ak)  # an ECDSA signature with an RSA AK
    assert _code(TpmVerifier(), Evidence(EvidenceKind.TPM2_QUOTE, container(fields))) == (
        "tpm_signature_invalid"
    )


def test_pcrs_not_quoted_or_missing_are_malformed() -> None:
    quote = Quote()
    fields = quote.fields()
    fields["pcrs"] = {"sha256": {**quote.pcrs["sha256"], 9: b"\x00" * 32}}
    assert _code(TpmVerifier(), Evidence(EvidenceKind.TPM2_QUOTE, container(fields))) == (
        "malformed"
    )
    fields["pcrs"] = {"sha256": {i: v for i, v in quote.pcrs["sha256"].items() if i}}
    assert _code(TpmVerifier(), Evidence(EvidenceKind.TPM2_QUOTE, container(fields))) == (
        "malformed"
    )


def test_policy_images_events_paths_and_all_reset() -> None:
    quote = Quote()
    verifier = _enrolled(quote)
    evidence = quote.evidence()
    good = TpmReferenceImage("boot", {"sha256": {0: b"\x01" * 32, 7: b"\x08" * 32}})
    bad = TpmReferenceImage("old", {"sha256": {0: b"\x02" * 32}, "sha384": {0: bytes(48)}})
    result = verifier.verify(evidence, at=AT, policy=TpmPolicy("p", (bad, good)))
    assert (result.status, result.matched_reference) == ("affirming", "boot")
    with pytest.raises(PolicyViolation) as info:
        verifier.verify(evidence, at=AT, policy=TpmPolicy("p", (bad,), ak_paths=("gcp",)))
    codes = sorted(v.code for v in info.value.violations)
    assert codes == ["ak_path_not_allowed", "pcr_mismatch", "pcr_mismatch"]
    event = ExpectedEvent(9, {"sha256": b"\x09" * 32}, "kernel")
    with_event = TpmReferenceImage("boot+kernel", {"sha256": {0: b"\x01" * 32}}, (event,))
    with pytest.raises(PolicyViolation) as info:
        verifier.verify(
            evidence, at=AT, policy=TpmPolicy("p", (with_event,), require_event_log=True)
        )
    assert sorted(v.code for v in info.value.violations) == ["event_log_missing", "event_missing"]
    reset = Quote(
        private_key=quote.private_key,
        pcrs={"sha256": {0: bytes(32), 17: b"\xff" * 32, 23: bytes(32)}},
    )
    with pytest.raises(PolicyViolation) as info:
        verifier.verify(reset.evidence(), at=AT, policy=accept_any())
    assert [v.code for v in info.value.violations] == ["pcrs_all_reset"]
    allowed = TpmPolicy("p", (TpmReferenceImage("r", {"sha256": {0: bytes(32)}}),))
    lenient = TpmPolicy(
        "p", allowed.images, reject_all_reset=False, clock_skew=timedelta(seconds=5)
    )
    assert verifier.verify(reset.evidence(), at=AT, policy=lenient).status == "affirming"
    assert TpmPolicy.from_dict(lenient.to_dict()).digest == lenient.digest
