"""The NVIDIA benchmark runs (at toy scale) so that `make bench` never rots. Nothing is timed
here: figures belong to `make bench nvidia`, as ratios."""

from __future__ import annotations

from bench import nvidia_bench


def test_nvidia_benchmark_runs(capsys) -> None:
    results = nvidia_bench.main(seconds=0.05)
    assert results["bound_p384_per_second"] > 0
    assert len(results["reports_per_second"]) == 4
    assert all(value > 0 for value in results["reports_per_second"].values())
    assert results["rim"]["rims_per_second"] > 0
    assert results["rim"]["parts_per_second"] > 0
    assert "NVIDIA GPU report verifier throughput" in capsys.readouterr().out
