"""Mutations of real AWS documents: each must fail with its own specific error code.

Checks that do not depend on the signature (shape, sizes, root pin, chain) are reached
before the COSE signature is examined, so a mutated real document still exercises them.
"""

from __future__ import annotations

import warnings

import cbor2
import pytest

from tests.support import ENCLAVE_DOCUMENTS, REAL_DOCUMENTS
from verifier import (
    DOCUMENT_TIME,
    EvidenceKind,
    NitroVerifier,
    UnsafeAcceptAnyPolicy,
    UnsafePolicyWarning,
    VerifierError,
    parse_evidence,
)
from verifier.nitro.cose import ES384_PROTECTED_HEADER

DOCS = [d for d in REAL_DOCUMENTS if not d.debug]


@pytest.fixture(scope="module")
def verifier() -> NitroVerifier:
    return NitroVerifier()


def code_of(verifier: NitroVerifier, raw: bytes, kind: str = "aws-nitro-enclave") -> str:
    """The error code verifying ``raw`` as of its own time gives, or "verified"."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        policy = UnsafeAcceptAnyPolicy(evidence_kind=EvidenceKind(kind))
    try:
        verifier.verify(raw, at=DOCUMENT_TIME, policy=policy)
    except VerifierError as exc:
        return exc.code
    return "verified"


def flip(raw: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(raw)
    out[offset] ^= 1 << bit
    return bytes(out)


@pytest.fixture(params=DOCS, ids=lambda d: d.file.removesuffix(".cbor"))
def doc(request):
    return request.param


def test_unmutated_document_verifies(verifier, doc) -> None:
    assert code_of(verifier, doc.read(), doc.kind) == "verified"


def test_bit_flip_in_the_protected_header(verifier, doc) -> None:
    raw = doc.read()
    offset = raw.index(ES384_PROTECTED_HEADER)
    for i in range(len(ES384_PROTECTED_HEADER)):
        assert code_of(verifier, flip(raw, offset + i, 0), doc.kind) == "malformed"


def test_bit_flip_in_the_signature(verifier, doc) -> None:
    raw = doc.read()
    for offset in (len(raw) - 96, len(raw) - 48, len(raw) - 1):
        assert code_of(verifier, flip(raw, offset, 3), doc.kind) == "signature_invalid"


def test_bit_flip_in_signed_payload_values(verifier, doc) -> None:
    raw = doc.read()
    _, document = parse_evidence(raw)
    module_id = raw.index(document.module_id.encode())
    pcr = raw.index(document.pcrs[2])
    for offset in (module_id + 5, pcr + 10):
        assert code_of(verifier, flip(raw, offset, 0), doc.kind) == "signature_invalid"


def test_bit_flip_in_each_certificate(verifier, doc) -> None:
    """Flip a bit inside each certificate's signature value (its last bytes): the root must be
    refused as not the pinned one, every other certificate as a broken link."""
    raw = doc.read()
    _, document = parse_evidence(raw)
    for position, der in enumerate([*document.cabundle, document.certificate]):
        offset = raw.index(der) + len(der) - 3
        expected = "untrusted_root" if position == 0 else "chain_invalid"
        assert code_of(verifier, flip(raw, offset, 1), doc.kind) == expected, position


def test_bit_flip_in_the_payload_structure(verifier, doc) -> None:
    raw = doc.read()
    envelope = cbor2.loads(raw)
    payload_start = raw.index(envelope[2])
    # The payload map header (0xA9 or 0xBF): a different item count or type breaks the shape.
    assert code_of(verifier, flip(raw, payload_start, 0), doc.kind) == "malformed"
    # The array header of the envelope itself.
    assert code_of(verifier, flip(raw, 0, 0), doc.kind) == "malformed"


def reencode(raw: bytes, change) -> bytes:
    envelope = cbor2.loads(raw)
    payload = cbor2.loads(envelope[2])
    change(payload)
    envelope[2] = cbor2.dumps(payload)
    return cbor2.dumps(envelope)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.pop("certificate"), "malformed"),
        (lambda p: p.pop("module_id"), "malformed"),
        (lambda p: p.__setitem__("pcrs", {0: b"\x00" * 47}), "malformed"),
        (lambda p: p.__setitem__("user_data", b"u" * 1025), "malformed"),
        (lambda p: p.__setitem__("digest", "SHA512"), "malformed"),
        (lambda p: p.__setitem__("timestamp", p["timestamp"] // 1000), "malformed"),
        (lambda p: p["cabundle"].reverse(), "untrusted_root"),
        (
            lambda p: p["cabundle"].pop(2),
            "chain_invalid",
        ),  # zonal missing: instance's issuer breaks
        (lambda p: p.__setitem__("cabundle", p["cabundle"][:1]), "chain_invalid"),
        (
            lambda p: p.__setitem__("certificate", p["cabundle"][3]),
            "chain_invalid",
        ),  # a CA as signer
        (lambda p: p.__setitem__("user_data", b"injected"), "signature_invalid"),
    ],
    ids=[
        "no-certificate",
        "no-module-id",
        "pcr-47-bytes",
        "user-data-1025",
        "digest-sha512",
        "timestamp-seconds",
        "cabundle-reversed",
        "cabundle-gap",
        "cabundle-root-only",
        "ca-as-leaf",
        "user-data-changed",
    ],
)
def test_payload_rewrites(verifier, change, expected) -> None:
    for doc in ENCLAVE_DOCUMENTS:
        assert code_of(verifier, reencode(doc.read(), change)) == expected, doc.file


def test_duplicated_pcrs_field_in_a_real_document(verifier) -> None:
    raw = ENCLAVE_DOCUMENTS[0].read()
    envelope = cbor2.loads(raw)
    payload = envelope[2]
    pcrs = cbor2.loads(payload)["pcrs"]
    # Turn the definite map (0xA9: 9 pairs) into 10 pairs with a second, different "pcrs".
    assert payload[0] == 0xA9
    shadow = cbor2.dumps("pcrs") + cbor2.dumps({**pcrs, 0: b"\x11" * 48})
    envelope[2] = b"\xaa" + payload[1:] + shadow
    assert code_of(verifier, cbor2.dumps(envelope)) == "malformed"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda raw: b"\xd3" + raw, "malformed"),  # tag 19
        (lambda raw: b"\xd2" + raw, "verified"),  # tag 18 is fine
        (lambda raw: raw + b"\x00", "malformed"),  # trailing byte
        (lambda raw: raw[:-1], "malformed"),  # truncated
        (lambda raw: raw[: len(raw) // 2], "malformed"),
    ],
    ids=["tag-19", "tag-18", "trailing", "truncated-1", "truncated-half"],
)
def test_envelope_mutations(verifier, doc, mutate, expected) -> None:
    assert code_of(verifier, mutate(doc.read()), doc.kind) == expected


def test_wrong_algorithm_and_short_signature(verifier, doc) -> None:
    envelope = cbor2.loads(doc.read())
    wrong_alg = cbor2.dumps([cbor2.dumps({1: -7}), {}, envelope[2], envelope[3]])
    short = cbor2.dumps([envelope[0], {}, envelope[2], envelope[3][:95]])
    der = cbor2.dumps([envelope[0], {}, envelope[2], bytes(envelope[3][:48]) * 2 + b"\x00" * 8])
    assert code_of(verifier, wrong_alg, doc.kind) == "malformed"
    assert code_of(verifier, short, doc.kind) == "malformed"
    assert code_of(verifier, der, doc.kind) == "malformed"
