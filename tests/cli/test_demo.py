"""`make run` is `attest-ledger demo`: on a fresh data directory it sets everything up on the
embedded PostgreSQL and feeds the service; run again, it keeps what is there."""

from __future__ import annotations

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


def _demo(env: dict[str, str], jobs: int) -> str:
    done = subprocess.run(
        [*CLI, "demo", "--no-wait", "--jobs", str(jobs), "--port", str(_port())],
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

    first = _demo(env, jobs=8)
    assert f"embedded PostgreSQL 18 in {data}/postgres" in first
    assert "(created, mode 0600)" in first
    entries = [int(i) for i in re.findall(r"^\s+entry\s+(\d+)\s", first, re.M)]
    assert len(entries) == 8
    assert len(re.findall(r"\(bad on purpose: ", first)) == 2  # every fourth
    assert "contraindicated" in first
    assert "affirming" in first
    assert "the service is now STOPPED" in first  # --no-wait says what it did
    key = (data / "ledger.key").read_bytes()
    worker_token = (data / "demo-worker.token").read_text()
    assert oct((data / "demo-worker.token").stat().st_mode & 0o777) == "0o600"
    password = (data / "demo-portal.password").read_text()
    assert oct((data / "demo-portal.password").stat().st_mode & 0o777) == "0o600"
    assert f"/portal/  (sign in as demo-auditor, password in {data}/demo-portal.password)" in first
    # the service joins the embedded server itself, so that it restarts it if it dies
    assert "embedded PostgreSQL in" in (data / "service.log").read_text()
    assert "is started again if it dies" in (data / "service.log").read_text()

    second = _demo(env, jobs=4)
    assert "(kept)" in second
    assert "token in" not in second  # no new clients: the tokens are reused
    again = [int(i) for i in re.findall(r"^\s+entry\s+(\d+)\s", second, re.M)]
    assert len(again) == 4
    assert min(again) > max(entries)  # appended after the first run's entries
    assert (data / "ledger.key").read_bytes() == key
    assert (data / "demo-worker.token").read_text() == worker_token
    assert (data / "demo-portal.password").read_text() == password
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
    judged untrusted_root."""
    import httpx

    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["ATTEST_LEDGER_DATA_DIR"] = str(data)
    stopped = _demo(env, jobs=4)
    assert "the service is now STOPPED" in stopped
    assert "The service is running" not in stopped

    port = _port()
    demo = subprocess.Popen(
        [*CLI, "demo", "--jobs", "4", "--port", str(port)],
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
                r"^  (an attestation|more jobs|export it|check the bundle)\s+(.+)$", printed, re.M
            )
        )
        shown = subprocess.run(
            ["/bin/bash", "-c", hints["an attestation"]],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert '"kind":"attestation"' in shown.stdout.replace(" ", ""), shown.stdout
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
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        for hint in ("export it", "check the bundle"):  # the whole ledger, offline, as printed
            ran = subprocess.run(
                ["/bin/bash", "-c", hints[hint]],
                cwd=elsewhere, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert ran.returncode == 0, hint + ": " + ran.stdout + ran.stderr
        assert "every check passed" in ran.stdout
    finally:
        demo.terminate()
        demo.wait(60)
        demo.stdout.close()  # type: ignore[union-attr]


def test_the_demo_ledger_exports_whole_and_both_verifiers_accept_it(tmp_path) -> None:
    """Issue #10: `make run` records bad documents on purpose (tampered, stale, wrong image,
    wrong nonce, unbound, debug, replayed); its whole-ledger export never verified, because
    the rejections before the policy step named no trust anchor. Export the whole ledger in
    the demo's environment and check it with both verifiers: both pass and agree."""
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["ATTEST_LEDGER_DATA_DIR"] = str(data)
    env.pop("ATTEST_LEDGER_TRUST_ROOT", None)
    _demo(env, jobs=16)
    root = data / "simulated-pki" / "root.pem"
    archive = tmp_path / "ledger.tar.gz"

    refused = subprocess.run(
        [*CLI, "export", str(archive)], cwd=ROOT, env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "--trust-root" in refused.stderr  # names what to pass, and the fingerprint:
    from verifier import TrustAnchor

    fingerprint = TrustAnchor.from_pem(root.read_bytes(), name="demo").fingerprint
    assert fingerprint in refused.stderr
    assert not archive.exists()

    exported = subprocess.run(
        [*CLI, "export", str(archive), "--trust-root", str(root), "--quiet"],
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
    assert int(proven.group(2).replace(",", "")) >= 16  # every attestation, bad ones included
    assert "contraindicated" in ours.stdout
