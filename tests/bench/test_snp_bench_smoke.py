"""The SEV-SNP benchmark runs (at toy scale) so that `make bench` never rots. Nothing is
timed here: figures belong to `make bench`, as ratios."""

from __future__ import annotations

from bench import snp_bench


def test_snp_benchmark_runs(capsys) -> None:
    results = snp_bench.main(seconds=0.05)
    assert results["p384_verifications_per_second"] > 0
    assert set(results["per_report"]) == {s.name for s in snp_bench.SAMPLES}
    assert all(row["ours_warm"] > 0 for row in results["per_report"].values())
    assert all(row["ours_cold"] > 0 for row in results["per_report"].values())
    assert "SEV-SNP verifier throughput" in capsys.readouterr().out
