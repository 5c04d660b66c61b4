"""The composite benchmark runs (at toy scale) so that `make bench BENCH=composite` never
rots. Nothing is timed here: figures belong to the benchmark, as ratios."""

from __future__ import annotations

import pytest

from bench import composite_bench


@pytest.mark.db
def test_composite_benchmark_runs(capsys) -> None:
    results = composite_bench.main(seconds=0.05, workers=2, per_worker=4, load="threads")
    for label in ("composite", "cpu-only"):
        run = results["runs"][label]
        assert run["documents"] == 8
        assert run["errors"] == 0
        assert run["all_affirming"], run["recorded"]
        assert run["verdicts"] == {"affirming": 8}
        assert run["cpu_ms"]["service"] > 0
    assert results["runs"]["composite"]["recorded"] == {
        "affirming (cpu affirming, devices affirming/affirming)": 8
    }
    assert results["bound_machine"] > 0
    assert results["bound_one_core"] > 0
    assert results["rim_selection"]["complete"]["wall_ms"] > 0
    assert "Composite submissions end to end" in capsys.readouterr().out
