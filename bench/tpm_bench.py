"""TPM 2.0 quotes verified per second on one core, beside the bound measured in the same run.

* Ours: ``TpmVerifier`` on quotes signed here (a fresh RSA-2048 AK and a fresh P-256 AK, 24
  SHA-256 PCRs, an enrolled AK), parse, signature, pcrDigest, enrolment and an accept-any
  appraisal. Signed here because the real samples' AK paths cost extra work of another
  kind (a Nitro document's COSE and chain, a Google chain); those are reported too, warm.
* The bound: the raw ``cryptography`` verifications per second of the same signature (RSA
  PKCS#1 v1.5 SHA-256, ECDSA P-256 SHA-256) over the same TPMS_ATTEST bytes: one per quote.
  Measured before and after ours; the mean is used. Results are ratios to it.
* Event-log replay cost per event (:data:`REPLAY_HOOK`): go-tpm-tools' real Arch Linux
  workstation log parsed and replayed against its published SHA-1 and SHA-256 PCRs, as the
  scheme does for every quote that brings a log (``make bench eventlog`` has the parser's
  own figures beside hashlib's).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from bench.verifier_throughput import rate
from tests.verifier.tpm.support import AT, GCP_JSON, NITRO_JSON, Quote, sample
from verifier import UnsafePolicyWarning
from verifier.tpm import StaticEnrolments, TpmVerifier, UnsafeAcceptAnyTpmPolicy
from verifier.tpm.enrolment import Enrolment
from verifier.tpm.replay import replay_logs

ROOT = Path(__file__).resolve().parent.parent
EVENTLOGS = ROOT / "tests" / "fixtures" / "tpm" / "eventlogs"
ARCH_LOG = "gotpmtools_arch-linux-workstation.bin"


def replay_rate(seconds: float) -> dict[str, float]:
    """{"events": n, "replays_per_second": r}: the real log replayed against its PCRs."""
    data = (EVENTLOGS / ARCH_LOG).read_bytes()
    published = json.loads((EVENTLOGS / "expected_pcrs.json").read_text())[ARCH_LOG]["pcrs"]
    pcrs = {
        bank: {int(i): bytes.fromhex(v) for i, v in values.items()}
        for bank, values in published.items()
    }
    replayed = replay_logs(data, None, pcrs)
    assert replayed is not None
    return {
        "events": float(len(replayed.events)),
        "replays_per_second": rate(lambda: replay_logs(data, None, pcrs), seconds),
    }


#: a callable(seconds) -> {"events": n, "replays_per_second": r}
REPLAY_HOOK: Callable[[float], dict[str, float]] | None = replay_rate
KEYS = ("rsa2048", "p256")


def _policy() -> UnsafeAcceptAnyTpmPolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        return UnsafeAcceptAnyTpmPolicy()


def _quote(key: str) -> Quote:
    return Quote(key=key, pcrs={"sha256": {i: bytes([i]) * 32 for i in range(24)}})


def _bound(quote: Quote, seconds: float) -> float:
    attest = quote.attest()
    public_key = quote.private_key.public_key()  # type: ignore[attr-defined]
    if quote.key == "p256":
        der = quote.private_key.sign(attest, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
        return rate(lambda: public_key.verify(der, attest, ec.ECDSA(hashes.SHA256())), seconds)
    signature = quote.private_key.sign(attest, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[attr-defined]
    return rate(
        lambda: public_key.verify(signature, attest, padding.PKCS1v15(), hashes.SHA256()), seconds
    )


def _ours(quote: Quote, seconds: float) -> float:
    import hashlib

    enrolment = Enrolment(
        "bench", hashlib.sha256(quote.ak).hexdigest(), AT.replace(year=2025), None, None, None
    )
    verifier = TpmVerifier(enrolments=StaticEnrolments([enrolment]))
    evidence = quote.evidence()
    policy = _policy()
    return rate(lambda: verifier.verify(evidence, at=AT, policy=policy), seconds)


def main(seconds: float = 3.0) -> dict[str, Any]:
    previous = os.sched_getaffinity(0)
    cpu = min(previous)
    os.sched_setaffinity(0, {cpu})
    try:
        return _measure(seconds, cpu)
    finally:
        os.sched_setaffinity(0, previous)


def _measure(seconds: float, cpu: int) -> dict[str, Any]:
    quotes = {key: _quote(key) for key in KEYS}
    before = {key: _bound(q, seconds / 2) for key, q in quotes.items()}
    ours = {key: _ours(q, seconds) for key, q in quotes.items()}
    after = {key: _bound(q, seconds / 2) for key, q in quotes.items()}
    verifier = TpmVerifier()
    policy = _policy()
    real = {}
    for name, path in (("nitrotpm", NITRO_JSON), ("gcp", GCP_JSON)):
        evidence = sample(path)
        real[name] = rate(lambda e=evidence: verifier.verify(e, at=AT, policy=policy), seconds / 2)
    summary: dict[str, Any] = {
        "cpu": cpu,
        "per_key": {
            key: {
                "bound": (before[key] + after[key]) / 2,
                "bound_before": before[key],
                "bound_after": after[key],
                "ours": ours[key],
                "ratio": ours[key] / ((before[key] + after[key]) / 2),
            }
            for key in KEYS
        },
        "real_samples_warm": real,
        "replay": REPLAY_HOOK(seconds) if REPLAY_HOOK is not None else None,
    }
    print_table(summary)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "tpm.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_table(s: dict[str, Any]) -> None:
    print()
    print(f"TPM 2.0 quote verifier throughput: one core (cpu {s['cpu']}), quotes signed here")
    print(f"  {'':40} {'bound/s':>9} {'ours/s':>9} {'ours/bound':>10}")
    for key, row in s["per_key"].items():
        print(
            f"  {key + ' AK, 24 PCRs, enrolled':40} {row['bound']:>9.0f} {row['ours']:>9.0f} "
            f"{row['ratio']:>10.2f}"
        )
        print(f"  {'':40} (bound before {row['bound_before']:.0f}, after {row['bound_after']:.0f})")
    for name, value in s["real_samples_warm"].items():
        print(f"  {'real ' + name + ' sample (warm chain cache)':40} {'':>9} {value:>9.0f}")
    replay = s["replay"]
    print(
        "  event-log replay: "
        + (
            "not measured"
            if replay is None
            else f"{replay['replays_per_second'] * replay['events']:.0f} events/s "
            f"({replay['events']:.0f}-event real log, {replay['replays_per_second']:.0f} logs/s)"
        )
    )
