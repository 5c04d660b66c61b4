"""End to end with two kinds of evidence (issue #11): a simulated Nitro worker and a simulated
SEV-SNP worker feed one service under real gunicorn at the same time. Every receipt is then
proven offline against a signed checkpoint; the stats and search APIs count and filter by
evidence_kind; `attest-ledger audit` passes; and the whole ledger, exported with both roots,
is checked by `attest-ledger verify-bundle` and by the standalone verify_bundle.py taken out
of the bundle, each re-judging every attestation of both kinds."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import tarfile
import time
import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from attest_ledger.clients import create_client
from attest_ledger.policy_store import SNP, PolicyStore
from enclave_worker import SimulatedAmdPki, SimulatedAmdWarning, simulated_snp_measurement
from enclave_worker.simulated_amd import ARK_FILE
from ledger.checkpoint import CheckpointBody
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.keys import load_signing_key
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.note import NoteVerifier, open_note
from tests.e2e.conftest import CLI, ROOT

pytestmark = [pytest.mark.db, pytest.mark.e2e, pytest.mark.slow]

NITRO_KIND, SNP_KIND = "aws-nitro-enclave", "amd-sev-snp"
SNP_IMAGE = "e2e-snp"
NITRO_JOBS, SNP_JOBS = 28, 24  # with --mix: 7 bad Nitro (every mode), 6 bad SEV-SNP (every mode)

#: The reason each bad mode must be recorded with, per kind (the worker's --mix modes; an
#: SEV-SNP report has no timestamp, so the SEV-SNP worker skips `stale`).
EXPECTED = {
    NITRO_KIND: {
        "wrong-image": "pcr_mismatch",
        "stale": "document_too_old",
        "wrong-nonce": "nonce_unknown",
        "tampered": "signature_invalid",
        "unbound": "result_binding_mismatch",
        "debug": "debug_mode",
        "replay": "nonce_replayed",
    },
    SNP_KIND: {
        "wrong-image": "measurement_mismatch",
        "wrong-nonce": "nonce_unknown",
        "tampered": "signature_invalid",
        "unbound": "result_binding_mismatch",
        "debug": "debug_mode",
        "replay": "nonce_replayed",
    },
}


def simulated_amd_env(directory: Path) -> dict[str, str]:
    """A simulated AMD PKI in ``directory``, and the setting that makes the service trust
    its ARK."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        SimulatedAmdPki.load_or_create(directory, at=datetime.now(UTC))
    return {"ATTEST_LEDGER_SNP_TRUST_ROOT": str(directory / ARK_FILE)}


@pytest.fixture
def live_env(tmp_path: Path) -> dict[str, str]:
    """The service trusts a simulated ARK besides the simulated Nitro root (the conftest's)."""
    return simulated_amd_env(tmp_path / "simulated-amd")


@pytest.fixture
def snp_worker(live: dict[str, Any], db_url: str) -> str:
    """A worker client of its own, allowed the simulated guest's SEV-SNP image; its token."""
    engine = make_engine(db_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            token = create_client(session, "gamma", "worker")
            store = PolicyStore()
            measurement = simulated_snp_measurement(SNP_IMAGE).hex()
            store.add_reference(session, SNP_IMAGE, SNP, {"measurement": measurement})
            store.allow(session, "gamma", SNP_IMAGE)
    finally:
        engine.dispose()
    return token


def signed_checkpoint(base: str, covering: int) -> CheckpointBody:
    """The latest checkpoint, once it covers entry ``covering``, its signature checked with
    the log's public key alone."""
    key = NoteVerifier.parse(httpx.get(f"{base}/api/v1/log-key").json()["verifier_key"])
    deadline = time.monotonic() + 30
    while True:
        body = CheckpointBody.parse(
            open_note(httpx.get(f"{base}/api/v1/checkpoint").text, [key]).text
        )
        if body.tree_size > covering or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def test_nitro_and_snp_workers_side_by_side_then_proven_counted_and_bundled(
    live, snp_worker, tmp_path
) -> None:
    base, env, tokens, data = live["base"], live["env"], live["tokens"], live["data"]
    nitro_root = data / "simulated-pki" / "root.pem"
    ark = tmp_path / "simulated-amd" / ARK_FILE
    worker = [*CLI, "worker", "run", "--server", base, "--mix"]
    runs = {
        NITRO_KIND: (
            [*worker, "--count", str(NITRO_JOBS), "--image", "e2e-image", "--name", "nitro",
             "--simulated-pki", str(data / "simulated-pki")],
            tokens["alpha"],
        ),
        SNP_KIND: (
            [*worker, "--count", str(SNP_JOBS), "--tee", SNP_KIND, "--image", SNP_IMAGE,
             "--name", "snp", "--simulated-amd", str(tmp_path / "simulated-amd")],
            snp_worker,
        ),
    }  # fmt: skip
    receipts = run_side_by_side(env, runs)
    assert len(receipts[NITRO_KIND]) == NITRO_JOBS
    assert len(receipts[SNP_KIND]) == SNP_JOBS
    every = receipts[NITRO_KIND] + receipts[SNP_KIND]
    assert len({r["index"] for r in every}) == NITRO_JOBS + SNP_JOBS  # one entry each

    # each kind's bad ones rejected for their reason, the good ones affirmed
    check_verdicts(receipts, EXPECTED)
    bad = {kind: sum(r["bad"] is not None for r in receipts[kind]) for kind in receipts}
    assert bad == {NITRO_KIND: NITRO_JOBS // 4, SNP_KIND: SNP_JOBS // 4}

    # every receipt's entry proven against a signed checkpoint covering them all, offline
    top = max(r["index"] for r in every)
    body = signed_checkpoint(base, top)
    assert body.tree_size > top
    reader = {"Authorization": f"Bearer {tokens['auditor']}"}
    with httpx.Client(base_url=base, headers=reader) as http:
        prove_receipts(http, receipts, body)

        # the stats API counts by kind, and by verdict within one kind
        def counts(**params: str) -> Counter[tuple[str, ...]]:
            return stats_counts(http, **params)

        assert counts(group_by="evidence_kind") == {
            (NITRO_KIND,): NITRO_JOBS,
            (SNP_KIND,): SNP_JOBS,
        }
        for kind, jobs in ((NITRO_KIND, NITRO_JOBS), (SNP_KIND, SNP_JOBS)):
            assert counts(evidence_kind=kind, group_by="verdict") == {
                ("affirming",): jobs - bad[kind],
                ("contraindicated",): bad[kind],
            }
        assert counts(evidence_kind=SNP_KIND, group_by="worker") == {("gamma",): SNP_JOBS}

        # the search API finds exactly each kind's entries, and narrows by verdict within it
        def found(**params: str) -> tuple[set[int], int]:
            return search_entries(http, **params)

        for kind, kept in receipts.items():
            indices, counted = found(evidence_kind=kind, limit="10")  # several pages
            assert indices == {r["index"] for r in kept}
            assert counted == len(kept)
            rejected, counted = found(evidence_kind=kind, verdict="contraindicated")
            assert rejected == {r["index"] for r in kept if r["bad"] is not None}
            assert counted == bad[kind]

    audit = subprocess.run(
        [*CLI, "audit", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "audit passed" in audit.stdout

    # the whole ledger, exported with both roots given on the command line (and only there)
    archive = tmp_path / "ledger.tar.gz"
    plain = {k: v for k, v in env.items() if not k.endswith("TRUST_ROOT")}
    exported = subprocess.run(
        [*CLI, "export", str(archive), "--trust-root", str(nitro_root), "--trust-root", str(ark),
         "--tree-size", str(body.tree_size), "--quiet"],
        cwd=ROOT, env=plain, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    ours, theirs = verify_offline(archive, data, tmp_path, env)
    attestations = NITRO_JOBS + SNP_JOBS
    assert (ours.returncode, theirs.returncode) == (0, 0), (  # both said, when either fails
        f"verify-bundle: {ours.stdout}{ours.stderr}\n"
        f"verify_bundle.py: {theirs.stdout}{theirs.stderr}"
    )
    for checked in (ours, theirs):
        check_bundle_report(
            checked.stdout,
            tree_size=body.tree_size,
            attestations=attestations,
            contraindicated=sum(bad.values()),
        )


# --- shared with the other end-to-end tests of several kinds (test_three_schemes) ---------


def run_side_by_side(
    env: dict[str, str], runs: dict[str, tuple[list[str], str]]
) -> dict[str, list[dict[str, Any]]]:
    """Run ``worker run`` command lines at once, each with its token, and return each one's
    receipts (its JSON lines) by kind; each must exit 0 with nothing judged untrusted_root."""
    started = {
        kind: subprocess.Popen(
            arguments,
            cwd=ROOT,
            env={**env, "ATTEST_LEDGER_WORKER_TOKEN": token},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for kind, (arguments, token) in runs.items()
    }
    receipts: dict[str, list[dict[str, Any]]] = {}
    for kind, process in started.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert "untrusted_root" not in out, out  # the service trusts every simulated root
        receipts[kind] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return receipts


def check_verdicts(
    receipts: dict[str, list[dict[str, Any]]], expected: dict[str, dict[str, str]]
) -> None:
    """Each kind's every bad mode was fed and recorded with its reason; the rest affirmed."""
    for kind, reasons in expected.items():
        assert {r["bad"] for r in receipts[kind]} == {None, *reasons}  # every mode was fed
        for receipt in receipts[kind]:
            if receipt["bad"] is None:
                assert receipt["verdict"] == "affirming", receipt
                assert receipt["reasons"] == [], receipt
            else:
                assert receipt["verdict"] == "contraindicated", receipt
                assert reasons[receipt["bad"]] in receipt["reasons"], receipt


def prove_receipts(
    http: httpx.Client, receipts: dict[str, list[dict[str, Any]]], body: CheckpointBody
) -> None:
    """Every receipt's entry: its bytes hash to the receipt's leaf, its kind and verdict are
    the receipt's, and its inclusion proof checks against the signed checkpoint ``body``."""
    for kind, kept in receipts.items():
        for receipt in kept:
            index = receipt["index"]
            entry = http.get(f"/api/v1/entries/{index}").json()
            stored = base64.b64decode(entry["entry_bytes_b64"])
            assert leaf_hash(stored).hex() == receipt["leaf_hash"]
            assert entry["entry"]["evidence_kind"] == kind, entry["entry"]
            assert entry["entry"]["verdict"] == receipt["verdict"]
            proof = http.get(
                f"/api/v1/entries/{index}/proof", params={"tree_size": body.tree_size}
            ).json()
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            verify_inclusion(leaf_hash(stored), index, body.tree_size, hashes, body.root_hash)


def stats_counts(http: httpx.Client, **params: str) -> Counter[tuple[str, ...]]:
    """The stats API's submissions by group (the group's values), summed over the months."""
    reply = http.get("/api/v1/stats", params={"bucket": "month", **params})
    assert reply.status_code == 200, reply.text
    total: Counter[tuple[str, ...]] = Counter()
    for count in reply.json()["counts"]:
        total[tuple(str(v) for v in count["group"].values())] += count["submissions"]
    return total


def search_entries(http: httpx.Client, **params: str) -> tuple[set[int], int]:
    """The indices the search API finds for ``params`` (one evidence_kind), page after page,
    and the exact count it reports."""
    indices: set[int] = set()
    reply = http.get("/api/v1/entries", params={"count": "exact", **params}).json()
    counted = int(reply["count"])
    while True:
        for item in reply["entries"]:
            assert item["entry"]["evidence_kind"] == params["evidence_kind"], item
            indices.add(int(item["index"]))
        if not reply["next"]:
            return indices, counted
        reply = http.get("/api/v1/entries", params={**params, "after": reply["next"]}).json()


def verify_offline(
    archive: Path, data: Path, tmp_path: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """``attest-ledger verify-bundle`` and the standalone verify_bundle.py taken out of the
    bundle, each run on ``archive`` with no database and no roots, only the log key."""
    key = str(load_signing_key(data / "ledger.key").verifier())
    offline = {"PATH": env.get("PATH", ""), "HOME": str(tmp_path)}  # no database, no roots
    ours = subprocess.run(
        [*CLI, "verify-bundle", str(archive), "--log-key", key],
        cwd=ROOT, env=offline, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extract("bundle/verify_bundle.py", tmp_path, filter="data")
    theirs = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "bundle" / "verify_bundle.py"), str(archive),
         "--log-key", key],
        cwd=tmp_path, env=offline, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    return ours, theirs


def check_bundle_report(
    report: str, *, tree_size: int, attestations: int, contraindicated: int
) -> None:
    """A bundle verifier's report: every check passed, every entry proven, every attestation
    judged again, with the verdicts the ledger holds."""
    assert "every check passed" in report, report
    proven = re.search(r"entries\s+([0-9,]+) proven; ([0-9,]+) attestations", report)
    assert proven is not None, report
    assert int(proven.group(1).replace(",", "")) == tree_size, report
    assert int(proven.group(2).replace(",", "")) == attestations, report
    verdicts = dict(re.findall(r"^  (affirming|contraindicated)\s+([0-9,]+)$", report, re.M))
    assert verdicts == {
        "affirming": str(attestations - contraindicated),
        "contraindicated": str(contraindicated),
    }, report
