"""End to end: real gunicorn on loopback, the embedded (or test) PostgreSQL, several worker
processes, then every acknowledged entry proven offline against a signed checkpoint."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time

import httpx
import pytest

from ledger.checkpoint import CheckpointBody
from ledger.keys import create_signing_key
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.note import NoteVerifier, open_note
from tests.e2e.conftest import CLI, ROOT, free_port

pytestmark = [pytest.mark.db, pytest.mark.e2e]

EXPECTED = {
    None: [],
    "wrong-image": ["pcr_mismatch", "pcr_mismatch", "pcr_mismatch"],
    "stale": ["document_too_old"],
    "wrong-nonce": ["nonce_unknown"],
    "tampered": ["signature_invalid"],
    "unbound": ["result_binding_mismatch"],
    "debug": ["debug_mode", "pcr_mismatch", "pcr_mismatch", "pcr_mismatch"],
    "replay": ["nonce_replayed"],
}


def test_workers_against_gunicorn_then_every_receipt_proven_offline(live) -> None:
    base, env, tokens = live["base"], live["env"], live["tokens"]
    workers = [
        subprocess.Popen(
            [
                *CLI, "worker", "run", "--server", base, "--count", str(count), *flags,
                "--image", "e2e-image", "--name", name,
                "--simulated-pki", str(live["data"] / "simulated-pki"),
            ],
            cwd=ROOT,
            env={**env, "ATTEST_LEDGER_WORKER_TOKEN": tokens[token]},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, token, count, flags in (
            ("a1", "alpha", 32, ["--mix"]),
            ("b1", "beta", 32, ["--mix"]),
            ("a2", "alpha", 20, []),
        )
    ]  # fmt: skip
    receipts = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        receipts.extend(json.loads(line) for line in out.splitlines() if line.startswith("{"))
    assert len(receipts) == 84
    assert len({r["index"] for r in receipts}) == 84  # one entry each, none lost, none shared

    # failures recorded with the right reasons
    for receipt in receipts:
        assert receipt["reasons"] == EXPECTED[receipt["bad"]], receipt
        assert receipt["verdict"] == ("affirming" if receipt["bad"] is None else "contraindicated")
    assert sum(r["bad"] is not None for r in receipts) == 16

    # a signed checkpoint covering everything, checked with the public key alone
    key = NoteVerifier.parse(httpx.get(f"{base}/api/v1/log-key").json()["verifier_key"])
    top = max(r["index"] for r in receipts)
    deadline = time.monotonic() + 30
    while True:
        body = CheckpointBody.parse(
            open_note(httpx.get(f"{base}/api/v1/checkpoint").text, [key]).text
        )
        if body.tree_size > top or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert body.tree_size > top

    reader = {"Authorization": f"Bearer {tokens['auditor']}"}
    with httpx.Client(base_url=base, headers=reader) as http:
        for receipt in receipts:
            index = receipt["index"]
            entry = http.get(f"/api/v1/entries/{index}").json()
            data = base64.b64decode(entry["entry_bytes_b64"])
            assert leaf_hash(data).hex() == receipt["leaf_hash"]
            proof = http.get(
                f"/api/v1/entries/{index}/proof", params={"tree_size": body.tree_size}
            ).json()
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            verify_inclusion(leaf_hash(data), index, body.tree_size, hashes, body.root_hash)

    metrics = httpx.get(f"{base}/metrics").text
    assert 'attest_submissions_total{verdict="affirming"} 68.0' in metrics
    assert 'attest_submissions_total{verdict="contraindicated"} 16.0' in metrics

    audit = subprocess.run(
        [*CLI, "audit", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "audit passed" in audit.stdout

    server = live["server"]
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    log = live["log"].read_text()
    assert server.returncode == 0, log
    assert "Traceback" not in log


def _raw_exchange(base: str, request: bytes, *, close_write: bool = True) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        if close_write:
            connection.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    return reply


def test_hostile_http_is_refused_and_the_service_carries_on(live) -> None:
    """What a client library would never send, at the socket: a truncated body, a body
    announced too large, bytes that are not HTTP. Nothing is written; the service stays up."""
    base, token = live["base"], live["tokens"]["alpha"]
    size = httpx.get(f"{base}/api/v1/tree").json()["tree_size"]
    head = (
        "POST /api/v1/attestations HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    )
    body = json.dumps({"attestation_document": "hAA=", "result_hash": "sha256:" + "00" * 32})
    truncated = _raw_exchange(
        base, f"{head}Content-Length: {len(body) + 500}\r\n\r\n{body}".encode()
    )
    assert truncated.split(b" ", 2)[1] == b"400", truncated[:300]
    assert b"shorter than its Content-Length" in truncated
    oversize = _raw_exchange(
        base, f"{head}Content-Length: 100000000\r\n\r\n".encode(), close_write=False
    )
    assert oversize.split(b" ", 2)[1] == b"413", oversize[:200]
    assert b"payload_too_large" in oversize
    garbage = _raw_exchange(base, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 20)
    assert garbage == b"" or garbage.split(b" ", 2)[1] == b"400"  # gunicorn hangs up
    assert httpx.get(f"{base}/readyz").status_code == 200
    assert httpx.get(f"{base}/api/v1/tree").json()["tree_size"] == size


def test_serve_refuses_an_outdated_schema(databases, tmp_path) -> None:
    url = databases.empty()
    try:
        key = tmp_path / "ledger.key"
        create_signing_key(key, "example.com/e2e")
        result = subprocess.run(
            [*CLI, "serve", "--bind", f"127.0.0.1:{free_port()}"],
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": url,
                "ATTEST_LEDGER_KEY": str(key),
                "ATTEST_LEDGER_DATA_DIR": str(tmp_path),
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert "run `attest-ledger db upgrade` first" in result.stderr
    finally:
        databases.drop(url)
