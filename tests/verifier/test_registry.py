"""The registry: evidence kind -> scheme, policies by kind, and telling kinds apart."""

from __future__ import annotations

import json
import warnings

import pytest

from tests.support import NITRO, REAL_DOCUMENTS, RealDocument
from tests.verifier.snp.support import REAL_REPORTS, SNP, SNP_AT, VIRTEE, RealReport
from verifier import (
    EvidenceKind,
    NitroVerifier,
    NvidiaVerifier,
    Policy,
    PolicyInvalid,
    SnpPolicy,
    SnpVerifier,
    TpmPolicy,
    TpmVerifier,
    TrustAnchor,
    UnsafeAcceptAnyPolicy,
    UnsafePolicyWarning,
    detect_kind,
    kinds,
    policy_from_dict,
    policy_from_json,
    scheme_for,
)
from verifier.registry import device_kinds

MILAN_ARK = (SNP / "amd_milan_ark.pem").read_bytes()


def test_the_kinds_that_can_be_verified_today() -> None:
    assert [str(k) for k in kinds()] == [
        "aws-nitro-enclave",
        "aws-nitro-tpm",
        "amd-sev-snp",
        "intel-tdx",
        "intel-sgx",
        "tpm2-quote",
    ]
    # nvidia-gpu is a device's kind: judged beside a CPU TEE's evidence, never alone
    assert {str(k) for k in EvidenceKind} - {str(k) for k in kinds()} == {"nvidia-gpu"}
    assert [str(k) for k in device_kinds()] == ["nvidia-gpu"]
    assert isinstance(scheme_for("nvidia-gpu"), NvidiaVerifier)
    with pytest.raises(ValueError, match="unknown evidence kind"):
        scheme_for("amd-sev")


def test_scheme_for_each_kind() -> None:
    assert isinstance(scheme_for("aws-nitro-enclave"), NitroVerifier)
    assert isinstance(scheme_for(EvidenceKind.AWS_NITRO_TPM), NitroVerifier)
    assert isinstance(scheme_for("tpm2-quote"), TpmVerifier)
    snp = scheme_for("amd-sev-snp")
    assert isinstance(snp, SnpVerifier)
    assert snp.kinds == (EvidenceKind.AMD_SEV_SNP,)
    # Through the Scheme interface alone: verify and describe.
    result = snp.verify(VIRTEE.evidence(), at=SNP_AT, policy=VIRTEE.policy())
    assert result.claims.to_dict()["product"] == "Milan"
    assert snp.describe(VIRTEE.evidence()).report.version == 2


def test_trust_anchors_replace_the_pinned_roots() -> None:
    root = TrustAnchor.from_pem((NITRO / "aws_nitro_root_g1.pem").read_bytes(), name="aws")
    nitro = scheme_for("aws-nitro-enclave", trust_anchors=[root])
    assert isinstance(nitro, NitroVerifier)
    assert nitro.trust_anchor == root
    with pytest.raises(ValueError, match="exactly one root"):
        scheme_for("aws-nitro-enclave", trust_anchors=[root, root])
    with pytest.raises(ValueError, match="an AMD ARK has an RSA key"):
        scheme_for("amd-sev-snp", trust_anchors=[root])


def test_a_nitro_scheme_needs_a_p384_root() -> None:
    ark = TrustAnchor.from_pem(MILAN_ARK, name="ARK-Milan")
    with pytest.raises(ValueError, match="a Nitro root needs a P-384 key"):
        NitroVerifier(trust_anchor=ark)


@pytest.mark.parametrize("doc", REAL_DOCUMENTS, ids=lambda d: d.file)
def test_detects_nitro_documents(doc: RealDocument) -> None:
    assert str(detect_kind(doc.read())) == doc.kind


@pytest.mark.parametrize("sample", REAL_REPORTS, ids=lambda r: r.report)
def test_detects_snp_reports(sample: RealReport) -> None:
    assert detect_kind(sample.bytes()) is EvidenceKind.AMD_SEV_SNP


@pytest.mark.parametrize("data", [b"", b"\x02\x00\x00\x00", MILAN_ARK, bytes(1183), bytes(1185)])
def test_ambiguous_bytes_are_not_guessed(data: bytes) -> None:
    assert detect_kind(data) is None


def test_a_broken_cose_document_is_still_nitro() -> None:
    assert detect_kind(b"\x84\x01") is EvidenceKind.AWS_NITRO_ENCLAVE


def test_policies_by_the_kind_they_name() -> None:
    nitro = {"name": "n", "images": [{"name": "i", "pcrs": {"0": "00" * 48}}]}
    assert isinstance(policy_from_dict(nitro), Policy)  # no kind: Nitro enclaves, as before
    assert (
        policy_from_dict({**nitro, "evidence_kind": "aws-nitro-tpm"}).evidence_kind
        == "aws-nitro-tpm"
    )
    snp = {
        "name": "s",
        "evidence_kind": "amd-sev-snp",
        "images": [{"name": "i", "measurement": "00" * 48}],
    }
    assert isinstance(policy_from_json(json.dumps(snp)), SnpPolicy)
    with pytest.raises(PolicyInvalid, match="unknown key"):  # a Nitro image is no NVIDIA one
        policy_from_dict({**nitro, "evidence_kind": "nvidia-gpu"})
    tpm = {
        "name": "t",
        "evidence_kind": "tpm2-quote",
        "images": [{"name": "i", "pcrs": {"sha256": {"0": "00" * 32}}}],
    }
    assert isinstance(policy_from_dict(tpm), TpmPolicy)
    with pytest.raises(PolicyInvalid, match="pcrs bank '0'"):  # a Nitro image is no TPM one
        policy_from_dict({**nitro, "evidence_kind": "tpm2-quote"})
    with pytest.raises(PolicyInvalid, match="not valid JSON"):
        policy_from_json("{")
    with pytest.raises(PolicyInvalid, match="expected a JSON object"):
        policy_from_json("[]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        assert isinstance(policy_from_json('{"unsafe_accept_any": true}'), UnsafeAcceptAnyPolicy)
