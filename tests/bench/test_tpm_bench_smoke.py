"""The TPM benchmark runs (at toy scale) so that `make bench` never rots. Nothing is timed
here: figures belong to `make bench`, as ratios."""

from __future__ import annotations

from bench import tpm_bench


def test_tpm_benchmark_runs(capsys) -> None:
    results = tpm_bench.main(seconds=0.05)
    assert set(results["per_key"]) == {"rsa2048", "p256"}
    assert all(row["ours"] > 0 and row["bound"] > 0 for row in results["per_key"].values())
    assert set(results["real_samples_warm"]) == {"nitrotpm", "gcp"}
    assert "TPM 2.0 quote verifier throughput" in capsys.readouterr().out
