"""``attest-ledger verify`` with TPM 2.0 quotes: the real NitroTPM, GCP and trustee samples at
their times (JSON as published, or as a container in raw, hex or base64 with its AK chain as a
PEM bundle), a quote signed here with a real event log, offline enrolments, the JSON output,
and every refusal. Exit codes as for every kind: 0 verified, 1 rejected, 2 usage or I/O."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_ledger.cli import main
from enclave_worker import SimulatedNitroPki
from tests.support import NITRO
from tests.verifier.snp.support import SNP
from tests.verifier.tpm.support import GCP_JSON, NITRO_JSON, TPM, TRUSTEE_JSON, Quote, container
from verifier import ResultHash, report_data
from verifier.tpm import from_json, parse_container

AT = "2026-02-03T10:12:02Z"  # the NitroTPM document's time; every sample is valid then
LATER = "2026-11-30T00:00:00Z"  # after the NitroTPM document's short-lived chain lapsed
LOG = TPM / "eventlogs" / "gotpmtools_arch-linux-workstation.bin"
LOG_PCRS = json.loads((TPM / "eventlogs" / "expected_pcrs.json").read_text())[LOG.name]["pcrs"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_policy(tmp_path: Path, **body: object) -> str:
    path = tmp_path / "tpm-policy.json"
    path.write_text(json.dumps({"evidence_kind": "tpm2-quote", "name": "cli-tpm", **body}))
    return str(path)


def ak_pem(tmp_path: Path, spki: bytes, name: str = "ak.pem") -> str:
    path = tmp_path / name
    key = load_der_public_key(spki)
    path.write_bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return str(path)


def sample_container(path: Path) -> tuple[bytes, list[bytes]]:
    data, endorsements = from_json(path.read_text())
    return data, [e.data for e in endorsements]


def pem_bundle(tmp_path: Path, ders: list[bytes]) -> str:
    path = tmp_path / "ak-chain.pem"
    path.write_text(
        "".join(
            "-----BEGIN CERTIFICATE-----\n"
            + base64.encodebytes(der).decode()
            + "-----END CERTIFICATE-----\n"
            for der in ders
        )
    )
    return str(path)


# --- the real samples ------------------------------------------------------------------------


def test_the_nitrotpm_sample_verifies_at_its_document_time(capsys) -> None:
    nonce = json.loads(NITRO_JSON.read_text())["nonce"]
    code, out, err = run(capsys, "verify", str(NITRO_JSON), "--at", AT, "--nonce", nonce)
    assert code == 0, out
    assert "  kind               tpm2-quote" in out
    assert "  input              a JSON sample (vaportpm or trustee)" in out
    assert "  path               aws-nitrotpm\n" in out
    assert "  nitro document     module_id 'i-01cfb383223e42522-tpm0000000000000000'" in out
    assert "timestamp 2026-02-03T10:12:02.437Z" in out
    assert f"  extra_data         32 bytes  {nonce}" in out
    assert "  firmware           2019102300163636" in out
    assert "PCRs  sha384" in out
    assert "  17  " + "ff" * 48 + "  not appraised; reset value" in out
    assert "  certificate   2026-02-03T10:11:59Z .. 2026-02-03T13:12:02Z  valid" in out
    assert "Verdict  VERIFIED (warning)" in out
    assert "trust anchor AWS Nitro Enclaves Root-G1" in out
    assert "no --policy given" in err
    code, out, _ = run(capsys, "verify", str(NITRO_JSON), "--at", AT, "--nonce", "00" * 32)
    assert code == 1
    assert "  - [nonce_mismatch]" in out


def test_the_nitrotpm_sample_fails_later_as_expired(capsys) -> None:
    code, out, _ = run(capsys, "verify", str(NITRO_JSON), "--at", LATER)
    assert code == 1
    assert "Verdict  REJECTED [expired]" in out
    assert "  path               aws-nitrotpm (NOT VERIFIED)" in out
    assert "(the given time)  UNVERIFIED" not in out  # the heading says UNVERIFIED once
    assert "the given time)  UNVERIFIED\n" in out
    assert "  certificate   2026-02-03T10:11:59Z .. 2026-02-03T13:12:02Z  OUTSIDE" in out


def test_the_nitro_root_can_be_replaced(capsys, sim_pki: SimulatedNitroPki, tmp_path) -> None:
    other = tmp_path / "other-root.pem"
    other.write_bytes(sim_pki.root_pem())
    code, out, err = run(capsys, "verify", str(NITRO_JSON), "--at", AT, "--nitro-root", str(other))
    assert code == 1
    assert "Verdict  REJECTED [untrusted_root]" in out
    assert "instead of the AWS Nitro root for NitroTPM documents" in err
    aws = str(NITRO / "aws_nitro_root_g1.pem")
    assert run(capsys, "verify", str(NITRO_JSON), "--at", AT, "--nitro-root", aws)[0] == 0


def test_the_gcp_sample_verifies_with_its_ak_certificate(capsys) -> None:
    code, out, _ = run(capsys, "verify", str(GCP_JSON), "--at", AT)
    assert code == 0, out
    assert "  path               gcp\n" in out
    assert (
        "  ak certificate     CN=3414240648225485836,OU=lockboot,O=Google Compute Engine,"
        "L=us-central1-f" in out
    )
    assert (
        "  gce instance       instance-20260202-065609 (id 3414240648225485836), project "
        "lockboot (232923608972), zone us-central1-f" in out
    )
    assert "  ak-certificate  2026-02-02T06:57:47Z" in out  # the chain's rows aligned
    assert "  intermediate[0] 2024-02-22T21:44:15Z" in out
    assert "trust anchor Google EK/AK CA Root" in out
    assert "Verdict  VERIFIED (warning)" in out


@pytest.mark.parametrize("form", ["raw", "hex", "base64"])
def test_a_container_with_its_ak_chain_as_a_pem_bundle(capsys, tmp_path, form) -> None:
    data, chain = sample_container(GCP_JSON)
    path = tmp_path / "quote"
    encoded = {
        "raw": data,
        "hex": data.hex().encode(),
        "base64": base64.encodebytes(data),  # wrapped at 76 columns
    }[form]
    path.write_bytes(encoded)
    bundle = pem_bundle(tmp_path, chain)  # the AK certificate first, then its intermediate
    code, out, _ = run(capsys, "verify", str(path), "--at", AT, "--endorsement", bundle)
    assert code == 0, out
    assert f"SHA-256 {hashlib.sha256(data).hexdigest()}" in out
    assert "  input " not in out
    assert "  path               gcp\n" in out
    # the same quote without what vouches for its AK
    code, out, _ = run(capsys, "verify", str(path), "--at", AT)
    assert code == 1
    assert "Verdict  REJECTED [ak_unendorsed]" in out
    # the intermediate named as the AK's: its key is not the quote's
    reversed_bundle = pem_bundle(tmp_path, chain[::-1])
    code, out, _ = run(capsys, "verify", str(path), "--at", AT, "--endorsement", reversed_bundle)
    assert code == 1
    assert "Verdict  REJECTED [" in out
    # named explicitly, in any order
    single = tmp_path / "ak.der"
    single.write_bytes(chain[0])
    intermediate = tmp_path / "intermediate.der"
    intermediate.write_bytes(chain[1])
    code, out, _ = run(
        capsys, "verify", str(path), "--at", AT,
        "--endorsement", f"certificate={intermediate}", "--endorsement", f"ak-certificate={single}",
    )  # fmt: skip
    assert code == 0, out


def test_the_google_roots_can_be_replaced(capsys, tmp_path) -> None:
    code, out, err = run(
        capsys, "verify", str(GCP_JSON), "--at", AT,
        "--trust-root", str(NITRO / "aws_nitro_root_g1.pem"),
    )  # fmt: skip
    assert code == 1
    assert "Verdict  REJECTED [untrusted_root]" in out
    assert "instead of the Google AK CA roots" in err
    code, out, _ = run(
        capsys, "verify", str(GCP_JSON), "--at", AT, "--trust-root", str(TPM / "gcp_ekak_root.pem")
    )
    assert code == 0, out
    assert "trust anchor explicit trust root gcp_ekak_root.pem" in out


def test_the_trustee_sample_is_unendorsed_until_its_ak_is_enrolled(capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "verify", str(TRUSTEE_JSON), "--at", AT)
    assert code == 1
    assert "Verdict  REJECTED [ak_unendorsed]" in out
    assert "  path               unendorsed (NOT VERIFIED)" in out
    assert "  key                rsa-2048, SHA-256 a517f03f" in out
    data, _ = sample_container(TRUSTEE_JSON)
    ak = ak_pem(tmp_path, parse_container(data).ak, "trustee-ak.pem")
    code, out, err = run(capsys, "verify", str(TRUSTEE_JSON), "--at", AT, "--enrolled-ak", ak)
    # the AK is vouched for now; its PCRs are all at their reset values, which the default
    # rule refuses (trustee's sample is from a TPM in which nothing was measured)
    assert code == 1
    assert "  path               enrolled\n" in out
    assert "  enrolment          trustee-ak.pem (--enrolled-ak)" in out
    assert "treated as enrolled from the beginning of time, for an offline check" in out
    assert "the ledger's enrolments and revocations are not consulted" in err
    assert "  - [pcrs_all_reset]" in out
    assert out.count("  - [") == 1
    lenient = write_policy(tmp_path, unsafe_accept_any=True, reject_all_reset=False)
    code, out, _ = run(
        capsys, "verify", str(TRUSTEE_JSON), "--at", AT, "--enrolled-ak", ak, "--policy", lenient
    )
    assert code == 0, out
    assert "Verdict  VERIFIED (warning)" in out
    assert "trust anchor enrolled AK --enrolled-ak trustee-ak.pem" in out


def test_another_enrolled_ak_does_not_vouch(capsys, tmp_path) -> None:
    other = ak_pem(tmp_path, Quote().ak)
    code, out, _ = run(capsys, "verify", str(TRUSTEE_JSON), "--at", AT, "--enrolled-ak", other)
    assert code == 1
    assert "Verdict  REJECTED [ak_unendorsed]" in out


# --- a quote signed here, with a real event log ------------------------------------------------


def log_quote() -> Quote:
    """A quote over the sha256 PCRs a real boot log replays to, and PCR 23 (a job's)."""
    pcrs = {int(i): bytes.fromhex(v) for i, v in LOG_PCRS["sha256"].items()}
    return Quote(pcrs={"sha256": {**pcrs, 23: b"\x23" * 32}})


def write_quote(tmp_path: Path, quote: Quote, **extra: object) -> str:
    path = tmp_path / "quote.cbor"
    path.write_bytes(container(quote.fields(**extra)))
    return str(path)


def test_a_quote_with_an_event_log(capsys, tmp_path) -> None:
    quote = log_quote()
    path = write_quote(tmp_path, quote, event_log=LOG.read_bytes())
    ak = ak_pem(tmp_path, quote.ak, "rack-7.pem")
    image = {
        "name": "arch-boot",
        "pcrs": {"sha256": {"0": LOG_PCRS["sha256"]["0"], "23": "23" * 32}},
    }
    policy = write_policy(tmp_path, images=[image], require_event_log=True)
    code, out, err = run(
        capsys, "verify", path, "--at", AT, "--enrolled-ak", ak, "--policy", policy
    )
    assert code == 0, out
    assert err.count("attest-ledger verify:") == 1  # the --enrolled-ak notice only
    assert "Verdict  VERIFIED (affirming)" in out
    assert "  image        arch-boot" in out
    assert f"   0  {LOG_PCRS['sha256']['0']}  matches arch-boot; replayed from the event log" in out
    assert f"  23  {'23' * 32}  matches arch-boot\n" in out
    assert f"   4  {LOG_PCRS['sha256']['4']}  replayed from the event log\n" in out
    assert "  format             tcg-pc-client" in out
    assert ", replays PCRs 0, 1, 2, 3, 4, 5, 6, 7, 8\n" in out
    assert "     #  PCR  type                             sha256 digest" in out
    assert " EV_SEPARATOR " in out
    assert " EV_EFI_VARIABLE_DRIVER_CONFIG " in out
    assert "SecureBoot" in out  # a description of the event's data
    events = [line for line in out.splitlines() if line[2:6].strip().isdigit() and "EV_" in line]
    assert len(events) > 20
    # the image pins another PCR 23: MISMATCH, named by bank and index
    image["pcrs"]["sha256"]["23"] = "24" * 32
    policy = write_policy(tmp_path, images=[image])
    code, out, _ = run(capsys, "verify", path, "--at", AT, "--enrolled-ak", ak, "--policy", policy)
    assert code == 1
    assert f"  23  {'23' * 32}  MISMATCH\n" in out
    assert "  - [pcr_mismatch]" in out
    assert "sha256 PCR 23" in out


def test_an_event_log_that_does_not_replay_is_rejected_and_still_shown(capsys, tmp_path) -> None:
    quote = log_quote()
    quote.pcrs["sha256"][4] = b"\x04" * 32
    path = write_quote(tmp_path, quote, event_log=LOG.read_bytes())
    ak = ak_pem(tmp_path, quote.ak)
    code, out, _ = run(capsys, "verify", path, "--at", AT, "--enrolled-ak", ak)
    assert code == 1
    assert "Verdict  REJECTED [event_log_mismatch]" in out
    assert "not replayed (verification stopped before)" in out
    assert " EV_SEPARATOR " in out
    assert "  path               unendorsed (NOT VERIFIED)" in out


def test_a_result_binding_in_extra_data(capsys, tmp_path) -> None:
    nonce = bytes(range(32))
    bound = ResultHash.of(b"the job's result")
    quote = Quote(extra_data=report_data(nonce, bound))
    path = write_quote(tmp_path, quote)
    ak = ak_pem(tmp_path, quote.ak)
    base = ("verify", path, "--at", AT, "--enrolled-ak", ak, "--nonce", nonce.hex())
    code, out, _ = run(capsys, *base, "--result-hash", str(bound))
    assert code == 0, out
    assert "  extra_data         64 bytes  " + nonce.hex() in out
    other = ResultHash.of(b"another result")
    code, out, _ = run(capsys, *base, "--result-hash", str(other))
    assert code == 1
    assert "  - [result_binding_mismatch]" in out


def test_evidence_text_is_neutralised(capsys, tmp_path) -> None:
    """What the quote or the files name is shown with its hidden characters made visible."""
    quote = Quote()
    path = write_quote(tmp_path, quote)
    ak = ak_pem(tmp_path, quote.ak, "rack\u202e7.pem")
    code, out, _ = run(capsys, "verify", path, "--at", AT, "--enrolled-ak", ak)
    assert code == 0, out
    assert "rack\u27e8U+202E\u27e97.pem (--enrolled-ak)" in out
    assert "\u202e" not in out


# --- JSON output ---------------------------------------------------------------------------


def test_json_output(capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "verify", str(GCP_JSON), "--at", AT, "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["verified"] is True
    assert answer["evidence_kind"] == "tpm2-quote"
    assert answer["input"] == "json-sample"
    assert answer["evidence_sha256"] == hashlib.sha256(sample_container(GCP_JSON)[0]).hexdigest()
    submod = answer["result"]["submods"]["tpm2-quote"]
    assert submod["attestation-ledger.tpm-ak-path"] == "gcp"
    assert submod["attestation-ledger.claims"]["ak"]["gcp"]["project_id"] == "lockboot"
    code, out, _ = run(capsys, "verify", str(TRUSTEE_JSON), "--at", AT, "--json")
    assert code == 1
    answer = json.loads(out)
    assert (answer["verified"], answer["status"]) == (False, "contraindicated")
    assert answer["error"]["code"] == "ak_unendorsed"
    quote = log_quote()
    path = write_quote(tmp_path, quote, event_log=LOG.read_bytes())
    code, out, _ = run(
        capsys, "verify", path, "--at", AT, "--json", "--enrolled-ak", ak_pem(tmp_path, quote.ak)
    )
    assert code == 0
    answer = json.loads(out)
    assert answer["input"] == "tpm2-quote/v1"
    claims = answer["result"]["submods"]["tpm2-quote"]["attestation-ledger.claims"]
    assert claims["event_log"]["replayed"] == list(range(9))
    assert claims["ak"]["enrolment"] == "--enrolled-ak ak.pem"


# --- bad input and refusals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "argv", "code_name"),
    [
        (b'{"tpm_quote": 1}', (), "malformed"),  # JSON of no known shape
        (b"{ not json", (), "malformed"),
        (b"\x00" * 40, ("--type", "tpm2-quote"), "malformed"),
        (b"\xa5" + cbor2.dumps("format") + cbor2.dumps("tpm2-quote/v1"), (), "malformed"),
        (b"\xa1" + b"\x00" * (70 * 1024), ("--type", "tpm2-quote"), "oversize"),
    ],
    ids=["json-shape", "not-json", "zeros", "truncated", "oversize"],
)
def test_bad_quotes_are_rejected_not_crashed(capsys, tmp_path, content, argv, code_name) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    code, out, _ = run(capsys, "verify", str(path), "--at", AT, *argv)
    assert code == 1
    assert f"Verdict  REJECTED [{code_name}]" in out
    assert "  kind               tpm2-quote" in out


@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_mutated_samples_give_a_verdict(capsys, tmp_path, position, value) -> None:
    """Any byte of a JSON sample changed: a verdict (0 or 1) and a report, never a crash."""
    data = bytearray(GCP_JSON.read_bytes())
    data[position % len(data)] = value
    path = tmp_path / "mutated.json"
    path.write_bytes(bytes(data))
    code, out, _ = run(capsys, "verify", str(path), "--at", AT, "--type", "tpm2-quote")
    assert code in (0, 1)
    assert "Verdict  " in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--at", "doc"), "--at doc: a TPM quote (its clock counts from the TPM's reset)"),
        (("--enrolled-ak", "/nonexistent/ak.pem"), "--enrolled-ak: cannot read"),
        (("--enrolled-ak", "NOT-A-KEY"), "not a public key in PEM or DER"),
        (("--enrolled-ak", "AK", "--enrolled-ak", "AK"), "is listed twice"),
        (("--nitro-root", str(TPM / "gcp_ekak_root.pem")), "--nitro-root: "),
        (("--nitro-root", "/nonexistent/root.pem"), "cannot read Nitro root"),
        (("--trust-root", "NOT-A-KEY"), "not a PEM X.509 certificate"),
        (("--endorsement", f"vcek={SNP / 'trustee_snp_test-vlek.der'}"), "not vcek"),
        (("--endorsement", "NOT-A-KEY"), "not a certificate"),
        (("--collateral", "NOT-A-KEY"), "--collateral: Intel collateral is for TDX and SGX"),
        (("--policy", "SNP-POLICY"), "judges amd-sev-snp evidence; this evidence is tpm2-quote"),
        (("--policy", "NITRO-POLICY"), "judges aws-nitro-enclave evidence; this evidence is tpm2"),
    ],
)
def test_usage_errors_exit_2(capsys, tmp_path, argv, message) -> None:
    not_a_key = tmp_path / "not-a-key"
    not_a_key.write_text("hello")
    snp_policy = tmp_path / "snp.json"
    snp_policy.write_text(
        json.dumps(
            {
                "evidence_kind": "amd-sev-snp",
                "name": "s",
                "images": [{"name": "i", "measurement": "00" * 48}],
            }
        )
    )
    nitro_policy = tmp_path / "nitro.json"
    nitro_policy.write_text(
        json.dumps({"name": "n", "images": [{"name": "i", "pcrs": {"0": "00" * 48}}]})
    )
    ak = ak_pem(tmp_path, Quote().ak)
    names = {
        "NOT-A-KEY": str(not_a_key),
        "AK": ak,
        "SNP-POLICY": str(snp_policy),
        "NITRO-POLICY": str(nitro_policy),
    }
    argv = tuple(names.get(a, a) for a in argv)
    code, out, err = run(capsys, "verify", str(GCP_JSON), *argv)
    assert code == 2
    assert message in err
    assert out == ""


def test_tpm_options_and_policies_are_refused_for_other_kinds(capsys, tmp_path) -> None:
    document = str(NITRO / "vaportpm_nitrotpm_2026.cbor")
    ak = ak_pem(tmp_path, Quote().ak)
    for argv in (("--enrolled-ak", ak), ("--nitro-root", str(NITRO / "aws_nitro_root_g1.pem"))):
        code, _, err = run(capsys, "verify", document, *argv)
        assert code == 2
        assert "--enrolled-ak and --nitro-root are for TPM quotes" in err
    policy = write_policy(tmp_path, images=[{"name": "i", "pcrs": {"sha256": {"0": "00" * 32}}}])
    code, _, err = run(capsys, "verify", document, "--policy", policy)
    assert code == 2
    assert "judges tpm2-quote evidence" in err


def test_unreadable_file_exits_2(capsys) -> None:
    code, out, err = run(capsys, "verify", "/nonexistent/quote.cbor", "--type", "tpm2-quote")
    assert code == 2
    assert "cannot read /nonexistent/quote.cbor" in err
    assert out == ""
