"""``workers``, ``readers``, ``policy`` and ``worker pki`` on a real database."""

from __future__ import annotations

import json
import stat

import pytest

from tests.cli.support import run
from tests.support import NITRO
from tests.verifier.tpm.support import TPM as TPM_FIXTURES
from tests.verifier.tpm.support import Quote
from tests.verifier.tpm.support import container as tpm_container

pytestmark = pytest.mark.db


def test_workers_and_readers(capsys, settings, tmp_path) -> None:
    code, token, err = run(
        capsys, settings, "workers", "add", "w1", "--token-file", str(tmp_path / "w1.token")
    )
    assert code == 0
    assert token.startswith("alw_")
    assert "shown once" in err
    assert (tmp_path / "w1.token").read_text().strip() == token.strip()
    assert stat.S_IMODE((tmp_path / "w1.token").stat().st_mode) == 0o600
    assert run(capsys, settings, "readers", "add", "r1")[1].startswith("alr_")
    assert run(capsys, settings, "workers", "add", "w1")[0] == 2  # taken
    assert run(capsys, settings, "workers", "add", "bad name")[0] == 2
    listed = run(capsys, settings, "workers", "list")[1]
    assert listed.startswith("w1\tactive")
    assert "r1" not in listed
    assert run(capsys, settings, "workers", "revoke", "w1")[0] == 0
    assert "revoked" in run(capsys, settings, "workers", "list")[1]
    assert run(capsys, settings, "workers", "revoke", "w1")[0] == 2


def test_policy_commands(capsys, settings) -> None:
    run(capsys, settings, "workers", "add", "w1")
    code, _, err = run(
        capsys,
        settings,
        "policy",
        "image",
        "add",
        "real",
        "--from-document",
        str(NITRO / "yawn_nitro_attest.cbor"),
    )
    assert code == 0
    assert "recorded as ledger entry" in err
    assert (
        run(capsys, settings, "policy", "image", "add", "manual", "--pcr", "0=" + "00" * 48)[0] == 0
    )
    assert run(capsys, settings, "policy", "allow", "w1", "real")[0] == 0
    assert (
        run(capsys, settings, "policy", "set", "--allow-debug", "--max-age", "600", "--skew", "30")[
            0
        ]
        == 0
    )
    code, out, _ = run(capsys, settings, "policy", "show")
    shown = json.loads(out)
    assert [image["name"] for image in shown["images"]] == ["manual", "real"]
    assert shown["images"][1]["pcrs"]["0"].startswith("8bb159f2")
    assert shown["workers"] == {"w1": ["real"]}
    assert (shown["allow_debug"], shown["max_age_seconds"], shown["clock_skew_seconds"]) == (
        True,
        600,
        30,
    )
    assert run(capsys, settings, "policy", "set", "--max-age", "none")[0] == 0
    assert json.loads(run(capsys, settings, "policy", "show")[1])["max_age_seconds"] is None
    assert run(capsys, settings, "policy", "deny", "w1", "real")[0] == 0
    assert run(capsys, settings, "policy", "image", "remove", "manual")[0] == 0
    for argv in (
        ("policy", "allow", "nobody", "real"),
        ("policy", "allow", "w1", "missing"),
        ("policy", "deny", "w1", "real"),
        ("policy", "image", "remove", "missing"),
        ("policy", "image", "add", "x"),
        ("policy", "image", "add", "x", "--pcr", "0=zz"),
        ("policy", "image", "add", "x", "--pcr", "40=" + "00" * 48),
        ("policy", "image", "add", "real", "--pcr", "0=" + "00" * 48),
        ("policy", "set"),
        ("policy", "set", "--max-age", "soon"),
        ("policy", "set", "--skew", "-1"),
    ):
        assert run(capsys, settings, *argv)[0] == 2, argv


def test_worker_pki_creates_a_persisted_root(capsys, settings, tmp_path) -> None:
    code, out, _ = run(capsys, settings, "worker", "pki")
    assert code == 0
    assert out.strip() == str(tmp_path / "simulated-pki" / "root.pem")
    assert stat.S_IMODE((tmp_path / "simulated-pki" / "root.key").stat().st_mode) == 0o600
    first = (tmp_path / "simulated-pki" / "root.pem").read_bytes()
    run(capsys, settings, "worker", "pki")
    assert (tmp_path / "simulated-pki" / "root.pem").read_bytes() == first  # kept


def test_worker_run_needs_a_token(capsys, settings) -> None:
    code, _, err = run(capsys, settings, "worker", "run")
    assert code == 2
    assert "ATTEST_LEDGER_WORKER_TOKEN" in err


def test_users_commands(capsys, settings, monkeypatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough passphrase\n"))
    code, _, err = run(capsys, settings, "users", "add", "ada", "--password-stdin")
    assert code == 0, err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = run(
        capsys, settings, "users", "add", "bob", "--role", "admin", "--password-stdin"
    )
    assert code == 2
    assert "12 to 1024" in err
    answers = iter(["one passphrase here", "another passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    code, _, err = run(capsys, settings, "users", "add", "bob")
    assert code == 2
    assert "differ" in err
    assert run(capsys, settings, "users", "list")[1] == "ada\tauditor\tactive\n"
    assert run(capsys, settings, "users", "disable", "ada")[0] == 0
    assert "disabled" in run(capsys, settings, "users", "list")[1]
    assert run(capsys, settings, "users", "disable", "ada")[0] == 2
    assert run(capsys, settings, "users", "enable", "ada")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a different passphrase\n"))
    assert run(capsys, settings, "users", "passwd", "ada", "--password-stdin")[0] == 0
    assert run(capsys, settings, "users", "passwd", "nobody", "--password-stdin")[0] == 2


SNP_FIXTURES = NITRO.parent / "snp"


def test_snp_policy_commands(capsys, settings) -> None:
    """SEV-SNP reference images and settings (issue #11): from a real report, from an OVMF
    image (sev-snp-measure, against its own published known answers), or given by hand."""
    run(capsys, settings, "workers", "add", "w1")
    report = SNP_FIXTURES / "snp_oak_genoa_v5_report.bin"
    add = ("policy", "image", "add")
    assert (
        run(capsys, settings, *add, "oak", "--type", "amd-sev-snp", "--from-report", str(report))[0]
        == 0
    )
    ovmf = str(SNP_FIXTURES / "sev_snp_measure_ovmf_AmdSev_suffix.bin")
    assert run(capsys, settings, *add, "ovmf", "--type", "amd-sev-snp", "--from-ovmf", ovmf)[0] == 0
    assert run(
        capsys, settings, *add, "ovmf-snp-only", "--type", "amd-sev-snp", "--from-ovmf", ovmf,
        "--guest-features", "0x1",
    )[0] == 0  # fmt: skip
    assert run(
        capsys, settings, *add, "manual", "--type", "amd-sev-snp", "--measurement", "ab" * 48,
        "--host-data", "cd" * 32,
    )[0] == 0  # fmt: skip
    assert run(capsys, settings, "policy", "allow", "w1", "oak")[0] == 0
    assert run(
        capsys, settings, "policy", "set", "--type", "amd-sev-snp", "--no-allow-smt",
        "--max-vmpl", "1", "--min-tcb", "snp=25", "--min-tcb", "microcode=84",
    )[0] == 0  # fmt: skip
    shown = json.loads(run(capsys, settings, "policy", "show")[1])
    images = {image["name"]: image for image in shown["images"]}
    assert images["oak"]["kind"] == "amd-sev-snp"
    assert (
        images["oak"]["reference"]["measurement"]
        == (SNP_FIXTURES / "snp_oak_genoa_v5_report.bin").read_bytes()[0x90:0xC0].hex()
    )
    assert images["ovmf"]["reference"] == {
        "measurement": "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af"
        "9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"
    }
    assert images["ovmf-snp-only"]["reference"]["measurement"].startswith("19358ba9a7615534")
    assert images["manual"]["reference"] == {"measurement": "ab" * 48, "host_data": "cd" * 32}
    assert shown["schemes"]["amd-sev-snp"] == {
        "allow_debug": False, "allow_smt": False, "allow_migration_agent": False,
        "max_vmpl": 1, "min_tcb": {"snp": 25, "microcode": 84},
    }  # fmt: skip
    for argv in (
        (*add, "x", "--type", "amd-sev-snp"),  # no measurement
        (*add, "x", "--type", "amd-sev-snp", "--measurement", "ab" * 47),
        (*add, "x", "--type", "amd-sev-snp", "--measurement", "ab" * 48, "--host-data", "zz"),
        (
            *add,
            "x",
            "--type",
            "amd-sev-snp",
            "--from-report",
            str(NITRO / "yawn_nitro_attest.cbor"),
        ),
        (*add, "x", "--type", "amd-sev-snp", "--from-ovmf", ovmf, "--vcpu-type", "Pentium"),
        ("policy", "set", "--type", "amd-sev-snp", "--max-vmpl", "9"),
        ("policy", "set", "--type", "amd-sev-snp", "--min-tcb", "turbo=3"),
        ("policy", "set", "--type", "amd-sev-snp", "--skew", "5"),
        ("policy", "set", "--max-vmpl", "1"),  # an SEV-SNP setting without --type
    ):
        assert run(capsys, settings, *argv)[0] == 2, argv


def test_tpm_policy_commands(capsys, settings, tmp_path) -> None:
    """TPM reference images and settings (issue #13): from a quote signed here over a real boot
    log (its replayed and reset PCRs left out), from the real NitroTPM sample, or by hand;
    every value checked by the verifier's own policy rules."""
    run(capsys, settings, "workers", "add", "w1")
    add = ("policy", "image", "add")
    log = TPM_FIXTURES / "eventlogs" / "gotpmtools_arch-linux-workstation.bin"
    replayed = json.loads((TPM_FIXTURES / "eventlogs" / "expected_pcrs.json").read_text())[
        log.name
    ]["pcrs"]["sha256"]
    pcrs = {int(i): bytes.fromhex(v) for i, v in replayed.items()}
    pcrs.update({16: bytes(32), 17: b"\xff" * 32, 23: b"\x23" * 32})
    quote = Quote(pcrs={"sha256": pcrs})
    with_log = tmp_path / "quote.cbor"
    with_log.write_bytes(tpm_container(quote.fields(event_log=log.read_bytes())))
    code, _, err = run(
        capsys, settings, *add, "job", "--type", "tpm2-quote", "--from-quote", str(with_log)
    )
    assert code == 0, err
    assert (
        "--from-quote: sha256 PCRs 23 taken; left out: at a reset value 16, 17, replayed by the "
        "quote's event log 0, 1, 2, 3, 4, 5, 6, 7, 8" in err
    )
    nitro_sample = str(TPM_FIXTURES / "vaportpm_test-nitro-fixture.json")
    assert run(
        capsys, settings, *add, "nitrotpm", "--type", "tpm2-quote", "--from-quote", nitro_sample,
        "--pcr", "sha384:4=" + "AB" * 48, "--pcr", "sha256:23=" + "cd" * 32,
    )[0] == 0  # fmt: skip
    assert run(
        capsys, settings, *add, "manual", "--type", "tpm2-quote", "--pcr", "sha256:7=" + "AB" * 32,
        "--event", "9:sha256=" + "CD" * 32 + ":kernel", "--event", "23:sha384=" + "ef" * 48,
    )[0] == 0  # fmt: skip
    assert run(capsys, settings, "policy", "allow", "w1", "manual")[0] == 0
    assert run(
        capsys, settings, "policy", "set", "--type", "tpm2-quote", "--ak-paths", "gcp,enrolled",
        "--require-event-log", "--no-reject-all-reset",
    )[0] == 0  # fmt: skip
    shown = json.loads(run(capsys, settings, "policy", "show")[1])
    images = {image["name"]: image for image in shown["images"]}
    assert images["job"] == {
        "name": "job", "kind": "tpm2-quote", "reference": {"pcrs": {"sha256": {"23": "23" * 32}}},
    }  # fmt: skip
    sample = json.loads((TPM_FIXTURES / "vaportpm_test-nitro-fixture.json").read_text())
    taken = {i: sample["pcrs"]["sha384"][i] for i in map(str, range(11))}  # 11-23 are reset
    assert images["nitrotpm"]["reference"] == {
        "pcrs": {"sha256": {"23": "cd" * 32}, "sha384": {**taken, "4": "ab" * 48}},
    }  # fmt: skip
    assert images["manual"]["reference"] == {
        "pcrs": {"sha256": {"7": "ab" * 32}},
        "events": [
            {"pcr": 9, "digest": {"sha256": "cd" * 32}, "label": "kernel"},
            {"pcr": 23, "digest": {"sha384": "ef" * 48}},
        ],
    }
    assert shown["workers"] == {"w1": ["manual"]}
    assert shown["schemes"]["tpm2-quote"] == {
        "ak_paths": ["enrolled", "gcp"], "require_event_log": True, "reject_all_reset": False,
    }  # fmt: skip
    assert run(
        capsys, settings, "policy", "set", "--type", "tpm2-quote",
        "--ak-paths", "aws-nitrotpm,enrolled,gcp", "--no-require-event-log", "--reject-all-reset",
    )[0] == 0  # fmt: skip
    assert json.loads(run(capsys, settings, "policy", "show")[1])["schemes"]["tpm2-quote"] == {
        "ak_paths": ["aws-nitrotpm", "enrolled", "gcp"], "require_event_log": False,
        "reject_all_reset": True,
    }  # fmt: skip
    bad_log = tmp_path / "bad-log.cbor"
    pcrs[4] = b"\x04" * 32
    bad_log.write_bytes(
        tpm_container(Quote(pcrs={"sha256": pcrs}).fields(event_log=log.read_bytes()))
    )
    trustee = str(TPM_FIXTURES / "trustee_tpm_evidence.json")
    tpm = (*add, "x", "--type", "tpm2-quote")
    for argv, message in (
        (tpm, "a TPM image needs --pcr BANK:INDEX=HEX"),
        ((*tpm, "--pcr", "7=" + "ab" * 32), "the bank is required"),
        ((*tpm, "--pcr", "sha256:x=" + "ab" * 32), "the PCR index must be a number"),
        ((*tpm, "--pcr", "sha256:7=" + "ab" * 31), "sha256 PCR 7"),
        ((*tpm, "--pcr", "sha256:24=" + "ab" * 32), "sha256 PCR index '24'"),
        ((*tpm, "--pcr", "md5:1=" + "ab" * 16), "pcrs bank 'md5'"),
        ((*tpm, "--pcr", "sha256:7=zz"), "must be hexadecimal"),
        ((*tpm, "--event", "9=" + "ab" * 32), "an event is PCR:BANK=HEX[:LABEL]"),
        ((*tpm, "--event", "9:sha256=" + "ab" * 32 + ":" + "k" * 200), "'label' must be a short"),
        ((*tpm, "--event", "9:sha1=" + "ab" * 32), "event digest"),
        ((*tpm, "--from-quote", str(NITRO / "yawn_nitro_attest.cbor")), "tpm2-quote: expected"),
        ((*tpm, "--from-quote", str(bad_log)), "event log: replays sha256 PCR 4"),
        ((*tpm, "--from-quote", trustee), "a TPM image needs"),  # every PCR at a reset value
        ((*tpm, "--measurement", "ab" * 48), "--measurement not for --type tpm2-quote"),
        ((*add, "x", "--event", "9:sha256=" + "ab" * 32), "--event not for --type aws-nitro"),
        (
            (*add, "x", "--type", "intel-tdx", "--mr-td", "ab" * 48, "--event", "1:sha1=00"),
            "--event",
        ),
        ((*add, "job", "--type", "tpm2-quote", "--pcr", "sha256:1=" + "ab" * 32), "exists"),
        (("policy", "set", "--type", "tpm2-quote", "--ak-paths", "unendorsed"), "never accepted"),
        (("policy", "set", "--type", "tpm2-quote", "--ak-paths", "gcp,gcp"), "distinct names"),
        (("policy", "set", "--type", "tpm2-quote", "--ak-paths", "none"), "ak_paths must be"),
        (("policy", "set", "--type", "tpm2-quote", "--allow-debug"), "--allow-debug not for"),
        (("policy", "set", "--type", "tpm2-quote", "--skew", "5"), "--skew not for"),
        (("policy", "set", "--type", "tpm2-quote", "--max-vmpl", "1"), "--max-vmpl not for"),
        (("policy", "set", "--type", "tpm2-quote", "--xfam-allowed", "any"), "--xfam-allowed"),
        (("policy", "set", "--type", "tpm2-quote"), "nothing to change"),
        (("policy", "set", "--require-event-log"), "--require-event-log not for --type aws-nitro"),
        (("policy", "set", "--type", "amd-sev-snp", "--ak-paths", "gcp"), "--ak-paths not for"),
        (("policy", "set", "--type", "intel-tdx", "--no-reject-all-reset"), "--reject-all-reset"),
    ):
        code, _, err = run(capsys, settings, *argv)
        assert code == 2, argv
        assert message in err, (argv, err)


TDX_FIXTURES = NITRO.parent / "tdx"


def test_dcap_policy_commands(capsys, settings) -> None:
    """TDX and SGX reference images and settings (issue #12): from Intel's real quotes (the
    fixture README's MRTD, RTMRs, MRENCLAVE and MRSIGNER), or given by hand; every setting
    checked by the verifier's own policy rules."""
    run(capsys, settings, "workers", "add", "w1")
    add = ("policy", "image", "add")
    tdx_quote = str(TDX_FIXTURES / "phala_dcapqvl_tdx_quote.bin")
    sgx_quote = str(TDX_FIXTURES / "phala_dcapqvl_sgx_quote.bin")
    assert (
        run(capsys, settings, *add, "td", "--type", "intel-tdx", "--from-quote", tdx_quote)[0] == 0
    )
    assert run(
        capsys, settings, *add, "td-manual", "--type", "intel-tdx", "--mr-td", "AB" * 48,
        "--rtmr2", "cd" * 48, "--mr-owner", "ef" * 48,
    )[0] == 0  # fmt: skip
    assert run(
        capsys, settings, *add, "enclave", "--type", "intel-sgx", "--from-quote", sgx_quote,
        "--min-isv-svn", "3",
    )[0] == 0  # fmt: skip
    assert run(
        capsys, settings, *add, "by-signer", "--type", "intel-sgx", "--mr-signer", "12" * 32,
        "--isv-prod-id", "7",
    )[0] == 0  # fmt: skip
    assert run(capsys, settings, "policy", "allow", "w1", "td")[0] == 0
    assert run(
        capsys, settings, "policy", "set", "--type", "intel-tdx", "--allow-debug",
        "--tcb-status", "OutOfDate=warning",
        "--allowed-advisories", "INTEL-SA-00615,INTEL-SA-00289,INTEL-SA-00615",
        "--xfam-allowed", "E702060000000000", "--min-tee-tcb-svn", "06" + "00" * 15,
    )[0] == 0  # fmt: skip
    assert run(
        capsys, settings, "policy", "set", "--type", "intel-sgx", "--allowed-advisories", "none"
    )[0] == 0  # fmt: skip
    shown = json.loads(run(capsys, settings, "policy", "show")[1])
    images = {image["name"]: image for image in shown["images"]}
    assert images["td"]["kind"] == "intel-tdx"
    assert (
        images["td"]["reference"]
        == {  # RTMR3 and the owner values are zero: left out
            "mr_td": "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a"
            "3520c942a604a407de03ae6dc5f87f27428b2538873118b7",
            "rtmr0": (quote := (TDX_FIXTURES / "phala_dcapqvl_tdx_quote.bin").read_bytes())[
                48 + 328 : 48 + 376
            ].hex(),
            "rtmr1": quote[48 + 376 : 48 + 424].hex(),
            "rtmr2": quote[48 + 424 : 48 + 472].hex(),
        }
    )
    assert images["td-manual"]["reference"] == {
        "mr_td": "ab" * 48, "rtmr2": "cd" * 48, "mr_owner": "ef" * 48,
    }  # fmt: skip
    assert images["enclave"] == {
        "name": "enclave",
        "kind": "intel-sgx",
        "reference": {
            "mr_enclave": "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb",
            "mr_signer": "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6",
            "isv_prod_id": 0,
            "min_isv_svn": 3,  # the option wins over the quote's ISV SVN 0
        },
    }
    assert images["by-signer"]["reference"] == {"mr_signer": "12" * 32, "isv_prod_id": 7}
    assert shown["schemes"]["intel-tdx"] == {
        "allow_debug": True, "tcb_status": {"OutOfDate": "warning"},
        "allowed_advisories": ["INTEL-SA-00289", "INTEL-SA-00615"],  # sorted, once each
        "xfam_allowed": ["e702060000000000"], "min_tee_tcb_svn": "06" + "00" * 15,
    }  # fmt: skip
    assert shown["schemes"]["intel-sgx"] == {
        "allow_debug": False, "tcb_status": {}, "allowed_advisories": [],
    }  # fmt: skip
    # back to the defaults, one setting at a time
    assert run(
        capsys, settings, "policy", "set", "--type", "intel-tdx", "--tcb-status", "default",
        "--allowed-advisories", "any", "--xfam-allowed", "any", "--min-tee-tcb-svn", "none",
        "--no-allow-debug",
    )[0] == 0  # fmt: skip
    assert json.loads(run(capsys, settings, "policy", "show")[1])["schemes"]["intel-tdx"] == {
        "allow_debug": False, "tcb_status": {}, "allowed_advisories": None,
        "xfam_allowed": None, "min_tee_tcb_svn": None,
    }  # fmt: skip
    for argv in (
        (*add, "x", "--type", "intel-tdx"),  # no MRTD
        (*add, "x", "--type", "intel-sgx"),  # neither MRENCLAVE nor MRSIGNER
        (*add, "x", "--type", "intel-sgx", "--isv-prod-id", "1"),
        (*add, "x", "--type", "intel-tdx", "--mr-td", "ab" * 47),
        (*add, "x", "--type", "intel-tdx", "--mr-td", "ab" * 48, "--rtmr0", "zz"),
        (*add, "x", "--type", "intel-sgx", "--mr-enclave", "ab" * 32, "--isv-prod-id", "70000"),
        (*add, "x", "--type", "intel-tdx", "--from-quote", sgx_quote),  # the other TEE
        (*add, "x", "--type", "intel-sgx", "--from-quote", tdx_quote),
        (*add, "x", "--type", "intel-tdx", "--from-quote", str(NITRO / "yawn_nitro_attest.cbor")),
        (*add, "x", "--type", "intel-tdx", "--mr-td", "ab" * 48, "--mr-enclave", "ab" * 32),
        (*add, "x", "--type", "intel-sgx", "--mr-enclave", "ab" * 32, "--measurement", "00"),
        (*add, "x", "--mr-td", "ab" * 48),  # a TDX value for a Nitro image
        (*add, "td", "--type", "intel-tdx", "--mr-td", "ab" * 48),  # exists
        ("policy", "set", "--type", "intel-tdx", "--tcb-status", "Revoked=warning"),
        ("policy", "set", "--type", "intel-tdx", "--tcb-status", "OutOfDate=affirming"),
        ("policy", "set", "--type", "intel-tdx", "--tcb-status", "Fine=warning"),
        ("policy", "set", "--type", "intel-tdx", "--tcb-status", "OutOfDate"),
        ("policy", "set", "--type", "intel-tdx", "--allowed-advisories", "CVE-2024-1"),
        ("policy", "set", "--type", "intel-tdx", "--xfam-allowed", "e7"),
        ("policy", "set", "--type", "intel-tdx", "--min-tee-tcb-svn", "06"),
        ("policy", "set", "--type", "intel-sgx", "--xfam-allowed", "e702060000000000"),
        ("policy", "set", "--type", "intel-sgx", "--max-vmpl", "1"),
        ("policy", "set", "--type", "intel-tdx", "--skew", "5"),
        ("policy", "set", "--type", "intel-tdx"),  # nothing to change
        ("policy", "set", "--tcb-status", "OutOfDate=warning"),  # a DCAP setting, no --type
        ("policy", "set", "--type", "amd-sev-snp", "--xfam-allowed", "any"),
    ):
        assert run(capsys, settings, *argv)[0] == 2, argv
