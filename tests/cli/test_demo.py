"""`make run` is `attest-ledger demo`: on a fresh data directory it sets everything up on the
embedded PostgreSQL and feeds the service from a simulated Nitro worker, a simulated SEV-SNP
worker and a simulated Intel TDX worker side by side; run again, it keeps what is there."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "attest_ledger.cli"]


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: A line the demo prints per receipt: its index, the kind of evidence, the verdict.
ENTRY = re.compile(r"^\s+entry\s+(\d+)\s+(Nitro|SEV-SNP|TDX|TPM|NitroTPM|GPU)\s+(\S+)\s", re.M)
#: every fourth bad on purpose, as each demo worker runs with --mix
FOUR = ["affirming"] * 3 + ["contraindicated"]


def _entries(out: str, tee: str) -> list[tuple[int, str]]:
    return [(int(index), verdict) for index, kind, verdict in ENTRY.findall(out) if kind == tee]


def _demo(  # noqa: PLR0917 - one count per demo worker
    env: dict[str, str], jobs: int, snp_jobs: int, tdx_jobs: int, tpm_jobs: int = 0,
    gpu_jobs: int = 0,
) -> str:  # fmt: skip
    done = subprocess.run(
        [
            *CLI,
            "demo",
            "--no-wait",
            "--jobs",
            str(jobs),
            "--snp-jobs",
            str(snp_jobs),
            "--tdx-jobs",
            str(tdx_jobs),
            "--tpm-jobs",
            str(tpm_jobs),
            "--gpu-jobs",
            str(gpu_jobs),
            "--port",
            str(_port()),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_make_run_on_a_fresh_machine_and_again(tmp_path) -> None:
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # the embedded one
    env["ATTEST_LEDGER_DATA_DIR"] = str(data)

    first = _demo(env, jobs=8, snp_jobs=8, tdx_jobs=8, tpm_jobs=8, gpu_jobs=8)
    assert f"embedded PostgreSQL 18 in {data}/postgres" in first
    assert "(created, mode 0600)" in first
    assert "AWS Nitro Enclaves: 8 attestations fed" in first
    assert "AMD SEV-SNP: 8 attestations fed" in first
    assert "Intel TDX: 8 attestations fed" in first
    nitro, snp = _entries(first, "Nitro"), _entries(first, "SEV-SNP")
    tdx, tpm = _entries(first, "TDX"), _entries(first, "TPM")
    nitrotpm, gpu = _entries(first, "NitroTPM"), _entries(first, "GPU")
    entries = [index for index, _ in nitro + snp + tdx + tpm + nitrotpm + gpu]
    assert len(entries) == len(set(entries)) == 48  # one entry each, none shared
    assert len(re.findall(r"\(bad on purpose: ", first)) == 12  # every fourth of each
    # one verdict per inference: the SEV-SNP guest, its two GPUs and NVSwitch, the result
    assert "One verdict per inference (SEV-SNP + 2 GPUs + 1 NVSwitch + result): 8" in first
    assert "collateral: the simulated GPUs' and NVSwitch's 5 RIMs imported" in first
    assert "policy: GPU image 'demo-h100' (Hopper" in first
    assert [verdict for _, verdict in gpu] == [v for _, v in snp]  # the CPU's bad modes only
    # the second swtpm's quotes carry a simulated NitroTPM document that binds its AK
    assert [verdict for _, verdict in nitrotpm] == FOUR * 2
    # TPM: quotes from a real swtpm, its AK enrolled (EK certificate checked against swtpm's
    # local CA), judged on the enrolled path; the model of another image is refused
    assert "TPM 2.0 (swtpm, enrolled AK): 8 quotes fed" in first
    assert "TPM: the swtpm's AK enrolled as 'demo-swtpm'" in first
    assert "EK certificate verified against swtpm's local CA" in first
    assert "policy: TPM image 'demo-inference-tpm'" in first
    assert [verdict for _, verdict in tpm] == FOUR * 2
    assert re.search(r"TPM\s+contraindicated\s+event_missing \(bad on purpose: wrong-image\)",
                     first), first  # fmt: skip
    assert [verdict for _, verdict in nitro] == ["affirming"] * 3 + ["contraindicated"] + [
        "affirming"
    ] * 3 + ["contraindicated"]
    assert [verdict for _, verdict in snp] == [v for _, v in nitro]  # the same every fourth
    assert [verdict for _, verdict in tdx] == FOUR * 2  # TDX affirmed, and rejected on purpose
    assert re.search(
        r"SEV-SNP\s+contraindicated\s+measurement_mismatch \(bad on purpose: wrong-image\)", first
    ), first
    assert re.search(
        r"TDX\s+contraindicated\s+mrtd_mismatch \(bad on purpose: wrong-image\)", first
    ), first
    assert re.search(r"TDX\s+contraindicated\s+nonce_unknown \(bad on purpose: wrong-nonce\)",
                     first), first  # fmt: skip
    intel_root = data / "simulated-intel" / "root.pem"
    assert f"simulated Intel SGX root (NOT Intel): {intel_root}" in first
    assert "policy: TDX image 'demo-inference-tdx'" in first
    assert "policy: demo-tdx-worker may attest demo-inference-tdx" in first
    intel_pem = intel_root.read_bytes()
    tdx_token = (data / "demo-tdx-worker.token").read_text()
    assert oct((data / "demo-tdx-worker.token").stat().st_mode & 0o777) == "0o600"
    others = ("demo-worker.token", "demo-snp-worker.token")
    assert tdx_token not in [(data / name).read_text() for name in others]  # its own client
    ark = data / "simulated-amd" / "ark.pem"
    assert f"simulated AMD root, ARK (NOT AMD): {ark}" in first
    assert "policy: SEV-SNP image 'demo-inference-snp'" in first
    assert "policy: demo-snp-worker may attest demo-inference-snp" in first
    ark_pem = ark.read_bytes()
    snp_token = (data / "demo-snp-worker.token").read_text()
    assert oct((data / "demo-snp-worker.token").stat().st_mode & 0o777) == "0o600"
    assert snp_token != (data / "demo-worker.token").read_text()  # a client of its own
    assert "the service is now STOPPED" in first  # --no-wait says what it did
    key = (data / "ledger.key").read_bytes()
    worker_token = (data / "demo-worker.token").read_text()
    assert oct((data / "demo-worker.token").stat().st_mode & 0o777) == "0o600"
    password = (data / "demo-portal.password").read_text()
    assert oct((data / "demo-portal.password").stat().st_mode & 0o777) == "0o600"
    assert f"/portal/  (sign in as demo-auditor, password in {data}/demo-portal.password)" in first
    # the service joins the embedded server itself, so that it restarts it if it dies
    log = (data / "service.log").read_text()
    assert "embedded PostgreSQL in" in log
    assert "is started again if it dies" in log
    assert f"trusting the ARK(s) in {ark}" in log  # the simulated ARK, not AMD's
    assert f"trusting the root(s) in {intel_root}" in log  # the simulated Intel root
    assert "INSTEAD of Intel's" in log

    second = _demo(env, jobs=4, snp_jobs=4, tdx_jobs=4, tpm_jobs=4)
    assert "(kept)" in second
    assert "TPM: the swtpm's AK is enrolled already" in second  # the same AK, kept
    assert [v for _, v in _entries(second, "TPM")] == FOUR
    assert "token in" not in second  # no new clients: the tokens are reused
    assert "policy:" not in second  # nor a new policy
    again = [
        index
        for tee in ("Nitro", "SEV-SNP", "TDX", "TPM", "NitroTPM")
        for index, _ in _entries(second, tee)
    ]
    assert len(again) == 20
    assert min(again) > max(entries)  # appended after the first run's entries
    assert [v for _, v in _entries(second, "SEV-SNP")] == FOUR
    assert [v for _, v in _entries(second, "TDX")] == FOUR  # the kept Intel root still trusted
    assert (data / "ledger.key").read_bytes() == key
    assert (data / "demo-worker.token").read_text() == worker_token
    assert (data / "demo-snp-worker.token").read_text() == snp_token
    assert ark.read_bytes() == ark_pem  # the simulated AMD root is kept, like the Nitro one
    assert intel_root.read_bytes() == intel_pem  # and the simulated Intel root
    assert (data / "demo-tdx-worker.token").read_text() == tdx_token
    assert (data / "demo-portal.password").read_text() == password

    # a lost token: the demo makes a client of another name, and that one may attest the
    # demo image (before, it was refused by the policy, which named only the first client);
    # the same for the TDX worker's
    (data / "demo-worker.token").unlink()
    (data / "demo-tdx-worker.token").unlink()
    third = _demo(env, jobs=4, snp_jobs=4, tdx_jobs=4)
    renamed = re.search(r"worker '(demo-worker-[0-9]+)': token in", third)
    assert renamed, third
    assert f"policy: {renamed.group(1)} may attest demo-inference\n" in third
    assert [v for _, v in _entries(third, "Nitro")] == FOUR
    renamed = re.search(r"worker '(demo-tdx-worker-[0-9]+)': token in", third)
    assert renamed, third
    assert f"policy: {renamed.group(1)} may attest demo-inference-tdx" in third
    assert [v for _, v in _entries(third, "TDX")] == FOUR
    users = subprocess.run(
        [*CLI, "users", "list"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert users.returncode == 0, users.stderr
    assert re.search(r"^demo-auditor\s+auditor\b", users.stdout, re.M), users.stdout

    audit = subprocess.run(
        [*CLI, "audit", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "audit passed" in audit.stdout


def test_the_printed_hints_work_as_printed_from_another_directory(tmp_path) -> None:
    """Regression (issue #10): the hints named entry 3, a policy entry; `--no-wait` stopped
    the service under hints that said it was running; and the "more jobs" command, run from
    anywhere but the project directory, made a new simulated root, so every submission was
    judged untrusted_root. Issue #11: the hints name the SEV-SNP entries, an SEV-SNP worker
    command and both roots, and the service they describe holds SEV-SNP verdicts. Issue #12:
    the same for TDX, and the export and bundle hints pass the three roots."""
    import httpx

    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["ATTEST_LEDGER_DATA_DIR"] = str(data)
    stopped = _demo(env, jobs=4, snp_jobs=4, tdx_jobs=4, tpm_jobs=4, gpu_jobs=4)
    assert "the service is now STOPPED" in stopped
    assert "The service is running" not in stopped

    port = _port()
    demo = subprocess.Popen(
        [
            *CLI,
            "demo",
            "--jobs",
            "4",
            "--snp-jobs",
            "4",
            "--tdx-jobs",
            "4",
            "--tpm-jobs",
            "4",
            "--gpu-jobs",
            "4",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        for line in demo.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "Ctrl-C stops it" in line:
                break
        printed = "".join(lines)
        assert "The service is running on" in printed, printed
        hints = dict(
            re.findall(
                r"^  (an attestation|an SEV-SNP one|a TDX one|a TPM quote|an inference"
                r"|SEV-SNP entries|TDX entries|TPM entries|CPU \+ GPUs|counts by kind|more jobs"
                r"|more SEV-SNP|more TDX|more TPM|more inferences|export it|check the bundle)"
                r"\s+(.+)$",
                printed,
                re.M,
            )
        )
        roots = (
            f"--trust-root {data}/simulated-pki/root.pem --trust-root {data}/simulated-amd/ark.pem"
            f" --trust-root {data}/simulated-intel/root.pem"
        )
        google = "".join(  # a TPM verdict names the pinned Google AK roots too
            f" --trust-root {path}" for path in sorted((data / "google-roots").glob("*.pem"))
        )
        assert len(list((data / "google-roots").glob("*.pem"))) == 2
        nvidia = (  # a composite verdict names the simulated device and RIM roots
            f" --trust-root {data}/simulated-nvidia/device-root.pem"
            f" --trust-root {data}/simulated-nvidia/rim-root.pem"
        )
        assert hints["export it"].endswith(roots + nvidia + google), hints["export it"]
        assert hints["check the bundle"].endswith(roots + nvidia + google)
        shown = subprocess.run(
            ["/bin/bash", "-c", hints["an inference"]],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        inference = json.loads(shown.stdout)["entry"]
        assert inference["verdict"] == "affirming", shown.stdout
        assert inference["cpu_verdict"] == "affirming", shown.stdout
        assert [(d["submod"], d["verdict"]) for d in inference["devices"]] == [
            ("gpu0", "affirming"), ("gpu1", "affirming"), ("switch2", "affirming"),
        ], shown.stdout  # fmt: skip
        shown = subprocess.run(
            ["/bin/bash", "-c", hints["an attestation"]],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert '"kind":"attestation"' in shown.stdout.replace(" ", ""), shown.stdout
        shown = subprocess.run(
            ["/bin/bash", "-c", hints["an SEV-SNP one"]],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        snp_entry = json.loads(shown.stdout)["entry"]
        assert snp_entry["kind"] == "attestation", shown.stdout
        assert snp_entry["evidence_kind"] == "amd-sev-snp", shown.stdout
        assert snp_entry["verdict"] == "affirming", shown.stdout
        shown = subprocess.run(
            ["/bin/bash", "-c", hints["a TDX one"]],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        tdx_entry = json.loads(shown.stdout)["entry"]
        assert tdx_entry["kind"] == "attestation", shown.stdout
        assert tdx_entry["evidence_kind"] == "intel-tdx", shown.stdout
        assert tdx_entry["verdict"] == "affirming", shown.stdout
        assert tdx_entry["image"] == "demo-inference-tdx", shown.stdout
        shown = subprocess.run(
            ["/bin/bash", "-c", hints["a TPM quote"]],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        tpm_entry = json.loads(shown.stdout)["entry"]
        assert tpm_entry["evidence_kind"] == "tpm2-quote", shown.stdout
        assert tpm_entry["verdict"] == "affirming", shown.stdout
        assert tpm_entry["claims"]["ak"]["path"] == "enrolled", shown.stdout
        assert tpm_entry["claims"]["ak"]["enrolment"] == "demo-swtpm", shown.stdout
        counted = subprocess.run(
            ["/bin/bash", "-c", hints["counts by kind"]],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        by_kind: dict[str, int] = {}
        for count in json.loads(counted.stdout)["counts"]:
            kind = count["group"]["evidence_kind"]
            by_kind[kind] = by_kind.get(kind, 0) + count["submissions"]
        # two runs of 4 each
        assert by_kind == {  # two TPM workers: enrolled and aws-nitrotpm; SEV-SNP with GPUs
            "aws-nitro-enclave": 8, "amd-sev-snp": 16, "intel-tdx": 8, "tpm2-quote": 16
        }  # fmt: skip
        paths = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/entries",
            params={"ak_path": "aws-nitrotpm", "limit": "100"},
            headers={
                "Authorization": f"Bearer {(data / 'demo-auditor.token').read_text().strip()}"
            },
        ).json()["entries"]
        assert len(paths) == 8, paths
        assert {e["entry"]["claims"]["ak"]["path"] for e in paths} == {"aws-nitrotpm"}
        reader = {"Authorization": f"Bearer {(data / 'demo-auditor.token').read_text().strip()}"}
        found = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/entries",
            params={"evidence_kind": "amd-sev-snp", "worker": "demo-snp-worker", "limit": "100"},
            headers=reader,
        ).json()["entries"]
        assert (
            sorted(e["entry"]["verdict"] for e in found)
            == ["affirming"] * 6 + ["contraindicated"] * 2
        )
        assert all(e["entry"]["image"] in ("demo-inference-snp", None) for e in found)
        found = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/entries",
            params={"evidence_kind": "intel-tdx", "limit": "100"},
            headers=reader,
        ).json()["entries"]
        assert (
            sorted(e["entry"]["verdict"] for e in found)
            == ["affirming"] * 6 + ["contraindicated"] * 2
        )
        assert all(e["entry"]["image"] in ("demo-inference-tdx", None) for e in found)
        for hint, kind in (
            ("SEV-SNP entries", "amd-sev-snp"), ("TDX entries", "intel-tdx"),
            ("TPM entries", "tpm2-quote"),
        ):  # fmt: skip
            portal = httpx.get(hints[hint])  # the portal asks to sign in first
            assert portal.status_code in (200, 302, 303), portal.status_code
            assert hints[hint].endswith(f"/portal/entries?evidence_kind={kind}")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        more = subprocess.run(
            ["/bin/bash", "-c", hints["more jobs"].replace("--count 20", "--count 4")],
            cwd=elsewhere,
            env={k: v for k, v in env.items() if k != "ATTEST_LEDGER_DATA_DIR"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert "untrusted_root" not in more.stdout + more.stderr, more.stdout + more.stderr
        assert "creating a NEW one" not in more.stderr
        assert more.stdout.count('"verdict": "affirming"') >= 3, more.stdout
        more_snp = subprocess.run(
            ["/bin/bash", "-c", hints["more SEV-SNP"].replace("--count 20", "--count 4")],
            cwd=elsewhere,
            env={k: v for k, v in env.items() if k != "ATTEST_LEDGER_DATA_DIR"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert more_snp.returncode == 0, more_snp.stdout + more_snp.stderr
        assert "untrusted_root" not in more_snp.stdout + more_snp.stderr
        assert "creating a NEW one" not in more_snp.stderr
        assert more_snp.stdout.count('"verdict": "affirming"') == 3, more_snp.stdout
        more_tdx = subprocess.run(
            ["/bin/bash", "-c", hints["more TDX"].replace("--count 20", "--count 4")],
            cwd=elsewhere,
            env={k: v for k, v in env.items() if k != "ATTEST_LEDGER_DATA_DIR"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert more_tdx.returncode == 0, more_tdx.stdout + more_tdx.stderr
        assert "untrusted_root" not in more_tdx.stdout + more_tdx.stderr
        assert "creating a NEW one" not in more_tdx.stderr
        assert more_tdx.stdout.count('"verdict": "affirming"') == 3, more_tdx.stdout
        assert '"reasons": ["mrtd_mismatch"]' in more_tdx.stdout, more_tdx.stdout
        more_tpm = subprocess.run(  # the swtpm under the data directory, its AK enrolled
            ["/bin/bash", "-c", hints["more TPM"].replace("--count 20", "--count 4")],
            cwd=elsewhere,
            env={k: v for k, v in env.items() if k != "ATTEST_LEDGER_DATA_DIR"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        more_gpu = subprocess.run(  # the simulated NVIDIA PKI under the data directory
            ["/bin/bash", "-c", hints["more inferences"].replace("--count 8", "--count 4")],
            cwd=elsewhere,
            env={k: v for k, v in env.items() if k != "ATTEST_LEDGER_DATA_DIR"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert more_gpu.returncode == 0, more_gpu.stdout + more_gpu.stderr
        assert "untrusted_root" not in more_gpu.stdout + more_gpu.stderr
        assert more_gpu.stdout.count('"verdict": "affirming"') == 3, more_gpu.stdout
        replayed = subprocess.run(  # GPU reports made for another challenge than the CPU's
            ["/bin/bash", "-c", hints["more inferences"].replace("--count 8 --mix", "--count 2")
             + " --gpu-bad gpu-other-challenge"],
            cwd=elsewhere,
            env={k: v for k, v in env.items() if k != "ATTEST_LEDGER_DATA_DIR"},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        verdicts = [json.loads(line) for line in replayed.stdout.splitlines() if '"job"' in line]
        assert [v["verdict"] for v in verdicts] == ["contraindicated"] * 2, replayed.stdout
        assert all(v["reasons"] == ["nonce_mismatch"] for v in verdicts), replayed.stdout
        assert more_tpm.returncode == 0, more_tpm.stdout + more_tpm.stderr
        assert more_tpm.stdout.count('"verdict": "affirming"') == 3, more_tpm.stdout
        assert '"reasons": ["event_missing"]' in more_tpm.stdout, more_tpm.stdout
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        for hint in ("export it", "check the bundle"):  # the whole ledger, offline, as printed
            ran = subprocess.run(
                ["/bin/bash", "-c", hints[hint]],
                cwd=elsewhere, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert ran.returncode == 0, hint + ": " + ran.stdout + ran.stderr
        assert "every check passed" in ran.stdout
        # the standalone verifier the exported bundle carries, with the key the hint names
        import tarfile

        with tarfile.open(data / "ledger.tar.gz") as tar:
            tar.extract("bundle/verify_bundle.py", elsewhere, filter="data")
        key = re.search(r"--log-key '([^']+)'", hints["check the bundle"])
        assert key is not None, hints["check the bundle"]
        theirs = subprocess.run(
            [sys.executable, "-I", str(elsewhere / "bundle" / "verify_bundle.py"),
             str(data / "ledger.tar.gz"), "--log-key", key.group(1)],
            cwd=elsewhere, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert theirs.returncode == 0, theirs.stdout + theirs.stderr
        assert "every check passed" in theirs.stdout
    finally:
        demo.terminate()
        demo.wait(60)
        demo.stdout.close()  # type: ignore[union-attr]


def test_the_demo_ledger_exports_whole_and_both_verifiers_accept_it(tmp_path) -> None:
    """Issue #10: `make run` records bad documents on purpose (tampered, stale, wrong image,
    wrong nonce, unbound, debug, replayed); its whole-ledger export never verified, because
    the rejections before the policy step named no trust anchor. Export the whole ledger in
    the demo's environment and check it with both verifiers: both pass and agree.

    Issue #11: the ledger holds SEV-SNP verdicts too, judged against the simulated ARK. An
    export refuses without the root of either kind, naming the one missing; with both roots
    (the demo's hint) both verifiers re-judge every attestation of both kinds.

    Issue #12: and TDX verdicts, judged against the simulated Intel root: the export needs
    the three roots, and both verifiers re-judge every attestation of the three kinds."""
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["ATTEST_LEDGER_DATA_DIR"] = str(data)
    env.pop("ATTEST_LEDGER_TRUST_ROOT", None)
    env.pop("ATTEST_LEDGER_SNP_TRUST_ROOT", None)
    env.pop("ATTEST_LEDGER_INTEL_TRUST_ROOT", None)
    out = _demo(env, jobs=16, snp_jobs=8, tdx_jobs=8)
    assert len(_entries(out, "SEV-SNP")) == 8
    assert [v for _, v in _entries(out, "TDX")] == FOUR * 2
    root = data / "simulated-pki" / "root.pem"
    ark = data / "simulated-amd" / "ark.pem"
    intel = data / "simulated-intel" / "root.pem"
    roots = (root, ark, intel)
    archive = tmp_path / "ledger.tar.gz"

    refused = subprocess.run(
        [*CLI, "export", str(archive)], cwd=ROOT, env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "--trust-root" in refused.stderr  # names what to pass
    assert not archive.exists()
    from verifier import TrustAnchor

    fingerprints = {
        path: TrustAnchor.from_pem(path.read_bytes(), name="demo").fingerprint for path in roots
    }
    for missing in roots:  # two roots of three: the missing one is named
        given = [arg for path in roots if path != missing for arg in ("--trust-root", str(path))]
        refused = subprocess.run(
            [*CLI, "export", str(archive), *given, "--quiet"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert refused.returncode == 2, f"without {missing}: " + refused.stderr
        assert fingerprints[missing] in refused.stderr, refused.stderr
        assert not archive.exists()

    every = [arg for path in roots for arg in ("--trust-root", str(path))]
    exported = subprocess.run(
        [*CLI, "export", str(archive), *every, "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    from ledger.keys import load_signing_key

    key = load_signing_key(data / "ledger.key").verifier()
    offline = {"PATH": env.get("PATH", ""), "HOME": str(tmp_path)}
    ours = subprocess.run(
        [*CLI, "verify-bundle", str(archive), "--log-key", str(key)],
        cwd=ROOT, env=offline, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert "every check passed" in ours.stdout
    import tarfile

    with tarfile.open(archive) as tar:
        tar.extract("bundle/verify_bundle.py", tmp_path, filter="data")
    theirs = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "bundle" / "verify_bundle.py"), str(archive),
         "--log-key", str(key)],
        cwd=tmp_path, env=offline, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert "every check passed" in theirs.stdout
    proven = re.search(r"entries\s+([0-9,]+) proven; ([0-9,]+) attestations", ours.stdout)
    assert proven is not None, ours.stdout
    assert f"entries     {proven.group(1)} proven; {proven.group(2)} attestations" in theirs.stdout
    # every attestation of the three kinds, bad ones included
    assert int(proven.group(2).replace(",", "")) == 16 + 8 + 8
    assert "contraindicated" in ours.stdout
    trusted = "\n".join(re.findall(r"^trust\s+(.+)$", ours.stdout, re.M))
    for fingerprint in fingerprints.values():  # the bundle carries the roots the verdicts name
        assert fingerprint in trusted, ours.stdout
