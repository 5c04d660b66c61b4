"""The Intel TDX/SGX benchmark runs (at toy scale) so that `make bench` never rots. Nothing is
timed here: figures belong to `make bench`, as ratios."""

from __future__ import annotations

from bench import tdx_bench


def test_tdx_benchmark_runs(capsys) -> None:
    results = tdx_bench.main(seconds=0.05)
    assert results["p256_verifications_per_second"] > 0
    assert set(results["per_quote"]) == {s.name for s in tdx_bench.SAMPLES}
    assert all(row["ours_warm"] > 0 for row in results["per_quote"].values())
    assert all(row["ours_cold"] > 0 for row in results["per_quote"].values())
    assert results["common_quotes"] == [s.name for s in tdx_bench.SAMPLES]  # dcap-qvl agrees
    assert "Intel TDX/SGX verifier throughput" in capsys.readouterr().out
