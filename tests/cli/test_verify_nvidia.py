"""``attest-ledger verify`` with NVIDIA GPU evidence: the real evidence JSON of a Hopper GPU,
a Blackwell GPU and an NVSwitch, and the real Hopper report with its chain and VBIOS RIMs, at
2024-06-01 (tests/fixtures/nvidia/README.md gives the known outcomes); the JSON output, and
every refusal. Exit codes as for every kind: 0 verified, 1 rejected, 2 usage or I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_ledger.cli import main
from tests.verifier.nvidia.support import JSON_FILES, MISMATCH_RIM, NV, PROD_RIM, hex_report

AT = "2024-06-01T00:00:00Z"
NOW = "2026-11-30T00:00:00Z"  # a fixed "now": both RIMs' signers have expired
REPORT = str(NV / "nv_sdk_hopperAttestationReport.txt")
BAD_SIGNATURE = str(NV / "nv_sdk_hopperAttestationReportInvalidSignature_NEGATIVE.txt")
CHAIN = str(NV / "nv_sdk_hopperCertChain.txt")
HOPPER_JSON = str(NV / "nv_sdk_hopper_evidence.json")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def report_argv(*more: str, report: str = REPORT) -> tuple[str, ...]:
    return ("verify", report, "--type", "nvidia-gpu", "--endorsement", CHAIN, "--at", AT, *more)


def write_policy(tmp_path: Path, **image: object) -> str:
    body = {
        "evidence_kind": "nvidia-gpu",
        "name": "cli-h100",
        "images": [
            {
                "name": "h100-590",
                "arch": "HOPPER",
                "driver_versions": ["590.12"],
                "vbios_versions": ["96.00.a5.00.01"],
                **image,
            }
        ],
        "require_rims": [],
    }
    path = tmp_path / "nvidia-policy.json"
    path.write_text(json.dumps(body))
    return str(path)


# --- the real evidence -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arch"), list(zip(JSON_FILES, ("HOPPER", "BLACKWELL", "LS10"), strict=True))
)
def test_the_evidence_json_verifies(capsys, name, arch) -> None:
    """NVIDIA's evidence JSON is detected; every device passes, its nonce the JSON's."""
    code, out, err = run(capsys, "verify", str(NV / name), "--at", AT)
    assert code == 0, out
    assert "  kind               nvidia-gpu\n" in out
    assert f"  arch               {arch} (from the device's leaf certificate)\n" in out
    assert "expected from the evidence JSON: matches\n" in out
    assert out.count("Verdict  VERIFIED (warning)") == 1
    assert "no --policy given" in err


def test_the_report_shows_versions_cc_mode_and_fwid(capsys) -> None:
    code, out, _ = run(capsys, "verify", HOPPER_JSON, "--at", AT)
    assert code == 0
    assert "  driver version     590.12\n" in out
    assert "  vbios version      96.00.a5.00.01\n" in out
    assert "  feature flag       PPCIE (the CC mode, as the report states it)\n" in out
    assert "checked: the leaf certificate certifies it\n" in out
    assert "device certificate [0]" in out
    assert "CN=GH100 A01 GSP FMC LF" in out


def test_a_report_without_feature_flag_or_fwid_says_so(capsys) -> None:
    code, out, _ = run(capsys, "verify", str(NV / "nv_sdk_switch_evidence_ls10.json"), "--at", AT)
    assert code == 0
    assert "  feature flag       not stated: the report has no feature flag" in out
    assert "not checked: the report has no FWID (opaque field 20)" in out


def test_the_hex_report_with_the_prod_rim_matches_12_of_12(capsys) -> None:
    code, out, _ = run(capsys, *report_argv("--rim", str(NV / PROD_RIM)))
    assert code == 0, out
    assert "  kind               vbios\n" in out
    assert "  measurements       12 of 12 matched\n" in out
    assert "MISMATCH" not in out
    assert "CN=NVIDIA CoRIM signing Root CA" in out
    assert "not checked (no nonce expected)" in out


def test_the_mismatch_rim_names_index_9(capsys) -> None:
    code, out, _ = run(capsys, *report_argv("--rim", str(NV / MISMATCH_RIM)))
    assert code == 1
    assert "  measurements       11 of 12 matched\n" in out
    assert "    MISMATCH index 9 (measurement block 10)\n" in out
    block_10 = next(b for b in _blocks() if b[0] == 10)[1]
    assert f"      found    {block_10}\n" in out
    assert "      expected " in out
    assert "  - [measurement_mismatch] vbios RIM 96.00.5e.00.01: index 9" in out


def _blocks() -> list[tuple[int, str]]:
    from verifier.nvidia import parse_report

    return [(b.index, b.value.hex()) for b in parse_report(hex_report()).blocks]


def test_the_invalid_signature_report_is_rejected(capsys) -> None:
    code, out, _ = run(capsys, *report_argv(report=BAD_SIGNATURE))
    assert code == 1
    assert "Verdict  REJECTED [signature_invalid]" in out
    assert "  Certificate chain" not in out  # nothing was verified: shown as given
    assert "UNVERIFIED" in out


def test_the_rims_have_expired_by_now(capsys) -> None:
    for rim in (PROD_RIM, MISMATCH_RIM):
        code, out, _ = run(capsys, *report_argv("--rim", str(NV / rim), "--at", NOW))
        assert code == 1
        assert "Verdict  REJECTED [expired]" in out
        assert "OUTSIDE  CN=HCC RIM L4 Signer" in out
        assert "not compared (verification stopped before)" in out


def test_a_wrong_nonce_is_a_mismatch(capsys) -> None:
    code, out, _ = run(capsys, "verify", HOPPER_JSON, "--at", AT, "--nonce", "00" * 32)
    assert code == 1
    assert "expected from --nonce: MISMATCH\n" in out
    assert "  - [nonce_mismatch]" in out


def test_the_right_nonce_given_for_the_hex_report(capsys) -> None:
    from verifier.nvidia import parse_report

    nonce = parse_report(hex_report()).requester_nonce.hex()
    code, out, _ = run(capsys, *report_argv("--nonce", nonce))
    assert code == 0, out
    assert "expected from --nonce: matches\n" in out


def test_a_policy_is_applied(capsys, tmp_path) -> None:
    code, out, _ = run(
        capsys, "verify", HOPPER_JSON, "--at", AT, "--policy", write_policy(tmp_path)
    )
    assert code == 0, out
    assert "  image        h100-590\n" in out
    code, out, _ = run(
        capsys,
        "verify",
        HOPPER_JSON,
        "--at",
        AT,
        "--policy",
        write_policy(tmp_path, driver_versions=["550.54"]),
    )
    assert code == 1
    assert "  - [driver_version_not_allowed]" in out


def test_the_roots_can_be_replaced(capsys) -> None:
    """Each root replaced by the other: the device chain, then the RIM signer, fails."""
    device_root, rim_root = str(NV / "nvidia_device_root.pem"), str(NV / "nvidia_rim_root.pem")
    code, out, err = run(capsys, "verify", HOPPER_JSON, "--at", AT, "--trust-root", rim_root)
    assert code == 1
    assert "instead of the NVIDIA Device Identity CA" in err
    assert "Verdict  REJECTED [untrusted_root]" in out
    code, out, err = run(
        capsys, *report_argv("--rim", str(NV / PROD_RIM), "--rim-root", device_root)
    )
    assert code == 1
    assert "instead of the NVIDIA CoRIM signing Root CA" in err
    assert "Verdict  REJECTED [" in out
    code, out, _ = run(capsys, *report_argv("--rim", str(NV / PROD_RIM), "--rim-root", rim_root))
    assert code == 0, out


def test_evidence_text_is_neutralised(capsys, tmp_path) -> None:
    path = tmp_path / "gpu\u202e0.json"
    path.write_bytes(Path(HOPPER_JSON).read_bytes())
    code, out, _ = run(capsys, "verify", str(path), "--at", AT)
    assert code == 0
    assert "gpu\u27e8U+202E\u27e90.json" in out
    assert "\u202e" not in out


# --- JSON output ---------------------------------------------------------------------------


def test_json_output_one_verdict_per_device(capsys) -> None:
    code, out, _ = run(capsys, "verify", HOPPER_JSON, "--at", AT, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["verified"] is True
    assert data["input"] == "nvidia-evidence-json"
    (device,) = data["devices"]
    assert device["arch_claimed"] == "HOPPER"
    assert device["nonce_source"] == "the evidence JSON"
    assert device["status"] == "warning"
    assert device["error"] is None


def test_json_output_of_a_mismatch(capsys) -> None:
    code, out, _ = run(capsys, *report_argv("--rim", str(NV / MISMATCH_RIM), "--json"))
    assert code == 1
    (device,) = json.loads(out)["devices"]
    assert device["verified"] is False
    assert device["error"]["code"] == "policy_violation"
    assert "index 9" in json.dumps(device["error"])


def test_every_device_is_judged_and_one_failure_fails_all(capsys, tmp_path) -> None:
    """Two devices: the real Hopper one, and the same with another nonce claimed: two
    verdicts, exit 1."""
    (device,) = json.loads(Path(HOPPER_JSON).read_text())
    path = tmp_path / "two.json"
    path.write_text(json.dumps([device, {**device, "nonce": "11" * 32}]))
    code, out, _ = run(capsys, "verify", str(path), "--at", AT)
    assert code == 1
    assert out.count("Verdict  VERIFIED") == 1
    assert out.count("Verdict  REJECTED [policy_violation]") == 1
    assert "device 1 of 2" in out


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "code_name"),
    [
        (b"not hex at all!", "malformed"),
        (hex_report()[:200].hex().encode(), "malformed"),
        (b"[1, 2]", "malformed"),
        (b"[ not json", "malformed"),
    ],
    ids=["not-hex", "truncated", "json-shape", "not-json"],
)
def test_bad_reports_are_rejected_not_crashed(capsys, tmp_path, content, code_name) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    code, out, _ = run(capsys, "verify", str(path), "--type", "nvidia-gpu", "--at", AT)
    assert code == 1
    assert f"Verdict  REJECTED [{code_name}]" in out


def test_a_nitro_document_as_nvidia_is_malformed(capsys) -> None:
    from tests.support import NITRO

    document = next(NITRO.glob("*.cbor"))
    code, out, _ = run(capsys, "verify", str(document), "--type", "nvidia-gpu", "--at", AT)
    assert code == 1
    assert "Verdict  REJECTED [malformed]" in out


@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_mutated_reports_give_a_verdict(capsys, tmp_path, position, value) -> None:
    """Any byte of the real report changed: a verdict (0 or 1) and a report, never a crash."""
    data = bytearray(hex_report())
    data[position % len(data)] = value
    path = tmp_path / "mutated.hex"
    path.write_text(bytes(data).hex())
    code, out, _ = run(capsys, *report_argv("--rim", str(NV / PROD_RIM), report=str(path)))
    assert code in (0, 1)
    assert "Verdict  " in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--at", "doc"), "--at doc: an NVIDIA report carries no time"),
        (("--nonce", "00" * 16), "requester nonce is 32 bytes, found 16"),
        (("--nonce", "zz"), "--nonce: expected hexadecimal"),
        (("--result-hash", "sha256:" + "00" * 32), "binds the result only through its nonce"),
        (("--endorsement", CHAIN), "carries each device's certificate chain"),
        (("--endorsement", f"rim={NV / PROD_RIM}"), "RIMs: --rim"),
        (("--rim", "/nonexistent/rim.xml"), "cannot read RIM"),
        (("--rim-root", "/nonexistent/root.pem"), "cannot read RIM root"),
        (("--collateral", CHAIN), "not for NVIDIA reports"),
        (("--enrolled-ak", CHAIN), "not for NVIDIA reports"),
        (("--policy", "TPM-POLICY"), "judges tpm2-quote evidence; this evidence is nvidia-gpu"),
    ],
)
def test_usage_errors_exit_2(capsys, tmp_path, argv, message) -> None:
    tpm_policy = tmp_path / "tpm.json"
    tpm_policy.write_text(json.dumps({"evidence_kind": "tpm2-quote", "unsafe_accept_any": True}))
    argv = tuple(str(tpm_policy) if a == "TPM-POLICY" else a for a in argv)
    code, out, err = run(capsys, "verify", HOPPER_JSON, "--at", AT, *argv)
    assert code == 2, err
    assert message in err
    assert out == ""


def test_nvidia_options_are_refused_for_other_kinds(capsys) -> None:
    from tests.support import NITRO

    document = next(NITRO.glob("*.cbor"))
    code, _, err = run(capsys, "verify", str(document), "--rim", str(NV / PROD_RIM))
    assert code == 2
    assert "--rim and --rim-root are for NVIDIA GPU reports" in err
