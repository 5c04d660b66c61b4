"""Payload field rules, each broken alone in an otherwise valid, correctly signed document."""

from __future__ import annotations

import cbor2
import pytest

from enclave_worker.simulated_nsm import encode_payload
from tests.support import SIM_AT
from verifier import MalformedEvidence, Status


def signed(sim_nsm, fields: dict, *, definite: bool = False) -> bytes:
    return sim_nsm.sign(encode_payload(fields, definite_length=definite))


def fields(sim_nsm, **changes) -> dict:
    out = sim_nsm.payload_fields(timestamp=SIM_AT)
    out.update(changes)
    return out


def rejects(sim_verifier, sim_policy, raw: bytes, message: str) -> MalformedEvidence:
    with pytest.raises(MalformedEvidence) as caught:
        sim_verifier.verify(raw, at=SIM_AT, policy=sim_policy)
    assert caught.value.code == "malformed"
    assert message in caught.value.message, caught.value.message
    return caught.value


@pytest.mark.parametrize("missing", ["module_id", "digest", "timestamp", "certificate", "cabundle"])
def test_each_mandatory_field_is_required(sim_nsm, sim_verifier, sim_policy, missing) -> None:
    payload = fields(sim_nsm)
    del payload[missing]
    rejects(
        sim_verifier,
        sim_policy,
        signed(sim_nsm, payload),
        f"mandatory field '{missing}' is missing",
    )


def test_pcrs_are_required(sim_nsm, sim_verifier, sim_policy) -> None:
    payload = fields(sim_nsm)
    del payload["pcrs"]
    rejects(sim_verifier, sim_policy, signed(sim_nsm, payload), "expected exactly one of 'pcrs'")


def test_pcrs_and_nitrotpm_pcrs_together_are_rejected(sim_nsm, sim_verifier, sim_policy) -> None:
    payload = fields(sim_nsm, nitrotpm_pcrs=dict(sim_nsm.pcrs))
    rejects(sim_verifier, sim_policy, signed(sim_nsm, payload), "found 2")


@pytest.mark.parametrize("optional", ["public_key", "user_data", "nonce"])
def test_optional_fields_may_be_left_out_entirely(
    sim_nsm, sim_verifier, sim_policy, optional
) -> None:
    payload = fields(sim_nsm)
    del payload[optional]
    result = sim_verifier.verify(signed(sim_nsm, payload), at=SIM_AT, policy=sim_policy)
    assert getattr(result.document, optional) is None
    assert result.status is Status.AFFIRMING


@pytest.mark.parametrize("field", ["pcrs", "module_id", "cabundle"])
def test_duplicated_fields_are_rejected(sim_nsm, sim_verifier, sim_policy, field) -> None:
    """A second ``pcrs`` must not shadow the first (base/nitro-validator PR #36)."""
    payload = fields(sim_nsm)
    body = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in payload.items())
    body += cbor2.dumps(field) + cbor2.dumps(payload[field])
    raw = sim_nsm.sign(b"\xbf" + body + b"\xff")
    rejects(sim_verifier, sim_policy, raw, "Duplicate")


def test_unknown_fields_are_rejected(sim_nsm, sim_verifier, sim_policy) -> None:
    rejects(
        sim_verifier,
        sim_policy,
        signed(sim_nsm, fields(sim_nsm, extra=b"x")),
        "unexpected field 'extra'",
    )


def test_non_text_keys_are_rejected(sim_nsm, sim_verifier, sim_policy) -> None:
    payload: dict = fields(sim_nsm)
    payload[7] = b"x"
    rejects(sim_verifier, sim_policy, signed(sim_nsm, payload), "expected text keys")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"module_id": ""}, "module_id: expected 1..256 bytes"),
        ({"module_id": "x" * 257}, "module_id: expected 1..256 bytes"),
        ({"module_id": b"i-0123"}, "module_id: expected a text string, found a byte string"),
        ({"digest": "SHA256"}, "digest: expected 'SHA384', found 'SHA256'"),
        ({"digest": b"SHA384"}, "digest: expected 'SHA384', found a byte string"),
        ({"timestamp": 1713379906}, "found 1713379906"),  # seconds, as the forged document has
        ({"timestamp": -1}, "timestamp: expected milliseconds"),
        ({"timestamp": 2**64 - 1}, "(9999)"),
        ({"timestamp": 1.7e12}, "timestamp: expected an unsigned integer, found a float"),
        ({"timestamp": True}, "timestamp: expected an unsigned integer, found a boolean"),
        ({"timestamp": "1780315200000"}, "found a text string"),
        ({"pcrs": {}}, "pcrs: expected 1..32 entries, found 0"),
        ({"pcrs": {i: bytes(48) for i in range(33)}}, "pcrs: expected 1..32 entries, found 33"),
        ({"pcrs": {32: bytes(48)}}, "index in 0..31, found 32"),
        ({"pcrs": {-1: bytes(48)}}, "index in 0..31, found -1"),
        ({"pcrs": {"0": bytes(48)}}, "found a text string"),
        ({"pcrs": {0: bytes(47)}}, "pcrs[0]: expected 48 bytes (SHA384), found 47"),
        ({"pcrs": {0: bytes(49)}}, "pcrs[0]: expected 48 bytes (SHA384), found 49"),
        ({"pcrs": {0: bytes(32)}}, "found 32"),
        ({"pcrs": {0: "00" * 48}}, "pcrs[0]: expected a byte string, found a text string"),
        ({"pcrs": [bytes(48)]}, "pcrs: expected a map, found an array"),
        ({"nitrotpm_pcrs": {24: bytes(48)}, "pcrs": None}, "index in 0..23, found 24"),
        ({"certificate": b""}, "certificate: expected 1..1024 bytes, found 0"),
        ({"certificate": b"\x30" * 1025}, "certificate: expected 1..1024 bytes, found 1025"),
        ({"certificate": None}, "certificate: expected a byte string, found null"),
        ({"cabundle": []}, "cabundle: expected 1..10 certificates, found 0"),
        ({"cabundle": [b"\x30"] * 11}, "cabundle: expected 1..10 certificates, found 11"),
        ({"cabundle": None}, "cabundle: expected an array, found null"),  # the forged document
        ({"cabundle": [b""]}, "cabundle[0]: expected 1..1024 bytes, found 0"),
        ({"cabundle": ["text"]}, "cabundle[0]: expected a byte string, found a text string"),
        ({"public_key": b"k" * 1025}, "public_key: expected 0..1024 bytes, found 1025"),
        ({"user_data": b"u" * 1025}, "user_data: expected 0..1024 bytes, found 1025"),
        ({"nonce": b"n" * 1025}, "nonce: expected 0..1024 bytes, found 1025"),
        ({"user_data": "text"}, "user_data: expected a byte string, found a text string"),
        ({"nonce": 5}, "nonce: expected a byte string, found an integer"),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, str) else None,
)
def test_field_rules(sim_nsm, sim_verifier, sim_policy, change, message) -> None:
    payload = fields(sim_nsm, **change)
    if payload.get("pcrs") is None and "nitrotpm_pcrs" in payload:
        del payload["pcrs"]
    rejects(sim_verifier, sim_policy, signed(sim_nsm, payload), message)


@pytest.mark.parametrize(
    ("field", "size"),
    [
        ("user_data", 0),
        ("nonce", 0),
        ("public_key", 0),
        ("user_data", 1024),
        ("nonce", 1024),
        ("public_key", 1024),
    ],
)
def test_size_limits_are_inclusive(sim_nsm, sim_verifier, sim_policy, field, size) -> None:
    raw = signed(sim_nsm, fields(sim_nsm, **{field: b"\x01" * size}))
    result = sim_verifier.verify(raw, at=SIM_AT, policy=sim_policy)
    assert getattr(result.document, field) == b"\x01" * size


def test_payload_must_be_a_map(sim_nsm, sim_verifier, sim_policy) -> None:
    rejects(
        sim_verifier,
        sim_policy,
        sim_nsm.sign(cbor2.dumps([1, 2])),
        "payload: expected a map, found an array",
    )


def test_payload_with_trailing_bytes_is_rejected(sim_nsm, sim_verifier, sim_policy) -> None:
    raw = sim_nsm.sign(encode_payload(fields(sim_nsm)) + b"\x00")
    rejects(sim_verifier, sim_policy, raw, "payload: expected one CBOR item, found 1 trailing byte")


def test_tags_inside_the_payload_are_rejected(sim_nsm, sim_verifier, sim_policy) -> None:
    raw = signed(sim_nsm, fields(sim_nsm, timestamp=cbor2.CBORTag(1, 1780315200)))
    rejects(sim_verifier, sim_policy, raw, "tags are not allowed")


def test_debug_flag_needs_pcr0_zero_not_all_zero(sim_pki) -> None:
    from tests.support import simulated_nsm
    from verifier import parse_evidence

    debug = simulated_nsm(sim_pki, debug=True)
    _, document = parse_evidence(debug.attest(timestamp=SIM_AT))
    assert document.is_debug
    assert document.pcrs[4] != bytes(48)  # the parent instance is still measured
