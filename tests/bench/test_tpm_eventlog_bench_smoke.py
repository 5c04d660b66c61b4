"""The event log replay benchmark runs (at toy scale) so that `make bench eventlog` never rots.
Nothing is timed here."""

from __future__ import annotations

from bench import tpm_eventlog


def test_eventlog_benchmark_runs(capsys) -> None:
    results = tpm_eventlog.main(seconds=0.03)
    assert set(results["per_log"]) == {
        "ubuntu-2404-amd-sevsnp",
        "gdc-host",
        "arch-linux-workstation",
    }
    assert results["per_log"]["gdc-host"]["events"] == 159
    assert all(row["replay_events_per_second"] > 0 for row in results["per_log"].values())
    assert "TCG event log replay" in capsys.readouterr().out
