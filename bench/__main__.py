"""``python -m bench [NAME ...]``: run the benchmarks and print their tables.

Benchmarks never fail on speed; they report ratios to the bound and the peers measured in the
same run, because absolute times on a shared machine are noise.
"""

from __future__ import annotations

import argparse
import sys

from bench import (
    api_bench,
    bundle_bench,
    composite_bench,
    ledger_bench,
    nvidia_bench,
    portal_bench,
    service_bench,
    slow_clients_bench,
    snp_bench,
    tdx_bench,
    tpm_bench,
    tpm_eventlog,
    verifier_throughput,
)

BENCHMARKS = {
    "verifier": verifier_throughput.main,
    "snp": snp_bench.main,
    "tdx": tdx_bench.main,
    "tpm": tpm_bench.main,
    "eventlog": tpm_eventlog.main,
    "nvidia": nvidia_bench.main,
    "ledger": ledger_bench.main,
    "service": service_bench.main,
    "portal": portal_bench.main,
    "bundle": bundle_bench.main,
    "api": api_bench.main,
    "slow": slow_clients_bench.main,
    "composite": composite_bench.main,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHMARKS)}; default all")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    for name in args.names or list(BENCHMARKS):
        BENCHMARKS[name](seconds=args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
