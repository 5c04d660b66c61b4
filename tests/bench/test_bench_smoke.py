"""The benchmarks run (at toy scale) so that `make bench` never rots. Nothing is timed here:
figures belong to `make bench`, on a quiet machine, as ratios."""

from __future__ import annotations

import pytest

from bench import (
    api_bench,
    bundle_bench,
    ledger_bench,
    portal_bench,
    service_bench,
    slow_clients_bench,
    verifier_throughput,
)


def test_verifier_benchmark_runs(capsys) -> None:
    results = verifier_throughput.main(seconds=0.05)
    assert results["p384_verifications_per_second"] > 0
    assert set(results["per_document"]) == {
        d.removesuffix(".cbor") for d in verifier_throughput.DOCUMENTS
    }
    assert all(row["ours_warm"] > 0 for row in results["per_document"].values())
    assert "Verifier throughput" in capsys.readouterr().out


@pytest.mark.db
def test_ledger_benchmark_runs(capsys) -> None:
    results = ledger_bench.main(quick=True, sizes=(300, 1000))
    assert results["audit"]["ok"] is True
    assert results["audit"]["entries"] == 1000
    assert set(results["proofs"]) == {300, 1000}
    assert results["appends"]["batch 1000"] > 0
    assert "Proof latency" in capsys.readouterr().out


@pytest.mark.db
def test_service_benchmark_runs(capsys) -> None:
    results = service_bench.main(seconds=0.05, workers=2, per_worker=15, load="threads")
    assert results["documents"] == 30
    assert results["verdicts"] == {"affirming": 30}
    assert results["errors"] == 0
    assert results["verifier_only_machine"] > 0
    assert results["cpu_ms_per_document"]["service (gunicorn)"] > 0
    assert "Service end to end" in capsys.readouterr().out


@pytest.mark.db
def test_portal_benchmark_runs(capsys) -> None:
    results = portal_bench.main(entries=3000, samples=12, real=4)
    assert results["entries"] > 3000 + 8  # synthetic, real, and the set-up's own entries
    assert "entry page (real evidence, chain)" in results["pages"]
    assert all(page["p99_ms"] > 0 for page in results["pages"].values())
    assert "Portal pages under gunicorn" in capsys.readouterr().out


@pytest.mark.db
def test_api_benchmark_runs(capsys) -> None:
    results = api_bench.main(entries=3000, samples=12, real=4)
    assert results["entries"] > 3000 + 8  # synthetic, real, and the set-up's own entries
    assert "result: real submission, with proof" in results["requests"]
    assert "count=exact, worker" in results["requests"]
    assert all(request["p99_ms"] > 0 for request in results["requests"].values())
    assert "Compliance API under gunicorn" in capsys.readouterr().out


@pytest.mark.db
def test_bundle_benchmark_runs(capsys) -> None:
    results = bundle_bench.main(seconds=0.05, sizes=(20, 50))
    assert set(results["sizes"]) == {20, 50}
    assert all(row["verify_per_second"] > 0 for row in results["sizes"].values())
    assert results["verifier_only_per_second"] > 0
    assert "Proof bundles" in capsys.readouterr().out


@pytest.mark.db
def test_slow_clients_benchmark_runs(capsys) -> None:
    results = slow_clients_bench.main(seconds=0.05, slow=5, workers=2, per_worker=5, load="threads")
    assert results["runs"]["without"]["documents"] == 10
    assert results["runs"]["with"]["documents"] == 10
    assert results["runs"]["with"]["errors"] == 0
    assert results["runs"]["with"]["slow"]["held"] == 5
    assert "Slow clients" in capsys.readouterr().out
