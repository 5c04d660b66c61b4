"""The COSE_Sign1 envelope: tag, header, payload and signature rules."""

from __future__ import annotations

import cbor2
import pytest

from enclave_worker.simulated_nsm import encode_payload
from tests.support import SIM_AT
from verifier import (
    MAX_EVIDENCE_BYTES,
    COSESign1,
    EvidenceTooLarge,
    MalformedEvidence,
    SignatureInvalid,
    Status,
)


def verify(verifier, raw: bytes, policy):
    return verifier.verify(raw, at=SIM_AT, policy=policy)


def test_untagged_and_tagged_documents_verify(sim_nsm, sim_verifier, sim_policy) -> None:
    untagged = sim_nsm.attest(timestamp=SIM_AT)
    tagged = sim_nsm.attest(timestamp=SIM_AT, tagged=True)
    assert untagged[0] == 0x84
    assert tagged[0] == 0xD2
    assert verify(sim_verifier, untagged, sim_policy).status is Status.AFFIRMING
    assert verify(sim_verifier, tagged, sim_policy).status is Status.AFFIRMING
    assert COSESign1.from_bytes(tagged).tagged


def test_definite_length_payload_verifies(sim_nsm, sim_verifier, sim_policy) -> None:
    raw = sim_nsm.attest(timestamp=SIM_AT, definite_length=True)
    assert verify(sim_verifier, raw, sim_policy).status is Status.AFFIRMING


def test_wrong_tag_is_malformed(sim_nsm, sim_verifier, sim_policy) -> None:
    raw = sim_nsm.attest(timestamp=SIM_AT)
    with pytest.raises(MalformedEvidence, match="found tag 19") as caught:
        verify(sim_verifier, b"\xd3" + raw, sim_policy)
    assert caught.value.code == "malformed"


@pytest.mark.parametrize(
    "protected",
    [
        cbor2.dumps({1: -7}),  # ES256
        cbor2.dumps({1: -36}),  # ES512
        cbor2.dumps({1: -35, 4: b"kid"}),  # an extra header
        cbor2.dumps({}),
        b"",
        b"\xa1\x01\x39\x00\x22",  # {1: -35} with a non-minimal integer
    ],
    ids=["es256", "es512", "extra-header", "empty-map", "empty-bytes", "non-canonical"],
)
def test_protected_header_must_be_exactly_es384(
    sim_nsm, sim_verifier, sim_policy, protected
) -> None:
    payload = encode_payload(sim_nsm.payload_fields(timestamp=SIM_AT))
    raw = sim_nsm.sign(payload, protected=protected)  # correctly signed over the wrong header
    with pytest.raises(MalformedEvidence, match="protected header") as caught:
        verify(sim_verifier, raw, sim_policy)
    assert caught.value.code == "malformed"


def _envelope(sim_nsm, **replace):
    raw = sim_nsm.attest(timestamp=SIM_AT)
    items = dict(
        zip(("protected", "unprotected", "payload", "signature"), cbor2.loads(raw), strict=True)
    )
    items.update(replace)
    return cbor2.dumps(list(items.values()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"unprotected": None}, "unprotected header: expected a map, found null"),
        ({"unprotected": {4: b"kid"}}, "unprotected header: expected an empty map"),
        ({"protected": {1: -35}}, "protected header: expected a byte string, found a map"),
        ({"payload": None}, "payload: expected a byte string, found null"),
        ({"payload": b""}, "payload: expected 1..16384 bytes, found 0"),
        ({"signature": b"\x01" * 95}, "expected 96 bytes (ES384 r||s), found 95"),
        ({"signature": b"\x01" * 97}, "found 97"),
        ({"signature": b"\x01" * 64}, "found 64"),
        ({"signature": "text"}, "signature: expected a byte string, found a text string"),
    ],
    ids=[
        "unprotected-null",
        "unprotected-nonempty",
        "protected-map",
        "payload-null",
        "payload-empty",
        "sig-95",
        "sig-97",
        "sig-64",
        "sig-text",
    ],
)
def test_envelope_rules(sim_nsm, sim_verifier, sim_policy, change, message) -> None:
    with pytest.raises(
        MalformedEvidence, match=message.replace("|", r"\|").replace("(", r"\(").replace(")", r"\)")
    ):
        verify(sim_verifier, _envelope(sim_nsm, **change), sim_policy)


@pytest.mark.parametrize(
    "items", [[], [b"", {}, b"x"], [b"", {}, b"x", b"", b""]], ids=["0", "3", "5"]
)
def test_array_must_have_four_items(sim_verifier, sim_policy, items) -> None:
    with pytest.raises(MalformedEvidence, match="expected an array of 4 items"):
        verify(sim_verifier, cbor2.dumps(items), sim_policy)


def test_top_level_map_is_not_a_cose_sign1(sim_verifier, sim_policy) -> None:
    with pytest.raises(MalformedEvidence, match="found a map"):
        verify(sim_verifier, cbor2.dumps({"a": 1}), sim_policy)


def test_trailing_bytes_after_the_document_are_rejected(sim_nsm, sim_verifier, sim_policy) -> None:
    with pytest.raises(MalformedEvidence, match="trailing byte"):
        verify(sim_verifier, sim_nsm.attest(timestamp=SIM_AT) + b"\x00", sim_policy)


def test_oversize_input_is_rejected_before_decoding(sim_verifier, sim_policy) -> None:
    with pytest.raises(EvidenceTooLarge) as caught:
        verify(sim_verifier, b"\x84" + b"\x00" * MAX_EVIDENCE_BYTES, sim_policy)
    assert caught.value.code == "oversize"
    assert isinstance(caught.value, MalformedEvidence)


def test_non_bytes_input_is_a_programming_error(sim_verifier, sim_policy) -> None:
    with pytest.raises(TypeError):
        verify(sim_verifier, bytearray(b"\x84"), sim_policy)


def test_signature_by_another_key_is_invalid(sim_nsm, sim_verifier, sim_policy) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from enclave_worker.simulated_nsm import cose_sign1

    payload = encode_payload(sim_nsm.payload_fields(timestamp=SIM_AT))
    raw = cose_sign1(payload, ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(SignatureInvalid) as caught:
        verify(sim_verifier, raw, sim_policy)
    assert caught.value.code == "signature_invalid"


@pytest.mark.parametrize("signature", [bytes(96), b"\xff" * 96], ids=["zero", "all-ones"])
def test_out_of_range_signature_values_are_invalid(
    sim_nsm, sim_verifier, sim_policy, signature
) -> None:
    with pytest.raises(SignatureInvalid):
        verify(sim_verifier, _envelope(sim_nsm, signature=signature), sim_policy)
