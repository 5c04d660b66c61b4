"""Time one SEV-SNP peer verifier on one report. Runs in bench/.peers-venv.

Usage: python snp_peer_runner.py PEER REPORT VEK ASK_PEM ARK_PEM SECONDS CPU
Prints one JSON line: {"peer", "calls", "seconds", "accepted", "detail"}.

"accepted" means the peer verified the report end to end (signature, chain to the pinned
ARK, VCEK binding). omne-attest takes no verification time (it checks no validity window),
so no clock needs faking. This file imports nothing from the project: it measures the peer
as its users run it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings


def main() -> None:
    peer, report_path, vek_path, ask_path, ark_path, seconds, cpu = sys.argv[1:8]
    os.sched_setaffinity(0, {int(cpu)})
    warnings.simplefilter("ignore")  # serial-0 VCEKs make cryptography warn on every load
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    def der(path: str) -> bytes:
        with open(path, "rb") as handle:
            return x509.load_pem_x509_certificate(handle.read()).public_bytes(Encoding.DER)

    with open(report_path, "rb") as handle:
        report = handle.read()
    with open(vek_path, "rb") as handle:
        vek = handle.read()
    ask, ark = der(ask_path), der(ark_path)
    if peer != "omne":
        raise SystemExit(f"unknown peer {peer}")
    import omne_attest

    pinned = hashlib.sha256(ark).digest()
    policy = omne_attest.Policy(max_vmpl=3)

    def once() -> tuple[bool, str]:
        try:
            omne_attest.verify(report, vek, ask, ark, pinned, policy)
        except omne_attest.Fail as exc:
            return False, str(exc)[:160]
        return True, "ok"

    accepted, detail = once()  # warm up and learn the outcome
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < float(seconds):
        once()
        calls += 1
    print(
        json.dumps(
            {
                "peer": peer,
                "calls": calls,
                "seconds": elapsed,
                "accepted": accepted,
                "detail": detail,
            }
        )
    )


if __name__ == "__main__":
    main()
