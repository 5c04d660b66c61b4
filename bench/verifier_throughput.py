"""Documents verified per second on one core, beside the bound and the peers, in one run.

* Ours: ``NitroVerifier`` on the real AWS fixtures at their own timestamps, warm (verified CA
  links cached: two P-384 verifications per document, the leaf link and the COSE signature)
  and cold (a new verifier per document: five verifications).
* The bound: P-384 ECDSA-SHA384 verifications per second that ``cryptography`` reaches here on
  a 4.5 KB message, divided by the verifications a document needs (2 warm, 5 cold).
* Peers: evervault-attestation-bindings (Rust core) and epsilon-attestation-verifier (Python),
  in their own virtual environment, run by bench/peer_runner.py at each document's time with
  libfaketime (neither can be told the time), pinned to the same core.

Throughput over a set of documents is the harmonic one: documents / time to verify one of each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from verifier import (
    DOCUMENT_TIME,
    NitroVerifier,
    Policy,
    ReferenceImage,
    parse_evidence,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "nitro"
PEERS_PYTHON = ROOT / "bench" / ".peers-venv" / "bin" / "python"
PEER_RUNNER = ROOT / "bench" / "peer_runner.py"
FAKETIME_LIBRARIES = [
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/faketime/libfaketime.so.1"),
]
PEERS = ("evervault", "epsilon")
PEER_LABELS = {
    "evervault": "evervault-attestation-bindings 0.5.0 (Rust)",
    "epsilon": "epsilon-attestation-verifier 1.1.0 (Python)",
}
#: The real documents that are valid at their own time (the debug one fails by design).
DOCUMENTS = (
    "anjuna_attestdoc_sample_prod_doc_with_publickey.cbor",
    "base_nitro_validator_2024.cbor",
    "blocky_nitro_attestation.cbor",
    "evervault_beta_valid.cbor",
    "vaportpm_nitrotpm_2026.cbor",
    "yawn_nitro_attest.cbor",
)


@dataclass
class Document:
    name: str
    raw: bytes
    policy: Policy
    timestamp: str


def load_documents() -> list[Document]:
    out = []
    for name in DOCUMENTS:
        raw = (FIXTURES / name).read_bytes()
        _, document = parse_evidence(raw)
        image = ReferenceImage("own", {i: document.pcrs[i] for i in (0, 1, 2)})
        policy = Policy(name="bench", images=(image,), evidence_kind=document.kind)
        stamp = document.timestamp.strftime("%Y-%m-%d %H:%M:%S")
        out.append(Document(name.removesuffix(".cbor"), raw, policy, stamp))
    return out


def rate(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``operation``, after one warm-up call."""
    operation()
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        operation()
        calls += 1
    return calls / elapsed


def p384_verifications_per_second(seconds: float) -> float:
    key = ec.generate_private_key(ec.SECP384R1())
    message = os.urandom(4500)
    signature = key.sign(message, ec.ECDSA(hashes.SHA384()))
    public = key.public_key()
    return rate(lambda: public.verify(signature, message, ec.ECDSA(hashes.SHA384())), seconds)


def ours_warm(document: Document, seconds: float) -> float:
    verifier = NitroVerifier()
    return rate(
        lambda: verifier.verify(document.raw, at=DOCUMENT_TIME, policy=document.policy), seconds
    )


def ours_cold(document: Document, seconds: float) -> float:
    return rate(
        lambda: NitroVerifier().verify(document.raw, at=DOCUMENT_TIME, policy=document.policy),
        seconds,
    )


def peer(
    name: str, document: Document, seconds: float, cpu: int, faketime: Path
) -> dict[str, object]:
    env = dict(
        os.environ,
        LD_PRELOAD=str(faketime),
        FAKETIME=f"@{document.timestamp}",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
        FAKETIME_NO_CACHE="1",
    )
    completed = subprocess.run(
        [
            str(PEERS_PYTHON),
            str(PEER_RUNNER),
            name,
            str(FIXTURES / f"{document.name}.cbor"),
            str(FIXTURES / "aws_nitro_root_g1.pem"),
            str(seconds),
            str(cpu),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=seconds * 10 + 60,
    )
    if completed.returncode != 0:
        return {"accepted": False, "rate": 0.0, "detail": completed.stderr.strip()[-160:]}
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return {
        "accepted": result["accepted"],
        "rate": result["calls"] / result["seconds"],
        "detail": result["detail"],
    }


def harmonic(rates: list[float]) -> float:
    return len(rates) / sum(1 / r for r in rates) if rates and all(rates) else 0.0


def peers_unavailable() -> str | None:
    if not PEERS_PYTHON.exists():
        return "bench/.peers-venv is missing (make bench creates it)"
    if not any(path.exists() for path in FAKETIME_LIBRARIES):
        return "libfaketime is not installed (Debian package: faketime)"
    return None


def main(seconds: float = 3.0) -> dict[str, Any]:
    previous = os.sched_getaffinity(0)
    cpu = min(previous)
    os.sched_setaffinity(0, {cpu})  # one core, ours and the peers alike
    try:
        return _measure(seconds, cpu)
    finally:
        os.sched_setaffinity(0, previous)


def _measure(seconds: float, cpu: int) -> dict[str, Any]:
    documents = load_documents()
    per_doc = seconds / 2

    bound = p384_verifications_per_second(seconds)
    warm = {d.name: ours_warm(d, per_doc) for d in documents}
    cold = {d.name: ours_cold(d, per_doc) for d in documents}
    bound_again = p384_verifications_per_second(seconds)  # drift check: the machine is shared
    bound = (bound + bound_again) / 2

    skipped = peers_unavailable()
    peer_results: dict[str, dict[str, dict[str, object]]] = {}
    if skipped is None:
        faketime = next(path for path in FAKETIME_LIBRARIES if path.exists())
        for name in PEERS:
            peer_results[name] = {d.name: peer(name, d, per_doc, cpu, faketime) for d in documents}

    common = [
        d.name
        for d in documents
        if all(bool(results[d.name]["accepted"]) for results in peer_results.values())
    ]
    summary: dict[str, Any] = {
        "cpu": cpu,
        "p384_verifications_per_second": bound,
        "bound_two_verifications": bound / 2,
        "bound_five_verifications": bound / 5,
        "ours_warm_all": harmonic(list(warm.values())),
        "ours_cold_all": harmonic(list(cold.values())),
        "ours_warm_common": harmonic([warm[n] for n in common]),
        "common_documents": common,
        "per_document": {
            d.name: {
                "ours_warm": warm[d.name],
                "ours_cold": cold[d.name],
                **{name: results[d.name] for name, results in peer_results.items()},
            }
            for d in documents
        },
        "peers": {
            name: harmonic([float(results[n]["rate"]) for n in common])
            for name, results in peer_results.items()
        },
        "peers_skipped": skipped,
    }
    print_table(summary)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "verifier.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_table(s: dict[str, Any]) -> None:
    bound2 = s["bound_two_verifications"]

    def row(label: str, value: float, *, ratio: bool = True, extra: str = "") -> None:
        shown = f"{value / bound2:>10.2f}" if ratio else " " * 10
        print(f"  {label:50} {value:>9.0f}  {shown}{extra}")

    print()
    print(f"Verifier throughput: one core (cpu {s['cpu']}), real AWS documents at their own time")
    print(f"  {'':50} {'docs/s':>9}  {'/ bound(2)':>10}")
    row(
        "cryptography P-384 verifications per second",
        s["p384_verifications_per_second"],
        ratio=False,
    )
    row("bound: 2 verifications per document (warm)", bound2)
    row("bound: 5 verifications per document (cold)", s["bound_five_verifications"])
    row("attestation-ledger, warm cache, all 6 documents", s["ours_warm_all"])
    row("attestation-ledger, cold, all 6 documents", s["ours_cold_all"])
    if s["peers_skipped"]:
        print(f"  peers skipped: {s['peers_skipped']}")
        return
    common = s["common_documents"]
    print(f"  on the {len(common)} documents every peer validates ({', '.join(common)}):")
    warm_common = s["ours_warm_common"]
    row("attestation-ledger, warm cache", warm_common)
    for name, value in s["peers"].items():
        ratio = warm_common / value if value else float("inf")
        row(PEER_LABELS[name], value, extra=f"   ours = {ratio:.2f}x")
    print("  per document (docs/s; '-' = the peer rejects a document AWS hardware produced):")
    print(f"  {'document':52} {'ours':>6} {'cold':>6} " + " ".join(f"{n:>9}" for n in PEERS))
    for name, cells in s["per_document"].items():
        peers = []
        for peer_name in PEERS:
            cell = cells.get(peer_name)
            peers.append(f"{cell['rate']:>9.0f}" if cell and cell["accepted"] else f"{'-':>9}")
        print(
            f"  {name:52} {cells['ours_warm']:>6.0f} {cells['ours_cold']:>6.0f} " + " ".join(peers)
        )


if __name__ == "__main__":
    warnings.simplefilter("default")
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
