"""``attest-ledger verify``: input formats, output, and exit codes 0 / 1 / 2."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from attest_ledger.cli import main
from tests.support import NITRO, REAL_DOCUMENTS, SIM_AT
from verifier import parse_evidence

VALID = next(d for d in REAL_DOCUMENTS if d.file == "yawn_nitro_attest.cbor")
DEBUG = next(d for d in REAL_DOCUMENTS if d.debug)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_policy(tmp_path: Path, pcrs: dict[int, bytes], **extra) -> str:
    path = tmp_path / "policy.json"
    images = [{"name": "yawn-image", "pcrs": {str(i): pcrs[i].hex() for i in (0, 1, 2)}}]
    path.write_text(json.dumps({"name": "cli-test", "images": images, **extra}))
    return str(path)


def test_real_document_at_its_own_time_without_policy_is_verified_with_warning(capsys) -> None:
    code, out, err = run(capsys, "verify", str(NITRO / VALID.file), "--at", "doc")
    assert code == 0
    assert "Verdict  VERIFIED (warning)" in out
    assert "the document's own timestamp" in out
    assert "cabundle[3]" in out
    assert "i-0bee92034f3d60691-enc01943c5eaab3ad6a" in out
    assert "no --policy given" in err


def test_real_document_now_is_rejected_as_expired(capsys) -> None:
    code, out, _ = run(capsys, "verify", str(NITRO / VALID.file))
    assert code == 1
    assert "Verdict  REJECTED [expired]" in out
    assert "UNVERIFIED" in out  # the chain is shown, marked as not verified
    assert "OUTSIDE" in out


def test_with_a_matching_policy_the_verdict_is_affirming(capsys, tmp_path) -> None:
    _, document = parse_evidence(VALID.read())
    code, out, err = run(
        capsys,
        "verify",
        str(NITRO / VALID.file),
        "--at",
        "doc",
        "--policy",
        write_policy(tmp_path, document.pcrs),
    )
    assert code == 0
    assert "Verdict  VERIFIED (affirming)" in out
    assert "matches yawn-image" in out
    assert "image        yawn-image" in out
    assert err == ""


def test_a_mismatching_policy_lists_the_violations(capsys, tmp_path) -> None:
    _, document = parse_evidence(VALID.read())
    pcrs = dict(document.pcrs)
    pcrs[1] = bytes(48)
    code, out, _ = run(
        capsys,
        "verify",
        str(NITRO / VALID.file),
        "--at",
        "doc",
        "--policy",
        write_policy(tmp_path, pcrs),
    )
    assert code == 1
    assert "Verdict  REJECTED [policy_violation]" in out
    assert "[pcr_mismatch] PCR1" in out
    assert "MISMATCH" in out


def test_debug_document_is_rejected_by_the_default_policy(capsys) -> None:
    code, out, _ = run(capsys, "verify", str(NITRO / DEBUG.file), "--at", "doc")
    assert code == 1
    assert "[debug_mode]" in out


def test_forged_document_is_malformed(capsys) -> None:
    code, out, _ = run(
        capsys, "verify", str(NITRO / "blocky_selfsigned_attestation.cbor"), "--at", "doc"
    )
    assert code == 1
    assert "REJECTED [malformed]" in out


@pytest.mark.parametrize(
    "encode",
    [
        lambda raw: raw.hex().encode(),
        lambda raw: raw.hex().upper().encode() + b"\n",
        base64.b64encode,
        base64.encodebytes,  # wrapped at 76 columns
        lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"="),
    ],
    ids=["hex", "hex-upper-newline", "base64", "base64-wrapped", "base64url-unpadded"],
)
def test_hex_and_base64_inputs(capsys, tmp_path, encode) -> None:
    path = tmp_path / "doc.txt"
    path.write_bytes(encode(VALID.read()))
    code, out, _ = run(capsys, "verify", str(path), "--at", "doc", "--json")
    assert code == 0
    assert json.loads(out)["evidence_sha256"] == hashlib.sha256(VALID.read()).hexdigest()


def test_stdin(capsys, monkeypatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(base64.b64encode(VALID.read())))
    monkeypatch.setattr(sys, "stdin", fake)
    code, out, _ = run(capsys, "verify", "-", "--at", "doc")
    assert code == 0
    assert "VERIFIED" in out


def test_json_output(capsys) -> None:
    code, out, _ = run(capsys, "verify", str(NITRO / VALID.file), "--at", "doc", "--json")
    body = json.loads(out)
    assert code == 0
    assert body["verified"] is True
    assert body["status"] == "warning"
    assert body["error"] is None
    claims = body["result"]["submods"]["aws-nitro-enclave"]["attestation-ledger.claims"]
    assert claims["timestamp"] == "2025-01-06T16:07:05.472Z"

    code, out, _ = run(capsys, "verify", str(NITRO / VALID.file), "--json")
    body = json.loads(out)
    assert code == 1
    assert body["verified"] is False
    assert body["error"]["code"] == "expired"
    assert body["result"] is None


def test_at_an_iso_instant(capsys) -> None:
    inside = "2025-01-06T16:08:00+00:00"
    assert run(capsys, "verify", str(NITRO / VALID.file), "--at", inside)[0] == 0
    assert (
        run(capsys, "verify", str(NITRO / VALID.file), "--at", "2025-01-06T16:08:00")[0] == 0
    )  # UTC assumed
    code, out, _ = run(capsys, "verify", str(NITRO / VALID.file), "--at", "2025-01-06T19:07:06Z")
    assert code == 1
    assert "[expired]" in out


def test_nonce_and_result_hash_options(capsys) -> None:
    blocky = next(d for d in REAL_DOCUMENTS if d.file.startswith("blocky"))
    _, document = parse_evidence(blocky.read())
    path = str(NITRO / blocky.file)
    assert run(capsys, "verify", path, "--at", "doc", "--nonce", document.nonce.hex())[0] == 0
    code, out, _ = run(capsys, "verify", path, "--at", "doc", "--nonce", "00ff")
    assert code == 1
    assert "[nonce_mismatch]" in out
    code, out, _ = run(
        capsys, "verify", path, "--at", "doc", "--result-hash", "sha256:" + "00" * 32
    )
    assert code == 1
    assert "[result_binding_mismatch]" in out


def test_explicit_trust_root_for_simulated_documents(capsys, tmp_path, sim_pki, sim_nsm) -> None:
    doc = tmp_path / "sim.cbor"
    doc.write_bytes(sim_nsm.attest(timestamp=SIM_AT))
    root = tmp_path / "root.pem"
    root.write_bytes(sim_pki.root_pem())
    code, out, _ = run(capsys, "verify", str(doc), "--at", "doc")
    assert code == 1
    assert "[untrusted_root]" in out
    code, out, err = run(capsys, "verify", str(doc), "--at", "doc", "--trust-root", str(root))
    assert code == 0
    assert "instead of the AWS Nitro root" in err


@pytest.mark.parametrize(
    ("content", "code_name"),
    [
        (b"this is not evidence at all!", "malformed"),
        (b"\x84" + b"\x00" * 40000, "oversize"),
        (b"", "malformed"),
    ],
    ids=["text", "oversize", "empty"],
)
def test_bad_evidence_is_rejected_not_crashed(capsys, tmp_path, content, code_name) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    code, out, _ = run(capsys, "verify", str(path), "--at", "doc")
    assert code == 1
    assert f"REJECTED [{code_name}]" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", "/nonexistent/doc.cbor"], "cannot read /nonexistent/doc.cbor"),
        (["verify", "DOC", "--at", "yesterday"], "--at: expected now, doc or an ISO-8601 instant"),
        (["verify", "DOC", "--nonce", "xyz"], "--nonce: expected hexadecimal"),
        (["verify", "DOC", "--result-hash", "md5:00"], "--result-hash"),
        (["verify", "DOC", "--policy", "/nonexistent/policy.json"], "cannot read policy"),
        (["verify", "DOC", "--trust-root", "/nonexistent/root.pem"], "cannot read trust root"),
    ],
)
def test_usage_and_io_errors_exit_2(capsys, argv, message) -> None:
    argv = [str(NITRO / VALID.file) if a == "DOC" else a for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert out == ""


def test_invalid_policy_file_exits_2(capsys, tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"name": "empty", "images": []}')
    code, _, err = run(capsys, "verify", str(NITRO / VALID.file), "--policy", str(path))
    assert code == 2
    assert "lists no reference images" in err


def test_invalid_trust_root_exits_2(capsys, tmp_path) -> None:
    path = tmp_path / "root.pem"
    path.write_text("not a certificate")
    code, _, err = run(capsys, "verify", str(NITRO / VALID.file), "--trust-root", str(path))
    assert code == 2
    assert "not a PEM X.509 certificate" in err


def test_argument_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["verify"])
    assert caught.value.code == 2


def test_the_installed_console_script(tmp_path) -> None:
    """The real entry point, as a user runs it."""
    script = Path(sys.executable).parent / "attest-ledger"
    ok = subprocess.run(
        [script, "verify", str(NITRO / VALID.file), "--at", "doc"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "VERIFIED" in ok.stdout
    rejected = subprocess.run(
        [script, "verify", str(NITRO / VALID.file)], capture_output=True, text=True, check=False
    )
    assert rejected.returncode == 1
    usage = subprocess.run(
        [script, "verify", str(tmp_path / "missing")], capture_output=True, text=True, check=False
    )
    assert usage.returncode == 2
    piped = subprocess.run(
        f"'{script}' verify '{NITRO / VALID.file}' --at doc | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.stderr.count("Traceback") == 0


def test_an_empty_public_key_is_shown_as_present_and_empty(capsys) -> None:
    """Issue #10: the brave document's public_key is a zero-length byte string, not null."""
    brave = next(d for d in REAL_DOCUMENTS if d.file.startswith("brave"))
    code, out, _ = run(capsys, "verify", str(NITRO / brave.file), "--at", "doc")
    assert code == 1  # a debug enclave: refused by the accept-any policy's default
    assert "public_key   0 bytes (present, empty)" in out
    assert "user_data    32 bytes" in out
    evervault = next(d for d in REAL_DOCUMENTS if d.file == "evervault_beta_valid.cbor")
    _, out, _ = run(capsys, "verify", str(NITRO / evervault.file), "--at", "doc")
    assert "public_key   (absent)" in out
