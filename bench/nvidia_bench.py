"""NVIDIA GPU reports verified per second on one core, beside the bound measured in the same
run, and what one RIM costs beside its own parts.

* Ours: ``NvidiaVerifier.verify`` on the three real evidence JSON samples (Hopper, Blackwell,
  NVSwitch) at 2024-06-01, warm (the five-certificate chain's links cached): parse, chain
  validity, one P-384 signature, FWID, nonce, an accept-any appraisal. And the H100 hex
  report with its VBIOS RIM (warm chains: the report's signature plus one RIM).
* The bound: raw ``cryptography`` ECDSA P-384/SHA-384 verifications per second of a 4 KB
  message (one per report), measured before and after ours; the mean is used. The verifier
  keeps verified RIMs by their bytes (validity is judged again at every call), so the RIM
  row is a report plus a warm RIM.
* RIM cost: ``verify_rim`` per RIM (cold: what the first report of a driver or VBIOS
  version pays) with a warm signer chain (signxml: parse, inclusive C14N
  1.1 of the document without its signature, SHA-384, C14N of SignedInfo, one P-384 verify,
  plus our hardened parse and measurement read), as a ratio to those parts done directly
  with lxml (inclusive C14N, which gives the same digests), hashlib and cryptography.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from bench.verifier_throughput import p384_verifications_per_second, rate
from tests.verifier.nvidia.support import (
    AT,
    JSON_FILES,
    NV,
    PROD_RIM,
    evidence,
    hex_report,
    hopper_chain,
    json_device,
    rim,
)
from verifier import UnsafePolicyWarning
from verifier.nvidia import NvidiaVerifier, UnsafeAcceptAnyNvidiaPolicy, nvidia_rim_root, verify_rim
from verifier.x509 import LinkCache

ROOT = Path(__file__).resolve().parent.parent
_DSIG = "{http://www.w3.org/2000/09/xmldsig#}"


def _policy() -> UnsafeAcceptAnyNvidiaPolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        return UnsafeAcceptAnyNvidiaPolicy()


def _rim_parts(data: bytes) -> None:
    """What an XML-DSig check of a RIM must do at least: parse, C14N, SHA-384 (x2), and one
    P-384 verification (of a signature made here: the point is its cost)."""
    root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    signature = root.find(f"{_DSIG}Signature")
    signed_info = etree.tostring(signature.find(f"{_DSIG}SignedInfo"), method="c14n")
    root.remove(signature)
    hashlib.sha384(etree.tostring(root, method="c14n")).digest()
    _PUBLIC.verify(_SIGNATURE, signed_info, ec.ECDSA(hashes.SHA384()))


_KEY = ec.generate_private_key(ec.SECP384R1())
_PUBLIC = _KEY.public_key()
_SIGNATURE = b""


def main(seconds: float = 3.0) -> dict[str, Any]:
    previous = os.sched_getaffinity(0)
    cpu = min(previous)
    os.sched_setaffinity(0, {cpu})
    try:
        return _measure(seconds, cpu)
    finally:
        os.sched_setaffinity(0, previous)


def _measure(seconds: float, cpu: int) -> dict[str, Any]:
    global _SIGNATURE  # noqa: PLW0603 - the parts' signature is made once, here
    verifier = NvidiaVerifier()
    policy = _policy()
    before = p384_verifications_per_second(seconds / 2)
    ours = {}
    for name in JSON_FILES:
        report, chain, _, nonce = json_device(name)
        item = evidence(report, *chain)
        ours[name] = rate(
            lambda e=item, n=nonce: verifier.verify(e, at=AT, policy=policy, nonce=n), seconds / 2
        )
    with_rim = evidence(hex_report(), *hopper_chain(), rim(PROD_RIM))
    ours["hex report + VBIOS RIM"] = rate(
        lambda: verifier.verify(with_rim, at=AT, policy=policy), seconds / 2
    )
    after = p384_verifications_per_second(seconds / 2)

    data = (NV / PROD_RIM).read_bytes()
    root = etree.fromstring(data)
    _SIGNATURE = _KEY.sign(
        etree.tostring(root.find(f"{_DSIG}Signature/{_DSIG}SignedInfo"), method="c14n"),
        ec.ECDSA(hashes.SHA384()),
    )
    links: LinkCache[tuple[bytes, bytes], bool] = LinkCache()
    anchors = [nvidia_rim_root()]
    skew = policy.clock_skew
    rim_rate = rate(
        lambda: verify_rim(data, anchors, at=AT, clock_skew=skew, links=links), seconds / 2
    )
    parts_rate = rate(lambda: _rim_parts(data), seconds / 2)
    bound = (before + after) / 2
    summary: dict[str, Any] = {
        "cpu": cpu,
        "bound_p384_per_second": bound,
        "bound_before": before,
        "bound_after": after,
        "reports_per_second": ours,
        "ratios": {name: value / bound for name, value in ours.items()},
        "rim": {
            "rims_per_second": rim_rate,
            "parts_per_second": parts_rate,
            "cost_over_parts": parts_rate / rim_rate,
            "bytes": len(data),
        },
    }
    print_table(summary)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "nvidia.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_table(s: dict[str, Any]) -> None:
    print()
    print(f"NVIDIA GPU report verifier throughput: one core (cpu {s['cpu']}), warm chains")
    print(
        f"  bound: P-384/SHA-384 verifications/s {s['bound_p384_per_second']:.0f} "
        f"(before {s['bound_before']:.0f}, after {s['bound_after']:.0f})"
    )
    print(f"  {'':44} {'ours/s':>9} {'ours/bound':>10}")
    for name, value in s["reports_per_second"].items():
        print(f"  {name:44} {value:>9.0f} {s['ratios'][name]:>10.2f}")
    r = s["rim"]
    print(
        f"  RIM ({r['bytes']} bytes), warm signer chain: {r['rims_per_second']:.0f}/s; its parts "
        f"(parse, C14N x2, SHA-384, one P-384 verify) {r['parts_per_second']:.0f}/s; "
        f"cost {r['cost_over_parts']:.2f}x the parts"
    )
