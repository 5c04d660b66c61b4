"""Time one peer verifier on one document. Runs in bench/.peers-venv, under libfaketime.

Usage: python peer_runner.py PEER DOCUMENT ROOT_PEM SECONDS CPU
Prints one JSON line: {"peer", "calls", "seconds", "accepted", "detail"}.

"accepted" means the peer completed a full validation of the document: for epsilon, a valid
result; for evervault, whose attest_enclave() also demands a binding to a TLS certificate we
do not have, an error about that binding, which it raises only after validating the chain.
This file imports nothing from the project: it measures the peers as their users run them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import time


def main() -> None:
    peer, document, root_pem, seconds, cpu = sys.argv[1:6]
    os.sched_setaffinity(0, {int(cpu)})
    raw = open(document, "rb").read()  # noqa: SIM115 - a tiny script
    if peer == "evervault":
        import cbor2
        import evervault_attestation_bindings as evervault

        certificate = cbor2.loads(cbor2.loads(raw)[2])["certificate"]

        def once() -> tuple[bool, str]:
            try:
                evervault.attest_enclave(certificate, [], raw)
            except Exception as exc:
                text = str(exc)
                return ("User data" in text or "binding" in text.lower()), text[:160]
            return True, "ok"

    elif peer == "epsilon":
        from epsilon_verifier.verifier import verify_attestation

        logging.disable(logging.CRITICAL)
        encoded = base64.b64encode(raw).decode()

        def once() -> tuple[bool, str]:
            result = verify_attestation(encoded, aws_root_cert_path=root_pem)
            return bool(result.valid), str(result.error or "ok")[:160]

    else:
        raise SystemExit(f"unknown peer {peer}")

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
