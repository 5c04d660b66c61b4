"""Every real AWS-signed document, verified as of its own time and as of a later time."""

from __future__ import annotations

import hashlib
import warnings
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store

from tests.support import (
    ENCLAVE_DOCUMENTS,
    FORGED_DOCUMENT,
    LATE,
    NITRO,
    REAL_DOCUMENTS,
    policy_for_pcrs,
)
from verifier import (
    AWS_NITRO_ROOT_G1_SHA256,
    DOCUMENT_TIME,
    CertificateExpired,
    EvidenceKind,
    MalformedEvidence,
    NitroVerifier,
    Policy,
    PolicyViolation,
    ReferenceImage,
    Status,
    TimeBasis,
    UnsafeAcceptAnyPolicy,
    UnsafePolicyWarning,
    aws_nitro_root_g1,
    parse_evidence,
)

IDS = [d.file.removesuffix(".cbor") for d in REAL_DOCUMENTS]


@pytest.fixture(scope="module")
def verifier() -> NitroVerifier:
    return NitroVerifier()


def accept_any() -> UnsafeAcceptAnyPolicy:
    """Accept any measurement and any kind of Nitro evidence: what is tested is the chain."""
    with pytest.warns(UnsafePolicyWarning):
        return UnsafeAcceptAnyPolicy(evidence_kind=EvidenceKind.AWS_NITRO_TPM)


def test_fixture_files_are_the_ones_catalogued() -> None:
    for line in (NITRO / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((NITRO / name).read_bytes()).hexdigest() == digest, name


def test_packaged_root_is_the_fixture_root() -> None:
    pem = (NITRO / "aws_nitro_root_g1.pem").read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    assert hashlib.sha256(der).hexdigest() == AWS_NITRO_ROOT_G1_SHA256
    assert aws_nitro_root_g1().der == der
    assert (
        aws_nitro_root_g1().certificate.subject.rfc4514_string()
        == "CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US"
    )


def test_a_modified_packaged_root_is_refused(monkeypatch) -> None:
    """The pin is checked at load: a package whose root was swapped fails loudly."""
    from verifier.nitro import trust

    trust.aws_nitro_root_g1.cache_clear()
    monkeypatch.setattr(trust, "AWS_NITRO_ROOT_G1_SHA256", "00" * 32)
    try:
        with pytest.raises(RuntimeError, match="the installation has been modified"):
            trust.aws_nitro_root_g1()
    finally:
        trust.aws_nitro_root_g1.cache_clear()


@pytest.mark.parametrize("doc", REAL_DOCUMENTS, ids=IDS)
def test_parses_with_the_catalogued_kind_and_timestamp(doc) -> None:
    _, document = parse_evidence(doc.read())
    assert document.kind == doc.kind
    assert document.timestamp_ms == doc.timestamp_ms
    assert document.is_debug == doc.debug


@pytest.mark.parametrize("doc", ENCLAVE_DOCUMENTS, ids=lambda d: d.file.removesuffix(".cbor"))
def test_verifies_at_its_own_timestamp_against_its_own_reference_values(verifier, doc) -> None:
    raw = doc.read()
    _, document = parse_evidence(raw)
    policy = policy_for_pcrs(document.pcrs)

    result = verifier.verify(raw, at=DOCUMENT_TIME, policy=policy)

    assert result.status is Status.AFFIRMING
    assert result.time_basis is TimeBasis.DOCUMENT
    assert result.verified_at == doc.timestamp
    assert result.matched_image == "test-image"
    assert result.trust_anchor_sha256 == AWS_NITRO_ROOT_G1_SHA256
    assert [c.role for c in result.certificates] == [
        "root",
        "intermediate",
        "intermediate",
        "intermediate",
        "leaf",
    ]
    assert result.certificates[0].fingerprint_sha256 == AWS_NITRO_ROOT_G1_SHA256


@pytest.mark.parametrize("doc", ENCLAVE_DOCUMENTS, ids=lambda d: d.file.removesuffix(".cbor"))
def test_verifies_at_an_explicit_time_just_after_its_timestamp(verifier, doc) -> None:
    raw = doc.read()
    _, document = parse_evidence(raw)
    at = doc.timestamp + timedelta(seconds=30)
    result = verifier.verify(raw, at=at, policy=policy_for_pcrs(document.pcrs))
    assert result.status is Status.AFFIRMING
    assert result.time_basis is TimeBasis.GIVEN
    assert result.verified_at == at


@pytest.mark.parametrize("doc", REAL_DOCUMENTS, ids=IDS)
def test_fails_as_expired_now(verifier, doc) -> None:
    with pytest.raises(CertificateExpired) as caught:
        verifier.verify(doc.read(), at=LATE, policy=accept_any())
    assert caught.value.code == "expired"
    assert "expired at" in caught.value.message
    assert caught.value.document is not None  # parsed, for display


def test_forged_document_is_malformed(verifier) -> None:
    raw = (NITRO / FORGED_DOCUMENT).read_bytes()
    with pytest.raises(MalformedEvidence) as caught:
        verifier.verify(raw, at=DOCUMENT_TIME, policy=accept_any())
    assert caught.value.code == "malformed"
    assert "unprotected header" in caught.value.message


def test_debug_document_fails_the_default_policy(verifier) -> None:
    debug = next(d for d in REAL_DOCUMENTS if d.debug)
    with pytest.warns(UnsafePolicyWarning):
        default = UnsafeAcceptAnyPolicy()  # what the CLI uses without --policy
    with pytest.raises(PolicyViolation) as caught:
        verifier.verify(debug.read(), at=DOCUMENT_TIME, policy=default)
    assert [v.code for v in caught.value.violations] == ["debug_mode"]
    assert caught.value.result.status is Status.CONTRAINDICATED


def test_debug_document_fails_a_policy_listing_its_own_zero_pcrs(verifier) -> None:
    debug = next(d for d in REAL_DOCUMENTS if d.debug)
    raw = debug.read()
    _, document = parse_evidence(raw)
    with pytest.raises(PolicyViolation) as caught:
        verifier.verify(raw, at=DOCUMENT_TIME, policy=policy_for_pcrs(document.pcrs))
    assert [v.code for v in caught.value.violations] == ["debug_mode"]


def test_debug_document_passes_with_a_warning_when_debug_is_allowed(verifier) -> None:
    debug = next(d for d in REAL_DOCUMENTS if d.debug)
    raw = debug.read()
    _, document = parse_evidence(raw)
    policy = policy_for_pcrs(document.pcrs, allow_debug=True)
    result = verifier.verify(raw, at=DOCUMENT_TIME, policy=policy)
    assert result.status is Status.WARNING
    assert any("debug" in note for note in result.notes)


def test_nitrotpm_document_is_its_own_kind_of_evidence(verifier) -> None:
    tpm = next(d for d in REAL_DOCUMENTS if d.kind == "aws-nitro-tpm")
    raw = tpm.read()
    _, document = parse_evidence(raw)
    assert document.kind is EvidenceKind.AWS_NITRO_TPM
    assert sorted(document.pcrs) == list(range(24))
    assert not document.is_debug

    enclave_policy = policy_for_pcrs(document.pcrs)  # same values, but for enclaves
    with pytest.raises(PolicyViolation) as caught:
        verifier.verify(raw, at=DOCUMENT_TIME, policy=enclave_policy)
    assert [v.code for v in caught.value.violations] == ["evidence_kind_mismatch"]

    tpm_policy = Policy(
        name="tpm",
        evidence_kind=EvidenceKind.AWS_NITRO_TPM,
        images=(ReferenceImage("ami", {4: document.pcrs[4], 7: document.pcrs[7]}),),
    )
    result = verifier.verify(raw, at=DOCUMENT_TIME, policy=tpm_policy)
    assert result.status is Status.AFFIRMING
    assert result.evidence_kind is EvidenceKind.AWS_NITRO_TPM


def test_maximum_size_fields_from_real_hardware_are_accepted(verifier) -> None:
    blocky = next(d for d in REAL_DOCUMENTS if d.file.startswith("blocky"))
    raw = blocky.read()
    _, document = parse_evidence(raw)
    assert (
        len(document.user_data or b"")
        == len(document.nonce or b"")
        == len(document.public_key or b"")
        == 1024
    )
    result = verifier.verify(
        raw, at=DOCUMENT_TIME, policy=policy_for_pcrs(document.pcrs), nonce=document.nonce
    )
    assert result.nonce_checked


def test_null_optional_fields_are_absent() -> None:
    evervault = next(d for d in REAL_DOCUMENTS if d.file == "evervault_beta_valid.cbor")
    _, document = parse_evidence(evervault.read())
    assert document.public_key is None
    assert document.user_data is None
    assert document.nonce is not None
    assert len(document.nonce) == 256


def test_an_empty_public_key_from_real_hardware_is_present_and_empty(verifier) -> None:
    """Regression (issue #10): real AWS hardware wrote a zero-length public_key (the brave
    document); it was refused as malformed. It is accepted, and kept distinct from null
    wherever it is shown: the parsed document, the EAR claims."""
    brave = next(d for d in REAL_DOCUMENTS if d.file.startswith("brave"))
    raw = brave.read()
    _, document = parse_evidence(raw)
    assert document.public_key == b""
    assert document.public_key is not None
    assert document.user_data == bytes(32)
    assert document.nonce is not None
    assert len(document.nonce) == 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        policy = UnsafeAcceptAnyPolicy(allow_debug=True)
    result = verifier.verify(raw, at=DOCUMENT_TIME, policy=policy, nonce=document.nonce)
    assert result.status is Status.WARNING  # a debug enclave, allowed here
    claims = result.to_ear()["submods"]["aws-nitro-enclave"]["attestation-ledger.claims"]
    assert claims["public_key"] == ""  # present and empty: not null
    assert claims["user_data"] == "00" * 32


def test_indefinite_length_payload_parses() -> None:
    tpm = next(d for d in REAL_DOCUMENTS if d.kind == "aws-nitro-tpm")
    envelope, _ = parse_evidence(tpm.read())
    assert envelope.payload[0] == 0xBF  # the 2025+ encoding


@pytest.mark.parametrize("doc", REAL_DOCUMENTS, ids=IDS)
def test_chain_agrees_with_cryptographys_own_path_validator(verifier, doc) -> None:
    """An independent oracle: cryptography's verifier, with the end-entity policy relaxed as
    Nitro needs (its leaf has no Authority Key Identifier), must agree at both times."""
    raw = doc.read()
    _, document = parse_evidence(raw)
    root = x509.load_der_x509_certificate(document.cabundle[0])
    leaf = x509.load_der_x509_certificate(document.certificate)
    intermediates = [x509.load_der_x509_certificate(der) for der in document.cabundle[1:]]

    def theirs(at) -> bool:
        builder = (
            PolicyBuilder()
            .store(Store([root]))
            .time(at)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=ExtensionPolicy.permit_all(),
            )
        )
        try:
            builder.build_client_verifier().verify(leaf, intermediates)
        except Exception:
            return False
        return True

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        policy = UnsafeAcceptAnyPolicy(evidence_kind=document.kind, allow_debug=True)

    def ours(at) -> bool:
        try:
            verifier.verify(raw, at=at, policy=policy)
        except CertificateExpired:
            return False
        return True

    naive_doc_time = doc.timestamp.replace(tzinfo=None)
    assert theirs(naive_doc_time) is True
    assert ours(doc.timestamp) is True
    assert theirs(LATE.replace(tzinfo=None)) is False
    assert ours(LATE) is False
