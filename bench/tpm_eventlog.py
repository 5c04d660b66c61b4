"""TCG event log replay: events per second on one core, beside the bound, in one run.

* Ours: ``EventLog.replay("sha256")`` on the real logs of tests/fixtures/tpm/eventlogs (already
  parsed), and ``parse_event_log`` + replay together (what a verification pays), both counted
  in events per second.
* The bound: ``hashlib.sha256`` over as many 64-byte inputs as the log has events (a SHA-256
  extend hashes PCR || digest, 64 bytes), in the same run, before and after ours; the mean is
  used. The ratio ours / bound says how much the Python around the hashing costs.

No peer: go-tpm-tools and go-attestation replay in Go inside larger checks (Secure Boot
state, loaders) that cannot be timed apart from their replay.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.verifier_throughput import rate
from verifier.tpm.eventlog import parse_event_log

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "tpm" / "eventlogs"
LOGS = (
    "gotpmtools_ubuntu-2404-amd-sevsnp.bin",
    "gotpmtools_gdc-host.bin",
    "gotpmtools_arch-linux-workstation.bin",
)


def bound_events_per_second(events: int, seconds: float) -> float:
    inputs = [os.urandom(64) for _ in range(events)]

    def hash_all() -> None:
        for data in inputs:
            hashlib.sha256(data).digest()

    return rate(hash_all, seconds) * events


def main(seconds: float = 3.0) -> dict[str, Any]:
    previous = os.sched_getaffinity(0)
    cpu = min(previous)
    os.sched_setaffinity(0, {cpu})
    try:
        return _measure(seconds, cpu)
    finally:
        os.sched_setaffinity(0, previous)


def _measure(seconds: float, cpu: int) -> dict[str, Any]:
    per_log: dict[str, dict[str, float]] = {}
    for name in LOGS:
        data = (FIXTURES / name).read_bytes()
        log = parse_event_log(data)
        events = len(log.events)
        before = bound_events_per_second(events, seconds / 3)
        replay = rate(lambda log=log: log.replay("sha256"), seconds / 3) * events
        parsed = rate(lambda data=data: parse_event_log(data).replay("sha256"), seconds / 3)
        after = bound_events_per_second(events, seconds / 3)
        bound = (before + after) / 2
        per_log[name.removeprefix("gotpmtools_").removesuffix(".bin")] = {
            "events": events,
            "bytes": len(data),
            "bound_events_per_second": bound,
            "replay_events_per_second": replay,
            "parse_replay_events_per_second": parsed * events,
            "replay_ratio": replay / bound,
            "parse_replay_ratio": parsed * events / bound,
        }
    summary: dict[str, Any] = {"cpu": cpu, "per_log": per_log}
    print_table(summary)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "tpm_eventlog.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_table(s: dict[str, Any]) -> None:
    print()
    print(f"TCG event log replay (SHA-256 bank): one core (cpu {s['cpu']}), real logs, events/s")
    header = f"  {'log':26} {'events':>6} {'bound':>10} {'replay':>10} {'/bound':>7}"
    print(header + f" {'parse+replay':>12} {'/bound':>7}")
    for name, r in s["per_log"].items():
        print(
            f"  {name:26} {r['events']:>6} {r['bound_events_per_second']:>10.0f}"
            f" {r['replay_events_per_second']:>10.0f} {r['replay_ratio']:>7.2f}"
            f" {r['parse_replay_events_per_second']:>12.0f} {r['parse_replay_ratio']:>7.2f}"
        )
    print("  bound: hashlib.sha256 of one 64-byte input per event (PCR || digest), same run")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
