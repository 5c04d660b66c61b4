"""`attest-ledger export` and `verify-bundle` as a regulator would run them."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from ledger.keys import load_signing_key
from tests.e2e.conftest import CLI, ROOT

pytestmark = [pytest.mark.db, pytest.mark.e2e]


def test_export_then_verify_offline(live, tmp_path) -> None:
    env, base = live["env"], live["base"]
    worker = subprocess.run(
        [*CLI, "worker", "run", "--server", base, "--count", "8", "--mix", "--image",
         "e2e-image", "--name", "w", "--simulated-pki", str(live["data"] / "simulated-pki")],
        cwd=ROOT, env={**env, "ATTEST_LEDGER_WORKER_TOKEN": live["tokens"]["alpha"]},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    size = httpx.get(f"{base}/api/v1/tree").json()["tree_size"]
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/api/v1/checkpoint").text.split("\n")[1] != str(size):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    archive = tmp_path / "bundle.tar.gz"
    exported = subprocess.run(
        [*CLI, "export", str(archive), "--kind", "attestation"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "export: 8 entries (affirming 6, contraindicated 2)" in exported.stderr
    assert "export: 8 / 8 entries" in exported.stderr  # progress on the command line
    key = str(load_signing_key(live["data"] / "ledger.key").verifier())
    offline = {"PATH": env.get("PATH", ""), "HOME": str(tmp_path)}  # no database named
    checked = subprocess.run(
        [*CLI, "verify-bundle", str(archive), "--log-key", key],
        cwd=ROOT, env=offline, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "every check passed" in checked.stdout
    assert "8 proven; 8 attestations re-verified" in checked.stdout

    # the standalone script, taken out of the bundle, run in isolated mode from elsewhere
    import sys
    import tarfile

    with tarfile.open(archive) as tar:
        tar.extract("bundle/verify_bundle.py", tmp_path, filter="data")
    script = tmp_path / "bundle" / "verify_bundle.py"
    standalone = subprocess.run(
        [sys.executable, "-I", str(script), str(archive), "--log-key", key],
        cwd=tmp_path, env=offline, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert standalone.returncode == 0, standalone.stdout + standalone.stderr
    assert "8 proven" in standalone.stdout
    assert "every check passed" in standalone.stdout

    again = tmp_path / "again.tar.gz"
    subprocess.run(
        [*CLI, "export", str(again), "--kind", "attestation", "--quiet",
         "--tree-size", str(size)],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    assert again.read_bytes() == archive.read_bytes()

    broken = bytearray(archive.read_bytes())
    broken[len(broken) // 2] ^= 0xFF
    (tmp_path / "broken.tar.gz").write_bytes(bytes(broken))
    failed = subprocess.run(
        [*CLI, "verify-bundle", str(tmp_path / "broken.tar.gz"), "--log-key", key],
        cwd=ROOT, env=offline, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAIL" in failed.stdout
    failed = subprocess.run(
        [sys.executable, "-I", str(script), str(tmp_path / "broken.tar.gz"), "--log-key", key],
        cwd=tmp_path, env=offline, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAIL" in failed.stdout

    usage = subprocess.run(
        [*CLI, "export", str(tmp_path / "x.tar.gz"), "--verdict", "maybe"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert usage.returncode == 2
    assert "--verdict" in usage.stderr
    assert not (tmp_path / "x.tar.gz").exists()
