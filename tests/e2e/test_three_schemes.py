"""End to end with three kinds of evidence (issue #12): a simulated Nitro worker, a simulated
SEV-SNP worker and a simulated Intel TDX worker feed one service under real gunicorn at the
same time. Every receipt is then proven offline against a signed checkpoint; the stats and
search APIs count and filter by evidence_kind, intel-tdx included; `attest-ledger audit`
passes; and the whole ledger, exported with the three roots, is checked by `attest-ledger
verify-bundle` and by the standalone verify_bundle.py taken out of the bundle.

Before the workers run, a TDX quote submitted WITHOUT its collateral (as a TD on real
hardware sends it: the collateral is not on the guest) is refused for what is missing; once
an operator has imported the collateral (`attest-ledger collateral import`, Intel PCS
response bodies, DER CRLs and the TCB Signing certificate in PEM, as an operator downloads
them), the same platform's next quote is affirmed, judged with the imported documents.

The helpers are the two-scheme test's (tests/e2e/test_schemes_service.py), imported."""

from __future__ import annotations

import base64
import json
import subprocess
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attest_ledger.clients import create_client
from attest_ledger.policy_store import TDX, PolicyStore
from enclave_worker import (
    SimulatedIntelPki,
    SimulatedIntelWarning,
    SimulatedTdxPlatform,
    simulated_tdx_measurement,
)
from enclave_worker.client import LedgerClient
from enclave_worker.job import Job, JobRunner
from enclave_worker.simulated_amd import ARK_FILE
from enclave_worker.simulated_intel import ROOT_FILE as INTEL_ROOT_FILE
from ledger.db import make_engine, make_session_factory, session_scope
from tests.e2e.conftest import CLI, ROOT
from tests.e2e.test_schemes_service import (
    EXPECTED,
    NITRO_JOBS,
    NITRO_KIND,
    SNP_IMAGE,
    SNP_JOBS,
    SNP_KIND,
    check_bundle_report,
    check_verdicts,
    prove_receipts,
    run_side_by_side,
    search_entries,
    signed_checkpoint,
    simulated_amd_env,
    snp_worker,  # noqa: F401 - a fixture: imported, pytest finds it here
    stats_counts,
    verify_offline,
)

pytestmark = [pytest.mark.db, pytest.mark.e2e, pytest.mark.slow]

TDX_KIND = TDX  # "intel-tdx"
TDX_IMAGE = "e2e-tdx"
TDX_JOBS = 24  # with --mix: 6 bad (every mode; a quote has no timestamp, so no `stale`)
#: The reason each bad mode must be recorded with, per kind.
EXPECTED_THREE = {
    **EXPECTED,
    TDX_KIND: {
        "wrong-image": "mrtd_mismatch",
        "wrong-nonce": "nonce_unknown",
        "tampered": "signature_invalid",
        "unbound": "result_binding_mismatch",
        "debug": "debug_mode",
        "replay": "nonce_replayed",
    },
}
#: The simulated collateral is issued a little before now, as the worker issues it, so that
#: the service does not find it issued in the future.
LEEWAY = timedelta(minutes=5)


@pytest.fixture
def live_env(tmp_path: Path) -> dict[str, str]:
    """The service trusts a simulated ARK and a simulated Intel root besides the simulated
    Nitro root (the conftest's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        SimulatedIntelPki.load_or_create(tmp_path / "simulated-intel", at=datetime.now(UTC))
    return {
        **simulated_amd_env(tmp_path / "simulated-amd"),
        "ATTEST_LEDGER_INTEL_TRUST_ROOT": str(tmp_path / "simulated-intel" / INTEL_ROOT_FILE),
    }


@pytest.fixture
def tdx_worker(live: dict[str, Any], db_url: str) -> str:
    """A worker client of its own, allowed the simulated trust domain's image; its token."""
    engine = make_engine(db_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            token = create_client(session, "delta", "worker")
            store = PolicyStore()
            mr_td = simulated_tdx_measurement(TDX_IMAGE).hex()
            store.add_reference(session, TDX_IMAGE, TDX, {"mr_td": mr_td})
            store.allow(session, "delta", TDX_IMAGE)
    finally:
        engine.dispose()
    return token


def _receipt(reply: dict[str, Any]) -> dict[str, Any]:
    """A service receipt in the shape `worker run` prints it."""
    verdict = reply["verdict"]
    return {
        "bad": None,
        "index": reply["entry"]["index"],
        "leaf_hash": reply["entry"]["leaf_hash"],
        "verdict": verdict["status"],
        "reasons": [r["code"] for r in verdict["reasons"]],
    }


def _collateral_files(platform: SimulatedTdxPlatform, directory: Path) -> list[Path]:
    """The platform's collateral as an operator downloads it from Intel's PCS: the TCB info
    and QE identity response bodies, the two CRLs in DER, the TCB Signing certificate in
    PEM."""
    directory.mkdir()
    names = {"tcb-info": "tcb-info.json", "qe-identity": "qe-identity.json"}
    files = []
    for n, endorsement in enumerate(platform.collateral()):
        if endorsement.kind == "certificate":
            path = directory / "tcb-signing.pem"
            certificate = x509.load_der_x509_certificate(endorsement.data)
            path.write_bytes(certificate.public_bytes(Encoding.PEM))
        else:
            path = directory / names.get(endorsement.kind, f"crl-{n}.der")
            path.write_bytes(endorsement.data)
        files.append(path)
    return files


def _imported_collateral_judges_a_bare_quote(
    base: str, env: dict[str, str], token: str, intel_dir: Path, tmp_path: Path
) -> list[dict[str, Any]]:
    """A quote without collateral: refused for what is missing; imported; affirmed. Returns
    the two receipts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        pki = SimulatedIntelPki.load_or_create(intel_dir, at=datetime.now(UTC))
        bare = SimulatedTdxPlatform(
            pki, image=TDX_IMAGE, at=datetime.now(UTC) - LEEWAY, with_collateral=False
        )
    client = LedgerClient(base, token)
    try:
        runner = JobRunner(client, bare)
        before = _receipt(runner.run(Job(id="bare-1", input=b"bare quote 1")))
        assert before["verdict"] == "contraindicated", before
        assert "endorsement_missing" in before["reasons"], before

        files = _collateral_files(bare, tmp_path / "collateral")
        imported = subprocess.run(
            [*CLI, "collateral", "import", *map(str, files)],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stdout + imported.stderr
        assert "collateral: 5 documents read, 5 new, 0 kept already" in imported.stdout

        after = _receipt(runner.run(Job(id="bare-2", input=b"bare quote 2")))
    finally:
        client.close()
    assert after["verdict"] == "affirming", after
    assert after["reasons"] == [], after
    return [before, after]


def test_nitro_snp_and_tdx_workers_side_by_side_then_proven_counted_and_bundled(
    live,
    snp_worker,  # noqa: F811 - the imported fixture, not a redefinition
    tdx_worker,
    tmp_path,
) -> None:
    base, env, tokens, data = live["base"], live["env"], live["tokens"], live["data"]
    nitro_root = data / "simulated-pki" / "root.pem"
    ark = tmp_path / "simulated-amd" / ARK_FILE
    intel_dir = tmp_path / "simulated-intel"
    intel_root = intel_dir / INTEL_ROOT_FILE

    imported = _imported_collateral_judges_a_bare_quote(base, env, tdx_worker, intel_dir, tmp_path)

    worker = [*CLI, "worker", "run", "--server", base, "--mix"]
    receipts = run_side_by_side(
        env,
        {
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
            TDX_KIND: (
                [*worker, "--count", str(TDX_JOBS), "--tee", TDX_KIND, "--image", TDX_IMAGE,
                 "--name", "tdx", "--simulated-intel", str(intel_dir)],
                tdx_worker,
            ),
        },
    )  # fmt: skip
    jobs = {NITRO_KIND: NITRO_JOBS, SNP_KIND: SNP_JOBS, TDX_KIND: TDX_JOBS}
    assert {kind: len(kept) for kind, kept in receipts.items()} == jobs
    every = [r for kept in receipts.values() for r in kept] + imported
    assert len({r["index"] for r in every}) == sum(jobs.values()) + 2  # one entry each

    # each kind's bad ones rejected for their reason, the good ones affirmed
    check_verdicts(receipts, EXPECTED_THREE)
    bad = {kind: sum(r["bad"] is not None for r in receipts[kind]) for kind in receipts}
    assert bad == {kind: count // 4 for kind, count in jobs.items()}
    # the bare quotes: one refused before the import, one affirmed after
    tdx_all = receipts[TDX_KIND] + imported
    tdx_rejected = bad[TDX_KIND] + 1

    # every receipt's entry proven against a signed checkpoint covering them all, offline
    top = max(r["index"] for r in every)
    body = signed_checkpoint(base, top)
    assert body.tree_size > top
    reader = {"Authorization": f"Bearer {tokens['auditor']}"}
    with httpx.Client(base_url=base, headers=reader) as http:
        prove_receipts(http, {**receipts, TDX_KIND: tdx_all}, body)

        # the affirmed bare quote's entry names the imported collateral that judged it
        entry = http.get(f"/api/v1/entries/{imported[1]['index']}").json()
        record = json.loads(base64.b64decode(entry["entry_bytes_b64"]))
        assert record["evidence_kind"] == TDX_KIND
        assert record["image"] == TDX_IMAGE
        assert record["claims"]["tcb"]["status"] == "UpToDate", record["claims"]
        kinds = sorted(e["kind"] for e in record["endorsements"])
        assert kinds == ["certificate", "crl", "crl", "qe-identity", "tcb-info"], record

        # the stats API counts by kind, and by verdict and worker within each kind
        assert stats_counts(http, group_by="evidence_kind") == {
            (NITRO_KIND,): NITRO_JOBS,
            (SNP_KIND,): SNP_JOBS,
            (TDX_KIND,): TDX_JOBS + 2,
        }
        rejected = {**bad, TDX_KIND: tdx_rejected}
        totals = {**jobs, TDX_KIND: TDX_JOBS + 2}
        for kind, total in totals.items():
            assert stats_counts(http, evidence_kind=kind, group_by="verdict") == {
                ("affirming",): total - rejected[kind],
                ("contraindicated",): rejected[kind],
            }
        assert stats_counts(http, evidence_kind=TDX_KIND, group_by="worker") == {
            ("delta",): TDX_JOBS + 2
        }

        # the search API finds exactly each kind's entries, and narrows by verdict within it
        for kind, kept in {**receipts, TDX_KIND: tdx_all}.items():
            indices, counted = search_entries(http, evidence_kind=kind, limit="10")  # pages
            assert indices == {r["index"] for r in kept}
            assert counted == len(kept)
            found, counted = search_entries(http, evidence_kind=kind, verdict="contraindicated")
            assert found == {r["index"] for r in kept if r["verdict"] == "contraindicated"}
            assert counted == rejected[kind]

    audit = subprocess.run(
        [*CLI, "audit", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "audit passed" in audit.stdout

    # the whole ledger, exported with the three roots given on the command line (and only
    # there)
    archive = tmp_path / "ledger.tar.gz"
    plain = {k: v for k, v in env.items() if not k.endswith("TRUST_ROOT")}
    roots = [arg for root in (nitro_root, ark, intel_root) for arg in ("--trust-root", str(root))]
    exported = subprocess.run(
        [*CLI, "export", str(archive), *roots, "--tree-size", str(body.tree_size), "--quiet"],
        cwd=ROOT, env=plain, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    ours, theirs = verify_offline(archive, data, tmp_path, env)
    attestations = sum(totals.values())
    contraindicated = sum(rejected.values())
    # one at a time, so that a failure says which verifier
    assert ours.returncode == 0, f"verify-bundle: {ours.stdout}{ours.stderr}"
    check_bundle_report(
        ours.stdout,
        tree_size=body.tree_size,
        attestations=attestations,
        contraindicated=contraindicated,
    )
    assert theirs.returncode == 0, f"verify_bundle.py: {theirs.stdout}{theirs.stderr}"
    check_bundle_report(
        theirs.stdout,
        tree_size=body.tree_size,
        attestations=attestations,
        contraindicated=contraindicated,
    )
