"""Proof bundles: export and verify-bundle throughput and peak memory, beside verifier-only.

Set-up: the embedded PostgreSQL, a policy, and N attestation entries with real (simulated
NSM) documents as evidence, each recorded as the service records an affirming verdict. Then,
for bundles of 1,000 and 100,000 entries, each in its own process as a user runs them:

* ``attest-ledger export`` (entries per second, peak RSS): memory should stay flat as the
  bundle grows;
* ``attest-ledger verify-bundle`` (entries per second, peak RSS), beside the bound measured
  in the same run: the same documents verified by ``NitroVerifier`` alone, warm, in one
  process. Target: verify-bundle within twice the verifier-only time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text

from bench.service_bench import IMAGE, ROOT, _set_up, _verify_many
from enclave_worker import SimulatedNsm, simulated_image_pcrs
from ledger.append import append, prepare_all
from ledger.checkpoints import publish_checkpoint
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.entry import NewEntry
from ledger.keys import load_signing_key
from ledger.note import NoteSigner
from verifier import DOCUMENT_TIME, ResultHash, TrustAnchor
from verifier.timefmt import iso_utc

SIZES = (1_000, 100_000)
WORKER = "bench-0"  # made by the service benchmark's set-up, allowed to attest IMAGE


def _policy_revision(url: str) -> int:
    """The ledger index of the policy the set-up recorded last (entries name it)."""
    engine = make_engine(url, pool_size=1)
    with engine.connect() as connection:
        query = text("SELECT max(idx) FROM ledger_entries WHERE kind = 'policy'")
        revision = int(connection.execute(query).scalar_one())
    engine.dispose()
    return revision


def _fill(  # noqa: PLR0917 - private, one caller
    url: str, nsm: SimulatedNsm, anchor: TrustAnchor, revision: int, start: int, stop: int,
    signer: NoteSigner, sample: list[bytes],
) -> int:  # fmt: skip
    """Affirming attestation entries ``start`` to ``stop`` with evidence, then a checkpoint;
    returns its tree size."""
    engine = make_engine(url, pool_size=1)
    factory = make_session_factory(engine)
    pcrs = simulated_image_pcrs(IMAGE)
    for first in range(start, stop, 500):
        batch = []
        for i in range(first, min(first + 500, stop)):
            result = ResultHash.of(b"result %d" % i)
            document = nsm.attest(user_data=result.user_data(), nonce=os.urandom(32))
            if len(sample) < 200:
                sample.append(document)
            record = {
                "v": 1, "kind": "attestation", "worker": WORKER,
                "verdict": "affirming", "error": None, "reasons": [],
                "result_hash": str(result), "job": {"id": f"job-{i}"},
                "verified_at": iso_utc(datetime.now(UTC)),  # as the intake writes it
                "policy_revision": revision, "policy": "bench", "image": IMAGE,
                "evidence_kind": "aws-nitro-enclave", "module_id": "i-0bench-enc0bench",
                "pcr0": pcrs[0].hex(), "document_time": None, "nonce": None,
                "trust_anchor_sha256": anchor.fingerprint,
            }  # fmt: skip
            batch.append(NewEntry.from_record(record, evidence=document))
        with session_scope(factory) as session:
            append(session, prepare_all(batch))
    with session_scope(factory) as session:
        size = publish_checkpoint(session, signer).tree_size
    engine.dispose()
    return size


def _run(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of a command, sampled every 10 ms."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    watch, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            peak = max(peak, watch.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.01)
    if process.wait() != 0:
        raise RuntimeError(f"{command[3]} failed with {process.returncode}")
    return time.perf_counter() - started, peak


def main(seconds: float = 3.0, *, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="attest-ledger-bundle-bench-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    url, data, nsm, _, _ = _set_up(directory, workers=1)  # the worker is bench-0
    signer = load_signing_key(data / "ledger.key")
    root_pem = (data / "simulated-pki" / "root.pem").read_bytes()
    anchor = TrustAnchor.from_pem(root_pem, name="bench")
    revision, sample, filled, checkpoints = _policy_revision(url), list[bytes](), 0, {}
    for size in sorted(sizes):
        checkpoints[size] = _fill(url, nsm, anchor, revision, filled, size, signer, sample)
        filled = size
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "ATTEST_LEDGER_DATA_DIR": str(data),
        "ATTEST_LEDGER_KEY": str(data / "ledger.key"),
        "ATTEST_LEDGER_TRUST_ROOT": str(data / "simulated-pki" / "root.pem"),
        "PYTHONWARNINGS": "ignore",
    }
    cli = [sys.executable, "-m", "attest_ledger.cli"]
    rows = {}
    for size in sizes:
        archive = directory / f"bundle-{size}.tar.gz"
        # every attestation under the checkpoint that covers exactly ``size`` of them
        selection = ["--kind", "attestation", "--tree-size", str(checkpoints[size]), "--quiet"]
        export_s, export_rss = _run([*cli, "export", str(archive), *selection], env)
        verify_s, verify_rss = _run(
            [*cli, "verify-bundle", str(archive), "--log-key", str(signer.verifier())], env
        )
        rows[size] = {
            "export_per_second": size / export_s,
            "export_peak_mib": export_rss / 2**20,
            "verify_per_second": size / verify_s,
            "verify_peak_mib": verify_rss / 2**20,
            "bytes": archive.stat().st_size,
        }
    bound = _verify_many((root_pem, sample, seconds, DOCUMENT_TIME))
    results = {"sizes": rows, "verifier_only_per_second": bound}
    print_table(results)
    return results


def print_table(r: dict[str, Any]) -> None:
    bound = r["verifier_only_per_second"]
    print()
    print("Proof bundles (embedded PostgreSQL 18; each command in its own process, as run)")
    print(f"  verifier only, same documents, warm, one process: {bound:,.0f} docs/s")
    print(
        f"  {'entries':>8} {'export/s':>9} {'peak MiB':>9} {'verify/s':>9} {'peak MiB':>9} "
        f"{'verify time / verifier-only':>28} {'archive MB':>11}"
    )
    for size, row in r["sizes"].items():
        ratio = bound / row["verify_per_second"]
        print(
            f"  {size:>8,} {row['export_per_second']:>9,.0f} {row['export_peak_mib']:>9.0f} "
            f"{row['verify_per_second']:>9,.0f} {row['verify_peak_mib']:>9.0f} "
            f"{ratio:>27.2f}x {row['bytes'] / 1e6:>11.1f}"
        )
    print("  targets: verify-bundle within 2x the verifier-only time; export memory flat")
