"""``attest-ledger verify`` with AMD SEV-SNP reports: detection, endorsements, the report,
the same exit codes (0 verified, 1 rejected, 2 usage or I/O error). Every test gives --at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attest_ledger.cli import main
from tests.support import NITRO, REAL_DOCUMENTS
from tests.verifier.snp import pki
from tests.verifier.snp.support import SNP, VIRTEE
from verifier import ResultHash, parse_report, report_data

AT = "2025-09-01T00:00:00Z"
VIRTEE_ARGS = [str(SNP / VIRTEE.report), "--endorsement", str(SNP / VIRTEE.key), "--at", AT]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def snp_policy(tmp_path: Path, measurement: bytes, **extra: object) -> str:
    path = tmp_path / "snp-policy.json"
    images = [{"name": "inference-snp-v1", "measurement": measurement.hex()}]
    body = {"name": "cli-snp", "evidence_kind": "amd-sev-snp", "images": images, **extra}
    path.write_text(json.dumps(body))
    return str(path)


def test_a_real_report_without_policy_is_verified_with_warning(capsys) -> None:
    code, out, err = run(capsys, "verify", *VIRTEE_ARGS)
    assert code == 0
    assert "kind               amd-sev-snp" in out
    assert "product            Milan (from the key's productName)" in out
    assert "Verdict  VERIFIED (warning)" in out
    assert "judged at 2025-09-01T00:00:00.000Z, the given time" in out
    for position in ("ark ", "ask ", "vcek "):
        assert f"  {position}" in out
    assert "UNVERIFIED" not in out
    assert "  microcode        115      115        115     115  -" in out
    assert "  debug              no" in out
    assert "no --policy given" in err


def test_with_a_matching_policy_the_verdict_is_affirming(capsys, tmp_path) -> None:
    report = parse_report(VIRTEE.bytes())
    policy = snp_policy(tmp_path, report.measurement, min_tcb={"microcode": 116})
    code, out, _ = run(capsys, "verify", *VIRTEE_ARGS, "--policy", policy)
    assert code == 1
    assert "Verdict  REJECTED [policy_violation]" in out
    assert "  - [tcb_too_old] reported_tcb microcode: SPL 115" in out
    assert "  microcode        115      115        115     115  116" in out
    policy = snp_policy(tmp_path, report.measurement)
    code, out, err = run(capsys, "verify", *VIRTEE_ARGS, "--policy", policy)
    assert code == 0
    assert "Verdict  VERIFIED (affirming)" in out
    assert "matches inference-snp-v1" in out
    assert "image        inference-snp-v1" in out
    assert err == ""


def test_an_expired_vlek_is_rejected_and_its_certificate_shown(capsys) -> None:
    code, out, _ = run(
        capsys,
        "verify",
        str(SNP / "trustee_snp_test-vlek-report.bin"),
        "--endorsement",
        str(SNP / "trustee_snp_test-vlek.der"),
        "--at",
        "2026-01-01T00:00:00Z",
    )
    assert code == 1
    assert "Verdict  REJECTED [expired]" in out
    assert "UNVERIFIED" in out
    assert "OUTSIDE" in out
    assert "signed by          VLEK of CN=cc-us-east-2.amazonaws.com" in out


def test_a_pem_bundle_of_intermediates_and_root(capsys) -> None:
    """trustee's ASK, ARK, ASVK bundle: each recognised and used where it belongs."""
    code, out, _ = run(
        capsys,
        "verify",
        str(SNP / "trustee_snp_test-vlek-report.bin"),
        "--endorsement",
        str(SNP / "trustee_snp_test-vlek.der"),
        "--endorsement",
        str(SNP / "amd_milan_ask_ark_asvk.pem"),
        "--at",
        AT,
        "--json",
    )
    body = json.loads(out)
    # VMPL 1 and the default accept-any policy (max_vmpl 0): authentic, but rejected.
    assert code == 1
    assert body["error"]["code"] == "policy_violation"
    submod = body["result"]["submods"]["amd-sev-snp"]
    assert [(e["kind"], e["origin"]) for e in submod["attestation-ledger.endorsements"]] == [
        ("ark", "pinned"),
        ("asvk", "evidence"),
        ("vlek", "evidence"),
    ]
    assert body["evidence_kind"] == "amd-sev-snp"


def test_without_its_vcek_a_report_is_rejected(capsys) -> None:
    code, out, _ = run(capsys, "verify", str(SNP / VIRTEE.report), "--at", AT)
    assert code == 1
    assert "Verdict  REJECTED [endorsement_missing]" in out
    assert "version            2" in out  # what the report says is still shown


def test_a_named_kind_is_taken_as_given(capsys) -> None:
    code, out, _ = run(
        capsys,
        "verify",
        str(SNP / VIRTEE.report),
        "--endorsement",
        f"vlek={SNP / VIRTEE.key}",
        "--at",
        AT,
    )
    assert code == 1
    assert "REJECTED [endorsement_mismatch]" in out


def test_detection_and_type(capsys, tmp_path) -> None:
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(VIRTEE.bytes()[:1000])
    code, out, err = run(capsys, "verify", str(truncated), "--at", AT)
    assert code == 1
    assert "cannot tell what kind of evidence" in err
    assert "REJECTED [malformed]" in out  # tried as a Nitro document, as before
    code, out, _ = run(capsys, "verify", str(truncated), "--type", "amd-sev-snp", "--at", AT)
    assert code == 1
    assert "REJECTED [malformed]" in out
    assert "exactly 1184 bytes, found 1000 (truncated)" in out
    hex_file = tmp_path / "report.hex"
    hex_file.write_text(VIRTEE.bytes().hex())
    code, out, _ = run(
        capsys, "verify", str(hex_file), "--endorsement", str(SNP / VIRTEE.key), "--at", AT
    )
    assert code == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--at", "doc"], "--at doc: an SEV-SNP report carries no time"),
        (["--endorsement", "/nonexistent.der"], "cannot read endorsement /nonexistent.der"),
        (["--endorsement", "NITRO_ROOT"], "not an AMD certificate or CRL this command recognises"),
        (["--endorsement", "vcek=BUNDLE"], "3 certificates in it; a kind= names one"),
        (
            ["--policy", "NITRO_POLICY"],
            "judges aws-nitro-enclave evidence; this evidence is amd-sev-snp",
        ),
        (["--trust-root", "NITRO_ROOT"], "an AMD ARK has an RSA key"),
        (["--type", "arm-cca"], "invalid choice"),  # (nvidia-gpu is a choice now)
    ],
)
def test_usage_errors_exit_2(capsys, tmp_path, argv, message) -> None:
    nitro_policy = tmp_path / "nitro.json"
    nitro_policy.write_text(
        json.dumps({"name": "n", "images": [{"name": "i", "pcrs": {"0": "00" * 48}}]})
    )
    replace = {
        "NITRO_ROOT": str(NITRO / "aws_nitro_root_g1.pem"),
        "BUNDLE": str(SNP / "amd_milan_ask_ark_asvk.pem"),
        "NITRO_POLICY": str(nitro_policy),
    }
    argv = [replace.get(a, a.replace("BUNDLE", replace["BUNDLE"])) for a in argv]
    if "--type" in argv:
        with pytest.raises(SystemExit) as caught:
            main(["verify", *VIRTEE_ARGS, *argv])
        assert caught.value.code == 2
        assert message in capsys.readouterr().err
        return
    code, out, err = run(capsys, "verify", *VIRTEE_ARGS, *argv)
    assert code == 2
    assert message in err
    assert out == ""


def test_endorsements_are_for_reports_only(capsys) -> None:
    document = next(d for d in REAL_DOCUMENTS if d.file == "yawn_nitro_attest.cbor")
    code, _, err = run(
        capsys,
        "verify",
        str(NITRO / document.file),
        "--endorsement",
        str(SNP / VIRTEE.key),
        "--at",
        "doc",
    )
    assert code == 2
    assert "a Nitro document carries its own certificates" in err


def test_the_simulated_pki_with_nonce_result_hash_and_a_crl(capsys, tmp_path) -> None:
    """A report of the test PKI: trusted through --trust-root only, bound to a nonce and a
    result hash, with the ASK and a CRL given as files (PEM and DER)."""
    milan = pki.milan_pki()
    nonce = bytes(range(32))
    result_hash = ResultHash.of(b"result")
    fields = pki.ReportFields(report_data=report_data(nonce, result_hash))
    vek = milan.vcek(fields)
    files = {
        "report.bin": pki.sign_report(fields.body(), vek.key),
        "vcek.der": vek.der,
        "ask.pem": x509.load_der_x509_certificate(milan.ask).public_bytes(Encoding.PEM),
        "ark.pem": x509.load_der_x509_certificate(milan.ark).public_bytes(Encoding.PEM),
        "ark.crl": pki.crl("ARK-Milan", milan.ark_key, [99]),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    argv = [
        "verify",
        str(tmp_path / "report.bin"),
        "--endorsement",
        str(tmp_path / "vcek.der"),
        "--endorsement",
        str(tmp_path / "ask.pem"),
        "--endorsement",
        str(tmp_path / "ark.crl"),
        "--at",
        "2026-06-01T12:00:00Z",
        "--nonce",
        nonce.hex(),
        "--result-hash",
        str(result_hash),
    ]
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert "REJECTED [untrusted_root]" in out
    code, out, err = run(capsys, *argv, "--trust-root", str(tmp_path / "ark.pem"))
    assert code == 0, out
    assert "Verdict  VERIFIED (warning)" in out
    assert "  crl   " in out
    assert "instead of the AMD roots" in err
    code, out, _ = run(
        capsys, *argv[:-4], "--nonce", "00" * 32, "--trust-root", str(tmp_path / "ark.pem")
    )
    assert code == 1
    assert "  - [nonce_mismatch] report_data[0:32]" in out
