"""``attest-ledger verify`` with Intel TDX and SGX quotes: detection, collateral as dcap-qvl
JSON or as --endorsement KIND=FILE, the quote's fields and TCB, the same exit codes (0
verified, 1 rejected, 2 usage or I/O error). Every test gives --at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attest_ledger.cli import main
from tests.verifier.tdx import pki
from tests.verifier.tdx.support import OUTDATED, PHALA_SGX, PHALA_TDX, TDX
from verifier import parse_quote
from verifier.timefmt import iso_utc


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def args(sample: object, *extra: str) -> list[str]:
    return [
        "verify",
        str(TDX / sample.quote),  # type: ignore[attr-defined]
        "--collateral",
        str(TDX / sample.collateral),  # type: ignore[attr-defined]
        "--at",
        iso_utc(sample.at),  # type: ignore[attr-defined]
        *extra,
    ]


def test_a_real_tdx_quote_is_detected_and_verified(capsys) -> None:
    code, out, err = run(capsys, *args(PHALA_TDX))
    assert code == 0
    assert "kind               intel-tdx" in out
    assert "padding            70 zero bytes after the quote (not signed)" in out
    assert "mr_td              91eb2b44" in out
    assert "status             UpToDate" in out
    assert "tdx module         TDX_01 UpToDate" in out
    assert "Verdict  VERIFIED (warning)" in out
    assert "no --policy given" in err
    for kind in ("tcb-info", "qe-identity", "crl", "certificate", "pck-ca", "root"):
        assert f"\n  {kind} " in out


def test_the_sgx_quote_with_a_policy_and_its_advisories(capsys, tmp_path: Path) -> None:
    body = parse_quote(PHALA_SGX.bytes()).body
    policy = tmp_path / "sgx.json"
    policy.write_text(
        json.dumps(
            {
                "name": "cli-sgx",
                "evidence_kind": "intel-sgx",
                "images": [{"name": "hello", "mr_enclave": body.mr_enclave.hex()}],  # type: ignore[union-attr]
                "allowed_advisories": ["INTEL-SA-00615"],
            }
        )
    )
    code, out, _ = run(capsys, *args(PHALA_SGX, "--policy", str(policy)))
    assert code == 1
    assert "Verdict  REJECTED [policy_violation]" in out
    assert "[advisory_not_allowed] advisory INTEL-SA-00289" in out
    assert "advisories         INTEL-SA-00289, INTEL-SA-00615" in out


def test_the_outdated_quote_is_rejected_with_its_code(capsys) -> None:
    code, out, _ = run(capsys, *args(OUTDATED))
    assert code == 1
    assert "Verdict  REJECTED [no_matching_tcb_level]" in out
    assert "sgx tcb            3 3 2 2 4 1 0 3" in out  # the unproven claims, for display


def test_json_output(capsys) -> None:
    code, out, _ = run(capsys, *args(PHALA_TDX, "--json"))
    assert code == 0
    data = json.loads(out)
    assert data["evidence_kind"] == "intel-tdx"
    submod = data["result"]["submods"]["intel-tdx"]
    assert submod["attestation-ledger.tcb-status"] == "UpToDate"


def test_endorsement_files_instead_of_the_dcap_qvl_json(capsys, tmp_path: Path) -> None:
    platform = pki.Platform()
    quote = tmp_path / "quote.bin"
    quote.write_bytes(platform.quote())
    root = tmp_path / "root.pem"
    root.write_bytes(pki.pem(pki.root_der()))
    files = []
    for endorsement in platform.collateral():
        path = tmp_path / f"{len(files)}.{endorsement.kind}"
        path.write_bytes(endorsement.data)
        files += ["--endorsement", f"{endorsement.kind}={path}"]
    at = iso_utc(pki.AT)
    code, out, err = run(
        capsys, "verify", str(quote), *files, "--trust-root", str(root), "--at", at
    )
    assert code == 0, out
    assert "instead of the Intel SGX Root CA" in err
    assert "Verdict  VERIFIED (warning)" in out
    # Unlabelled certificates and CRLs are recognised as such.
    unlabelled = [
        x.split("=", 1)[1] if x.startswith(("crl=", "certificate=")) else x for x in files
    ]
    assert any(x.endswith(".crl") and "=" not in x for x in unlabelled)
    code, out, _ = run(
        capsys, "verify", str(quote), *unlabelled, "--trust-root", str(root), "--at", at
    )
    assert code == 0, out


def test_usage_errors(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, *args(PHALA_TDX)[:-2], "--at", "doc")
    assert code == 2
    assert "carries no time of its own" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, _, err = run(capsys, "verify", str(TDX / PHALA_TDX.quote), "--collateral", str(bad))
    assert code == 2
    assert "collateral" in err
    nitro_policy = tmp_path / "p.json"
    nitro_policy.write_text(
        json.dumps({"name": "n", "images": [{"name": "i", "pcrs": {"0": "00" * 48}}]})
    )
    code, _, err = run(capsys, *args(PHALA_TDX, "--policy", str(nitro_policy)))
    assert code == 2
    assert "judges aws-nitro-enclave evidence; this evidence is intel-tdx" in err
