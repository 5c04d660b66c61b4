"""The standalone verifier's NVIDIA judge agrees with the project's on every GPU report.

Differential fuzzing: NVIDIA's real samples (the hex H100 report with its device chain and
either real VBIOS RIM; the Hopper, Blackwell and NVSwitch JSON samples with their nonces) and
simulated GPUs of each architecture (:class:`~enclave_worker.simulated_nvidia.SimulatedGpu`
with its driver and VBIOS RIMs, :class:`~enclave_worker.simulated_rim.SimulatedRim`; in bad
modes too: another FWID, a foreign key, changed measurements, RIMs of another PKI or with
changed values), mutated by a seeded generator (bytes of the report, the certificates and
the RIMs changed, cut or added; endorsements dropped, repeated, reordered or of a foreign
kind; the policy, the instant and the nonce varied). The project's NvidiaVerifier (called
directly: :func:`attest_ledger.explain.judge_again` does not pass the nonce) and the
standalone judge shipped in every bundle must reach the same status and the same codes on
every one. ``ATTEST_LEDGER_FUZZ_CASES`` runs more than the default (500; a few thousand
locally), ``ATTEST_LEDGER_FUZZ_SEED`` another sequence.
"""

from __future__ import annotations

import os
import random
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attest_ledger.bundles import verify_bundle as standalone
from enclave_worker import SimulatedGpu, SimulatedNvidiaPki, SimulatedNvidiaWarning
from enclave_worker.simulated_rim import SimulatedRim
from tests.support import SIM_AT
from tests.verifier.nvidia.support import (
    AT,
    JSON_FILES,
    MISMATCH_RIM,
    NOW,
    NV,
    PROD_RIM,
    hex_report,
    hopper_chain,
    json_device,
)
from verifier import (
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    PolicyViolation,
    TrustAnchor,
    UnsafePolicyWarning,
    VerifierError,
)
from verifier.nvidia import NvidiaPolicy, NvidiaVerifier, UnsafeAcceptAnyNvidiaPolicy

CASES = int(os.environ.get("ATTEST_LEDGER_FUZZ_CASES", "500"))
SEED = int(os.environ.get("ATTEST_LEDGER_FUZZ_SEED", "20261130"))
NVIDIA = "nvidia-gpu"


@dataclass
class Case:
    report: bytes
    endorsements: list[tuple[str, bytes]]
    policy: dict[str, Any] | None
    at: datetime
    nonce: bytes | None
    simulated: bool
    label: str


def _pem(name: str) -> bytes:
    return x509.load_pem_x509_certificate((NV / name).read_bytes()).public_bytes(Encoding.DER)


def _pki() -> SimulatedNvidiaPki:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return SimulatedNvidiaPki.generate(at=SIM_AT)


PKI, OTHER_PKI = _pki(), _pki()
ROOTS = {
    False: (_pem("nvidia_device_root.pem"), _pem("nvidia_rim_root.pem")),
    True: (PKI.device_root.der, PKI.rim_root.der),
}
VERIFIERS = {
    simulated: NvidiaVerifier(
        trust_anchors=[TrustAnchor.from_der(device, name="device root")],
        rim_anchors=[TrustAnchor.from_der(rim, name="RIM root")],
    )
    for simulated, (device, rim) in ROOTS.items()
}
HEX_POLICY: dict[str, Any] = {
    "evidence_kind": NVIDIA, "name": "h100-535",
    "images": [{"name": "h100", "arch": "HOPPER", "driver_versions": ["535.86.09"],
                "vbios_versions": ["96.00.5e.00.01"]}],
    "require_rims": ["vbios"],
}  # fmt: skip
ACCEPT_ANY = {"evidence_kind": NVIDIA, "unsafe_accept_any": True}


def project(case: Case) -> tuple[str, set[str]]:
    """The project's verdict: its status and the codes of its violations, or its error."""
    evidence = Evidence(
        EvidenceKind.NVIDIA_GPU,
        case.report,
        tuple(Endorsement(EndorsementKind(k), d) for k, d in case.endorsements),
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafePolicyWarning)
            policy = (
                UnsafeAcceptAnyNvidiaPolicy()
                if case.policy is None
                else NvidiaPolicy.from_dict(case.policy)
            )
        result = VERIFIERS[case.simulated].verify(
            evidence, at=case.at, policy=policy, nonce=case.nonce
        )
    except PolicyViolation as violation:
        return "contraindicated", {v.code for v in violation.violations}
    except VerifierError as error:
        return "contraindicated", {error.code}
    return str(result.status), set()


def judged(case: Case) -> tuple[str, set[str]]:
    device, rim = ROOTS[case.simulated]
    anchor = [(x509.load_der_x509_certificate(device), device)]
    rim_anchor = [(x509.load_der_x509_certificate(rim), rim)]
    return standalone.nvidia_judge(
        case.report, case.endorsements, anchor, rim_anchor, case.policy, case.at, case.nonce
    )


# --- the cases -------------------------------------------------------------------------------


def _gpu(arch: str, **options: Any) -> SimulatedGpu:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return SimulatedGpu(PKI, arch=arch, secret=arch.encode() * 8, **options)


def _sim_policy(gpu: SimulatedGpu) -> dict[str, Any]:
    image: dict[str, Any] = {"name": "img", "arch": gpu.arch, "vbios_versions": [gpu.vbios]}
    if gpu.arch != "LS10":
        image["driver_versions"] = [gpu.driver]
    return {
        "evidence_kind": NVIDIA, "name": "sim", "images": [image],
        "require_rims": ["vbios"] if gpu.arch == "LS10" else ["driver", "vbios"],
    }  # fmt: skip


def base_cases() -> list[Case]:
    chain = [("device-certificate", e.data) for e in hopper_chain()]
    cases = [
        Case(hex_report(), [*chain, ("rim", (NV / name).read_bytes())], HEX_POLICY, at, None,
             False, f"hex {name} {at:%Y}")
        for name in (PROD_RIM, MISMATCH_RIM) for at in (AT, NOW)
    ]  # fmt: skip
    for name in JSON_FILES:
        report, endorsements, _, nonce = json_device(name)
        given = [(str(e.kind), e.data) for e in endorsements]
        cases.append(Case(report, given, None, AT, nonce, False, name))
    nonce = bytes(range(32))
    for arch in ("HOPPER", "BLACKWELL", "LS10"):
        gpu = _gpu(arch)
        variants = [gpu, gpu.variant(blocks={2: b"\x01" * 48})]
        if arch != "LS10":
            variants += [gpu.variant(opaque_fwid=b"\x02" * 48), gpu.variant(foreign_key=True)]
        for variant in variants:
            rims = SimulatedRim(gpu)
            kinds = ("vbios",) if arch == "LS10" else ("driver", "vbios")
            endorsements = [(e.kind, e.data) for e in variant.endorsements()]
            endorsements += [("rim", rims.document(kind)) for kind in kinds]  # type: ignore[arg-type]
            report = variant.report(nonce, responder_nonce=bytes(32))
            cases.append(
                Case(report, endorsements, _sim_policy(gpu), SIM_AT, nonce, True, f"sim {arch}")
            )
        foreign = SimulatedRim(gpu, pki=OTHER_PKI).document("vbios")
        changed = SimulatedRim(gpu).document("vbios", values={5: b"\x03" * 48})
        for rim in (foreign, changed):
            endorsements = [(e.kind, e.data) for e in gpu.endorsements()] + [("rim", rim)]
            report = gpu.report(nonce, responder_nonce=bytes(32))
            label = f"sim {arch} rim"
            cases.append(Case(report, endorsements, _sim_policy(gpu), SIM_AT, nonce, True, label))
    return cases


def _flip(data: bytes, rng: random.Random, printable: bool = False) -> bytes:
    at = rng.randrange(len(data)) if data else 0
    value = rng.choice(b" \"'<>=/&:ax0Z9\n") if printable else rng.randrange(256)
    return data[:at] + bytes([value]) + data[at + 1 :]


def mutate(case: Case, rng: random.Random) -> Case:
    report, endorsements = case.report, list(case.endorsements)
    policy, at, nonce = case.policy, case.at, case.nonce
    choice = rng.randrange(14)
    if choice == 0:
        report = _flip(report, rng)
    elif choice == 1:
        report = report[: rng.randrange(len(report))]
    elif choice == 2:
        report += rng.randbytes(rng.randrange(1, 8))
    elif choice == 3 and endorsements:
        i = rng.randrange(len(endorsements))
        kind, data = endorsements[i]
        endorsements[i] = (kind, _flip(data, rng, printable=kind == "rim"))
    elif choice == 4 and endorsements:
        del endorsements[rng.randrange(len(endorsements))]
    elif choice == 5 and endorsements:
        endorsements.append(rng.choice(endorsements))
    elif choice == 6:
        rng.shuffle(endorsements)
    elif choice == 7:
        endorsements.append(rng.choice([("ocsp", b"\x30\x00"), ("vcek", b"x")]))
    elif choice == 8:
        at += timedelta(days=rng.choice([-800, -2, 400, 900, 3000, 40000]))
    elif choice == 9:
        nonce = rng.choice([None, bytes(32), rng.randbytes(32)])
    elif choice == 10 and policy is not None and "images" in policy:
        image = dict(policy["images"][0])
        key = rng.choice(["driver_versions", "vbios_versions", "arch"])
        arches = ["BLACKWELL", "LS10", "HOPPER", "hopper", "Blackwell", "ls10", "ls_10", 5]
        image[key] = rng.choice(arches) if key == "arch" else (
            rng.choice([["1.2"], ["96.00.00.00.00"], []])
        )  # fmt: skip
        policy = {**policy, "images": [image]}
    elif choice == 11:
        policy = rng.choice([
            None, ACCEPT_ANY, {**(policy or HEX_POLICY), "feature_flags": rng.choice(
                [["SPT"], ["MPT", "PPCIE"], [], None])},
            {**(policy or HEX_POLICY), "require_rims": rng.choice([[], ["driver"], ["vbios"]])},
            {**(policy or HEX_POLICY), rng.choice(["min_gpus", "min_switches"]):
             rng.choice([0, 2, 16, 17, -1, True, "1", None])},  # composition's: judged valid
        ])  # fmt: skip
    elif choice == 12 and endorsements:
        rims = [i for i, (kind, _) in enumerate(endorsements) if kind == "rim"]
        if rims:
            i = rng.choice(rims)
            data = endorsements[i][1]
            cut = rng.randrange(len(data))
            endorsements[i] = ("rim", data[:cut] + data[cut + rng.randrange(1, 40) :])
    else:
        report = _flip(report[:-96], rng) + report[-96:]  # the signed part: signature_invalid
    return Case(report, endorsements, policy, at, nonce, case.simulated, case.label)


@pytest.fixture(scope="module")
def bases() -> list[Case]:
    return base_cases()


def test_the_base_cases_agree_with_their_known_outcomes(bases: list[Case]) -> None:
    outcomes = {case.label: (project(case), judged(case)) for case in bases}
    for label, (theirs, ours) in outcomes.items():
        assert theirs == ours, label
    assert outcomes[f"hex {PROD_RIM} 2024"][0] == ("affirming", set())
    assert outcomes[f"hex {MISMATCH_RIM} 2024"][0] == ("contraindicated", {"measurement_mismatch"})
    assert outcomes[f"hex {PROD_RIM} 2026"][0] == ("contraindicated", {"expired"})
    for name in JSON_FILES:
        assert outcomes[name][0] == ("warning", set())


def test_seeded_mutations_agree(bases: list[Case]) -> None:
    rng = random.Random(SEED)
    seen: Counter[str] = Counter()
    differences = []
    for n in range(CASES):
        case = rng.choice(bases)
        for _ in range(rng.choice([1, 1, 2])):
            case = mutate(case, rng)
        theirs, ours = project(case), judged(case)
        seen.update(theirs[1] or {theirs[0]})
        if theirs != ours:
            differences.append((n, case.label, theirs, ours))
    assert not differences, differences[:5]
    # the mutations reach the rules: enough of them to say the agreement means something
    for code in ("malformed", "signature_invalid", "affirming", "warning", "chain_invalid"):
        assert seen[code], (code, seen)
