"""The live service for end-to-end tests: real gunicorn on loopback, on the embedded (or test)
PostgreSQL, with a signing key, a simulated Nitro root, two workers, a reader and a policy."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from attest_ledger.clients import create_client
from attest_ledger.policy_store import PolicyStore
from enclave_worker import SimulatedNitroWarning, simulated_image_pcrs
from enclave_worker.simulated_pki import load_or_create_root
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.keys import create_signing_key

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "attest_ledger.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_env() -> dict[str, str]:
    """Extra environment for the live service; a test module overrides this fixture to
    change a setting (the schemathesis test turns the rate limit off, say)."""
    return {}


@pytest.fixture
def live(db_url, tmp_path, live_env):
    data = tmp_path / "var"
    data.mkdir()
    key = data / "ledger.key"
    create_signing_key(key, "example.com/e2e")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        load_or_create_root(data / "simulated-pki", at=datetime.now(UTC))
    engine = make_engine(db_url)
    tokens = {}
    with session_scope(make_session_factory(engine)) as session:
        for name, role in (("alpha", "worker"), ("beta", "worker"), ("auditor", "reader")):
            tokens[name] = create_client(session, name, role)
        store = PolicyStore()
        pcrs = simulated_image_pcrs("e2e-image")
        store.add_image(session, "e2e-image", {i: pcrs[i] for i in (0, 1, 2)})
        store.allow(session, "alpha", "e2e-image")
        store.allow(session, "beta", "e2e-image")
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "ATTEST_LEDGER_DATA_DIR": str(data),
        "ATTEST_LEDGER_KEY": str(key),
        "ATTEST_LEDGER_TRUST_ROOT": str(data / "simulated-pki" / "root.pem"),
        "ATTEST_LEDGER_CHECKPOINT_INTERVAL": "0.5",
        **live_env,
    }
    # The log goes to a file, not a pipe: gunicorn writes an access-log line per request, and
    # a pipe nobody reads until the end fills up (64 KiB) and then blocks the service.
    log = tmp_path / "service.log"
    log_file = log.open("w")
    server = subprocess.Popen(
        [*CLI, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            server.wait()
            log_file.close()
            pytest.fail("the service did not start:\n" + log.read_text())
        time.sleep(0.2)
    yield {"base": base, "env": env, "tokens": tokens, "data": data, "server": server, "log": log}
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    log_file.close()
