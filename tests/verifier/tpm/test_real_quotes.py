"""The real cloud quotes, each with its known outcome at its time (tests/fixtures/tpm)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import cbor2
import pytest

from tests.verifier.tpm.support import (
    AT,
    GCP_JSON,
    NITRO_JSON,
    NOW,
    TPM,
    TRUSTEE_JSON,
    accept_any,
    container,
    sample,
)
from verifier import (
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    PolicyViolation,
    VerifierError,
    detect_kind,
)
from verifier.tpm import (
    TpmPolicy,
    TpmReferenceImage,
    TpmVerifier,
    gcp_ekak_root,
    gcp_vtpm_root_2018,
    parse_quote,
)
from verifier.tpm.roots import anchor_from_der

VERIFIER = TpmVerifier()


def _fields(evidence: Evidence) -> dict[str, object]:
    return dict(cbor2.loads(evidence.data))


def _code(evidence: Evidence, verifier: TpmVerifier = VERIFIER, **kwargs: object) -> str:
    arguments: dict[str, object] = {"at": AT, "policy": accept_any(), **kwargs}
    with pytest.raises(VerifierError) as info:
        verifier.verify(evidence, **arguments)  # type: ignore[arg-type]
    return info.value.code


def test_the_nitrotpm_quote_verifies_at_its_document_time() -> None:
    evidence = sample(NITRO_JSON)
    nonce = bytes.fromhex(json.loads(NITRO_JSON.read_text())["nonce"])
    result = VERIFIER.verify(evidence, at=AT, policy=accept_any(), nonce=nonce)
    claims = result.claims.to_dict()
    assert claims["ak"]["path"] == "aws-nitrotpm"  # type: ignore[index]
    assert claims["ak"]["key"] == "ecc-p256"  # type: ignore[index]
    assert claims["quote"]["firmware_version"] == "2019102300163636"  # type: ignore[index]
    assert claims["nitro_document"]["timestamp"] == "2026-02-03T10:12:02.437Z"  # type: ignore[index]
    assert sorted(claims["pcrs"]["sha384"]) == sorted(str(i) for i in range(24))  # type: ignore[index]
    assert result.trust_anchor_sha256 == (
        "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    )
    assert result.nonce_checked
    assert len(json.dumps(claims)) < 8 * 1024


def test_the_nitrotpm_quote_fails_now_as_expired() -> None:
    assert _code(sample(NITRO_JSON), at=NOW) == "expired"


def test_the_gcp_quote_verifies_with_the_ekak_root() -> None:
    result = VERIFIER.verify(sample(GCP_JSON), at=AT, policy=accept_any())
    ak = result.claims.to_dict()["ak"]
    assert ak["path"] == "gcp"  # type: ignore[index]
    assert ak["gcp"]["project_id"] == "lockboot"  # type: ignore[index]
    assert ak["gcp"]["instance_id"] == "3414240648225485836"  # type: ignore[index]
    assert result.trust_anchor_sha256 == gcp_ekak_root().fingerprint
    assert [c.role for c in result.certificates] == ["root", "intermediate", "leaf"]
    assert {e.kind for e in result.endorsements} == {"ak-certificate", "certificate"}


def test_the_gcp_quote_fails_before_its_certificate_and_with_only_the_2018_root() -> None:
    assert _code(sample(GCP_JSON), at=AT.replace(year=2025)) == "not_yet_valid"
    only_2018 = TpmVerifier(trust_anchors=[gcp_vtpm_root_2018()])
    assert _code(sample(GCP_JSON), only_2018) == "untrusted_root"
    ekak = TpmVerifier(trust_anchors=[gcp_ekak_root()])
    assert ekak.verify(sample(GCP_JSON), at=AT, policy=accept_any()).claims


def test_a_delivered_root_is_never_trusted_unless_pinned() -> None:
    evidence = sample(GCP_JSON)
    without_root = Evidence(evidence.kind, evidence.data, evidence.endorsements[:2])
    assert VERIFIER.verify(without_root, at=AT, policy=accept_any())  # the pin suffices
    without_intermediate = Evidence(
        evidence.kind, evidence.data, (evidence.endorsements[0], evidence.endorsements[2])
    )
    assert _code(without_intermediate) == "untrusted_root"


def test_an_ak_certificate_of_another_root_is_untrusted() -> None:
    """The 2020 intermediate (2018 PKI) given as if it were the AK's issuer: it is not the
    AK certificate's issuer, and no root pinned here issued the chain."""
    evidence = sample(GCP_JSON)
    other = (TPM / "tpm_gcp_tpm_ek_intermediate_2.crt").read_bytes()
    root_2018 = anchor_from_der((TPM / "tpm_gcp_tpm_ek_root_1.cer").read_bytes(), name="2018")
    only_2018 = TpmVerifier(trust_anchors=[root_2018])
    swapped = Evidence(
        evidence.kind,
        evidence.data,
        (evidence.endorsements[0], Endorsement(EndorsementKind.CERTIFICATE, other)),
    )
    assert _code(swapped, only_2018) == "untrusted_root"
    # The intermediate itself as the AK certificate: a CA, and not the quote's key.
    as_leaf = Evidence(
        evidence.kind, evidence.data, (Endorsement(EndorsementKind.AK_CERTIFICATE, other),)
    )
    assert _code(as_leaf, only_2018) in {"chain_invalid", "ak_certificate_mismatch"}


def test_the_gcp_certificate_of_another_ak_is_a_mismatch() -> None:
    """The NitroTPM quote with the GCP AK's (valid) certificate chain."""
    nitro = sample(NITRO_JSON)
    fields = _fields(nitro)
    del fields["nitro_document"]
    evidence = Evidence(EvidenceKind.TPM2_QUOTE, container(fields), sample(GCP_JSON).endorsements)
    assert _code(evidence) == "ak_certificate_mismatch"


def test_the_trustee_bare_quote_verifies_then_is_unendorsed() -> None:
    evidence = sample(TRUSTEE_JSON)
    parsed = parse_quote(evidence.data)
    assert parsed.signature.name == "rsassa-sha256"
    assert parsed.ak.key == "rsa-2048"
    assert len(parsed.attest.extra_data) == 64
    for at in (AT, NOW):
        assert _code(evidence, at=at) == "ak_unendorsed"


def test_the_gcp_quote_with_the_nitrotpm_ak_fails_its_signature() -> None:
    fields = _fields(sample(GCP_JSON))
    fields["ak"] = _fields(sample(NITRO_JSON))["ak"]
    evidence = Evidence(EvidenceKind.TPM2_QUOTE, container(fields), sample(GCP_JSON).endorsements)
    assert _code(evidence) == "tpm_signature_invalid"


def test_a_different_nonce_fails_only_the_nonce_check() -> None:
    with pytest.raises(PolicyViolation) as info:
        VERIFIER.verify(sample(GCP_JSON), at=AT, policy=accept_any(), nonce=b"\x00" * 31 + b"\x01")
    assert [v.code for v in info.value.violations] == ["nonce_mismatch"]


def test_one_changed_pcr_is_a_pcr_digest_mismatch() -> None:
    for path, bank in ((GCP_JSON, "sha256"), (NITRO_JSON, "sha384")):
        evidence = sample(path)
        fields = _fields(evidence)
        pcrs = fields["pcrs"]
        assert isinstance(pcrs, dict)
        pcrs[bank][4] = bytes(len(pcrs[bank][4]))
        changed = Evidence(evidence.kind, container(fields), evidence.endorsements)
        assert _code(changed) == "pcr_digest_mismatch"


def test_a_nitro_document_that_binds_another_key_is_refused() -> None:
    """The NitroTPM document sent with the GCP quote: its public_key is the NitroTPM AK."""
    fields = _fields(sample(GCP_JSON))
    fields["nitro_document"] = _fields(sample(NITRO_JSON))["nitro_document"]
    assert _code(Evidence(EvidenceKind.TPM2_QUOTE, container(fields))) == "ak_binding_invalid"


def test_a_nitro_enclave_document_does_not_vouch_for_an_ak() -> None:
    from tests.support import NITRO

    fields = _fields(sample(NITRO_JSON))
    fields["nitro_document"] = (
        NITRO / "anjuna_attestdoc_sample_prod_doc_with_publickey.cbor"
    ).read_bytes()
    assert _code(Evidence(EvidenceKind.TPM2_QUOTE, container(fields))) == "ak_binding_invalid"


def test_policy_images_match_the_real_pcrs() -> None:
    evidence = sample(GCP_JSON)
    pcrs = parse_quote(evidence.data).pcrs["sha256"]
    image = TpmReferenceImage("gcp-boot", {"sha256": {i: pcrs[i] for i in (0, 4, 7, 9)}})
    policy = TpmPolicy("gcp", (image,))
    result = VERIFIER.verify(evidence, at=AT, policy=policy)
    assert result.status == "affirming"
    assert result.matched_reference == "gcp-boot"
    wrong = dataclasses.replace(image, name="other", pcrs={"sha256": {9: bytes(32)}})
    with pytest.raises(PolicyViolation) as info:
        VERIFIER.verify(evidence, at=AT, policy=TpmPolicy("gcp", (wrong,)))
    assert [(v.code, v.pcr_index) for v in info.value.violations] == [("pcr_mismatch", 9)]
    assert "sha256 PCR 9" in info.value.violations[0].message
    only_nitro = TpmPolicy("gcp", (image,), ak_paths=("aws-nitrotpm",))
    with pytest.raises(PolicyViolation) as info:
        VERIFIER.verify(evidence, at=AT, policy=only_nitro)
    assert [v.code for v in info.value.violations] == ["ak_path_not_allowed"]


def test_the_container_is_detected_and_converted_exactly() -> None:
    for path in (NITRO_JSON, GCP_JSON, TRUSTEE_JSON):
        evidence = sample(path)
        assert detect_kind(evidence.data) is EvidenceKind.TPM2_QUOTE
        assert evidence.data == container(_fields(evidence))  # format first, then canonical
    source = json.loads(TRUSTEE_JSON.read_text())
    parsed = parse_quote(sample(TRUSTEE_JSON).data)
    assert (
        parsed.attest.raw.hex()
        == __import__("base64").b64decode(source["tpm_quote"]["message"]).hex()
    )
    assert hashlib.sha256(parsed.container.ak).hexdigest() == parsed.ak.sha256
