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
    assert "The service is running on http://127.0.0.1:" in first
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
